/*
 * test-states.c — state changes of fastvlmcaption while a model run is in flight, after
 * GStreamer's generic states test (gstreamer/tests/check/generic/states.c), with the tiny
 * random model and the worker's delay hook (FASTVLM_GST_TEST_DELAY_MS) standing in for a
 * slow model.
 *
 * What it proves, test by test:
 *   state_pairs_live      every ordered pair (from, to) of NULL/READY/PAUSED/PLAYING, in
 *                         shuffled orders, repeated, on a live pipeline: the pipeline is
 *                         brought to PLAYING with a generation running, moved to `from`,
 *                         then to `to`. Every change completes (a minute at most), lands in
 *                         the asked state, posts no ERROR; every change out of PAUSED or
 *                         PLAYING happens with the model busy (counted, required). The run
 *                         lasts 10 minutes (hook) and no caption may appear: no change may
 *                         wait for the run (a text sink re-prerolling after PLAYING->PAUSED
 *                         did, until the element pushed an empty GAP there).
 *   state_pairs_offline   the same on a non-live source (offline mode: the streaming
 *                         thread waits for the model). A change to PAUSED is not waited for
 *                         before the next one: its preroll waits for the caption, so the
 *                         next change lands while that generation runs.
 *   live_preroll_no_wait  a live pipeline with a sink on text_src reaches PLAYING, and 10
 *                         frames reach the video sink, while the first model run (hook:
 *                         10 minutes) is still going — the text sink prerolls on a GAP,
 *                         it does not wait for the first caption.
 *   offline_pause_text_sink  offline, PLAYING->PAUSED completes when a caption reaches the
 *                         text sink just after it paused (a pad probe holds the 3rd caption
 *                         until then): the text sink prerolls on it and waits for PLAYING,
 *                         and that must not hold the model thread the next frame needs.
 *   no_model_plays        without a model, a pipeline with a sink on text_src prerolls and
 *                         plays to EOS.
 *   cycles_200            200 NULL -> PLAYING -> NULL cycles of one pipeline (the same
 *                         element restarted every time), each stopped with a generation in
 *                         flight (even cycles in the hook's wait, odd ones inside the
 *                         engine's decode); every 25th cycle runs the model to captions
 *                         instead, proving the restarted element still works. Open fds and
 *                         threads of the process after the last cycle equal those after
 *                         cycle 10 (small slack for GLib's thread pool).
 * Every pipeline, gate and counter is registered with the teardown of robust-util.h, so a
 * failed check (which under CK_FORK=no jumps out of the test) still stops what the test
 * made; FASTVLM_ROBUST_INJECT_FAILURE makes state_pairs_* fail at the first change with a
 * run in flight, which teardown.sh uses to prove it.
 * What it is not: a leak check by itself (asan.sh runs this under AddressSanitizer), nor a
 * timing test: no assertion depends on the machine's speed, only generous timeouts.
 */
#include "robust-util.h"

static const GstState all_states[] = {
  GST_STATE_NULL, GST_STATE_READY, GST_STATE_PAUSED, GST_STATE_PLAYING
};

typedef struct
{
  GstState from, to;
} StatePair;

/* The 12 ordered pairs, shuffled with @rand. */
static GArray *
shuffled_pairs (GRand * rand)
{
  GArray *pairs = g_array_new (FALSE, FALSE, sizeof (StatePair));

  for (guint i = 0; i < G_N_ELEMENTS (all_states); i++)
    for (guint j = 0; j < G_N_ELEMENTS (all_states); j++)
      if (i != j) {
        StatePair p = { all_states[i], all_states[j] };

        g_array_append_val (pairs, p);
      }
  for (guint i = pairs->len - 1; i > 0; i--) {
    guint j = g_rand_int_range (rand, 0, i + 1);
    StatePair t = g_array_index (pairs, StatePair, i);

    g_array_index (pairs, StatePair, i) = g_array_index (pairs, StatePair, j);
    g_array_index (pairs, StatePair, j) = t;
  }
  return pairs;
}

/* Runs every pair @rounds times. @live: the pipeline's source is live. The model run
 * takes @delay_ms (hook) so it is in flight when the changes land. */
