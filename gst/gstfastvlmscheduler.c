/*
 * gstfastvlmscheduler.c — run slots of one shared model, given fairly to the streams
 * (fastvlmcaption workers) that use it.
 *
 * What it is: a monitor. Streams wait on one condition; every change (slot released,
 * stream registered or gone, an abort flag set) broadcasts it and each waiter checks
 * whether it is among the first (max_runs − running) waiting streams in serving order —
 * least recently served first, registration order on ties. The streams are few (one per
 * element on the model), so a linear scan per check is cheaper than any structure.
 * What it is not: aware of frames, sessions or the engine (see gstfastvlmscheduler.h);
 * it never calls out while holding its lock, so callers may hold their own lock around
 * any call here (their lock first, ours inside, never the other way round).
 */
#include "gstfastvlmscheduler.h"

GST_DEBUG_CATEGORY_STATIC (fvlm_scheduler_debug);
#define GST_CAT_DEFAULT fvlm_scheduler_debug

struct _FvlmSchedStream
{
  FvlmScheduler *sched;
  guint id;                     /* registration order, for ties and logs */
  guint max_runs;               /* what this stream asked for */
  /* under sched->lock */
  gboolean waiting;
  gboolean running;
  guint64 last_served;          /* grant ticket of its last slot; 0 = never served */
  gint64 run_start_us;
};

struct _FvlmScheduler
{
  GMutex lock;
  GCond cond;
  GList *streams;               /* FvlmSchedStream*, registration order */
  guint n_streams;
  guint next_id;
  guint max_runs;               /* min over streams, >= 1 */
  guint running;
  guint waiting;
  guint64 ticket;               /* grants so far */
  gdouble mean_run_us;          /* exponential mean of reported runs; 0 = none yet */
};

static void
fvlm_scheduler_init_debug (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_INIT (fvlm_scheduler_debug, "fastvlmscheduler", 0,
        "fastvlm shared run scheduler");
    g_once_init_leave (&done, 1);
  }
}

FvlmScheduler *
fvlm_scheduler_new (void)
{
  FvlmScheduler *s;

  fvlm_scheduler_init_debug ();
  s = g_new0 (FvlmScheduler, 1);
  g_mutex_init (&s->lock);
  g_cond_init (&s->cond);
  s->max_runs = 1;
  return s;
}

void
fvlm_scheduler_free (FvlmScheduler * s)
{
  if (s == NULL)
    return;
  g_warn_if_fail (s->streams == NULL);
  g_list_free (s->streams);
  g_mutex_clear (&s->lock);
  g_cond_clear (&s->cond);
  g_free (s);
}

/* Call with the lock held. */
static void
fvlm_scheduler_update_max_locked (FvlmScheduler * s)
{
  guint m = G_MAXUINT;

  for (GList * l = s->streams; l; l = l->next)
    m = MIN (m, ((FvlmSchedStream *) l->data)->max_runs);
  s->max_runs = m == G_MAXUINT ? 1 : MAX (m, 1);
}

FvlmSchedStream *
fvlm_scheduler_register (FvlmScheduler * s, guint max_runs)
{
  FvlmSchedStream *st = g_new0 (FvlmSchedStream, 1);

  st->sched = s;
  st->max_runs = MAX (max_runs, 1);
  g_mutex_lock (&s->lock);
  st->id = s->next_id++;
  s->streams = g_list_append (s->streams, st);
  s->n_streams++;
  fvlm_scheduler_update_max_locked (s);
  GST_INFO ("stream %u registered (%u streams, %u runs at once)", st->id,
      s->n_streams, s->max_runs);
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
  return st;
}

void
fvlm_scheduler_unregister (FvlmSchedStream * st)
{
  FvlmScheduler *s;

  if (st == NULL)
    return;
  s = st->sched;
  g_mutex_lock (&s->lock);
  g_warn_if_fail (!st->waiting && !st->running);
  s->streams = g_list_remove (s->streams, st);
  s->n_streams--;
  fvlm_scheduler_update_max_locked (s);
  GST_INFO ("stream %u unregistered (%u streams left)", st->id, s->n_streams);
  /* a larger max_runs may let a waiter go */
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
  g_free (st);
}

