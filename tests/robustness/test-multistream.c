/*
 * test-multistream.c — several fastvlmcaption elements in one process sharing one loaded
 * model and its run scheduler (gst/gstfastvlmscheduler.c), with the tiny random model and
 * the worker's delay hook (FASTVLM_GST_TEST_DELAY_MS) standing in for a slow model.
 *
 * What it proves, test by test:
 *   share_round_robin     4 live streams in one pipeline, concurrent-runs=1: the stats say
 *                         one model with 4 users and 4 scheduler streams; every stream
 *                         gets captions; the model runs (started/ended-running-time of
 *                         every caption) never overlap; after the first round every window
 *                         of 2 × 4 consecutive runs holds every stream, and the streams'
 *                         caption counts differ by at most 2 (round robin, no starvation).
 *   two_slots             the same with concurrent-runs=2: runs overlap, never more than
 *                         two at once.
 *   stop_one_stream       3 pipelines on one model: stopping one while its run is in
 *                         flight, and another while it waits for its turn, each returns
 *                         well within one model run, the others keep captioning with no
 *                         error and no cut answer, the scheduler counts 1 stream, and both
 *                         restarted streams register again and get captions.
 *   batch_decode          3 live streams of static, different pictures with
 *                         concurrent-runs=3 batch-decode=true: decode steps were joined
 *                         (batch-steps > batch-forwards), and every stream's captions are
 *                         the one caption the same stream gets with batch-decode=false.
 *   reregister_cycles     one pipeline cycled NULL <-> PLAYING 30 times (10 under ASan)
 *                         next to two that keep playing: the stream count follows, the
 *                         others keep captioning, fds and threads come back.
 * Thresholds are ratios to the hook's delay or counts, never absolute times; the delay
 * makes each run long against the scheduler's own overhead.
 * What it is not: a benchmark (bench/multistream/) nor a test of the engine's answers.
 */
#include "robust-util.h"

#define N_STREAMS 4

/* One live branch per stream: its own videotestsrc pattern, a caption element named
 * c<i>, a fakesink. @extra: more properties of the caption element. */
static gchar *
branch_desc (gint i, const gchar * extra)
{
  return g_strdup_printf ("videotestsrc is-live=true pattern=%d ! "
      "video/x-raw,format=RGB,width=64,height=64,framerate=30/1 ! "
      "fastvlmcaption name=c%d @MODEL@ reuse=false max-new-tokens=2 "
      "stats-interval=0 %s ! fakesink sync=false async=false", i, i, extra);
}

static GstElement *
multi_pipeline (gint n, const gchar * extra)
{
  GString *desc = g_string_new (NULL);
  GstElement *p;

  for (gint i = 0; i < n; i++) {
    gchar *b = branch_desc (i, extra);

    g_string_append_printf (desc, "%s  ", b);
    g_free (b);
  }
  p = rb_pipeline ("%s", desc->str);
  g_string_free (desc, TRUE);
  return p;
}

static guint
stat_uint (GstElement * e, const gchar * field)
{
  GstStructure *s = fvlm_test_stats (e);
  guint v = rb_uint (s, field);

  gst_structure_free (s);
  return v;
}

typedef struct
{
  gint stream;
  guint64 start, end;           /* running time, ns */
} Run;

static gint
run_cmp (gconstpointer a, gconstpointer b)
{
  const Run *x = a, *y = b;

  return x->start < y->start ? -1 : x->start > y->start;
}

/* Every caption of @rc[0..n) as runs, sorted by start. */
static GArray *
collect_runs (RbCaptions ** rc, gint n)
{
  GArray *runs = g_array_new (FALSE, FALSE, sizeof (Run));

  for (gint i = 0; i < n; i++) {
    g_mutex_lock (&rc[i]->lock);
    for (guint k = 0; k < rc[i]->all->len; k++) {
      const GstStructure *s = g_ptr_array_index (rc[i]->all, k);
      Run r = { i, rb_u64 (s, "started-running-time"),
        rb_u64 (s, "ended-running-time")
      };

      fail_unless (GST_CLOCK_TIME_IS_VALID (r.start)
          && GST_CLOCK_TIME_IS_VALID (r.end) && r.end >= r.start);
      g_array_append_val (runs, r);
    }
    g_mutex_unlock (&rc[i]->lock);
  }
  g_array_sort (runs, run_cmp);
  return runs;
}