static void
run_state_pairs (gboolean live, gint delay_ms, gint rounds)
{
  gchar *delay = g_strdup_printf ("%d", delay_ms);
  GRand *rand = g_rand_new_with_seed (live ? 1 : 2);
  GstElement *pipeline, *caption;
  GstBus *bus;
  RbCaptions *rc;
  guint in_flight_changes = 0;

  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", delay, TRUE);
  g_free (delay);
  pipeline = rb_pipeline ("videotestsrc is-live=%s pattern=ball ! "
      "video/x-raw,format=I420,width=64,height=48,framerate=30/1 ! "
      "fastvlmcaption name=c @MODEL@ max-new-tokens=4 ! fakesink sync=%s "
      "c.text_src ! fakesink sync=false", live ? "true" : "false",
      live ? "true" : "false");
  caption = rb_get (pipeline, "c");
  rc = rb_captions_new (caption);
  bus = gst_element_get_bus (pipeline);

  for (gint round = 0; round < rounds; round++) {
    GArray *pairs = shuffled_pairs (rand);

    for (guint i = 0; i < pairs->len; i++) {
      StatePair p = g_array_index (pairs, StatePair, i);
      gboolean in_flight = p.from >= GST_STATE_PAUSED;
      gint attempt;

      /* the sequence so far, for a failure's log */
      g_printerr ("%s round %d: %s -> %s\n", live ? "live" : "offline", round,
          gst_element_state_get_name (p.from), gst_element_state_get_name (p.to));
      /* a generation must be running when we leave PAUSED/PLAYING; if the model was
       * between runs at that instant (offline), start over */
      for (attempt = 0; attempt < 5; attempt++) {
        rb_set_state_wait (pipeline, GST_STATE_PLAYING);
        fail_unless (rb_wait_busy (caption, 60), "the model never ran");
        if (p.from == GST_STATE_PAUSED && !live) {
          /* offline preroll waits for the caption: change again while it runs */
          fail_if (gst_element_set_state (pipeline, p.from) ==
              GST_STATE_CHANGE_FAILURE);
        } else if (p.from != GST_STATE_PLAYING) {
          rb_set_state_wait (pipeline, p.from);
        }
        if (!in_flight || fvlm_test_busy (caption))
          break;
      }
      fail_unless (attempt < 5, "%s: never busy when leaving it",
          gst_element_state_get_name (p.from));
      if (in_flight)
        in_flight_changes++;
      /* teardown.sh: a check failing here leaves the pipeline with a run in flight */
      fail_if (in_flight && g_getenv ("FASTVLM_ROBUST_INJECT_FAILURE") != NULL,
          "injected failure, the model busy in %s",
          gst_element_state_get_name (p.from));

      rb_set_state_wait (pipeline, p.to);
      rb_assert_no_error (bus);
    }
    g_array_unref (pairs);
  }
  /* 6 of the 12 pairs leave PAUSED or PLAYING, each with the model busy */
  fail_unless_equals_int (in_flight_changes, 6 * rounds);
  g_print ("state pairs (%s): %d rounds of 12, %u changes with a run in flight, "
      "%u captions\n", live ? "live" : "offline", rounds, in_flight_changes,
      rb_captions_count (rc));
  /* live: no run ever ended, so no change waited for one */
  if (live)
    fail_unless_equals_int (rb_captions_count (rc), 0);

  rb_set_state_wait (pipeline, GST_STATE_NULL);
  rb_assert_no_error (bus);
  rb_captions_free (rc, caption);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  g_rand_free (rand);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
}

GST_START_TEST (test_state_pairs_live)
{
  /* the run never ends by itself (10 minutes): every change meets it, and none may wait
   * for it — a text sink prerolls on GAPs, not on the next caption */
  run_state_pairs (TRUE, 600000, rb_under_asan ()? 1 : 3);
}

GST_END_TEST;

GST_START_TEST (test_state_pairs_offline)
{
  /* short runs: an offline preroll waits for one */
  run_state_pairs (FALSE, 500, rb_under_asan ()? 1 : 2);
}

GST_END_TEST;

static void
count_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad, gint * n)
{
  g_atomic_int_inc (n);
}

/* Waits (up to 2 minutes: no check timeout applies under CK_FORK=no) until *@n >= @value. */
static gboolean
wait_count (gint * n, gint value)
{
  gint64 end = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;

  while (g_atomic_int_get (n) < value) {
    if (g_get_monotonic_time () > end)
      return FALSE;
    g_usleep (1000);
  }
  return TRUE;
}

/* A handoff counter that outlives a failed check: freed by the teardown after the
 * pipeline (made after this call) has stopped. */
static gint *
new_frame_counter (void)
{
  gint *n = g_new0 (gint, 1);

  rb_defer (g_free, n);
  return n;
}

/* A live pipeline with a sink on text_src reaches PLAYING, and video flows, while the
 * first model run is still going: the text sink must not wait for the first caption. */
