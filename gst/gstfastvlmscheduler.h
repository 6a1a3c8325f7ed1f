/*
 * gstfastvlmscheduler.h — the run scheduler one loaded model shares between all the
 * fastvlmcaption streams using it: who may run the model next, and how many at once.
 *
 * What it is: a small monitor (one GMutex + GCond) owned by the model-cache entry
 * (gstfastvlmmodelcache.c). Each element's worker registers a stream; before a model run
 * the worker asks for a run slot and blocks until it gets one. At most `max_runs` runs
 * are in flight per model (the smallest value the registered streams asked for), so N
 * elements on one machine do not run N × threads engine threads at once. A free slot
 * goes to the waiting stream served least recently (registration order breaks ties):
 * round robin among the streams that have work, so none starves and a stream waits for
 * at most (streams − 1) / max_runs runs of the others.
 * What it is not: a queue of frames — each stream keeps its own mailbox (live: latest
 * wins while it waits; offline: in order) and takes its request only once it holds a
 * slot; nor does it run anything itself: runs happen on the streams' own worker threads
 * with their own sessions, so a flush of one stream aborts only that stream's wait or
 * run (through its abort flag), never another's.
 */
#ifndef __GST_FASTVLM_SCHEDULER_H__
#define __GST_FASTVLM_SCHEDULER_H__

#include <gst/gst.h>

G_BEGIN_DECLS

typedef struct _FvlmScheduler FvlmScheduler;
typedef struct _FvlmSchedStream FvlmSchedStream;

typedef struct
{
  guint n_streams;              /* registered */
  guint max_runs;               /* runs allowed at once */
  guint running;                /* slots held now */
  guint waiting;                /* streams waiting for a slot */
  guint64 grants;               /* slots given since the scheduler was made */
} FvlmSchedulerStats;

FvlmScheduler *   fvlm_scheduler_new        (void);
/* Every stream must have been unregistered. NULL is ignored. */
void              fvlm_scheduler_free       (FvlmScheduler * sched);

/* A new stream asking for at most @max_runs concurrent runs of the model (>= 1). */
FvlmSchedStream * fvlm_scheduler_register   (FvlmScheduler * sched, guint max_runs);
/* The stream must neither hold nor wait for a slot (its worker thread is joined). */
void              fvlm_scheduler_unregister (FvlmSchedStream * stream);

/* Blocks until @stream holds a slot (TRUE) or *@abort is non-zero (FALSE, no slot).
 * Whoever sets *@abort (atomically) calls fvlm_scheduler_wake() afterwards. */
gboolean          fvlm_scheduler_acquire    (FvlmSchedStream * stream,
                                             const gint * abort);
/* Gives the slot back; @run_us > 0: how long the run took (for the wait estimate). */
void              fvlm_scheduler_release    (FvlmSchedStream * stream, gint64 run_us);
/* Wakes the waiters of @stream's scheduler so they look at their abort flags. */
void              fvlm_scheduler_wake       (FvlmSchedStream * stream);

/* Microseconds @stream, waiting, is expected to wait still for its slot (runs in flight
 * and streams ahead of it, from the mean run time); G_MININT64 when it is not waiting
 * or nothing has been measured yet. */
gint64            fvlm_scheduler_predicted_wait_us (FvlmSchedStream * stream);

void              fvlm_scheduler_get_stats  (FvlmSchedStream * stream,
                                             FvlmSchedulerStats * stats);

G_END_DECLS

#endif /* __GST_FASTVLM_SCHEDULER_H__ */