/* Most runs in flight at one instant, each run shrunk by @tol at both ends (the
 * monotonic -> running time conversion is sampled, not exact). */
static gint
max_concurrent (GArray * runs, guint64 tol)
{
  gint best = 0;

  for (guint i = 0; i < runs->len; i++) {
    const Run *a = &g_array_index (runs, Run, i);
    guint64 t = a->start + tol;
    gint n = 0;

    if (a->end < a->start + 2 * tol)
      continue;
    for (guint j = 0; j < runs->len; j++) {
      const Run *b = &g_array_index (runs, Run, j);

      if (b->end >= b->start + 2 * tol && b->start + tol <= t && t < b->end - tol)
        n++;
    }
    best = MAX (best, n);
  }
  return best;
}

static void
run_streams (const gchar * extra, gint want_runs, guint per_stream,
    gint delay_ms, GArray ** runs_out, guint * counts)
{
  GstElement *p = multi_pipeline (N_STREAMS, extra);
  GstBus *bus = gst_element_get_bus (p);
  RbCaptions *rc[N_STREAMS];
  GstElement *c[N_STREAMS];

  for (gint i = 0; i < N_STREAMS; i++) {
    gchar *name = g_strdup_printf ("c%d", i);

    c[i] = rb_get (p, name);
    rc[i] = rb_captions_new (c[i]);
    g_free (name);
  }
  rb_set_state_wait (p, GST_STATE_PLAYING);

  /* every stream served (no starvation), generous timeout */
  for (gint i = 0; i < N_STREAMS; i++)
    fail_unless (rb_captions_wait (rc[i], per_stream, 300),
        "stream %d got %u captions", i, rb_captions_count (rc[i]));

  /* one model, four users, four streams on its scheduler */
  for (gint i = 0; i < N_STREAMS; i++) {
    fail_unless_equals_int (stat_uint (c[i], "model-users"), N_STREAMS);
    fail_unless_equals_int (stat_uint (c[i], "scheduler-streams"), N_STREAMS);
    fail_unless_equals_int (stat_uint (c[i], "scheduler-max-runs"), want_runs);
    fail_unless_equals_uint64 (fvlm_test_stat (c[i], "errors"), 0);
  }
  rb_assert_no_error (bus);
  rb_set_state_wait (p, GST_STATE_NULL);

  *runs_out = collect_runs (rc, N_STREAMS);
  for (gint i = 0; i < N_STREAMS; i++) {
    counts[i] = rb_captions_count (rc[i]);
    rb_captions_free (rc[i], c[i]);
  }
  gst_object_unref (bus);
  gst_object_unref (p);
  (void) delay_ms;
}

GST_START_TEST (test_share_round_robin)
{
  const gint delay_ms = 300;
  guint counts[N_STREAMS], lo = G_MAXUINT, hi = 0;
  gchar *delay = g_strdup_printf ("%d", delay_ms);
  GArray *runs;
  guint per_stream = rb_under_asan ()? 3 : 5;

  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", delay, TRUE);
  run_streams ("concurrent-runs=1", 1, per_stream, delay_ms, &runs, counts);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");

  g_print ("\nround robin: %u runs; per stream", runs->len);
  for (gint i = 0; i < N_STREAMS; i++) {
    g_print (" %u", counts[i]);
    lo = MIN (lo, counts[i]);
    hi = MAX (hi, counts[i]);
  }
  g_print ("\n");

  /* one run at a time */
  fail_unless_equals_int (max_concurrent (runs, delay_ms * GST_MSECOND / 4), 1);
  /* fair: counts close, and after the first round every window of 2N runs has every
   * stream */
  fail_unless (hi - lo <= 2, "caption counts %u..%u", lo, hi);
  for (guint w = N_STREAMS; w + 2 * N_STREAMS <= runs->len; w++) {
    gboolean seen[N_STREAMS] = { FALSE, };

    for (guint k = w; k < w + 2 * N_STREAMS; k++)
      seen[g_array_index (runs, Run, k).stream] = TRUE;
    for (gint i = 0; i < N_STREAMS; i++)
      fail_unless (seen[i], "stream %d missing from runs %u..%u", i, w,
          w + 2 * N_STREAMS - 1);
  }
  g_array_unref (runs);
  g_free (delay);
}

