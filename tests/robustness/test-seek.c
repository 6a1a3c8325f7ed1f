/*
 * test-seek.c — flush seeks on a non-live source while fastvlmcaption's model runs, with
 * the tiny random model and the worker's delay hook (FASTVLM_GST_TEST_DELAY_MS).
 *
 * What it proves, test by test:
 *   seek_offline   videotestsrc (non-live, so mode auto = offline: every frame captioned,
 *                  its meta on itself), a moving ball, then a still picture (smpte) on
 *                  which the element reuses the kept image features/answers (reuse=true). Flush seeks are issued, each while a generation
 *                  runs, to far-apart positions (forward, backward, rate 2, reverse with a
 *                  stop, and last a forward one with a stop), through both sinks (the text
 *                  sink's copy of the seek is dropped by seqnum). Then:
 *                  - every caption (signal) emitted after a FLUSH_STOP left the element
 *                    describes a frame that entered the element after that flush and lies
 *                    in the new segment, and so do its encoded-pts (the frame whose image
 *                    features it used): nothing from before the seek leaks out after it;
 *                  - every video buffer's caption meta describes that very buffer;
 *                  - the text pad, after each flush, sends a SEGMENT equal to the seek's
 *                    (start, stop, rate) before any buffer or GAP; its buffers are
 *                    stamped with frames of the new segment; forward GAPs never go back;
 *                  - the last seek's stop ends the stream: EOS is posted after every frame
 *                    of that segment was captioned (drained), and the text pad ends with EOS.
 *   seek_live      the same source with mode=live and a synchronised sink (results ride the
 *                  next frame): metas describe an earlier-or-same frame of the current
 *                  segment, captions and text as above.
 * What it is not: a test of seeking in general (videotestsrc does the seeking) nor of
 * flush latency (tests/gst test-caption flush_cancels bounds that).
 */
#include "robust-util.h"

#define FPS 25
#define FRAME (GST_SECOND / FPS)

typedef struct
{
  gdouble rate;
  GstClockTime start, stop;     /* stop NONE = open */
} SeekSpec;

/* far apart, so frames of two epochs can never share a PTS */
static const SeekSpec seeks[] = {
  {1.0, 30 * GST_SECOND, GST_CLOCK_TIME_NONE},
  {1.0, 5 * GST_SECOND, GST_CLOCK_TIME_NONE},
  {2.0, 60 * GST_SECOND, GST_CLOCK_TIME_NONE},
  {-1.0, 90 * GST_SECOND, 91 * GST_SECOND},
  {1.0, 12 * GST_SECOND, 12 * GST_SECOND + 8 * FRAME},
};

/* What one flush epoch saw: frames in, segments in and on the text pad. */
typedef struct
{
  GArray *frames;               /* guint64 PTS of frames entering the element */
  GstSegment segment;           /* last video segment */
  gboolean have_segment;
  /* text pad */
  GstSegment text_segment;
  gboolean text_have_segment;
  GArray *text_pts;             /* guint64 */
  gint text_gaps;
  GstClockTime text_position;   /* end of the last GAP/buffer, forward only */
} Epoch;

typedef struct
{
  GMutex lock;
  GPtrArray *epochs;            /* Epoch*, by input epoch (bumped at sink FLUSH_STOP) */
  guint in_epoch, text_epoch;
  gboolean live;
  gint metas;
  gboolean text_eos;
  gchar *violation;             /* first problem seen on a streaming thread */
  RbCaptions *rc;
} Rec;

static Epoch *
epoch_new (void)
{
  Epoch *e = g_new0 (Epoch, 1);

  e->frames = g_array_new (FALSE, FALSE, sizeof (guint64));
  e->text_pts = g_array_new (FALSE, FALSE, sizeof (guint64));
  e->text_position = GST_CLOCK_TIME_NONE;
  return e;
}

static void
epoch_free (Epoch * e)
{
  g_array_unref (e->frames);
  g_array_unref (e->text_pts);
  g_free (e);
}

