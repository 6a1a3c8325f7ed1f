/*
 * gstfastvlmworker.h — the thread that runs the model for fastvlmcaption, and the one-slot
 * mailbox that feeds it.
 *
 * What it is: one GThread per element with a GMutex/GCond, a mailbox holding at most one
 * FvlmRequest (an RGBx copy of a sampled frame plus the question), and the engine session.
 * The streaming thread submits; live submissions replace a waiting request (latest wins),
 * offline ones wait for the slot. The worker turns the copy into float planes (ORC), runs
 * fastvlm_session_set_image_planar + fastvlm_session_ask (or fastvlm_session_ask_many for
 * several prompts), and hands each result to the element's callbacks on its own thread.
 * Reuse across frames (docs/reuse.md): the streaming thread fingerprints each sampled
 * square (fvlm_fingerprint_compute, ORC); the worker keeps the image features and the
 * fingerprint of the last frame it encoded and, when a new frame is closer than
 * reuse-threshold, attaches those features instead of running the tower, or republishes
 * the previous answers outright (greedy decoding, same question). Flushing aborts the generation in flight through
 * the engine's abort callback and fastvlm_session_request_abort().
 * What it is not: aware of pads, buffers or caps — the element does all GStreamer I/O in
 * its callbacks (which may block on the text pad without blocking video).
 */
#ifndef __GST_FASTVLM_WORKER_H__
#define __GST_FASTVLM_WORKER_H__

#include <gst/gst.h>
#include "fastvlm.h"
#include "gstfastvlmpreprocess.h"
#include "gstfastvlmscheduler.h"

G_BEGIN_DECLS

#define FVLM_THUMB_SIDE 32      /* grey thumbnail for the scene-change test, pixels */
#define FVLM_THUMB_PIXELS (FVLM_THUMB_SIDE * FVLM_THUMB_SIDE)

/* What a result took from earlier frames instead of computing it. */
typedef enum
{
  FVLM_REUSE_NONE,              /* the frame was encoded (tower run) */
  FVLM_REUSE_FEATURES,          /* scene unchanged: the kept image features, tower skipped */
  FVLM_REUSE_ANSWER             /* scene and question unchanged, greedy: previous answer */
} FvlmReuse;

typedef struct
{
  guint64 seq;                  /* element-wide request number, increasing */
  guint epoch;                  /* flush epoch it was sampled in; stale after a flush */
  /* the frame it describes */
  GstClockTime pts, duration, running_time;
  gint64 arrival_us;            /* g_get_monotonic_time() when the frame reached the element */
  gint64 submit_us;             /* when it entered the mailbox */
  gdouble convert_ms;           /* GstVideoConverter time on the streaming thread */
  gint size;                    /* side of the square */
  guint8 *rgbx;                 /* size*size*4 bytes, owned (see fvlm_worker_alloc_rgbx) */
  guint8 thumb[FVLM_THUMB_PIXELS];      /* fingerprint (streaming thread), when reuse */
  /* the question, a snapshot of the properties when the frame was sampled */
  gchar *prompt;
  gchar **prompts;              /* `prompts` (NULL-terminated), or NULL: prompt alone */
  gint n_prompts;               /* entries of prompts; 0 when NULL */
  gchar *system_prompt;
  guint prompt_id;
  gint max_new_tokens;
  gfloat temperature;
  gfloat top_p;
  guint64 seed;
  gint64 budget_us;             /* max-latency from arrival; 0 = unbounded */
  gboolean reuse;               /* `reuse`: fingerprint gate, KV prefix reuse, speculation */
  gdouble reuse_threshold;      /* mean |diff| of thumbnails (0..255) below which the kept
                                 * features (or answers) are reused; 0 = never */
  GstSegment segment;           /* video segment the frame belongs to */
  gboolean live;                /* sampled in live mode (see FvlmWorkerFuncs.started) */
} FvlmRequest;

typedef enum
{
  FVLM_STOP_EOS,                /* the model ended the answer */
  FVLM_STOP_LENGTH,             /* max-new-tokens */
  FVLM_STOP_CONTEXT,            /* context full */
  FVLM_STOP_LATENCY,            /* stopped between tokens at max-latency */
  FVLM_STOP_REUSED              /* not run: the previous caption was reused */
} FvlmStop;

typedef struct
{
  gchar *text;                  /* UTF-8 */
  gint n_tokens;
  FvlmStop stop;
  gboolean truncated;
  gboolean reused;              /* the previous answer was republished (reuse = ANSWER) */
  FvlmReuse reuse;
  GstClockTime encoded_pts;     /* PTS of the frame whose features the answer describes */
  gdouble scene_distance;       /* fingerprint distance to that frame; -1 = not compared */
  gint prompt_index;            /* into req->prompts; 0 for a single prompt */
  gint n_prompts;               /* results of this request (1 for a single prompt) */
  /* engine reuse counters of this answer (0 when republished) */
  gint n_prompt_tokens;
  gint n_reused_positions;      /* prompt positions taken from the KV cache */
  gint n_draft;                 /* draft tokens verified */
  gint n_accepted;              /* of which accepted */
  /* milliseconds */
  gdouble queue_ms;             /* mailbox wait */
  gdouble preprocess_ms;        /* converter + ORC */
  gdouble vision_ms;
  gdouble prefill_ms;
  gdouble decode_ms;
  gdouble latency_ms;           /* arrival -> result */
  gint64 start_us, end_us;      /* monotonic, model run */
} FvlmResult;

