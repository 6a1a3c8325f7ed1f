/*
 * test-eos.c — EOS reaching fastvlmcaption while model work is pending, with the tiny
 * random model and the worker's delay hook (FASTVLM_GST_TEST_DELAY_MS).
 *
 * The contract (docs/element.md, "Robustness"): offline, EOS goes on only after every
 * sampled frame is captioned (drained); live, the running request and the one waiting in
 * the mailbox finish first and are delivered on the text pad, the bus and the signal
 * before EOS — their metas have no later frame to ride on and are dropped — and a request
 * that cannot make max-latency is dropped (skipped-late). Either way the text pad ends
 * with EOS after its last caption.
 *
 * What it proves, test by test:
 *   offline_drained      a non-live file-like source of 12 frames, a slow model: 12
 *                        captions, one per frame, each frame carrying its own; then text
 *                        EOS after the 12 text buffers, then the bus EOS; the stats at EOS
 *                        count 12. Again with interval (only sampled frames captioned).
 *   live_pending         live harness: a run in flight, a frame waiting, a newer one
 *                        replacing it, then EOS: EOS returns only after both results are
 *                        out (signal, bus, text pad) and the text pad's EOS follows them;
 *                        the replaced frame is counted skipped-busy. A flush then restarts
 *                        the stream and captions resume.
 *   live_late_dropped    same with max-latency shorter than the model: the pending work
 *                        is dropped (skipped-late), EOS still goes through, text EOS too.
 *   live_pipeline        live videotestsrc with num-buffers, EOS arriving while a run is
 *                        in flight (retried until it is): that run's caption is posted
 *                        before the pipeline's EOS message.
 * What it is not: a test of EOS without pending work (tests/gst test-caption).
 */
#include "robust-util.h"

/* Records the text pad's stream (buffers and EOS) in order. */
typedef struct
{
  GMutex lock;
  GArray *pts;                  /* guint64 of text buffers */
  gint buffers_after_eos;
  gboolean eos;
  GstPad *sink;                 /* our own sink when the text pad had no peer */
} TextRec;

static GstFlowReturn
text_rec_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  gst_buffer_unref (buf);
  return GST_FLOW_OK;
}

static gboolean
text_rec_event (GstPad * pad, GstObject * parent, GstEvent * ev)
{
  gst_event_unref (ev);
  return TRUE;
}

static GstPadProbeReturn
text_rec_probe (GstPad * pad, GstPadProbeInfo * info, TextRec * t)
{
  g_mutex_lock (&t->lock);
  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER) {
    guint64 pts = GST_BUFFER_PTS (GST_PAD_PROBE_INFO_BUFFER (info));

    if (t->eos)
      t->buffers_after_eos++;
    g_array_append_val (t->pts, pts);
  } else if (GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) == GST_EVENT_EOS) {
    t->eos = TRUE;
  }
  g_mutex_unlock (&t->lock);
  return GST_PAD_PROBE_OK;
}

static TextRec *
text_rec_new (GstElement * caption)
{
  TextRec *t = g_new0 (TextRec, 1);
  GstPad *pad = gst_element_get_static_pad (caption, "text_src");

  g_mutex_init (&t->lock);
  t->pts = g_array_new (FALSE, FALSE, sizeof (guint64));
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER |
      GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, (GstPadProbeCallback) text_rec_probe,
      t, NULL);
  /* events reach the probe only on a linked pad (a harness leaves it unlinked) */
  if (!gst_pad_is_linked (pad)) {
    t->sink = gst_pad_new ("text_rec", GST_PAD_SINK);
    gst_pad_set_chain_function (t->sink, text_rec_chain);
    gst_pad_set_event_function (t->sink, text_rec_event);
    gst_pad_set_active (t->sink, TRUE);
    fail_unless_equals_int (gst_pad_link (pad, t->sink), GST_PAD_LINK_OK);
  }
  gst_object_unref (pad);
  return t;
}

