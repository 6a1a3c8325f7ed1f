/*
 * gstfastvlmworker.c — the model thread of fastvlmcaption: mailbox, engine session,
 * ORC planar conversion, scene-change reuse, latency budget, abort.
 *
 * Locking: one mutex guards the mailbox and the state flags; it is never held while the
 * model runs or while a callback runs. Condition `cond` is broadcast on every change
 * (mailbox taken/filled, run finished, output finished, flushing, quit) — the waiters
 * are few (streaming thread, state-change thread) so one condition keeps it simple.
 *
 * Test hook: FASTVLM_GST_TEST_DELAY_MS=<n> (read when the worker starts) makes every model
 * run wait n ms before asking the engine — an abortable sleep standing in for a slow model,
 * so tests of live behaviour, flushing and shutdown do not need a large model.
 * FASTVLM_GST_TEST_ALIGN_MS=<n> (with the delay) extends that wait to the next multiple of
 * n ms of the monotonic clock, so concurrent runs of several elements ask the engine at
 * the same instant (tests/robustness test-multistream batch_decode).
 */
#include <string.h>
#include <stdlib.h>

#include "gstfastvlmworker.h"
#include "gstfastvlmscheduler.h"
#include "fastvlmorc.h"

GST_DEBUG_CATEGORY_STATIC (fvlm_worker_debug);
#define GST_CAT_DEFAULT fvlm_worker_debug

struct _FvlmWorker
{
  GMutex lock;
  GCond cond;
  GThread *thread;

  fastvlm_session *session;
  FvlmSchedStream *stream;      /* our place in the model's run scheduler; NULL = none */
  FvlmNormalize norm;
  FvlmWorkerFuncs funcs;
  gpointer user_data;
  gint64 test_delay_us;
  gint64 test_align_us;

  /* under lock */
  FvlmRequest *mailbox;
  gboolean busy;                /* a request was taken and is not finished */
  gboolean acquiring;           /* waiting for a run slot (the request stays in the
                                 * mailbox meanwhile: live, newer frames replace it) */
  gboolean outputting;          /* funcs->output or funcs->idle is running */
  gboolean flushing;
  gboolean quit;
  gboolean kicked;
  guint epoch;
  guint64 done_seq;             /* highest request number finished */
  GstClockTime running_pts;
  gint64 run_start_us;
  gdouble mean_run_us;          /* exponential mean of full runs; 0 = none yet */
  guint8 *spare_rgbx;           /* one recycled square */
  gint spare_size;

  gint abort;                   /* atomic: the engine's should_abort answers it */

  /* worker thread only */
  gboolean slot_held;           /* a run slot of the scheduler is ours */
  gfloat *planar;
  gint planar_size;
  /* the last encoded frame: its features (our reference), fingerprint and PTS */
  fastvlm_image_features *features;
  guint8 enc_thumb[FVLM_THUMB_PIXELS];
  gint enc_size;
  GstClockTime enc_pts;
  guint enc_epoch;              /* flush epoch of that frame: no reuse across a flush */
  /* the complete answers about those features, for republishing */
  gboolean have_last;
  FvlmRequest last_params;      /* only the question fields are meaningful */
  gchar **last_texts;           /* NULL-terminated, one per prompt */
  gint *last_n_tokens;
  gint last_n;
};

/* What the engine callbacks see during one run. */
typedef struct
{
  FvlmWorker *worker;
  gint64 deadline_us;           /* 0 = no budget */
  gboolean over_budget;
} FvlmJob;

static void
fvlm_worker_init_debug (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_INIT (fvlm_worker_debug, "fastvlmworker", 0,
        "fastvlmcaption model thread");
    g_once_init_leave (&done, 1);
  }
}

const gchar *
fvlm_stop_to_string (FvlmStop stop)
{
  switch (stop) {
    case FVLM_STOP_EOS:
      return "eos";
    case FVLM_STOP_LENGTH:
      return "length";
    case FVLM_STOP_CONTEXT:
      return "context";
    case FVLM_STOP_LATENCY:
      return "latency";
    case FVLM_STOP_REUSED:
      return "reused";
  }
  return "unknown";
}