typedef enum
{
  FVLM_DROP_LATE,               /* could not make max-latency */
  FVLM_DROP_ERROR               /* the engine failed; message given */
} FvlmDropReason;

typedef struct _FvlmWorker FvlmWorker;

/* Called on the worker thread with no lock held; @worker stays valid during the call even
 * while fvlm_worker_free() waits for it (the element may have dropped its pointer). */
typedef struct
{
  /* A result is ready. Must be quick: meta queue, message, signal, stats. Offline waiters
   * are woken only after it returns. */
  void (*result) (FvlmWorker * worker, const FvlmRequest * req,
      const FvlmResult * res, gpointer user_data);
  /* Then, for the same result: text pad output; may block downstream. */
  void (*output) (FvlmWorker * worker, const FvlmRequest * req,
      const FvlmResult * res, gpointer user_data);
  /* A request ended without a result. */
  void (*dropped) (FvlmWorker * worker, const FvlmRequest * req,
      FvlmDropReason reason, const gchar * message, gpointer user_data);
  /* Nothing queued or running and fvlm_worker_kick() was called: text pad upkeep. */
  void (*idle) (FvlmWorker * worker, gpointer user_data);
  /* A request was taken from the mailbox and its run is about to start (busy is set, so
   * a flush waits for it): text pad upkeep that cannot wait for the result. May block
   * downstream. NULL = none. */
  void (*started) (FvlmWorker * worker, const FvlmRequest * req, gpointer user_data);
} FvlmWorkerFuncs;

/* Creates the session on @model and starts the thread. With @scheduler (the model's,
 * see gstfastvlmscheduler.h) every model run first waits for a run slot, the worker
 * asking for at most @max_runs runs of the model at once; NULL = runs whenever ready.
 * With @batcher (the model's) the session's decode steps join those of the other
 * sessions attached to it that run at the same time (engine/batch.c); NULL = alone.
 * NULL + @error on failure. */
FvlmWorker *  fvlm_worker_new            (const fastvlm_model * model,
                                          const fastvlm_session_params * params,
                                          const FvlmNormalize * norm,
                                          FvlmScheduler * scheduler,
                                          guint max_runs,
                                          fastvlm_batcher * batcher,
                                          const FvlmWorkerFuncs * funcs,
                                          gpointer user_data, GError ** error);

/* Aborts, joins the thread, frees the session and any queued request. */
void          fvlm_worker_free           (FvlmWorker * worker);

/* TRUE: abort the generation in flight, drop the mailbox, wake every waiter; later
 * submissions are refused. FALSE: wait until the thread is idle, start a new epoch. */
void          fvlm_worker_set_flushing   (FvlmWorker * worker, gboolean flushing);
guint         fvlm_worker_get_epoch      (FvlmWorker * worker);

/* Puts @req (ownership taken) in the mailbox. @wait = FALSE (live): a waiting request is
 * replaced and freed, *n_replaced counts it. @wait = TRUE (offline): blocks until the
 * mailbox is empty and the worker idle. FALSE when flushing (@req freed). */
gboolean      fvlm_worker_submit         (FvlmWorker * worker, FvlmRequest * req,
                                          gboolean wait, guint * n_replaced);

/* Blocks until request @seq has finished (published or dropped); FALSE when flushing. */
gboolean      fvlm_worker_wait_done      (FvlmWorker * worker, guint64 seq);

/* Blocks until the mailbox is empty and no generation runs; FALSE when flushing. */
gboolean      fvlm_worker_drain          (FvlmWorker * worker);

/* Schedules one call of funcs->idle once the worker has nothing to run. */
void          fvlm_worker_kick           (FvlmWorker * worker);

/* State for the sampling decision (streaming thread). */
gboolean      fvlm_worker_is_busy        (FvlmWorker * worker);
/* Microseconds until the running generation is expected to end (mean of the last runs
 * minus time spent), or, while waiting for a run slot, until the slot is expected;
 * G_MININT64 when idle or nothing has been measured yet. */
gint64        fvlm_worker_predicted_remaining_us (FvlmWorker * worker);
/* The scheduler's counters; FALSE when the worker has no scheduler. */
gboolean      fvlm_worker_get_scheduler_stats (FvlmWorker * worker,
                                          FvlmSchedulerStats * stats);
/* PTS of the request waiting in the mailbox, or of the one running when @include_running;
 * GST_CLOCK_TIME_NONE when none. */
GstClockTime  fvlm_worker_pending_pts    (FvlmWorker * worker, gboolean include_running);

/* An RGBx buffer of size*size*4 bytes (recycled when possible) and the request free. */
guint8 *      fvlm_worker_alloc_rgbx     (FvlmWorker * worker, gint size);
void          fvlm_request_free          (FvlmRequest * req);
void          fvlm_result_clear          (FvlmResult * res);

const gchar * fvlm_stop_to_string        (FvlmStop stop);
const gchar * fvlm_reuse_to_string       (FvlmReuse reuse);

/* The scene-change fingerprint: the mean luma ((r + 2g + b) / 4) of FVLM_THUMB_PIXELS
 * blocks of an RGBx square (@size a multiple of FVLM_THUMB_SIDE), ORC. */
void          fvlm_fingerprint_compute   (const guint8 * rgbx, gint size, guint8 * thumb);
/* Mean absolute difference of two fingerprints, 0..255 levels (ORC). */
gdouble       fvlm_fingerprint_distance  (const guint8 * a, const guint8 * b);

G_END_DECLS

#endif /* __GST_FASTVLM_WORKER_H__ */