GST_START_TEST (test_live_preroll_no_wait)
{
  GstElement *pipeline, *caption, *vsink;
  GstStateChangeReturn ret;
  RbCaptions *rc;
  gint *frames = new_frame_counter ();
  GstState state;

  /* a run that outlasts the test: only the shutdown ends it */
  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "600000", TRUE);
  pipeline = rb_pipeline ("videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,format=I420,width=64,height=48,framerate=30/1 ! "
      "fastvlmcaption name=c @MODEL@ max-new-tokens=4 ! "
      "fakesink name=vs sync=true signal-handoffs=true c.text_src ! fakesink");
  caption = rb_get (pipeline, "c");
  vsink = rb_get (pipeline, "vs");
  g_signal_connect (vsink, "handoff", G_CALLBACK (count_handoff), frames);
  rc = rb_captions_new (caption);

  fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  ret = gst_element_get_state (pipeline, &state, NULL, 120 * GST_SECOND);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
  fail_unless_equals_int (ret, GST_STATE_CHANGE_SUCCESS);
  fail_unless_equals_int (state, GST_STATE_PLAYING);
  fail_unless (fvlm_test_busy (caption));
  fail_unless_equals_int (rb_captions_count (rc), 0);
  /* and the video goes on meanwhile */
  fail_unless (wait_count (frames, 10), "no video while the model runs");
  fail_unless_equals_int (rb_captions_count (rc), 0);

  rb_set_state_wait (pipeline, GST_STATE_NULL);
  rb_captions_free (rc, caption);
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* Holds the @hold-th buffer on the text pad until released. */
typedef struct
{
  GMutex lock;
  GCond cond;
  gint seen, hold;
  gboolean held, released;
} TextGate;

/* Teardown: a check failed while the probe held a buffer — let it go, or stopping the
 * pipeline waits for that streaming thread forever. */
static void
text_gate_release (gpointer data)
{
  TextGate *g = data;

  g_mutex_lock (&g->lock);
  g->released = TRUE;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
}

/* Teardown, after the pipeline is stopped. */
static void
text_gate_free (gpointer data)
{
  TextGate *g = data;

  g_mutex_clear (&g->lock);
  g_cond_clear (&g->cond);
  g_free (g);
}

static GstPadProbeReturn
text_gate_probe (GstPad * pad, GstPadProbeInfo * info, TextGate * g)
{
  g_mutex_lock (&g->lock);
  if (++g->seen == g->hold) {
    g->held = TRUE;
    g_cond_broadcast (&g->cond);
    while (!g->released)
      g_cond_wait (&g->cond, &g->lock);
  }
  g_mutex_unlock (&g->lock);
  return GST_PAD_PROBE_OK;
}

/* Offline, pausing must complete even when a caption reaches the text sink just after it
 * went PAUSED: that caption prerolls the text sink, which then holds it until PLAYING;
 * the video sink needs the next frame, whose caption needs the model. The model thread
 * must not be the one held by the text sink. The gate makes the timing certain: the 3rd
 * caption is held before the text pad until the sinks are PAUSED (frame 2 was rendered). */
