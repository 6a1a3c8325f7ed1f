/*
 * test-renegotiate.c — caps changes (resolution and format) in the middle of a stream
 * through fastvlmcaption, with the tiny random model.
 *
 * What it proves, test by test:
 *   formats_offline     one element, offline, fed 7 caps in turn (RGB 64x64, I420 80x60,
 *                       NV12 33x17, GRAY8 64x48, YUY2 128x96, BGRx 50x70 with padded
 *                       strides, RGB 64x64 again), two frames each: every frame carries its
 *                       own caption (frame-pts = its PTS) and that caption equals the one a
 *                       fresh element started with those caps gives for the same frame — so
 *                       the downscaled copy follows the new caps, not the old ones.
 *   change_in_flight    live, the model busy (delay hook) across two caps changes: the run
 *                       started under the first caps is delivered for its own frame, the
 *                       frame waiting under the last caps replaces the one of the middle
 *                       caps (latest wins), and its caption equals a fresh element's.
 *   pipeline_reconfigure  a running live pipeline whose capsfilter is changed three times
 *                       while the model runs (videotestsrc renegotiates through RECONFIGURE):
 *                       after each change captions keep coming and describe frames that
 *                       entered the element under the new caps; no ERROR.
 * What it is not: a test of the preprocessing's accuracy per format (tests/gst
 * test-preprocess).
 */
#include "robust-util.h"

typedef struct
{
  GstVideoFormat format;
  gint width, height, extra_stride;
} CapsSpec;

static const CapsSpec specs[] = {
  {GST_VIDEO_FORMAT_RGB, 64, 64, 0},
  {GST_VIDEO_FORMAT_I420, 80, 60, 0},
  {GST_VIDEO_FORMAT_NV12, 33, 17, 0},
  {GST_VIDEO_FORMAT_GRAY8, 64, 48, 0},
  {GST_VIDEO_FORMAT_YUY2, 128, 96, 0},
  {GST_VIDEO_FORMAT_BGRx, 50, 70, 24},
  {GST_VIDEO_FORMAT_RGB, 64, 64, 0},
};

#define N_TOKENS 8

static gchar *
meta_text_of (GstBuffer * buf, GstClockTime expect_pts)
{
  const GstStructure *s = fvlm_test_meta (buf);
  guint64 fpts = 0;

  fail_unless (s != NULL, "no caption on the frame at %" GST_TIME_FORMAT,
      GST_TIME_ARGS (GST_BUFFER_PTS (buf)));
  fail_unless (gst_structure_get_uint64 (s, "frame-pts", &fpts));
  fail_unless_equals_uint64 (fpts, expect_pts);
  return g_strdup (gst_structure_get_string (s, "text"));
}

/* The caption a fresh offline element gives for @frame under @spec's caps. */
static gchar *
fresh_caption (const CapsSpec * spec, guint32 seed)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", N_TOKENS,
      NULL);
  GstHarness *h = fvlm_test_harness (e, fvlm_test_caps (spec->format,
          spec->width, spec->height, 30, 1), FALSE);
  GstBuffer *out = gst_harness_push_and_pull (h, fvlm_test_frame (spec->format,
          spec->width, spec->height, seed, spec->extra_stride, 0, 33 * MS));
  gchar *text = meta_text_of (out, 0);

  gst_buffer_unref (out);
  gst_harness_teardown (h);
  gst_object_unref (e);
  return text;
}