/* Serving order: least recently served first, then registration order. */
static gboolean
fvlm_sched_before (const FvlmSchedStream * a, const FvlmSchedStream * b)
{
  if (a->last_served != b->last_served)
    return a->last_served < b->last_served;
  return a->id < b->id;
}

/* Waiting streams served before @st. Call with the lock held. */
static guint
fvlm_scheduler_n_ahead_locked (FvlmScheduler * s, const FvlmSchedStream * st)
{
  guint n = 0;

  for (GList * l = s->streams; l; l = l->next) {
    const FvlmSchedStream *o = l->data;

    if (o != st && o->waiting && fvlm_sched_before (o, st))
      n++;
  }
  return n;
}

gboolean
fvlm_scheduler_acquire (FvlmSchedStream * st, const gint * abort)
{
  FvlmScheduler *s = st->sched;
  gboolean granted = FALSE;

  g_mutex_lock (&s->lock);
  if (st->running || st->waiting) {
    g_mutex_unlock (&s->lock);
    g_critical ("fvlm_scheduler_acquire: stream %u already holds or awaits a slot",
        st->id);
    return FALSE;
  }
  st->waiting = TRUE;
  s->waiting++;
  for (;;) {
    if (g_atomic_int_get (abort))
      break;
    if (s->running < s->max_runs
        && fvlm_scheduler_n_ahead_locked (s, st) < s->max_runs - s->running) {
      granted = TRUE;
      break;
    }
    g_cond_wait (&s->cond, &s->lock);
  }
  st->waiting = FALSE;
  s->waiting--;
  if (granted) {
    st->running = TRUE;
    st->last_served = ++s->ticket;
    st->run_start_us = g_get_monotonic_time ();
    s->running++;
    GST_LOG ("stream %u granted (ticket %" G_GUINT64_FORMAT ", %u running, %u "
        "waiting)", st->id, s->ticket, s->running, s->waiting);
  }
  /* the order changed for the others (one fewer ahead of them) */
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
  return granted;
}

void
fvlm_scheduler_release (FvlmSchedStream * st, gint64 run_us)
{
  FvlmScheduler *s = st->sched;

  g_mutex_lock (&s->lock);
  if (!st->running) {
    g_mutex_unlock (&s->lock);
    g_critical ("fvlm_scheduler_release: stream %u holds no slot", st->id);
    return;
  }
  st->running = FALSE;
  s->running--;
  if (run_us > 0)
    s->mean_run_us = s->mean_run_us > 0 ? 0.7 * s->mean_run_us + 0.3 * run_us
        : (gdouble) run_us;
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
}

void
fvlm_scheduler_wake (FvlmSchedStream * st)
{
  FvlmScheduler *s = st->sched;

  g_mutex_lock (&s->lock);
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
}

gint64
fvlm_scheduler_predicted_wait_us (FvlmSchedStream * st)
{
  FvlmScheduler *s = st->sched;
  gint64 wait = G_MININT64, now, soonest = 0;
  guint ahead;

  g_mutex_lock (&s->lock);
  if (!st->waiting || s->mean_run_us <= 0)
    goto done;
  now = g_get_monotonic_time ();
  ahead = fvlm_scheduler_n_ahead_locked (s, st);
  if (s->running >= s->max_runs) {
    /* the run in flight expected to end first frees the first slot */
    soonest = G_MAXINT64;
    for (GList * l = s->streams; l; l = l->next) {
      const FvlmSchedStream *o = l->data;

      if (o->running)
        soonest = MIN (soonest, (gint64) s->mean_run_us - (now -
                o->run_start_us));
    }
    soonest = MAX (soonest, 0);
  } else if (ahead < s->max_runs - s->running) {
    wait = 0;
    goto done;
  }
  wait = soonest + (gint64) (s->mean_run_us * (ahead / s->max_runs));

done:
  g_mutex_unlock (&s->lock);
  return wait;
}

void
fvlm_scheduler_get_stats (FvlmSchedStream * st, FvlmSchedulerStats * stats)
{
  FvlmScheduler *s = st->sched;

  g_mutex_lock (&s->lock);
  stats->n_streams = s->n_streams;
  stats->max_runs = s->max_runs;
  stats->running = s->running;
  stats->waiting = s->waiting;
  stats->grants = s->ticket;
  g_mutex_unlock (&s->lock);
}