/* After the element stopped. */
static void
text_rec_free (TextRec * t)
{
  if (t->sink) {
    gst_pad_set_active (t->sink, FALSE);
    gst_object_unref (t->sink);
  }
  g_array_unref (t->pts);
  g_mutex_clear (&t->lock);
  g_free (t);
}

static gboolean
text_rec_wait_eos (TextRec * t, gint seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64) seconds * G_USEC_PER_SEC;
  gboolean eos;

  for (;;) {
    g_mutex_lock (&t->lock);
    eos = t->eos;
    g_mutex_unlock (&t->lock);
    if (eos || g_get_monotonic_time () > end)
      return eos;
    g_usleep (1000);
  }
}

/* Counts video buffers leaving the element and the caption metas on them. */
typedef struct
{
  gint buffers, metas, own;     /* own: meta describes the buffer it is on */
} VideoRec;

static GstPadProbeReturn
video_rec_probe (GstPad * pad, GstPadProbeInfo * info, VideoRec * v)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  const GstStructure *s = fvlm_test_meta (buf);
  guint64 fpts;

  /* only the streaming thread touches v */
  v->buffers++;
  if (s && gst_structure_get_uint64 (s, "frame-pts", &fpts)) {
    v->metas++;
    if (fpts == GST_BUFFER_PTS (buf))
      v->own++;
  }
  return GST_PAD_PROBE_OK;
}

static void
run_offline (GstClockTime interval, gint n_frames, gint expect_captions)
{
  GstElement *pipeline, *caption;
  GstPad *src;
  GstBus *bus;
  GstMessage *msg;
  GstStructure *stats = NULL;
  RbCaptions *rc;
  TextRec *t;
  VideoRec v = { 0, };
  guint64 captioned = 0;

  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "150", TRUE);
  pipeline = rb_pipeline ("videotestsrc num-buffers=%d pattern=ball ! "
      "video/x-raw,format=I420,width=64,height=48,framerate=25/1 ! "
      "fastvlmcaption name=c @MODEL@ max-new-tokens=3 interval=%" G_GUINT64_FORMAT
      " ! fakesink sync=false c.text_src ! fakesink sync=false", n_frames,
      interval);
  caption = rb_get (pipeline, "c");
  rc = rb_captions_new (caption);
  t = text_rec_new (caption);
  src = gst_element_get_static_pad (caption, "src");
  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER,
      (GstPadProbeCallback) video_rec_probe, &v, NULL);
  gst_object_unref (src);
  bus = gst_element_get_bus (pipeline);

  rb_set_state_wait (pipeline, GST_STATE_PLAYING);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
  /* the element's stats message at EOS, then the pipeline's EOS */
  for (;;) {
    msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT);
    fail_unless (msg != NULL, "no EOS");
    fail_if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR);
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS)
      break;
    if (gst_structure_has_name (gst_message_get_structure (msg), "fastvlm-stats")) {
      if (stats)
        gst_structure_free (stats);
      stats = gst_structure_copy (gst_message_get_structure (msg));
    }
    gst_message_unref (msg);
  }
  gst_message_unref (msg);
  /* EOS is posted once both sinks have it: the text pad's is already out */
  g_mutex_lock (&t->lock);
  fail_unless (t->eos, "pipeline EOS before the text pad's");
  g_mutex_unlock (&t->lock);

  fail_unless (stats != NULL, "no fastvlm-stats message at EOS");
  fail_unless (gst_structure_get_uint64 (stats, "frames-captioned", &captioned));
  fail_unless_equals_int ((gint) captioned, expect_captions);
  fail_unless_equals_int (rb_captions_count (rc), expect_captions);
  fail_unless_equals_int (v.buffers, n_frames);
  fail_unless_equals_int (v.metas, expect_captions);
  fail_unless_equals_int (v.own, expect_captions);
  fail_unless_equals_int (t->pts->len, expect_captions);
  fail_unless_equals_int (t->buffers_after_eos, 0);
  /* the last frame sampled is the last one captioned */
  g_mutex_lock (&rc->lock);
  fail_unless_equals_uint64 (g_array_index (t->pts, guint64, t->pts->len - 1),
      rb_u64 (g_ptr_array_index (rc->all, rc->all->len - 1), "frame-pts"));
  g_mutex_unlock (&rc->lock);

  rb_set_state_wait (pipeline, GST_STATE_NULL);
  gst_structure_free (stats);
  rb_captions_free (rc, caption);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  text_rec_free (t);
}