static gboolean
epoch_has_frame (Epoch * e, guint64 pts)
{
  for (guint i = 0; i < e->frames->len; i++)
    if (g_array_index (e->frames, guint64, i) == pts)
      return TRUE;
  return FALSE;
}

/* Records the first violation (streaming threads must not call fail()). Lock held. */
static void
violation (Rec * r, const gchar * fmt, ...)
{
  va_list args;

  if (r->violation)
    return;
  va_start (args, fmt);
  r->violation = g_strdup_vprintf (fmt, args);
  va_end (args);
}

static Epoch *
rec_epoch (Rec * r, guint i)
{
  while (r->epochs->len <= i)
    g_ptr_array_add (r->epochs, epoch_new ());
  return g_ptr_array_index (r->epochs, i);
}

/* Video into the element: frames and segments per epoch; FLUSH_STOP opens an epoch
 * before the element sees it. */
static GstPadProbeReturn
sink_probe (GstPad * pad, GstPadProbeInfo * info, Rec * r)
{
  g_mutex_lock (&r->lock);
  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER) {
    guint64 pts = GST_BUFFER_PTS (GST_PAD_PROBE_INFO_BUFFER (info));

    g_array_append_val (rec_epoch (r, r->in_epoch)->frames, pts);
  } else {
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);

    if (GST_EVENT_TYPE (ev) == GST_EVENT_FLUSH_STOP) {
      rec_epoch (r, ++r->in_epoch);
    } else if (GST_EVENT_TYPE (ev) == GST_EVENT_SEGMENT) {
      const GstSegment *seg;
      Epoch *e = rec_epoch (r, r->in_epoch);

      gst_event_parse_segment (ev, &seg);
      e->segment = *seg;
      e->have_segment = TRUE;
    }
  }
  g_mutex_unlock (&r->lock);
  return GST_PAD_PROBE_OK;
}

/* Video out of the element: FLUSH_STOP here means the element is done with the old
 * epoch; metas must describe a frame of the current one. */
static GstPadProbeReturn
src_probe (GstPad * pad, GstPadProbeInfo * info, Rec * r)
{
  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
    gpointer state = NULL;
    GstMeta *meta;
    guint epoch;

    g_mutex_lock (&r->rc->lock);
    epoch = r->rc->epoch;
    g_mutex_unlock (&r->rc->lock);
    g_mutex_lock (&r->lock);
    while ((meta = gst_buffer_iterate_meta (buf, &state))) {
      const GstStructure *s;
      guint64 fpts = 0;

      if (!gst_meta_info_is_custom (meta->info)
          || !gst_custom_meta_has_name ((GstCustomMeta *) meta, FVLM_META_NAME))
        continue;
      s = gst_custom_meta_get_structure ((GstCustomMeta *) meta);
      gst_structure_get_uint64 (s, "frame-pts", &fpts);
      r->metas++;
      if (!epoch_has_frame (rec_epoch (r, epoch), fpts))
        violation (r, "meta on %" GST_TIME_FORMAT " describes %" GST_TIME_FORMAT
            ", not a frame of epoch %u", GST_TIME_ARGS (GST_BUFFER_PTS (buf)),
            GST_TIME_ARGS (fpts), epoch);
      else if (!r->live && fpts != GST_BUFFER_PTS (buf))
        violation (r, "offline meta on %" GST_TIME_FORMAT " describes %"
            GST_TIME_FORMAT, GST_TIME_ARGS (GST_BUFFER_PTS (buf)),
            GST_TIME_ARGS (fpts));
    }
    g_mutex_unlock (&r->lock);
  } else if (GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) ==
      GST_EVENT_FLUSH_STOP) {
    g_mutex_lock (&r->rc->lock);
    r->rc->epoch++;
    g_mutex_unlock (&r->rc->lock);
  }
  return GST_PAD_PROBE_OK;
}

/* The text pad: per text epoch (bumped at its FLUSH_STOP), SEGMENT first, then buffers
 * and GAPs in order. */