const gchar *
fvlm_reuse_to_string (FvlmReuse reuse)
{
  switch (reuse) {
    case FVLM_REUSE_NONE:
      return "none";
    case FVLM_REUSE_FEATURES:
      return "features";
    case FVLM_REUSE_ANSWER:
      return "answer";
  }
  return "unknown";
}

/* ---- scene-change fingerprint -------------------------------------------------------- */

void
fvlm_fingerprint_compute (const guint8 * rgbx, gint size, guint8 * thumb)
{
  gint block = size / FVLM_THUMB_SIDE;
  guint32 div = 4u * (guint32) block * (guint32) block;

  for (gint by = 0; by < FVLM_THUMB_SIDE; by++) {
    for (gint bx = 0; bx < FVLM_THUMB_SIDE; bx++) {
      const guint8 *p = rgbx + ((gsize) by * block * size + (gsize) bx * block) * 4;
      guint32 sum = 0;

      fastvlm_orc_rgbx_luma_sum (&sum, (const guint32 *) p, size * 4, block,
          block);
      thumb[by * FVLM_THUMB_SIDE + bx] = (guint8) (sum / div);
    }
  }
}

gdouble
fvlm_fingerprint_distance (const guint8 * a, const guint8 * b)
{
  guint32 sad = 0;

  fastvlm_orc_sad_u8 (&sad, a, b, FVLM_THUMB_PIXELS);
  return (gdouble) sad / FVLM_THUMB_PIXELS;
}

void
fvlm_request_free (FvlmRequest * req)
{
  if (req == NULL)
    return;
  g_free (req->rgbx);
  g_free (req->prompt);
  g_strfreev (req->prompts);
  g_free (req->system_prompt);
  g_free (req);
}

void
fvlm_result_clear (FvlmResult * res)
{
  g_free (res->text);
  memset (res, 0, sizeof (*res));
}

/* Frees @req, keeping its square for the next sample. Call with the lock held. */
static void
fvlm_worker_recycle_locked (FvlmWorker * w, FvlmRequest * req)
{
  if (req->rgbx && w->spare_rgbx == NULL) {
    w->spare_rgbx = req->rgbx;
    w->spare_size = req->size;
    req->rgbx = NULL;
  }
  fvlm_request_free (req);
}

guint8 *
fvlm_worker_alloc_rgbx (FvlmWorker * w, gint size)
{
  guint8 *rgbx = NULL;

  g_mutex_lock (&w->lock);
  if (w->spare_rgbx && w->spare_size == size) {
    rgbx = w->spare_rgbx;
    w->spare_rgbx = NULL;
  }
  g_mutex_unlock (&w->lock);
  if (rgbx == NULL)
    rgbx = g_malloc ((gsize) size * size * 4);
  return rgbx;
}

/* ---- engine callbacks ---------------------------------------------------------------- */

static gboolean
fvlm_job_over_budget (FvlmJob * job)
{
  if (job->deadline_us != 0 && g_get_monotonic_time () > job->deadline_us)
    job->over_budget = TRUE;
  return job->over_budget;
}

static bool
fvlm_worker_should_abort (void *user_data)
{
  FvlmJob *job = user_data;

  return g_atomic_int_get (&job->worker->abort) || fvlm_job_over_budget (job);
}

/* Stopping here (rather than aborting) ends the answer cleanly: the text so far is kept
 * and marked truncated. */
static bool
fvlm_worker_on_token (int32_t token, const char *piece, void *user_data)
{
  return !fvlm_job_over_budget ((FvlmJob *) user_data);
}

/* ---- one request ------------------------------------------------------------------- */

/* The scene-change gate: what of the last encoded frame this request may reuse.
 * *distance receives the fingerprint distance, or -1 when not compared. */