GST_END_TEST;

GST_START_TEST (test_two_slots)
{
  const gint delay_ms = 300;
  guint counts[N_STREAMS];
  gchar *delay = g_strdup_printf ("%d", delay_ms);
  GArray *runs;
  gint conc;

  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", delay, TRUE);
  run_streams ("concurrent-runs=2", 2, 3, delay_ms, &runs, counts);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");

  conc = max_concurrent (runs, delay_ms * GST_MSECOND / 4);
  g_print ("\ntwo slots: %u runs, at most %d at once\n", runs->len, conc);
  fail_unless_equals_int (conc, 2);
  g_array_unref (runs);
  g_free (delay);
}

GST_END_TEST;

typedef struct
{
  GstElement *p, *c;
  RbCaptions *rc;
} Stream;

static void
stream_init (Stream * s, gint i, const gchar * extra)
{
  gchar *desc = branch_desc (i, extra), *name = g_strdup_printf ("c%d", i);

  s->p = rb_pipeline ("%s", desc);
  s->c = rb_get (s->p, name);
  s->rc = rb_captions_new (s->c);
  g_free (desc);
  g_free (name);
}

static void
stream_clear (Stream * s)
{
  gst_element_set_state (s->p, GST_STATE_NULL);
  rb_captions_free (s->rc, s->c);
  gst_object_unref (s->p);
}

/* Time to bring @s to NULL, in microseconds. */
static gint64
stream_stop_us (Stream * s)
{
  gint64 t0 = g_get_monotonic_time ();

  rb_set_state_wait (s->p, GST_STATE_NULL);
  return g_get_monotonic_time () - t0;
}

/* None of @s's captions was cut (a run of another stream must not be aborted). */
static void
assert_complete (Stream * s)
{
  g_mutex_lock (&s->rc->lock);
  for (guint k = 0; k < s->rc->all->len; k++) {
    const GstStructure *st = g_ptr_array_index (s->rc->all, k);
    const gchar *stop = gst_structure_get_string (st, "stop-reason");

    fail_unless (stop && g_strcmp0 (stop, "latency") != 0, "stop %s", stop);
  }
  g_mutex_unlock (&s->rc->lock);
}