static GstPadProbeReturn
text_probe (GstPad * pad, GstPadProbeInfo * info, Rec * r)
{
  Epoch *e;

  g_mutex_lock (&r->lock);
  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
    guint64 pts = GST_BUFFER_PTS (buf);

    e = rec_epoch (r, r->text_epoch);
    if (!e->text_have_segment)
      violation (r, "text buffer before a segment in epoch %u", r->text_epoch);
    g_array_append_val (e->text_pts, pts);
    if (e->text_segment.rate > 0 && GST_BUFFER_DURATION_IS_VALID (buf))
      e->text_position = pts + GST_BUFFER_DURATION (buf);
  } else {
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);

    switch (GST_EVENT_TYPE (ev)) {
      case GST_EVENT_FLUSH_STOP:
        rec_epoch (r, ++r->text_epoch);
        break;
      case GST_EVENT_SEGMENT:{
        const GstSegment *seg;

        e = rec_epoch (r, r->text_epoch);
        gst_event_parse_segment (ev, &seg);
        e->text_segment = *seg;
        e->text_have_segment = TRUE;
        break;
      }
      case GST_EVENT_GAP:{
        GstClockTime ts, dur;

        e = rec_epoch (r, r->text_epoch);
        gst_event_parse_gap (ev, &ts, &dur);
        if (!e->text_have_segment)
          violation (r, "text GAP before a segment in epoch %u", r->text_epoch);
        if (GST_CLOCK_TIME_IS_VALID (e->text_position) && ts < e->text_position)
          violation (r, "text GAP at %" GST_TIME_FORMAT " goes back before %"
              GST_TIME_FORMAT, GST_TIME_ARGS (ts),
              GST_TIME_ARGS (e->text_position));
        if (ts < e->text_segment.start)
          violation (r, "text GAP at %" GST_TIME_FORMAT " before segment start %"
              GST_TIME_FORMAT, GST_TIME_ARGS (ts),
              GST_TIME_ARGS (e->text_segment.start));
        e->text_gaps++;
        if (GST_CLOCK_TIME_IS_VALID (dur))
          e->text_position = ts + dur;
        break;
      }
      case GST_EVENT_EOS:
        r->text_eos = TRUE;
        break;
      default:
        break;
    }
  }
  g_mutex_unlock (&r->lock);
  return GST_PAD_PROBE_OK;
}

static void
add_probe (GstElement * e, const gchar * pad_name, GstPadProbeCallback cb,
    Rec * r)
{
  GstPad *pad = gst_element_get_static_pad (e, pad_name);

  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER |
      GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM | GST_PAD_PROBE_TYPE_EVENT_FLUSH,
      cb, r, NULL);
  gst_object_unref (pad);
}

static guint
captions_in_epoch (RbCaptions * rc, guint epoch)
{
  guint n = 0;

  g_mutex_lock (&rc->lock);
  for (guint i = 0; i < rc->all->len; i++)
    if (rb_uint (g_ptr_array_index (rc->all, i), "rb-epoch") == epoch)
      n++;
  g_mutex_unlock (&rc->lock);
  return n;
}

static guint
text_buffers_in_epoch (Rec * r, guint epoch)
{
  guint n;

  g_mutex_lock (&r->lock);
  n = rec_epoch (r, epoch)->text_pts->len;
  g_mutex_unlock (&r->lock);
  return n;
}

/* Waits until @n captions of the current epoch exist, at least one of them has left the
 * text pad (text_src pushes from its own task, so a flush right after a caption message may
 * legitimately discard that caption's text buffer), and a generation runs. */
static void
wait_progress (Rec * r, GstElement * caption, guint epoch, guint n)
{
  gint64 end = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;

  while (captions_in_epoch (r->rc, epoch) < n
      || text_buffers_in_epoch (r, epoch) < 1 || !fvlm_test_busy (caption)) {
    fail_unless (g_get_monotonic_time () < end,
        "epoch %u: %u captions, busy %d", epoch, captions_in_epoch (r->rc,
            epoch), fvlm_test_busy (caption));
    g_usleep (1000);
  }
}