GST_START_TEST (test_offline_drained)
{
  /* every frame */
  run_offline (0, 12, 12);
  /* 25 fps, one every 200 ms: frames 0, 5, 10 of 12 */
  run_offline (200 * GST_MSECOND, 12, 3);
}

GST_END_TEST;

static GstCaps *
caps_64 (void)
{
  return fvlm_test_caps (GST_VIDEO_FORMAT_I420, 64, 48, 30, 1);
}

static GstBuffer *
frame_at (guint32 seed, GstClockTime pts)
{
  return fvlm_test_frame (GST_VIDEO_FORMAT_I420, 64, 48, seed, 0, pts, 33 * MS);
}

GST_START_TEST (test_live_pending)
{
  GstElement *e;
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  RbCaptions *rc;
  TextRec *t;
  GstMessage *msg;
  gint n_msgs = 0;
  GstSegment segment;

  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "800", TRUE);
  e = fvlm_test_element (TRUE, "mode", 1, "max-new-tokens", 3, NULL);
  gst_element_set_bus (e, bus);
  rc = rb_captions_new (e);
  t = text_rec_new (e);
  h = fvlm_test_harness (e, caps_64 (), TRUE);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");

  fail_unless_equals_int (gst_harness_push (h, frame_at (1, 0)), GST_FLOW_OK);
  fvlm_test_wait_busy (e);
  fail_unless_equals_int (gst_harness_push (h, frame_at (2, 33 * MS)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, frame_at (3, 66 * MS)),
      GST_FLOW_OK);
  fail_unless (fvlm_test_busy (e), "the first run ended before EOS");

  /* EOS with a run in flight and a frame waiting: returns once both are out */
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (rb_captions_count (rc), 2);
  g_mutex_lock (&rc->lock);
  fail_unless_equals_uint64 (rb_u64 (g_ptr_array_index (rc->all, 0), "frame-pts"),
      0);
  fail_unless_equals_uint64 (rb_u64 (g_ptr_array_index (rc->all, 1), "frame-pts"),
      66 * MS);
  g_mutex_unlock (&rc->lock);
  while ((msg = fvlm_test_pop_message (bus, GST_MESSAGE_ELEMENT,
              "fastvlm-caption", 0))) {
    n_msgs++;
    gst_message_unref (msg);
  }
  fail_unless_equals_int (n_msgs, 2);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "skipped-busy"), 1);
  /* the text pad: both captions, then EOS (pushed by the worker) */
  fail_unless (text_rec_wait_eos (t, 60), "no EOS on the text pad");
  g_mutex_lock (&t->lock);
  fail_unless_equals_int (t->pts->len, 2);
  fail_unless_equals_int (t->buffers_after_eos, 0);
  g_mutex_unlock (&t->lock);

  /* a flush (a seek after EOS) restarts the stream */
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  gst_segment_init (&segment, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  fail_unless_equals_int (gst_harness_push (h, frame_at (4, 0)), GST_FLOW_OK);
  fail_unless (rb_captions_wait (rc, 3, 120), "no caption after EOS and a flush");

  rb_captions_free (rc, e);
  gst_harness_teardown (h);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
  text_rec_free (t);
}

GST_END_TEST;