GST_START_TEST (test_stop_one_stream)
{
  const gint delay_ms = 1500;
  gchar *delay = g_strdup_printf ("%d", delay_ms);
  Stream s[3];
  guint n1, n2;
  gint64 us;

  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", delay, TRUE);
  for (gint i = 0; i < 3; i++) {
    stream_init (&s[i], i, "concurrent-runs=1");
    rb_set_state_wait (s[i].p, GST_STATE_PLAYING);
  }
  fail_unless (rb_captions_wait (s[2].rc, 1, 300));
  fail_unless_equals_int (stat_uint (s[0].c, "scheduler-streams"), 3);

  /* stop s0 while its run is in flight (busy = it holds the slot) */
  fail_unless (rb_wait_busy (s[0].c, 300), "stream 0 never ran");
  us = stream_stop_us (&s[0]);
  g_print ("\nstopping a running stream: %" G_GINT64_FORMAT " us (run %d ms)\n",
      us, delay_ms);
  fail_unless (us < delay_ms * 1000 / 2, "stop took %" G_GINT64_FORMAT " us", us);
  fail_unless_equals_int (stat_uint (s[1].c, "scheduler-streams"), 2);

  /* stop s1 while it waits for its turn (s2 runs) */
  fail_unless (rb_wait_busy (s[2].c, 300), "stream 2 never ran");
  us = stream_stop_us (&s[1]);
  g_print ("stopping a waiting stream: %" G_GINT64_FORMAT " us\n", us);
  fail_unless (us < delay_ms * 1000 / 2, "stop took %" G_GINT64_FORMAT " us", us);
  fail_unless_equals_int (stat_uint (s[2].c, "scheduler-streams"), 1);

  /* s2 goes on, undisturbed */
  n2 = rb_captions_count (s[2].rc);
  fail_unless (rb_captions_wait (s[2].rc, n2 + 2, 300));
  assert_complete (&s[2]);
  fail_unless_equals_uint64 (fvlm_test_stat (s[2].c, "errors"), 0);
  fail_unless_equals_uint64 (fvlm_test_stat (s[2].c, "skipped-late"), 0);

  /* both come back */
  n1 = rb_captions_count (s[1].rc);
  n2 = rb_captions_count (s[0].rc);
  rb_set_state_wait (s[0].p, GST_STATE_PLAYING);
  rb_set_state_wait (s[1].p, GST_STATE_PLAYING);
  fail_unless_equals_int (stat_uint (s[2].c, "scheduler-streams"), 3);
  fail_unless_equals_int (stat_uint (s[2].c, "model-users"), 3);
  fail_unless (rb_captions_wait (s[0].rc, n2 + 1, 300));
  fail_unless (rb_captions_wait (s[1].rc, n1 + 1, 300));

  for (gint i = 0; i < 3; i++)
    stream_clear (&s[i]);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
  g_free (delay);
}

GST_END_TEST;

GST_START_TEST (test_reregister_cycles)
{
  const gint cycles = rb_under_asan ()? 10 : 30;
  Stream bg[2], cyc;
  gint fds0 = 0, threads0 = 0;
  guint n[2];

  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "50", TRUE);
  for (gint i = 0; i < 2; i++) {
    stream_init (&bg[i], i, "concurrent-runs=1");
    rb_set_state_wait (bg[i].p, GST_STATE_PLAYING);
    fail_unless (rb_captions_wait (bg[i].rc, 1, 300));
  }
  stream_init (&cyc, 2, "concurrent-runs=1");

  for (gint k = 0; k < cycles; k++) {
    rb_set_state_wait (cyc.p, GST_STATE_PLAYING);
    fail_unless_equals_int (stat_uint (bg[0].c, "scheduler-streams"), 3);
    /* even cycles: stop once it has been served (it may hold or wait for a slot);
     * odd cycles: at once */
    if (k % 2 == 0)
      fail_unless (rb_captions_wait (cyc.rc, (guint) k / 2 + 1, 300));
    rb_set_state_wait (cyc.p, GST_STATE_NULL);
    fail_unless_equals_int (stat_uint (bg[0].c, "scheduler-streams"), 2);
    fail_unless_equals_int (stat_uint (bg[1].c, "model-users"), 2);
    if (k == 2) {
      fds0 = rb_count_fds ();
      threads0 = rb_count_threads ();
    }
  }
  fail_unless (rb_count_fds () <= fds0, "fds %d -> %d", fds0, rb_count_fds ());
  fail_unless (rb_count_threads () <= threads0 + 2, "threads %d -> %d",
      threads0, rb_count_threads ());

  /* the others kept going */
  for (gint i = 0; i < 2; i++) {
    n[i] = rb_captions_count (bg[i].rc);
    fail_unless (rb_captions_wait (bg[i].rc, n[i] + 1, 300));
    fail_unless_equals_uint64 (fvlm_test_stat (bg[i].c, "errors"), 0);
  }
  stream_clear (&cyc);
  for (gint i = 0; i < 2; i++)
    stream_clear (&bg[i]);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
}