GST_START_TEST (test_offline_pause_text_sink)
{
  GstElement *pipeline, *caption, *vsink;
  GstStateChangeReturn ret;
  TextGate *g = g_new0 (TextGate, 1);
  GstPad *text;
  gint *frames = new_frame_counter ();
  gboolean held;
  gint64 end;

  /* teardown order (last registered first): release the gate, stop the pipeline, free
   * the gate */
  g_mutex_init (&g->lock);
  g_cond_init (&g->cond);
  g->hold = 3;
  rb_defer (text_gate_free, g);
  pipeline = rb_pipeline ("videotestsrc pattern=ball ! "
      "video/x-raw,format=I420,width=64,height=48,framerate=30/1 ! "
      "fastvlmcaption name=c @MODEL@ max-new-tokens=3 ! "
      "fakesink name=vs sync=false signal-handoffs=true c.text_src ! "
      "fakesink sync=false");
  caption = rb_get (pipeline, "c");
  vsink = rb_get (pipeline, "vs");
  g_signal_connect (vsink, "handoff", G_CALLBACK (count_handoff), frames);
  text = gst_element_get_static_pad (caption, "text_src");
  gst_pad_add_probe (text, GST_PAD_PROBE_TYPE_BUFFER,
      (GstPadProbeCallback) text_gate_probe, g, NULL);
  gst_object_unref (text);
  rb_defer (text_gate_release, g);

  rb_set_state_wait (pipeline, GST_STATE_PLAYING);
  held = TRUE;
  end = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;
  g_mutex_lock (&g->lock);
  while (!g->held && held)
    held = g_cond_wait_until (&g->cond, &g->lock, end) || g->held;
  g_mutex_unlock (&g->lock);
  fail_unless (held, "the 3rd caption never reached the text pad");
  /* frame 2 (the held caption's) is rendered: offline, a frame goes on once its
   * result exists, before its text is pushed */
  fail_unless (wait_count (frames, 3), "frame 2 was never rendered");

  fail_if (gst_element_set_state (pipeline, GST_STATE_PAUSED) ==
      GST_STATE_CHANGE_FAILURE);
  text_gate_release (g);
  ret = gst_element_get_state (pipeline, NULL, NULL, 60 * GST_SECOND);
  if (ret != GST_STATE_CHANGE_SUCCESS)
    rb_dump_states (pipeline);
  fail_unless_equals_int (ret, GST_STATE_CHANGE_SUCCESS);

  rb_set_state_wait (pipeline, GST_STATE_PLAYING);
  rb_set_state_wait (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* Without a model (passthrough, a WARNING) a sink on text_src still prerolls — on GAPs
 * the streaming thread queues — and the stream plays to EOS on both pads. */
GST_START_TEST (test_no_model_plays)
{
  GstElement *pipeline;
  GstBus *bus;
  GstMessage *msg;

  pipeline = gst_parse_launch ("videotestsrc num-buffers=20 ! "
      "video/x-raw,format=I420,width=64,height=48,framerate=30/1 ! "
      "fastvlmcaption name=c model=\"\" ! fakesink c.text_src ! fakesink", NULL);
  fail_unless (pipeline != NULL);
  rb_track_pipeline (pipeline);
  bus = gst_element_get_bus (pipeline);
  rb_set_state_wait (pipeline, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS);
  gst_message_unref (msg);
  rb_set_state_wait (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
}

GST_END_TEST;

GST_START_TEST (test_cycles_200)
{
  const gint n_cycles = rb_under_asan ()? 50 : 200;
  GstElement *pipeline, *caption;
  RbCaptions *rc;
  GstBus *bus;
  gint fds_base = -1, threads_base = -1, fds, threads, checked = 0;

  pipeline = rb_pipeline ("videotestsrc is-live=true pattern=ball ! "
      "video/x-raw,format=I420,width=96,height=72,framerate=30/1 ! "
      "fastvlmcaption name=c @MODEL@ mode=live ! fakesink sync=true "
      "c.text_src ! fakesink sync=false");
  caption = rb_get (pipeline, "c");
  bus = gst_element_get_bus (pipeline);
  rc = rb_captions_new (caption);

  for (gint cycle = 0; cycle < n_cycles; cycle++) {
    gboolean to_captions = cycle % 25 == 24;

    /* the worker reads the hook when it starts (READY -> PAUSED) */
    if (cycle % 2 == 0 && !to_captions)
      g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "2000", TRUE);
    else
      g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
    g_object_set (caption, "max-new-tokens", to_captions ? 4 : 1000, NULL);

    fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE, "cycle %d: cannot go to PLAYING", cycle);
    if (to_captions) {
      guint before = rb_captions_count (rc);

      fail_unless (rb_captions_wait (rc, before + 2, 60),
          "cycle %d: no captions after %d restarts", cycle, cycle);
      checked++;
    } else {
      fail_unless (rb_wait_busy (caption, 60), "cycle %d: the model never ran",
          cycle);
    }
    fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    rb_assert_no_error (bus);
    gst_bus_set_flushing (bus, TRUE);   /* drop this cycle's messages */
    gst_bus_set_flushing (bus, FALSE);

    if (cycle == 9) {
      fds_base = rb_count_fds ();
      threads_base = rb_count_threads ();
    }
  }
  fds = rb_count_fds ();
  threads = rb_count_threads ();
  g_print ("cycles_200: %d cycles (%d to captions); fds %d -> %d, threads %d -> %d\n",
      n_cycles, checked, fds_base, fds, threads_base, threads);
  fail_unless (fds <= fds_base, "open fds grew from %d to %d", fds_base, fds);
  /* GLib keeps a few idle pool threads around; a thread per cycle would be 190 */
  fail_unless (threads <= threads_base + 4, "threads grew from %d to %d",
      threads_base, threads);

  rb_captions_free (rc, caption);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
}

GST_END_TEST;

static Suite *
robustness_states_suite (void)
{
  Suite *s = suite_create ("fastvlmcaption-states");
  TCase *tc = rb_tcase_new ("general");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_live_preroll_no_wait);
  tcase_add_test (tc, test_offline_pause_text_sink);
  tcase_add_test (tc, test_no_model_plays);
  tcase_add_test (tc, test_state_pairs_live);
  tcase_add_test (tc, test_state_pairs_offline);
  tcase_add_test (tc, test_cycles_200);
  return s;
}

GST_CHECK_MAIN (robustness_states);