GST_START_TEST (test_live_late_dropped)
{
  GstElement *e;
  GstHarness *h;
  RbCaptions *rc;
  TextRec *t;

  /* the model takes 3 s, the budget is 300 ms: nothing can make it */
  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "3000", TRUE);
  e = fvlm_test_element (TRUE, "mode", 1, "max-new-tokens", 3,
      "max-latency", (guint64) 300 * GST_MSECOND, NULL);
  rc = rb_captions_new (e);
  t = text_rec_new (e);
  h = fvlm_test_harness (e, caps_64 (), TRUE);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");

  fail_unless_equals_int (gst_harness_push (h, frame_at (1, 0)), GST_FLOW_OK);
  fvlm_test_wait_busy (e);
  fail_unless_equals_int (gst_harness_push (h, frame_at (2, 33 * MS)),
      GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  fail_unless_equals_int (rb_captions_count (rc), 0);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "skipped-late"), 2);
  fail_unless (text_rec_wait_eos (t, 60), "no EOS on the text pad");
  fail_unless_equals_int (t->pts->len, 0);
  /* nothing left running or waiting */
  fail_if (fvlm_test_busy (e));

  rb_captions_free (rc, e);
  gst_harness_teardown (h);
  gst_object_unref (e);
  text_rec_free (t);
}

GST_END_TEST;

/* Live pipeline: was a run in flight when EOS reached the element, and how many captions
 * existed then? Set from the streaming thread, read after the pipeline's EOS. */
typedef struct
{
  GstElement *caption;
  RbCaptions *rc;
  gboolean busy_at_eos;
  guint captions_at_eos;
} EosProbe;

static GstPadProbeReturn
eos_probe (GstPad * pad, GstPadProbeInfo * info, EosProbe * ep)
{
  if (GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) == GST_EVENT_EOS) {
    ep->captions_at_eos = rb_captions_count (ep->rc);
    ep->busy_at_eos = fvlm_test_busy (ep->caption);
  }
  return GST_PAD_PROBE_OK;
}

GST_START_TEST (test_live_pipeline)
{
  gint attempt;

  for (attempt = 0; attempt < 5; attempt++) {
    GstElement *pipeline;
    GstBus *bus;
    GstPad *sink;
    GstMessage *msg;
    EosProbe ep = { 0, };
    guint at_bus_eos;

    g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "500", TRUE);
    pipeline = rb_pipeline ("videotestsrc is-live=true num-buffers=40 "
        "pattern=ball ! video/x-raw,format=I420,width=64,height=48,"
        "framerate=30/1 ! fastvlmcaption name=c @MODEL@ max-new-tokens=3 ! "
        "fakesink sync=true c.text_src ! fakesink sync=false");
    ep.caption = rb_get (pipeline, "c");
    ep.rc = rb_captions_new (ep.caption);
    sink = gst_element_get_static_pad (ep.caption, "sink");
    gst_pad_add_probe (sink, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
        (GstPadProbeCallback) eos_probe, &ep, NULL);
    gst_object_unref (sink);
    bus = gst_element_get_bus (pipeline);
    rb_set_state_wait (pipeline, GST_STATE_PLAYING);
    g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");

    msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    fail_unless (msg != NULL && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS);
    gst_message_unref (msg);
    at_bus_eos = rb_captions_count (ep.rc);
    rb_set_state_wait (pipeline, GST_STATE_NULL);
    rb_captions_free (ep.rc, ep.caption);
    gst_object_unref (bus);
    gst_object_unref (pipeline);

    g_print ("live_pipeline attempt %d: busy at EOS %d, captions %u at EOS, %u "
        "at the bus EOS\n", attempt, ep.busy_at_eos, ep.captions_at_eos,
        at_bus_eos);
    if (ep.busy_at_eos) {
      /* the run in flight was delivered before EOS left the pipeline */
      fail_unless (at_bus_eos >= ep.captions_at_eos + 1,
          "the caption in flight at EOS was lost");
      break;
    }
  }
  fail_unless (attempt < 5, "EOS never met a run in flight");
}

GST_END_TEST;

static Suite *
robustness_eos_suite (void)
{
  Suite *s = suite_create ("fastvlmcaption-eos");
  TCase *tc = rb_tcase_new ("general");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_offline_drained);
  tcase_add_test (tc, test_live_pending);
  tcase_add_test (tc, test_live_late_dropped);
  tcase_add_test (tc, test_live_pipeline);
  return s;
}

GST_CHECK_MAIN (robustness_eos);