GST_END_TEST;

/* Captions of 3 static streams (solid red, green, blue), concurrent-runs=3: checks that
 * each stream's captions are all the same and returns that caption per stream, and the
 * batcher's counters. */
static void
static_streams (gboolean batch, gchar ** texts, guint64 * forwards,
    guint64 * steps)
{
  GString *desc = g_string_new (NULL);
  RbCaptions *rc[3];
  GstElement *p, *c[3];

  for (gint i = 0; i < 3; i++)
    g_string_append_printf (desc, "videotestsrc is-live=true pattern=%d ! "
        "video/x-raw,format=RGB,width=64,height=64,framerate=30/1 ! "
        "fastvlmcaption name=c%d @MODEL@ reuse=false max-new-tokens=256 "
        "stats-interval=0 concurrent-runs=3 batch-decode=%s ! "
        "fakesink sync=false async=false  ", 4 + i, i, batch ? "true" : "false");
  p = rb_pipeline ("%s", desc->str);
  g_string_free (desc, TRUE);
  for (gint i = 0; i < 3; i++) {
    gchar *name = g_strdup_printf ("c%d", i);

    c[i] = rb_get (p, name);
    rc[i] = rb_captions_new (c[i]);
    g_free (name);
  }
  rb_set_state_wait (p, GST_STATE_PLAYING);
  for (gint i = 0; i < 3; i++)
    fail_unless (rb_captions_wait (rc[i], 6, 300));
  *forwards = fvlm_test_stat (c[0], "batch-forwards");
  *steps = fvlm_test_stat (c[0], "batch-steps");
  rb_set_state_wait (p, GST_STATE_NULL);
  for (gint i = 0; i < 3; i++) {
    g_mutex_lock (&rc[i]->lock);
    texts[i] = g_strdup (gst_structure_get_string (g_ptr_array_index (rc[i]->all,
                0), "text"));
    fail_unless (texts[i] != NULL);
    /* a static picture: every caption of the stream is the same */
    for (guint k = 1; k < rc[i]->all->len; k++)
      fail_unless_equals_string (gst_structure_get_string (g_ptr_array_index
              (rc[i]->all, k), "text"), texts[i]);
    g_mutex_unlock (&rc[i]->lock);
    rb_captions_free (rc[i], c[i]);
  }
  gst_object_unref (p);
}

GST_START_TEST (test_batch_decode)
{
  gchar *with[3], *without[3];
  guint64 forwards, steps, f0, s0;

  /* every run sleeps first, to the same instant, so the three runs decode together */
  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "50", TRUE);
  g_setenv ("FASTVLM_GST_TEST_ALIGN_MS", "200", TRUE);
  static_streams (TRUE, with, &forwards, &steps);
  static_streams (FALSE, without, &f0, &s0);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
  g_unsetenv ("FASTVLM_GST_TEST_ALIGN_MS");

  g_print ("\nbatch-decode: %" G_GUINT64_FORMAT " forwards carried %" G_GUINT64_FORMAT
      " steps\n", forwards, steps);
  fail_unless (steps > forwards, "no two decode steps were joined");
  fail_unless_equals_uint64 (f0, 0);
  for (gint i = 0; i < 3; i++) {
    fail_unless_equals_string (with[i], without[i]);
    g_free (with[i]);
    g_free (without[i]);
  }
}

GST_END_TEST;

static Suite *
multistream_suite (void)
{
  Suite *s = suite_create ("fastvlmcaption-multistream");
  TCase *tc = tcase_create ("multistream");

  tcase_set_timeout (tc, 900);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_share_round_robin);
  tcase_add_test (tc, test_two_slots);
  tcase_add_test (tc, test_stop_one_stream);
  tcase_add_test (tc, test_batch_decode);
  tcase_add_test (tc, test_reregister_cycles);
  return s;
}

GST_CHECK_MAIN (multistream);
