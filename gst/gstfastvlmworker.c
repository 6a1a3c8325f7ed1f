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
 */
#include <string.h>
#include <stdlib.h>

#include "gstfastvlmworker.h"

GST_DEBUG_CATEGORY_STATIC (fvlm_worker_debug);
#define GST_CAT_DEFAULT fvlm_worker_debug

struct _FvlmWorker
{
  GMutex lock;
  GCond cond;
  GThread *thread;

  fastvlm_session *session;
  FvlmNormalize norm;
  FvlmWorkerFuncs funcs;
  gpointer user_data;
  gint64 test_delay_us;

  /* under lock */
  FvlmRequest *mailbox;
  gboolean busy;                /* a request was taken and is not finished */
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
  gfloat *planar;
  gint planar_size;
  gboolean have_last;           /* last model run, for reuse */
  guint8 last_thumb[FVLM_THUMB_SIDE * FVLM_THUMB_SIDE];
  FvlmRequest last_params;      /* only the question fields are meaningful */
  gchar *last_text;
  gint last_n_tokens;
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

void
fvlm_request_free (FvlmRequest * req)
{
  if (req == NULL)
    return;
  g_free (req->rgbx);
  g_free (req->prompt);
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

/* Mean luma of FVLM_THUMB_SIDE^2 blocks of the square, for the scene-change test. */
static void
fvlm_worker_thumbnail (const FvlmRequest * req, guint8 * thumb)
{
  gint block = req->size / FVLM_THUMB_SIDE;

  for (gint by = 0; by < FVLM_THUMB_SIDE; by++) {
    for (gint bx = 0; bx < FVLM_THUMB_SIDE; bx++) {
      guint64 sum = 0;

      for (gint y = by * block; y < (by + 1) * block; y++) {
        const guint8 *p = req->rgbx + ((gsize) y * req->size + bx * block) * 4;

        for (gint x = 0; x < block; x++, p += 4)
          sum += p[0] + 2u * p[1] + p[2];
      }
      thumb[by * FVLM_THUMB_SIDE + bx] =
          (guint8) (sum / (4u * (guint64) block * block));
    }
  }
}

static gboolean
fvlm_worker_can_reuse (FvlmWorker * w, const FvlmRequest * req,
    const guint8 * thumb)
{
  const FvlmRequest *last = &w->last_params;
  guint64 diff = 0;

  if (!w->have_last || req->reuse_threshold <= 0.0)
    return FALSE;
  /* a different question (prompt-id covers prompt + system prompt) needs the model */
  if (req->prompt_id != last->prompt_id
      || req->max_new_tokens != last->max_new_tokens
      || req->temperature != last->temperature || req->top_p != last->top_p
      || req->seed != last->seed || req->size != last->size)
    return FALSE;
  for (gint i = 0; i < FVLM_THUMB_SIDE * FVLM_THUMB_SIDE; i++)
    diff += (guint64) ABS ((gint) thumb[i] - (gint) w->last_thumb[i]);
  return (gdouble) diff / (FVLM_THUMB_SIDE * FVLM_THUMB_SIDE) <
      req->reuse_threshold;
}

/* The test hook's abortable sleep. */
static void
fvlm_worker_test_delay (FvlmWorker * w, FvlmJob * job)
{
  gint64 end = g_get_monotonic_time () + w->test_delay_us;

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

static FvlmRunOutcome
fvlm_worker_run_model (FvlmWorker * w, FvlmRequest * req, FvlmResult * res,
    FvlmDropReason * reason, gchar ** message)
{
  FvlmJob job = { w, 0, FALSE };
  fastvlm_generate_params gp;
  fastvlm_result out;
  fastvlm_error err;
  fastvlm_status status;
  guint8 thumb[FVLM_THUMB_SIDE * FVLM_THUMB_SIDE];
  gsize n_pixels = (gsize) req->size * req->size;
  gint64 t0, t1, t2;

  res->start_us = t0 = g_get_monotonic_time ();
  res->queue_ms = (t0 - req->submit_us) / 1000.0;
  if (req->budget_us > 0)
    job.deadline_us = req->arrival_us + req->budget_us;
  if (fvlm_job_over_budget (&job))
    goto late;

  fvlm_worker_thumbnail (req, thumb);
  if (fvlm_worker_can_reuse (w, req, thumb)) {
    res->text = g_strdup (w->last_text);
    res->n_tokens = w->last_n_tokens;
    res->reused = TRUE;
    res->stop = FVLM_STOP_REUSED;
    res->preprocess_ms = req->convert_ms;
    return FVLM_RUN_RESULT;
  }

  /* ORC: RGBx square -> normalised planes */
  if (w->planar_size != req->size) {
    g_free (w->planar);
    w->planar = g_malloc (sizeof (gfloat) * 3 * n_pixels);
    w->planar_size = req->size;
  }
  fvlm_preprocess_to_planar (req->rgbx, n_pixels, &w->norm, w->planar);
  t1 = g_get_monotonic_time ();
  res->preprocess_ms = req->convert_ms + (t1 - t0) / 1000.0;

  status = fastvlm_session_set_image_planar (w->session, w->planar, req->size,
      &err);
  if (status != FASTVLM_OK)
    goto engine_error;
  t2 = g_get_monotonic_time ();

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

  status = fastvlm_session_ask (w->session, &gp, &out, &err);
  if (status == FASTVLM_ERR_ABORTED && !job.over_budget) {
    fastvlm_result_clear (&out);
    return FVLM_RUN_CANCELLED;
  }
  if (status != FASTVLM_OK && status != FASTVLM_ERR_ABORTED) {
    fastvlm_result_clear (&out);
    goto engine_error;
  }
  if (status == FASTVLM_ERR_ABORTED && (out.text == NULL || out.text[0] == '\0')) {
    fastvlm_result_clear (&out);
    goto late;
  }

  res->text = g_strdup (out.text ? out.text : "");
  res->n_tokens = out.n_tokens;
  /* The engine times the tower inside set_image_planar() and reports it in the result of
   * the first ask on that image; our own clock around the call is the fallback. */
  res->vision_ms = out.t_vision_ms > 0 ? out.t_vision_ms : (t2 - t1) / 1000.0;
  res->prefill_ms = out.t_prefill_ms;
  res->decode_ms = out.t_decode_ms;
  res->truncated = out.truncated || job.over_budget;
  switch (out.stop) {
    case FASTVLM_STOP_EOS:
      res->stop = FVLM_STOP_EOS;
      break;
    case FASTVLM_STOP_LENGTH:
      res->stop = FVLM_STOP_LENGTH;
      break;
    case FASTVLM_STOP_CONTEXT:
      res->stop = FVLM_STOP_CONTEXT;
      break;
    default:
      res->stop = FVLM_STOP_LATENCY;
      break;
  }
  fastvlm_result_clear (&out);

  /* remember this run for the scene-change reuse */
  memcpy (w->last_thumb, thumb, sizeof (thumb));
  w->last_params.prompt_id = req->prompt_id;
  w->last_params.max_new_tokens = req->max_new_tokens;
  w->last_params.temperature = req->temperature;
  w->last_params.top_p = req->top_p;
  w->last_params.seed = req->seed;
  w->last_params.size = req->size;
  g_free (w->last_text);
  w->last_text = g_strdup (res->text);
  w->last_n_tokens = res->n_tokens;
  /* an answer cut by the latency budget is not worth repeating; one cut at
   * max-new-tokens is what the model gives every time */
  w->have_last = res->stop != FVLM_STOP_LATENCY;
  return FVLM_RUN_RESULT;

  /* ERRORS */
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
  FvlmResult res = { 0, };
  FvlmDropReason reason = FVLM_DROP_ERROR;
  gchar *message = NULL;
  FvlmRunOutcome outcome;
  gboolean stale, output;

  outcome = fvlm_worker_run_model (w, req, &res, &reason, &message);
  res.end_us = g_get_monotonic_time ();
  res.latency_ms = (res.end_us - req->arrival_us) / 1000.0;

  g_mutex_lock (&w->lock);
  stale = req->epoch != w->epoch || w->flushing;
  if (outcome == FVLM_RUN_RESULT && !res.reused && !res.truncated) {
    gdouble run_us = (gdouble) (res.end_us - res.start_us);

    w->mean_run_us = w->mean_run_us > 0 ? 0.7 * w->mean_run_us + 0.3 * run_us
        : run_us;
  }
  g_mutex_unlock (&w->lock);

  if (!stale && outcome == FVLM_RUN_RESULT)
    w->funcs.result (w, req, &res, w->user_data);
  else if (!stale && outcome == FVLM_RUN_DROPPED)
    w->funcs.dropped (w, req, reason, message, w->user_data);

  g_mutex_lock (&w->lock);
  output = !stale && outcome == FVLM_RUN_RESULT && !w->flushing;
  w->busy = FALSE;
  w->running_pts = GST_CLOCK_TIME_NONE;
  w->done_seq = MAX (w->done_seq, req->seq);
  w->outputting = output;
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);

  if (output) {
    w->funcs.output (w, req, &res, w->user_data);
    g_mutex_lock (&w->lock);
    w->outputting = FALSE;
    g_cond_broadcast (&w->cond);
    g_mutex_unlock (&w->lock);
  }

  g_mutex_lock (&w->lock);
  fvlm_worker_recycle_locked (w, req);
  g_mutex_unlock (&w->lock);
  fvlm_result_clear (&res);
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
      FvlmRequest *req = w->mailbox;

      w->mailbox = NULL;
      w->busy = TRUE;
      w->running_pts = req->pts;
      w->run_start_us = g_get_monotonic_time ();
      g_cond_broadcast (&w->cond);
      g_mutex_unlock (&w->lock);

      GST_LOG ("running request %" G_GUINT64_FORMAT " pts %" GST_TIME_FORMAT,
          req->seq, GST_TIME_ARGS (req->pts));
      fvlm_worker_process (w, req);

      g_mutex_lock (&w->lock);
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
  return NULL;
}

/* ---- public ------------------------------------------------------------------------ */

FvlmWorker *
fvlm_worker_new (const fastvlm_model * model,
    const fastvlm_session_params * params, const FvlmNormalize * norm,
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
  g_mutex_init (&w->lock);
  g_cond_init (&w->cond);
  w->norm = *norm;
  w->funcs = *funcs;
  w->user_data = user_data;
  w->running_pts = GST_CLOCK_TIME_NONE;

  delay = g_getenv ("FASTVLM_GST_TEST_DELAY_MS");
  if (delay && *delay)
    w->test_delay_us = g_ascii_strtoll (delay, NULL, 10) * 1000;
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
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);

  g_thread_join (w->thread);

  fvlm_request_free (w->mailbox);
  fastvlm_session_free (w->session);
  g_free (w->spare_rgbx);
  g_free (w->planar);
  g_free (w->last_text);
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
    g_cond_broadcast (&w->cond);
  } else {
    /* the aborted run and any output still in progress finish first, so nothing from
     * before the flush reaches the element afterwards */
    while (w->busy || w->outputting)
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

gint64
fvlm_worker_predicted_remaining_us (FvlmWorker * w)
{
  gint64 remaining = G_MININT64;

  g_mutex_lock (&w->lock);
  if (w->busy && w->mean_run_us > 0)
    remaining = (gint64) w->mean_run_us - (g_get_monotonic_time () -
        w->run_start_us);
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