GST_START_TEST (test_formats_offline)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", N_TOKENS,
      NULL);
  GstHarness *h = fvlm_test_harness (e, fvlm_test_caps (specs[0].format,
          specs[0].width, specs[0].height, 30, 1), FALSE);
  GstClockTime pts = 0;
  GHashTable *distinct = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      NULL);

  for (guint i = 0; i < G_N_ELEMENTS (specs); i++) {
    const CapsSpec *sp = &specs[i];

    if (i > 0)
      gst_harness_set_src_caps (h, fvlm_test_caps (sp->format, sp->width,
              sp->height, 30, 1));
    for (guint j = 0; j < 2; j++) {
      guint32 seed = 100 + 2 * i + j;
      GstBuffer *out = gst_harness_push_and_pull (h, fvlm_test_frame (sp->format,
              sp->width, sp->height, seed, sp->extra_stride, pts, 33 * MS));
      gchar *text = meta_text_of (out, pts);
      gchar *ref = fresh_caption (sp, seed);

      fail_unless_equals_string (text, ref);
      g_hash_table_add (distinct, text);
      g_free (ref);
      gst_buffer_unref (out);
      pts += 33 * MS;
    }
  }
  /* the comparison means something only if captions depend on the picture */
  fail_unless (g_hash_table_size (distinct) >= 3,
      "the test model answers the same whatever the frame");
  fail_unless_equals_uint64 (fvlm_test_stat (e, "frames-captioned"),
      2 * G_N_ELEMENTS (specs));
  fail_unless_equals_uint64 (fvlm_test_stat (e, "errors"), 0);
  g_hash_table_unref (distinct);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_change_in_flight)
{
  const CapsSpec *a = &specs[1], *b = &specs[4], *c = &specs[2];
  GstElement *e;
  GstHarness *h;
  RbCaptions *rc;
  const GstStructure *s0, *s1;
  GstBuffer *out;
  GPtrArray *metas;
  gchar *ref;

  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "1500", TRUE);
  e = fvlm_test_element (TRUE, "mode", 1, "max-new-tokens", N_TOKENS, NULL);
  rc = rb_captions_new (e);
  h = fvlm_test_harness (e, fvlm_test_caps (a->format, a->width, a->height, 30, 1),
      TRUE);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");

  /* frame 0 under caps a starts a run */
  gst_buffer_unref (gst_harness_push_and_pull (h, fvlm_test_frame (a->format,
              a->width, a->height, 1, 0, 0, 33 * MS)));
  fvlm_test_wait_busy (e);
  /* caps b, one frame into the mailbox; caps c, one frame that replaces it */
  gst_harness_set_src_caps (h, fvlm_test_caps (b->format, b->width, b->height, 30,
          1));
  gst_buffer_unref (gst_harness_push_and_pull (h, fvlm_test_frame (b->format,
              b->width, b->height, 2, 0, 33 * MS, 33 * MS)));
  gst_harness_set_src_caps (h, fvlm_test_caps (c->format, c->width, c->height, 30,
          1));
  gst_buffer_unref (gst_harness_push_and_pull (h, fvlm_test_frame (c->format,
              c->width, c->height, 3, 0, 66 * MS, 33 * MS)));
  fail_unless (fvlm_test_busy (e), "the first run ended before the caps changes");

  fail_unless (rb_captions_wait (rc, 2, 120), "captions stopped after the changes");
  g_mutex_lock (&rc->lock);
  s0 = g_ptr_array_index (rc->all, 0);
  s1 = g_ptr_array_index (rc->all, 1);
  fail_unless_equals_uint64 (rb_u64 (s0, "frame-pts"), 0);
  fail_unless_equals_uint64 (rb_u64 (s1, "frame-pts"), 66 * MS);
  ref = fresh_caption (c, 3);
  fail_unless_equals_string (gst_structure_get_string (s1, "text"), ref);
  g_free (ref);
  ref = fresh_caption (a, 1);
  fail_unless_equals_string (gst_structure_get_string (s0, "text"), ref);
  g_free (ref);
  g_mutex_unlock (&rc->lock);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "skipped-busy"), 1);

  /* live: both results ride the next frame, oldest first */
  out = gst_harness_push_and_pull (h, fvlm_test_frame (c->format, c->width,
          c->height, 4, 0, 99 * MS, 33 * MS));
  metas = g_ptr_array_new ();
  {
    gpointer state = NULL;
    GstMeta *meta;

    while ((meta = gst_buffer_iterate_meta (out, &state)))
      if (gst_meta_info_is_custom (meta->info))
        g_ptr_array_add (metas, gst_custom_meta_get_structure ((GstCustomMeta *)
                meta));
  }
  fail_unless (metas->len >= 2, "%u metas on the next frame", metas->len);
  fail_unless_equals_uint64 (rb_u64 (g_ptr_array_index (metas, 0), "frame-pts"),
      0);
  fail_unless_equals_uint64 (rb_u64 (g_ptr_array_index (metas, 1), "frame-pts"),
      66 * MS);
  g_ptr_array_unref (metas);
  gst_buffer_unref (out);

  rb_captions_free (rc, e);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

/* Frames entering the element, with the index of the caps they came under. */
typedef struct
{
  GMutex lock;
  gint stage;                   /* bumped by the test before each change */
  gint caps_stage;              /* stage of the last CAPS event seen */
  GHashTable *pts_stage;        /* PTS -> caps stage + 1 */
  gint caps_events;
} Frames;

static GstPadProbeReturn
frames_probe (GstPad * pad, GstPadProbeInfo * info, Frames * f)
{
  g_mutex_lock (&f->lock);
  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);

    g_hash_table_insert (f->pts_stage, GSIZE_TO_POINTER (GST_BUFFER_PTS (buf)),
        GINT_TO_POINTER (f->caps_stage + 1));
  } else if (GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) == GST_EVENT_CAPS) {
    f->caps_stage = f->stage;
    f->caps_events++;
  }
  g_mutex_unlock (&f->lock);
  return GST_PAD_PROBE_OK;
}