static FvlmReuse
fvlm_worker_gate (FvlmWorker * w, const FvlmRequest * req, gdouble * distance)
{
  const FvlmRequest *last = &w->last_params;

  *distance = -1.0;
  /* A flush (seek) breaks the stream's continuity: a frame from before it must not
   * describe one after it, however alike their fingerprints (tests/robustness
   * test-seek: a static picture seeked got captions from pre-seek features). */
  if (!req->reuse || w->features == NULL || req->size != w->enc_size
      || req->epoch != w->enc_epoch)
    return FVLM_REUSE_NONE;
  *distance = fvlm_fingerprint_distance (req->thumb, w->enc_thumb);
  if (req->reuse_threshold <= 0.0 || *distance >= req->reuse_threshold)
    return FVLM_REUSE_NONE;
  /* the same answer again only when decoding is deterministic and the question is the
   * same (prompt-id covers prompt, prompts and system prompt) */
  if (w->have_last && req->temperature <= 0.0f
      && req->prompt_id == last->prompt_id
      && req->max_new_tokens == last->max_new_tokens
      && MAX (req->n_prompts, 1) == w->last_n)
    return FVLM_REUSE_ANSWER;
  return FVLM_REUSE_FEATURES;
}

static void
fvlm_worker_forget_answers (FvlmWorker * w)
{
  w->have_last = FALSE;
  g_clear_pointer (&w->last_texts, g_strfreev);
  g_clear_pointer (&w->last_n_tokens, g_free);
  w->last_n = 0;
}

/* The test hook's abortable sleep. */
static void
fvlm_worker_test_delay (FvlmWorker * w, FvlmJob * job)
{
  gint64 end = g_get_monotonic_time () + w->test_delay_us;

  if (w->test_align_us > 0)
    end += w->test_align_us - end % w->test_align_us;
  if (job->deadline_us != 0 && job->deadline_us < end)
    end = job->deadline_us;
  g_mutex_lock (&w->lock);
  while (!g_atomic_int_get (&w->abort) && g_get_monotonic_time () < end)
    g_cond_wait_until (&w->cond, &w->lock, end);
  g_mutex_unlock (&w->lock);
  fvlm_job_over_budget (job);
}

typedef enum
{
  FVLM_RUN_RESULT,
  FVLM_RUN_DROPPED,
  FVLM_RUN_CANCELLED            /* flushing/stopping: nothing to report */
} FvlmRunOutcome;

static FvlmStop
fvlm_worker_stop_from_engine (fastvlm_stop_reason stop)
{
  switch (stop) {
    case FASTVLM_STOP_EOS:
      return FVLM_STOP_EOS;
    case FASTVLM_STOP_LENGTH:
      return FVLM_STOP_LENGTH;
    case FASTVLM_STOP_CONTEXT:
      return FVLM_STOP_CONTEXT;
    default:
      return FVLM_STOP_LATENCY;
  }
}

/* Republishes the answers kept for the features of the last encoded frame. */
static void
fvlm_worker_republish (FvlmWorker * w, const FvlmRequest * req,
    FvlmResult * res, gint n, gdouble distance)
{
  for (gint i = 0; i < n; i++) {
    res[i].text = g_strdup (w->last_texts[i]);
    res[i].n_tokens = w->last_n_tokens[i];
    res[i].reused = TRUE;
    res[i].reuse = FVLM_REUSE_ANSWER;
    res[i].stop = FVLM_STOP_REUSED;
    res[i].preprocess_ms = i == 0 ? req->convert_ms : 0.0;
  }
}

/* Runs @req and fills res[0..n) (n = its prompt count; *n_out of them are results).
 * Reuse as decided by fvlm_worker_gate(). */