/* @pattern: videotestsrc's; "smpte" is a still picture (its noise block moves the
 * 64x48 fingerprint by ~1, hence reuse-threshold=2), so the element reuses the
 * kept features/answers from frame to frame (reuse=true, the default) — and must not
 * across a seek. */
static void
run_seeks (gboolean live, const gchar * pattern)
{
  GstElement *pipeline, *caption;
  GstBus *bus;
  GstMessage *msg;
  Rec r = { 0, };
  guint n_seeks = G_N_ELEMENTS (seeks), last, n_reused = 0;
  Epoch *final;

  g_mutex_init (&r.lock);
  r.epochs = g_ptr_array_new_with_free_func ((GDestroyNotify) epoch_free);
  r.live = live;
  rec_epoch (&r, 0);

  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "300", TRUE);
  pipeline = rb_pipeline ("videotestsrc pattern=%s ! "
      "video/x-raw,format=I420,width=64,height=48,framerate=%d/1 ! "
      "fastvlmcaption name=c @MODEL@ max-new-tokens=3 mode=%s reuse-threshold=2 ! "
      "fakesink name=vs sync=%s c.text_src ! fakesink name=ts sync=false",
      pattern, FPS, live ? "live" : "auto", live ? "true" : "false");
  caption = rb_get (pipeline, "c");
  r.rc = rb_captions_new (caption);
  add_probe (caption, "sink", (GstPadProbeCallback) sink_probe, &r);
  add_probe (caption, "src", (GstPadProbeCallback) src_probe, &r);
  add_probe (caption, "text_src", (GstPadProbeCallback) text_probe, &r);
  bus = gst_element_get_bus (pipeline);

  rb_set_state_wait (pipeline, GST_STATE_PLAYING);
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
  for (guint i = 0; i < n_seeks; i++) {
    const SeekSpec *sp = &seeks[i];
    gboolean ok;

    /* some captions in this epoch, and the next generation running */
    wait_progress (&r, caption, i, 2);
    ok = gst_element_seek (pipeline, sp->rate, GST_FORMAT_TIME,
        GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE, GST_SEEK_TYPE_SET,
        sp->start, GST_CLOCK_TIME_IS_VALID (sp->stop) ? GST_SEEK_TYPE_SET :
        GST_SEEK_TYPE_NONE, sp->stop);
    fail_unless (ok, "seek %u refused", i);
    fail_unless_equals_int (gst_element_get_state (pipeline, NULL, NULL,
            60 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
    rb_assert_no_error (bus);
  }
  last = n_seeks;

  /* the last seek has a stop: the stream ends by itself, drained */
  msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS,
      "no EOS after the segment stop");
  gst_message_unref (msg);
  rb_set_state_wait (pipeline, GST_STATE_NULL);

  g_mutex_lock (&r.lock);
  fail_unless (r.violation == NULL, "%s", r.violation);
  fail_unless_equals_int (r.in_epoch, n_seeks);
  fail_unless_equals_int (r.text_epoch, n_seeks);
  fail_unless_equals_int (r.rc->epoch, n_seeks);
  fail_unless (r.metas > 0);

  /* captions: each describes a frame of its own epoch, inside that epoch's segment */
  for (guint i = 0; i < r.rc->all->len; i++) {
    const GstStructure *s = g_ptr_array_index (r.rc->all, i);
    guint k = rb_uint (s, "rb-epoch");
    guint64 fpts = rb_u64 (s, "frame-pts");
    Epoch *e = rec_epoch (&r, k);

    fail_unless (epoch_has_frame (e, fpts), "caption %" G_GUINT64_FORMAT
        " emitted in epoch %u describes %" GST_TIME_FORMAT ", not a frame of it",
        rb_u64 (s, "caption-id"), k, GST_TIME_ARGS (fpts));
    /* with reuse, the features (or answer) may come from an earlier frame: never
     * from one before the flush */
    fail_unless (epoch_has_frame (e, rb_u64 (s, "encoded-pts")), "caption %"
        G_GUINT64_FORMAT " (reuse %s) emitted in epoch %u describes the features of %"
        GST_TIME_FORMAT ", not a frame of it", rb_u64 (s, "caption-id"),
        gst_structure_get_string (s, "reuse"), k,
        GST_TIME_ARGS (rb_u64 (s, "encoded-pts")));
    if (g_strcmp0 (gst_structure_get_string (s, "reuse"), "none") != 0)
      n_reused++;
    fail_unless (e->have_segment);
    fail_unless (fpts >= e->segment.start && (!GST_CLOCK_TIME_IS_VALID
            (e->segment.stop) || fpts <= e->segment.stop),
        "caption for %" GST_TIME_FORMAT " outside segment %u", GST_TIME_ARGS (fpts),
        k);
  }

  /* after each seek: the video segment is the seek's, the text pad follows it */
  for (guint k = 1; k <= n_seeks; k++) {
    const SeekSpec *sp = &seeks[k - 1];
    Epoch *e = rec_epoch (&r, k);

    fail_unless (e->have_segment && e->segment.rate == sp->rate
        && e->segment.start == sp->start && e->segment.stop == sp->stop,
        "epoch %u: video segment not the seek's", k);
    fail_unless (captions_in_epoch (r.rc, k) > 0, "epoch %u: no caption", k);
    fail_unless (e->text_have_segment, "epoch %u: no text segment", k);
    fail_unless (e->text_segment.rate == sp->rate
        && e->text_segment.start == sp->start
        && e->text_segment.stop == sp->stop,
        "epoch %u: text segment rate %f start %" GST_TIME_FORMAT " stop %"
        GST_TIME_FORMAT ", seek rate %f start %" GST_TIME_FORMAT, k,
        e->text_segment.rate, GST_TIME_ARGS (e->text_segment.start),
        GST_TIME_ARGS (e->text_segment.stop), sp->rate,
        GST_TIME_ARGS (sp->start));
    fail_unless (e->text_pts->len > 0, "epoch %u: no text buffer", k);
    for (guint j = 0; j < e->text_pts->len; j++) {
      guint64 pts = g_array_index (e->text_pts, guint64, j);

      fail_unless (epoch_has_frame (e, pts), "epoch %u: text buffer at %"
          GST_TIME_FORMAT " is no frame of it", k, GST_TIME_ARGS (pts));
    }
  }

  /* the last segment ran to its stop: offline, every frame was captioned */
  final = rec_epoch (&r, last);
  fail_unless (r.text_eos, "no EOS on the text pad");
  if (!live) {
    fail_unless_equals_int (final->frames->len, 8);
    fail_unless_equals_int (captions_in_epoch (r.rc, last), 8);
    fail_unless_equals_int (final->text_pts->len, 8);
  }
  /* the still picture must really exercise the reuse this checks */
  if (g_str_equal (pattern, "smpte"))
    fail_unless (n_reused > 0, "no caption reused anything");
  g_print ("seek_%s %s: %u seeks, %u captions (%u reusing), %d metas checked; "
      "last segment %u frames, %u captions\n", live ? "live" : "offline", pattern,
      n_seeks, r.rc->all->len, n_reused, r.metas, final->frames->len,
      captions_in_epoch (r.rc, last));
  g_mutex_unlock (&r.lock);

  rb_captions_free (r.rc, caption);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  g_ptr_array_unref (r.epochs);
  g_free (r.violation);
  g_mutex_clear (&r.lock);
}

GST_START_TEST (test_seek_offline)
{
  run_seeks (FALSE, "ball");
  run_seeks (FALSE, "smpte");
}

GST_END_TEST;

GST_START_TEST (test_seek_live)
{
  run_seeks (TRUE, "ball");
  run_seeks (TRUE, "smpte");
}

GST_END_TEST;

static Suite *
robustness_seek_suite (void)
{
  Suite *s = suite_create ("fastvlmcaption-seek");
  TCase *tc = rb_tcase_new ("general");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_seek_offline);
  tcase_add_test (tc, test_seek_live);
  return s;
}

GST_CHECK_MAIN (robustness_seek);