GST_START_TEST (test_pipeline_reconfigure)
{
  const gchar *caps[] = {
    "video/x-raw,format=I420,width=64,height=48,framerate=30/1",
    "video/x-raw,format=RGB,width=96,height=72,framerate=30/1",
    "video/x-raw,format=GRAY8,width=40,height=30,framerate=30/1",
    "video/x-raw,format=NV12,width=33,height=17,framerate=15/1",
  };
  GstElement *pipeline, *caption, *cf;
  GstBus *bus;
  GstPad *sink;
  RbCaptions *rc;
  Frames f = { 0, };
  guint from = 0;

  g_mutex_init (&f.lock);
  f.pts_stage = g_hash_table_new (g_direct_hash, g_direct_equal);
  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "300", TRUE);
  pipeline = rb_pipeline ("videotestsrc is-live=true pattern=ball ! "
      "capsfilter name=cf caps=\"%s\" ! fastvlmcaption name=c @MODEL@ mode=live "
      "max-new-tokens=4 ! fakesink sync=true c.text_src ! fakesink sync=false",
      caps[0]);
  caption = rb_get (pipeline, "c");
  cf = rb_get (pipeline, "cf");
  rc = rb_captions_new (caption);
  sink = gst_element_get_static_pad (caption, "sink");
  gst_pad_add_probe (sink, GST_PAD_PROBE_TYPE_BUFFER |
      GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, (GstPadProbeCallback) frames_probe, &f,
      NULL);
  bus = gst_element_get_bus (pipeline);
  rb_set_state_wait (pipeline, GST_STATE_PLAYING);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");

  for (gint stage = 0; stage < (gint) G_N_ELEMENTS (caps); stage++) {
    gint64 end = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;
    gboolean seen = FALSE;

    if (stage > 0) {
      GstCaps *c = gst_caps_from_string (caps[stage]);

      /* change while a run is in flight */
      fail_unless (rb_wait_busy (caption, 60));
      g_mutex_lock (&f.lock);
      f.stage = stage;
      g_mutex_unlock (&f.lock);
      g_object_set (cf, "caps", c, NULL);
      gst_caps_unref (c);
    }
    /* wait for a caption of a frame that came under these caps */
    while (!seen) {
      fail_unless (g_get_monotonic_time () < end,
          "stage %d (%s): no caption of a frame under these caps", stage,
          caps[stage]);
      fail_unless (rb_captions_wait (rc, from + 1, 120));
      g_mutex_lock (&rc->lock);
      g_mutex_lock (&f.lock);
      for (; from < rc->all->len; from++) {
        guint64 fpts = rb_u64 (g_ptr_array_index (rc->all, from), "frame-pts");
        gint st = GPOINTER_TO_INT (g_hash_table_lookup (f.pts_stage,
                GSIZE_TO_POINTER (fpts))) - 1;

        fail_unless (st >= 0, "caption for %" GST_TIME_FORMAT
            " which never entered the element", GST_TIME_ARGS (fpts));
        fail_unless (st <= stage);
        if (st == stage)
          seen = TRUE;
      }
      g_mutex_unlock (&f.lock);
      g_mutex_unlock (&rc->lock);
    }
    rb_assert_no_error (bus);
  }
  {
    GstCaps *now = gst_pad_get_current_caps (sink), *last =
        gst_caps_from_string (caps[G_N_ELEMENTS (caps) - 1]);

    fail_unless (gst_caps_is_equal_fixed (now, last) || gst_caps_is_subset (now,
            last), "the element's caps did not follow the capsfilter");
    gst_caps_unref (now);
    gst_caps_unref (last);
  }
  fail_unless (f.caps_events >= (gint) G_N_ELEMENTS (caps));
  rb_set_state_wait (pipeline, GST_STATE_NULL);
  rb_assert_no_error (bus);
  g_print ("pipeline_reconfigure: %d caps events, %u captions\n", f.caps_events,
      rb_captions_count (rc));

  rb_captions_free (rc, caption);
  gst_object_unref (sink);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  g_hash_table_unref (f.pts_stage);
  g_mutex_clear (&f.lock);
}

GST_END_TEST;

static Suite *
robustness_renegotiate_suite (void)
{
  Suite *s = suite_create ("fastvlmcaption-renegotiate");
  TCase *tc = rb_tcase_new ("general");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_formats_offline);
  tcase_add_test (tc, test_change_in_flight);
  tcase_add_test (tc, test_pipeline_reconfigure);
  return s;
}

GST_CHECK_MAIN (robustness_renegotiate);