static FvlmRunOutcome
fvlm_worker_run_model (FvlmWorker * w, FvlmRequest * req, FvlmResult * res,
    gint * n_out, FvlmDropReason * reason, gchar ** message)
{
  FvlmJob job = { w, 0, FALSE };
  fastvlm_generate_params gp;
  fastvlm_result *out;
  fastvlm_error err;
  fastvlm_status status;
  gsize n_pixels = (gsize) req->size * req->size;
  gint n = MAX (req->n_prompts, 1), n_done = 0;
  gint64 t0, t1, t2;
  gdouble distance;
  FvlmReuse kind;

  *n_out = 0;
  res[0].start_us = t0 = g_get_monotonic_time ();
  res[0].queue_ms = (t0 - req->submit_us) / 1000.0;
  if (req->budget_us > 0)
    job.deadline_us = req->arrival_us + req->budget_us;
  if (fvlm_job_over_budget (&job))
    goto late;

  kind = fvlm_worker_gate (w, req, &distance);
  for (gint i = 0; i < n; i++) {
    res[i].start_us = t0;
    res[i].queue_ms = res[0].queue_ms;
    res[i].prompt_index = i;
    res[i].n_prompts = n;
    res[i].scene_distance = distance;
    res[i].reuse = kind;
    res[i].encoded_pts = kind == FVLM_REUSE_NONE ? req->pts : w->enc_pts;
  }
  GST_LOG ("request %" G_GUINT64_FORMAT ": scene distance %.3f, reuse %s",
      req->seq, distance, fvlm_reuse_to_string (kind));
  if (kind == FVLM_REUSE_ANSWER) {
    fvlm_worker_republish (w, req, res, n, distance);
    *n_out = n;
    return FVLM_RUN_RESULT;
  }

  if (kind == FVLM_REUSE_FEATURES) {
    /* tower skipped: the session splices the kept rows (same id: its KV cache may
     * hold them already) */
    status = fastvlm_session_set_image_features (w->session, w->features, &err);
    if (status != FASTVLM_OK)
      goto engine_error;
    t1 = t2 = g_get_monotonic_time ();
    res[0].preprocess_ms = req->convert_ms;
  } else {
    /* ORC: RGBx square -> normalised planes */
    if (w->planar_size != req->size) {
      g_free (w->planar);
      w->planar = g_malloc (sizeof (gfloat) * 3 * n_pixels);
      w->planar_size = req->size;
    }
    fvlm_preprocess_to_planar (req->rgbx, n_pixels, &w->norm, w->planar);
    t1 = g_get_monotonic_time ();
    res[0].preprocess_ms = req->convert_ms + (t1 - t0) / 1000.0;

    /* the kept features and answers describe the previous frame from here on */
    g_clear_pointer (&w->features, fastvlm_image_features_unref);
    fvlm_worker_forget_answers (w);
    status = fastvlm_session_set_image_planar (w->session, w->planar,
        req->size, &err);
    if (status != FASTVLM_OK)
      goto engine_error;
    t2 = g_get_monotonic_time ();
    if (req->reuse && fastvlm_session_get_image_features (w->session,
            &w->features, &err) == FASTVLM_OK) {
      memcpy (w->enc_thumb, req->thumb, sizeof (w->enc_thumb));
      w->enc_size = req->size;
      w->enc_pts = req->pts;
      w->enc_epoch = req->epoch;
    }
  }

  if (w->test_delay_us > 0)
    fvlm_worker_test_delay (w, &job);
  if (g_atomic_int_get (&w->abort))
    return FVLM_RUN_CANCELLED;
  if (job.over_budget)
    goto late;

  gp = fastvlm_generate_default_params ();
  gp.prompt = req->prompt;
  if (req->system_prompt)
    gp.system_prompt = req->system_prompt;
  gp.max_new_tokens = req->max_new_tokens;
  gp.sampler.temperature = req->temperature;
  gp.sampler.top_p = req->top_p;
  gp.sampler.seed = req->seed;
  gp.on_token = fvlm_worker_on_token;
  gp.should_abort = fvlm_worker_should_abort;
  gp.user_data = &job;
  gp.reuse_kv = req->reuse;
  gp.speculative = req->reuse;

  out = g_new0 (fastvlm_result, n);
  if (req->prompts)
    status = fastvlm_session_ask_many (w->session, &gp,
        (const char *const *) req->prompts, n, out, &err);
  else
    status = fastvlm_session_ask (w->session, &gp, &out[0], &err);

  /* the answers that came out: all of them, or those before an abort/error */
  if (status == FASTVLM_OK)
    n_done = n;
  else
    while (n_done < n && out[n_done].text && out[n_done].text[0] != '\0')
      n_done++;
  if (status == FASTVLM_ERR_ABORTED && !job.over_budget)
    goto cancelled;
  if (status != FASTVLM_OK && status != FASTVLM_ERR_ABORTED)
    goto engine_error_out;
  if (status == FASTVLM_ERR_ABORTED && n_done == 0)
    goto late_out;

  for (gint i = 0; i < n_done; i++) {
    const fastvlm_result *o = &out[i];

    res[i].text = g_strdup (o->text ? o->text : "");
    res[i].n_tokens = o->n_tokens;
    /* The engine times the tower inside set_image_planar() and reports it in the
     * result of the first ask on that image; our own clock around the call is the
     * fallback. */
    if (o->image_reused || kind == FVLM_REUSE_FEATURES || i > 0)
      res[i].vision_ms = o->t_vision_ms;
    else
      res[i].vision_ms = o->t_vision_ms > 0 ? o->t_vision_ms : (t2 - t1) / 1000.0;
    res[i].prefill_ms = o->t_prefill_ms;
    res[i].decode_ms = o->t_decode_ms;
    res[i].truncated = o->truncated || job.over_budget;
    res[i].stop = fvlm_worker_stop_from_engine (o->stop);
    res[i].n_prompt_tokens = o->n_prompt_tokens;
    res[i].n_reused_positions = o->n_reused_positions;
    res[i].n_draft = o->n_draft;
    res[i].n_accepted = o->n_accepted;
  }
  for (gint i = 0; i < n; i++)
    fastvlm_result_clear (&out[i]);
  g_free (out);
  *n_out = n_done;

  /* remember complete answers about the kept features; an answer cut by the latency
   * budget is not worth repeating, one cut at max-new-tokens is what the model gives
   * every time */
  fvlm_worker_forget_answers (w);
  if (req->reuse && w->features && n_done == n) {
    gboolean complete = TRUE;

    for (gint i = 0; i < n; i++)
      complete &= res[i].stop != FVLM_STOP_LATENCY;
    if (complete) {
      w->last_texts = g_new0 (gchar *, n + 1);
      w->last_n_tokens = g_new0 (gint, n);
      for (gint i = 0; i < n; i++) {
        w->last_texts[i] = g_strdup (res[i].text);
        w->last_n_tokens[i] = res[i].n_tokens;
      }
      w->last_n = n;
      w->last_params.prompt_id = req->prompt_id;
      w->last_params.max_new_tokens = req->max_new_tokens;
      w->have_last = TRUE;
    }
  }
  return FVLM_RUN_RESULT;

  /* ERRORS */
cancelled:
  {
    for (gint i = 0; i < n; i++)
      fastvlm_result_clear (&out[i]);
    g_free (out);
    return FVLM_RUN_CANCELLED;
  }
late_out:
  {
    for (gint i = 0; i < n; i++)
      fastvlm_result_clear (&out[i]);
    g_free (out);
    goto late;
  }
engine_error_out:
  {
    for (gint i = 0; i < n; i++)
      fastvlm_result_clear (&out[i]);
    g_free (out);
    goto engine_error;
  }
late:
  {
    *reason = FVLM_DROP_LATE;
    *message = g_strdup ("over max-latency before an answer");
    return FVLM_RUN_DROPPED;
  }
engine_error:
  {
    if (g_atomic_int_get (&w->abort))
      return FVLM_RUN_CANCELLED;
    *reason = FVLM_DROP_ERROR;
    *message = g_strdup_printf ("%s (%s)", err.message,
        fastvlm_status_str (err.status));
    return FVLM_RUN_DROPPED;
  }
}

/* Runs @req (taken from the mailbox, w->busy set) and reports it. Lock not held. */
static void
fvlm_worker_process (FvlmWorker * w, FvlmRequest * req)
{
  gint n = MAX (req->n_prompts, 1), n_res = 0;
  FvlmResult *res = g_new0 (FvlmResult, n);
  FvlmDropReason reason = FVLM_DROP_ERROR;
  gchar *message = NULL;
  FvlmRunOutcome outcome;
  gboolean stale, output;
  gint64 end_us;

  outcome = fvlm_worker_run_model (w, req, res, &n_res, &reason, &message);
  end_us = g_get_monotonic_time ();
  /* the model is free for the next stream before our outputs (which may block
   * downstream) go out */
  if (w->slot_held) {
    gboolean full = outcome == FVLM_RUN_RESULT && !res[0].reused
        && !res[0].truncated;

    w->slot_held = FALSE;
    fvlm_scheduler_release (w->stream, full ? end_us - w->run_start_us : 0);
  }
  for (gint i = 0; i < n; i++) {
    res[i].end_us = end_us;
    res[i].latency_ms = (end_us - req->arrival_us) / 1000.0;
  }

  g_mutex_lock (&w->lock);
  stale = req->epoch != w->epoch || w->flushing;
  if (outcome == FVLM_RUN_RESULT && !res[0].reused && !res[0].truncated) {
    gdouble run_us = (gdouble) (end_us - res[0].start_us);

    w->mean_run_us = w->mean_run_us > 0 ? 0.7 * w->mean_run_us + 0.3 * run_us
        : run_us;
  }
  g_mutex_unlock (&w->lock);

  if (!stale && outcome == FVLM_RUN_RESULT) {
    for (gint i = 0; i < n_res; i++)
      w->funcs.result (w, req, &res[i], w->user_data);
  } else if (!stale && outcome == FVLM_RUN_DROPPED) {
    w->funcs.dropped (w, req, reason, message, w->user_data);
  }

  g_mutex_lock (&w->lock);
  output = !stale && outcome == FVLM_RUN_RESULT && !w->flushing;
  w->busy = FALSE;
  w->running_pts = GST_CLOCK_TIME_NONE;
  w->done_seq = MAX (w->done_seq, req->seq);
  w->outputting = output;
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);

  if (output) {
    for (gint i = 0; i < n_res; i++)
      w->funcs.output (w, req, &res[i], w->user_data);
    g_mutex_lock (&w->lock);
    w->outputting = FALSE;
    g_cond_broadcast (&w->cond);
    g_mutex_unlock (&w->lock);
  }

  g_mutex_lock (&w->lock);
  fvlm_worker_recycle_locked (w, req);
  g_mutex_unlock (&w->lock);
  for (gint i = 0; i < n; i++)
    fvlm_result_clear (&res[i]);
  g_free (res);
  g_free (message);
}

static gpointer
fvlm_worker_loop (gpointer data)
{
  FvlmWorker *w = data;

  g_mutex_lock (&w->lock);
  for (;;) {
    if (w->quit)
      break;
    if (w->mailbox && !w->flushing) {
      FvlmRequest *req;
      gdouble distance;

      /* A run slot first, unless the answer is republished (no model run). The
       * request is taken only once the slot is ours: whatever the mailbox holds then
       * (the latest frame, live) is what runs. */
      if (w->stream && !w->slot_held
          && fvlm_worker_gate (w, w->mailbox, &distance) != FVLM_REUSE_ANSWER) {
        gboolean granted;

        /* Text pad upkeep first (queued, never blocks): other streams' runs may keep us
         * waiting long, and a sink on text_src must preroll meanwhile — idle() covers
         * the text stream up to the waiting frame's PTS. */
        if (w->kicked) {
          w->kicked = FALSE;
          w->outputting = TRUE;
          g_mutex_unlock (&w->lock);
          w->funcs.idle (w, w->user_data);
          g_mutex_lock (&w->lock);
          w->outputting = FALSE;
          g_cond_broadcast (&w->cond);
          continue;
        }
        w->acquiring = TRUE;
        g_mutex_unlock (&w->lock);
        granted = fvlm_scheduler_acquire (w->stream, &w->abort);
        g_mutex_lock (&w->lock);
        w->acquiring = FALSE;
        g_cond_broadcast (&w->cond);
        w->slot_held = granted;
        continue;
      }
      req = w->mailbox;
      w->mailbox = NULL;
      w->busy = TRUE;
      w->running_pts = req->pts;
      w->run_start_us = g_get_monotonic_time ();
      g_cond_broadcast (&w->cond);
      g_mutex_unlock (&w->lock);

      GST_LOG ("running request %" G_GUINT64_FORMAT " pts %" GST_TIME_FORMAT,
          req->seq, GST_TIME_ARGS (req->pts));
      if (w->funcs.started)
        w->funcs.started (w, req, w->user_data);
      fvlm_worker_process (w, req);

      g_mutex_lock (&w->lock);
      continue;
    }
    if (w->slot_held) {
      /* granted, but the request went (flush) or is a republished answer now */
      w->slot_held = FALSE;
      fvlm_scheduler_release (w->stream, 0);
      continue;
    }
    if (w->kicked && !w->flushing) {
      w->kicked = FALSE;
      w->outputting = TRUE;
      g_mutex_unlock (&w->lock);
      w->funcs.idle (w, w->user_data);
      g_mutex_lock (&w->lock);
      w->outputting = FALSE;
      g_cond_broadcast (&w->cond);
      continue;
    }
    g_cond_wait (&w->cond, &w->lock);
  }
  g_mutex_unlock (&w->lock);
  if (w->slot_held) {
    w->slot_held = FALSE;
    fvlm_scheduler_release (w->stream, 0);
  }
  return NULL;
}

/* ---- public ------------------------------------------------------------------------ */

FvlmWorker *
fvlm_worker_new (const fastvlm_model * model,
    const fastvlm_session_params * params, const FvlmNormalize * norm,
    FvlmScheduler * scheduler, guint max_runs, fastvlm_batcher * batcher,
    const FvlmWorkerFuncs * funcs, gpointer user_data, GError ** error)
{
  FvlmWorker *w;
  fastvlm_error err;
  const gchar *delay;

  fvlm_worker_init_debug ();

  w = g_new0 (FvlmWorker, 1);
  if (fastvlm_session_new (model, params, &w->session, &err) != FASTVLM_OK) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "cannot create a session: %s", err.message);
    g_free (w);
    return NULL;
  }
  if (batcher && fastvlm_session_set_batcher (w->session, batcher,
          &err) != FASTVLM_OK)
    GST_WARNING ("decode steps not batched: %s", err.message);
  g_mutex_init (&w->lock);
  g_cond_init (&w->cond);
  w->norm = *norm;
  w->funcs = *funcs;
  w->user_data = user_data;
  w->running_pts = GST_CLOCK_TIME_NONE;
  if (scheduler)
    w->stream = fvlm_scheduler_register (scheduler, max_runs);

  delay = g_getenv ("FASTVLM_GST_TEST_DELAY_MS");
  if (delay && *delay)
    w->test_delay_us = g_ascii_strtoll (delay, NULL, 10) * 1000;
  delay = g_getenv ("FASTVLM_GST_TEST_ALIGN_MS");
  if (delay && *delay)
    w->test_align_us = g_ascii_strtoll (delay, NULL, 10) * 1000;
  if (w->test_delay_us > 0)
    GST_WARNING ("test hook: every model run is delayed by %" G_GINT64_FORMAT
        " ms", w->test_delay_us / 1000);

  w->thread = g_thread_new ("fastvlm-worker", fvlm_worker_loop, w);
  return w;
}

void
fvlm_worker_free (FvlmWorker * w)
{
  if (w == NULL)
    return;

  g_mutex_lock (&w->lock);
  w->quit = TRUE;
  w->flushing = TRUE;
  g_atomic_int_set (&w->abort, 1);
  fastvlm_session_request_abort (w->session);
  if (w->stream)
    fvlm_scheduler_wake (w->stream);
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);

  g_thread_join (w->thread);
  /* the thread neither holds nor waits for a slot any more */
  fvlm_scheduler_unregister (w->stream);

  fvlm_request_free (w->mailbox);
  fastvlm_session_free (w->session);
  g_free (w->spare_rgbx);
  g_free (w->planar);
  fastvlm_image_features_unref (w->features);
  fvlm_worker_forget_answers (w);
  g_mutex_clear (&w->lock);
  g_cond_clear (&w->cond);
  g_free (w);
}

void
fvlm_worker_set_flushing (FvlmWorker * w, gboolean flushing)
{
  g_mutex_lock (&w->lock);
  if (flushing) {
    w->flushing = TRUE;
    if (w->mailbox) {
      fvlm_worker_recycle_locked (w, w->mailbox);
      w->mailbox = NULL;
    }
    g_atomic_int_set (&w->abort, 1);
    fastvlm_session_request_abort (w->session);
    /* only our own wait for a slot ends; other streams' runs go on */
    if (w->stream)
      fvlm_scheduler_wake (w->stream);
    g_cond_broadcast (&w->cond);
  } else {
    /* the aborted run, our wait for a slot and any output still in progress finish
     * first, so nothing from before the flush reaches the element afterwards */
    while (w->busy || w->outputting || w->acquiring)
      g_cond_wait (&w->cond, &w->lock);
    w->flushing = FALSE;
    w->kicked = FALSE;
    w->epoch++;
    g_atomic_int_set (&w->abort, 0);
  }
  g_mutex_unlock (&w->lock);
}

guint
fvlm_worker_get_epoch (FvlmWorker * w)
{
  guint epoch;

  g_mutex_lock (&w->lock);
  epoch = w->epoch;
  g_mutex_unlock (&w->lock);
  return epoch;
}

gboolean
fvlm_worker_submit (FvlmWorker * w, FvlmRequest * req, gboolean wait,
    guint * n_replaced)
{
  if (n_replaced)
    *n_replaced = 0;

  g_mutex_lock (&w->lock);
  if (wait) {
    while (!w->flushing && (w->mailbox || w->busy))
      g_cond_wait (&w->cond, &w->lock);
  }
  if (w->flushing || req->epoch != w->epoch)
    goto flushing;

  if (w->mailbox) {
    GST_LOG ("request %" G_GUINT64_FORMAT " replaces %" G_GUINT64_FORMAT,
        req->seq, w->mailbox->seq);
    fvlm_worker_recycle_locked (w, w->mailbox);
    if (n_replaced)
      *n_replaced = 1;
  }
  req->submit_us = g_get_monotonic_time ();
  w->mailbox = req;
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);
  return TRUE;

  /* ERRORS */
flushing:
  {
    fvlm_worker_recycle_locked (w, req);
    g_mutex_unlock (&w->lock);
    return FALSE;
  }
}

gboolean
fvlm_worker_wait_done (FvlmWorker * w, guint64 seq)
{
  gboolean ok;

  g_mutex_lock (&w->lock);
  while (!w->flushing && w->done_seq < seq)
    g_cond_wait (&w->cond, &w->lock);
  ok = !w->flushing;
  g_mutex_unlock (&w->lock);
  return ok;
}

gboolean
fvlm_worker_drain (FvlmWorker * w)
{
  gboolean ok;

  g_mutex_lock (&w->lock);
  while (!w->flushing && (w->mailbox || w->busy))
    g_cond_wait (&w->cond, &w->lock);
  ok = !w->flushing;
  g_mutex_unlock (&w->lock);
  return ok;
}

void
fvlm_worker_kick (FvlmWorker * w)
{
  g_mutex_lock (&w->lock);
  w->kicked = TRUE;
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);
}

gboolean
fvlm_worker_is_busy (FvlmWorker * w)
{
  gboolean busy;

  g_mutex_lock (&w->lock);
  busy = w->busy;
  g_mutex_unlock (&w->lock);
  return busy;
}

gboolean
fvlm_worker_get_scheduler_stats (FvlmWorker * w, FvlmSchedulerStats * stats)
{
  if (w->stream == NULL)
    return FALSE;
  fvlm_scheduler_get_stats (w->stream, stats);
  return TRUE;
}

gint64
fvlm_worker_predicted_remaining_us (FvlmWorker * w)
{
  gint64 remaining = G_MININT64;

  g_mutex_lock (&w->lock);
  if (w->busy && w->mean_run_us > 0)
    remaining = (gint64) w->mean_run_us - (g_get_monotonic_time () -
        w->run_start_us);
  else if (w->acquiring)
    /* other streams run first: the waiting request is taken after that */
    remaining = fvlm_scheduler_predicted_wait_us (w->stream);
  g_mutex_unlock (&w->lock);
  return remaining;
}

GstClockTime
fvlm_worker_pending_pts (FvlmWorker * w, gboolean include_running)
{
  GstClockTime pts = GST_CLOCK_TIME_NONE;

  g_mutex_lock (&w->lock);
  if (w->mailbox)
    pts = w->mailbox->pts;
  else if (include_running && w->busy)
    pts = w->running_pts;
  g_mutex_unlock (&w->lock);
  return pts;
}
