/*
 * test-caption.c — gst-check tests of fastvlmcaption's captions, outputs and threading,
 * with the tiny random model (tests/gst/make_model.py).
 *
 * What it proves, test by test:
 *   offline_matches_engine    offline captions equal the engine's own answer (its own
 *                             PIL-exact preprocessing) and `fastvlm run` on the same frames
 *   four_outputs              meta on the described frame, bus message, signal and text pad
 *                             carry the same result; every documented field is there
 *   text_no_control_chars     text pad = the caption without C0 controls but \n and \t,
 *                             valid UTF-8 (random sampling makes the model emit them)
 *   text_stream               text pad: stream-start/caps/segment first, PTS = frame PTS,
 *                             durations until the next caption, GAPs fill the holes, EOS last
 *   prompt_change_playing     new prompt/system prompt apply to the next frame, new id,
 *                             text equals the engine's answer to the new question
 *   ask_oneshot               the "ask" action: next frame answers it, then back
 *   eos_drain_live            EOS waits for the generation in flight, then text EOS follows
 *   flush_cancels             FLUSH aborts the generation in flight promptly (relative to
 *                             the model's time), drops its caption, the element works after
 *   latest_wins               live: frames arriving while the model runs replace each other;
 *                             only the newest is captioned; results ride the next frame
 *   qos_skips_inference_only  QoS marks frames late: no inference for them (counted, QoS
 *                             messages), every frame still goes through; THROTTLE too
 *   live_never_waits          with a slow model, pushes never wait for inference (each
 *                             push << model time) and the output keeps >= 95% of the rate
 *   offline_every_frame       offline: each sampled frame carries its own caption, in order
 *   interval_framerate0       sampling by running time works with framerate=0/1
 *   max_latency_drops         live: a request that cannot make max-latency is dropped
 *   truncated_length          max-new-tokens stops generation: truncated, stop "length"
 *   reuse_unchanged_scene     identical frames reuse the caption (no model run)
 *   overlay_draws             overlay=true changes the bottom of the frame only
 *   stats_messages            periodic fastvlm-stats messages and one at EOS
 *   share_model               two elements share one loaded model (mappings, RSS)
 *   downstream_consumers      textoverlay, webvttenc and matroskamux run to EOS
 * Slow-model cases use FASTVLM_GST_TEST_DELAY_MS (an abortable wait in the worker's run).
 * Thresholds are ratios to that delay or counts, never absolute times.
 */
#include <glib/gstdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fvlm-test-util.h"

#define W 64
#define H 64

/* ---- helpers ------------------------------------------------------------------------ */

/* A sink pad recording everything the text pad sends, in order. */
typedef struct
{
  GstPad *pad;
  GAsyncQueue *items;           /* GstMiniObject*: GstBuffer or GstEvent */
} TextProbe;

static GstFlowReturn
text_probe_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  TextProbe *p = g_object_get_data (G_OBJECT (pad), "probe");

  g_async_queue_push (p->items, buf);
  return GST_FLOW_OK;
}

static gboolean
text_probe_event (GstPad * pad, GstObject * parent, GstEvent * ev)
{
  TextProbe *p = g_object_get_data (G_OBJECT (pad), "probe");

  g_async_queue_push (p->items, ev);
  return TRUE;
}

static TextProbe *
text_probe_new (GstElement * e)
{
  TextProbe *p = g_new0 (TextProbe, 1);
  GstPad *src = gst_element_get_static_pad (e, "text_src");

  p->items = g_async_queue_new ();
  p->pad = gst_pad_new ("text_probe", GST_PAD_SINK);
  g_object_set_data (G_OBJECT (p->pad), "probe", p);
  gst_pad_set_chain_function (p->pad, text_probe_chain);
  gst_pad_set_event_function (p->pad, text_probe_event);
  gst_pad_set_active (p->pad, TRUE);
  fail_unless_equals_int (gst_pad_link (src, p->pad), GST_PAD_LINK_OK);
  gst_object_unref (src);
  return p;
}

static void
text_probe_free (TextProbe * p)
{
  GstMiniObject *o;

  gst_pad_set_active (p->pad, FALSE);
  gst_object_unref (p->pad);
  while ((o = g_async_queue_try_pop (p->items)))
    gst_mini_object_unref (o);
  g_async_queue_unref (p->items);
  g_free (p);
}

/* Next item, waiting up to a minute. */
static GstMiniObject *
text_probe_pop (TextProbe * p)
{
  GstMiniObject *o = g_async_queue_timeout_pop (p->items, 60 * G_USEC_PER_SEC);

  fail_unless (o != NULL, "nothing on the text pad");
  return o;
}

/* Next buffer, skipping events. */
static GstBuffer *
text_probe_pop_buffer (TextProbe * p)
{
  for (;;) {
    GstMiniObject *o = text_probe_pop (p);

    if (GST_IS_BUFFER (o))
      return GST_BUFFER (o);
    fail_if (GST_EVENT_TYPE (o) == GST_EVENT_EOS, "EOS before a caption");
    gst_mini_object_unref (o);
  }
}

static gchar *
buffer_text (GstBuffer * buf)
{
  GstMapInfo map;
  gchar *s;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  s = g_strndup ((const gchar *) map.data, map.size);
  gst_buffer_unmap (buf, &map);
  return s;
}

/* The reference for the text pad's words: @raw without C0 control characters other than
 * \n and \t (docs/limits.md, "What comes out"). */
static gchar *
strip_c0 (const gchar * raw, gboolean * had_controls)
{
  GString *want = g_string_new (NULL);

  *had_controls = FALSE;
  for (const gchar * r = raw; *r; r++) {
    if ((guchar) * r >= 0x20 || *r == '\n' || *r == '\t')
      g_string_append_c (want, *r);
    else
      *had_controls = TRUE;
  }
  return g_string_free (want, FALSE);
}

/* All caption metas on @buf, in order (structures owned by the buffer). */
static GPtrArray *
caption_metas (GstBuffer * buf)
{
  GPtrArray *all = g_ptr_array_new ();
  gpointer state = NULL;
  GstMeta *meta;

  while ((meta = gst_buffer_iterate_meta (buf, &state)))
    if (gst_meta_info_is_custom (meta->info)
        && gst_custom_meta_has_name ((GstCustomMeta *) meta, FVLM_META_NAME))
      g_ptr_array_add (all, gst_custom_meta_get_structure ((GstCustomMeta *)
              meta));
  return all;
}

static GstClockTime
field_u64 (const GstStructure * s, const gchar * name)
{
  guint64 v = 0;

  fail_unless (gst_structure_get_uint64 (s, name, &v), "no field %s", name);
  return v;
}

static gchar *
meta_text (GstBuffer * buf)
{
  const GstStructure *s = fvlm_test_meta (buf);

  fail_unless (s != NULL, "no caption meta");
  return g_strdup (gst_structure_get_string (s, "text"));
}

static GstCaps *
rgb_caps (void)
{
  return fvlm_test_caps (GST_VIDEO_FORMAT_RGB, W, H, 25, 1);
}

static GstCaps *
i420_caps (gint w, gint h)
{
  return fvlm_test_caps (GST_VIDEO_FORMAT_I420, w, h, 30, 1);
}

/* Elements that run a slow model: the worker waits @delay_ms in every run. */
static GstElement *
slow_element (gint delay_ms, const gchar * first_prop, ...)
{
  gchar *v = g_strdup_printf ("%d", delay_ms);
  GstElement *e;
  va_list args;

  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", v, TRUE);
  g_free (v);
  e = fvlm_test_element (TRUE, NULL);
  if (first_prop) {
    va_start (args, first_prop);
    g_object_set_valist (G_OBJECT (e), first_prop, args);
    va_end (args);
  }
  return e;
}

/* The harness starts the element: the worker reads the delay then; clear it after. */
static GstHarness *
start (GstElement * e, GstCaps * caps, gboolean live)
{
  GstHarness *h = fvlm_test_harness (e, caps, live);

  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
  return h;
}

static gint
count_messages (GstBus * bus, GstMessageType type, const gchar * name)
{
  GstMessage *msg;
  gint n = 0;

  while ((msg = gst_bus_pop_filtered (bus, type))) {
    if (name == NULL || gst_structure_has_name (gst_message_get_structure (msg),
            name))
      n++;
    gst_message_unref (msg);
  }
  return n;
}

/* ---- tests ------------------------------------------------------------------------- */

/* Writes @rgb as a PNG with GStreamer's pngenc, for `fastvlm run`. */
static void
write_png (const guint8 * rgb, gint w, gint h, const gchar * path)
{
  gchar *desc = g_strdup_printf ("appsrc name=a caps=\"video/x-raw,format=RGB,"
      "width=%d,height=%d,framerate=1/1\" ! pngenc ! filesink location=\"%s\"",
      w, h, path);
  GstElement *p = gst_parse_launch (desc, NULL);
  GstElement *a;
  GstMessage *msg;
  GstFlowReturn ret;
  GstBuffer *buf;

  fail_unless (p != NULL);
  a = gst_bin_get_by_name (GST_BIN (p), "a");
  gst_element_set_state (p, GST_STATE_PLAYING);
  buf = fvlm_test_rgb_frame (rgb, w, h, 0, GST_SECOND);
  g_signal_emit_by_name (a, "push-buffer", buf, &ret);
  gst_buffer_unref (buf);
  g_signal_emit_by_name (a, "end-of-stream", &ret);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p), 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS);
  gst_message_unref (msg);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (a);
  gst_object_unref (p);
  g_free (desc);
}

static gchar *
cli_caption (const gchar * png, gint n_tokens)
{
  const gchar *cli = g_getenv ("FASTVLM_CLI");
  gchar *n = g_strdup_printf ("%d", n_tokens);
  const gchar *argv[] = { cli, "run", "-m", fvlm_test_model (), "--mmproj",
    fvlm_test_mmproj (), "--image", png, "-n", n, "-t", "1", NULL
  };
  gchar *out = NULL, *err = NULL;
  gint status = 0;

  fail_unless (cli != NULL, "FASTVLM_CLI must name the fastvlm tool");
  fail_unless (g_spawn_sync (NULL, (gchar **) argv, NULL, G_SPAWN_DEFAULT, NULL,
          NULL, &out, &err, &status, NULL));
  fail_unless (g_spawn_check_wait_status (status, NULL), "fastvlm run: %s", err);
  g_free (err);
  g_free (n);
  /* the CLI ends the answer with a newline */
  g_strchomp (out);
  return out;
}

GST_START_TEST (test_offline_matches_engine)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 12,
      NULL);
  GstHarness *h = start (e, rgb_caps (), FALSE);
  gchar *dir = g_dir_make_tmp ("fastvlm-gst-XXXXXX", NULL);
  GHashTable *distinct = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      NULL);

  for (guint32 seed = 1; seed <= 4; seed++) {
    guint8 *rgb = fvlm_test_random_rgb (W, H, seed);
    GstBuffer *out = gst_harness_push_and_pull (h,
        fvlm_test_rgb_frame (rgb, W, H, seed * GST_SECOND, 40 * MS));
    gchar *text = meta_text (out);
    gchar *engine = fvlm_test_engine_caption (rgb, W, H, "Describe the image.",
        "You are a helpful assistant.", 12);
    gchar *png = g_strdup_printf ("%s/frame%u.png", dir, seed);
    gchar *cli;

    fail_unless_equals_string (text, engine);
    /* the command line tool, from a PNG of the same pixels */
    write_png (rgb, W, H, png);
    cli = cli_caption (png, 12);
    fail_unless_equals_string (text, cli);
    g_hash_table_add (distinct, g_strdup (text));

    g_unlink (png);
    g_free (png);
    g_free (cli);
    g_free (engine);
    g_free (text);
    gst_buffer_unref (out);
    g_free (rgb);
  }
  /* the comparison means something only if captions depend on the picture */
  fail_unless (g_hash_table_size (distinct) >= 2,
      "the test model answers the same whatever the frame");
  g_hash_table_unref (distinct);
  g_rmdir (dir);
  g_free (dir);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

typedef struct
{
  GAsyncQueue *results;         /* GstStructure* copies from the signal */
} SignalData;

static void
on_caption (GstElement * e, const GstStructure * s, SignalData * d)
{
  g_async_queue_push (d->results, gst_structure_copy (s));
}

static void
check_fields (const GstStructure * s)
{
  const gchar *strings[] = { "text", "prompt", "stop-reason" };
  const gchar *doubles[] = { "latency-ms", "queue-ms", "preprocess-ms",
    "vision-ms", "prefill-ms", "decode-ms", "tokens-per-second"
  };
  const gchar *u64s[] = { "caption-id", "frame-pts", "frame-duration",
    "frame-running-time", "started-running-time", "ended-running-time"
  };
  gboolean b;
  guint u;
  gint n;

  for (guint i = 0; i < G_N_ELEMENTS (strings); i++)
    fail_unless (gst_structure_get_string (s, strings[i]) != NULL, "%s",
        strings[i]);
  for (guint i = 0; i < G_N_ELEMENTS (doubles); i++) {
    gdouble d = -1;

    fail_unless (gst_structure_get_double (s, doubles[i], &d), "%s", doubles[i]);
    fail_unless (d >= 0, "%s = %f", doubles[i], d);
  }
  for (guint i = 0; i < G_N_ELEMENTS (u64s); i++)
    field_u64 (s, u64s[i]);
  fail_unless (gst_structure_get_uint (s, "prompt-id", &u));
  fail_unless (gst_structure_get_int (s, "n-tokens", &n) && n > 0);
  fail_unless (gst_structure_get_boolean (s, "truncated", &b));
  fail_unless (gst_structure_get_boolean (s, "reused", &b));
}

/* Same fields and values, whatever the structure's name. */
static void
check_same_fields (const GstStructure * a, const GstStructure * b)
{
  GstStructure *c = gst_structure_copy (b);

  gst_structure_set_name (c, gst_structure_get_name (a));
  fail_unless (gst_structure_is_equal (a, c), "%s\n!=\n%s",
      gst_structure_to_string (a), gst_structure_to_string (b));
  gst_structure_free (c);
}

GST_START_TEST (test_four_outputs)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 6,
      NULL);
  GstBus *bus = gst_bus_new ();
  SignalData sd = { g_async_queue_new () };
  TextProbe *tp;
  GstHarness *h;

  gst_element_set_bus (e, bus);
  g_signal_connect (e, "caption", G_CALLBACK (on_caption), &sd);
  h = start (e, i420_caps (80, 60), FALSE);
  tp = text_probe_new (e);

  for (gint i = 0; i < 3; i++) {
    GstClockTime pts = i * 40 * MS;
    GstBuffer *out = gst_harness_push_and_pull (h,
        fvlm_test_frame (GST_VIDEO_FORMAT_I420, 80, 60, i + 1, 0, pts, 40 * MS));
    const GstStructure *meta = fvlm_test_meta (out);
    GstMessage *msg = fvlm_test_pop_message (bus, GST_MESSAGE_ELEMENT,
        "fastvlm-caption", 60 * GST_SECOND);
    GstStructure *sig = g_async_queue_timeout_pop (sd.results,
        60 * G_USEC_PER_SEC);
    GstBuffer *text = text_probe_pop_buffer (tp);
    gchar *t = buffer_text (text);
    gboolean controls;
    gchar *words;

    /* (a) meta on the described frame */
    fail_unless (meta != NULL);
    fail_unless (gst_structure_has_name (meta, FVLM_META_NAME));
    check_fields (meta);
    fail_unless_equals_uint64 (field_u64 (meta, "frame-pts"), pts);
    fail_unless_equals_uint64 (field_u64 (meta, "caption-id"), i + 1);
    /* (c) the bus message and the signal carry the same */
    fail_unless (msg != NULL && sig != NULL);
    check_same_fields (meta, gst_message_get_structure (msg));
    check_same_fields (meta, sig);
    /* (b) the text pad: same words (but C0 control characters), stamped with the
     * frame's PTS */
    words = strip_c0 (gst_structure_get_string (meta, "text"), &controls);
    fail_unless_equals_string (t, words);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (text), pts);

    g_free (words);
    g_free (t);
    gst_buffer_unref (text);
    gst_structure_free (sig);
    gst_message_unref (msg);
    gst_buffer_unref (out);
  }

  text_probe_free (tp);
  gst_harness_teardown (h);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  g_async_queue_unref (sd.results);
  gst_object_unref (e);
}

GST_END_TEST;

/* The text pad's words are the caption's without C0 control characters other than \n
 * and \t (a subtitle must not carry them), and valid UTF-8. Random sampling at a high
 * temperature makes the tiny model emit control characters (it has byte tokens); frames
 * are pushed until three captions had some, so the test shows the path was taken. */
GST_START_TEST (test_text_no_control_chars)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 24,
      "temperature", 3.0f, "reuse", FALSE, NULL);
  GstHarness *h = start (e, i420_caps (48, 32), FALSE);
  TextProbe *tp = text_probe_new (e);
  gint with_controls = 0, frames = 0;

  for (; frames < 60 && with_controls < 3; frames++) {
    GstBuffer *out = gst_harness_push_and_pull (h,
        fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, frames + 100, 0,
            frames * 40 * MS, 40 * MS));
    const GstStructure *meta = fvlm_test_meta (out);
    const gchar *raw = gst_structure_get_string (meta, "text");
    GstBuffer *text = text_probe_pop_buffer (tp);
    gchar *t = buffer_text (text);
    gboolean controls;
    gchar *want = strip_c0 (raw, &controls);

    with_controls += controls;
    fail_unless (g_utf8_validate (raw, -1, NULL), "caption %d is not UTF-8",
        frames);
    fail_unless (g_utf8_validate (t, -1, NULL), "text %d is not UTF-8", frames);
    fail_unless_equals_string (t, want);

    g_free (want);
    g_free (t);
    gst_buffer_unref (text);
    gst_buffer_unref (out);
  }
  g_print ("text_no_control_chars: %d frames, %d captions had C0 characters\n",
      frames, with_controls);
  fail_unless (with_controls >= 3, "only %d of %d captions had control "
      "characters: the test proves nothing", with_controls, frames);

  text_probe_free (tp);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_text_stream)
{
  /* frames every 40 ms from 200 ms on (the segment starts at 0), a caption every
   * >= 100 ms: samples at 200, 320, 440, 560 */
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 4,
      "interval", (guint64) (100 * MS), NULL);
  GstHarness *h = start (e, i420_caps (48, 32), FALSE);
  TextProbe *tp = text_probe_new (e);
  GstClockTime covered = 0, video_end = 0;
  gint n_buffers = 0, n_gaps = 0;
  gboolean seen_start = FALSE, seen_caps = FALSE, seen_segment = FALSE;
  const GstClockTime expect_pts[] = { 200 * MS, 320 * MS, 440 * MS, 560 * MS };

  for (gint i = 0; i < 11; i++) {
    gst_buffer_unref (gst_harness_push_and_pull (h,
            fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, i, 0,
                200 * MS + i * 40 * MS, 40 * MS)));
    video_end = 200 * MS + (i + 1) * 40 * MS;
  }
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  for (;;) {
    GstMiniObject *o = text_probe_pop (tp);

    if (GST_IS_BUFFER (o)) {
      GstBuffer *b = GST_BUFFER (o);

      fail_unless (seen_segment, "data before the segment");
      fail_unless (n_buffers < (gint) G_N_ELEMENTS (expect_pts));
      fail_unless_equals_uint64 (GST_BUFFER_PTS (b), expect_pts[n_buffers]);
      /* no hole, no overlap */
      fail_unless_equals_uint64 (GST_BUFFER_PTS (b), covered);
      fail_unless (GST_BUFFER_DURATION_IS_VALID (b));
      /* lasts at least the sampling interval */
      fail_unless (GST_BUFFER_DURATION (b) >= 100 * MS);
      covered = GST_BUFFER_PTS (b) + GST_BUFFER_DURATION (b);
      n_buffers++;
    } else {
      GstEvent *ev = GST_EVENT (o);

      switch (GST_EVENT_TYPE (ev)) {
        case GST_EVENT_STREAM_START:{
          GstStreamFlags flags;

          fail_if (seen_caps);
          gst_event_parse_stream_flags (ev, &flags);
          fail_unless (flags & GST_STREAM_FLAG_SPARSE);
          seen_start = TRUE;
          break;
        }
        case GST_EVENT_CAPS:{
          GstCaps *caps;

          fail_unless (seen_start);
          gst_event_parse_caps (ev, &caps);
          fail_unless (gst_caps_is_equal (caps,
                  gst_caps_from_string ("text/x-raw, format=(string)utf8")));
          seen_caps = TRUE;
          break;
        }
        case GST_EVENT_SEGMENT:
          fail_unless (seen_caps);
          fail_if (seen_segment, "the segment was sent twice");
          seen_segment = TRUE;
          break;
        case GST_EVENT_GAP:{
          GstClockTime ts, dur;

          fail_unless (seen_segment);
          gst_event_parse_gap (ev, &ts, &dur);
          fail_unless_equals_uint64 (ts, covered);
          covered = ts + dur;
          n_gaps++;
          break;
        }
        case GST_EVENT_EOS:
          /* the text stream covers the whole video, then ends; the last caption may
           * outlast the video by less than the interval it was given */
          fail_unless (covered >= video_end && covered < video_end + 100 * MS,
              "covered up to %" GST_TIME_FORMAT, GST_TIME_ARGS (covered));
          fail_unless_equals_int (n_buffers, 4);
          /* at least the hole before the first caption (0..200 ms) was a GAP; the
           * others depend on how far the video got when each caption was pushed */
          fail_unless (n_gaps >= 1);
          gst_event_unref (ev);
          goto done;
        default:
          break;
      }
    }
    gst_mini_object_unref (o);
  }
done:
  text_probe_free (tp);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_prompt_change_playing)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 10,
      NULL);
  GstHarness *h = start (e, rgb_caps (), FALSE);
  guint8 *rgb = fvlm_test_random_rgb (W, H, 21);
  const gchar *questions[][2] = {
    {"Describe the image.", "You are a helpful assistant."},
    {"What colour is the sky?", "You are a helpful assistant."},
    {"What colour is the sky?", "Answer in one word."},
  };
  guint last_id = 0;

  for (guint q = 0; q < G_N_ELEMENTS (questions); q++) {
    GstBuffer *out;
    const GstStructure *meta;
    gchar *engine;
    guint id;

    g_object_set (e, "prompt", questions[q][0], "system-prompt",
        questions[q][1], NULL);
    out = gst_harness_push_and_pull (h, fvlm_test_rgb_frame (rgb, W, H,
            q * GST_SECOND, 40 * MS));
    meta = fvlm_test_meta (out);
    fail_unless (meta != NULL);
    fail_unless_equals_string (gst_structure_get_string (meta, "prompt"),
        questions[q][0]);
    fail_unless (gst_structure_get_uint (meta, "prompt-id", &id));
    if (q > 0)
      fail_unless (id > last_id, "prompt-id did not change");
    last_id = id;
    engine = fvlm_test_engine_caption (rgb, W, H, questions[q][0],
        questions[q][1], 10);
    fail_unless_equals_string (gst_structure_get_string (meta, "text"), engine);
    g_free (engine);
    gst_buffer_unref (out);
  }
  g_free (rgb);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_ask_oneshot)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 6,
      "interval", (guint64) (10 * GST_SECOND), NULL);
  GstHarness *h = start (e, rgb_caps (), FALSE);
  GstBuffer *out;
  guint id = 0, got;

  /* first frame: the prompt; the next is within the interval, so not sampled */
  out = gst_harness_push_and_pull (h, fvlm_test_frame (GST_VIDEO_FORMAT_RGB, W,
          H, 1, 0, 0, 40 * MS));
  fail_unless_equals_string (gst_structure_get_string (fvlm_test_meta (out),
          "prompt"), "Describe the image.");
  gst_buffer_unref (out);
  out = gst_harness_push_and_pull (h, fvlm_test_frame (GST_VIDEO_FORMAT_RGB, W,
          H, 2, 0, 40 * MS, 40 * MS));
  fail_unless (fvlm_test_meta (out) == NULL);
  gst_buffer_unref (out);

  /* a one-shot question takes the very next frame, interval or not */
  g_signal_emit_by_name (e, "ask", "Is anyone there?", &id);
  fail_unless (id > 1);
  out = gst_harness_push_and_pull (h, fvlm_test_frame (GST_VIDEO_FORMAT_RGB, W,
          H, 3, 0, 80 * MS, 40 * MS));
  fail_unless (fvlm_test_meta (out) != NULL);
  fail_unless_equals_string (gst_structure_get_string (fvlm_test_meta (out),
          "prompt"), "Is anyone there?");
  fail_unless (gst_structure_get_uint (fvlm_test_meta (out), "prompt-id", &got));
  fail_unless_equals_int (got, id);
  gst_buffer_unref (out);

  /* answered: back to the prompt at the next interval */
  out = gst_harness_push_and_pull (h, fvlm_test_frame (GST_VIDEO_FORMAT_RGB, W,
          H, 4, 0, 20 * GST_SECOND, 40 * MS));
  fail_unless_equals_string (gst_structure_get_string (fvlm_test_meta (out),
          "prompt"), "Describe the image.");
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_eos_drain_live)
{
  GstElement *e = slow_element (400, "mode", 1, "max-new-tokens", 4, NULL);
  GstBus *bus = gst_bus_new ();
  GstHarness *h;
  TextProbe *tp;
  GstMessage *msg;
  gboolean saw_caption = FALSE;

  gst_element_set_bus (e, bus);
  h = start (e, i420_caps (48, 32), TRUE);
  tp = text_probe_new (e);
  gst_buffer_unref (gst_harness_push_and_pull (h,
          fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, 1, 0, 0, 40 * MS)));
  fvlm_test_wait_busy (e);
  /* EOS arrives while the model runs: it is held until the caption is out */
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_uint64 (fvlm_test_stat (e, "frames-captioned"), 1);
  msg = fvlm_test_pop_message (bus, GST_MESSAGE_ELEMENT, "fastvlm-caption", 0);
  fail_unless (msg != NULL, "EOS went through before the caption");
  gst_message_unref (msg);

  /* the text pad: the caption, then EOS */
  for (;;) {
    GstMiniObject *o = text_probe_pop (tp);

    if (GST_IS_BUFFER (o))
      saw_caption = TRUE;
    else if (GST_EVENT_TYPE (o) == GST_EVENT_EOS) {
      gst_mini_object_unref (o);
      break;
    }
    gst_mini_object_unref (o);
  }
  fail_unless (saw_caption);
  text_probe_free (tp);
  gst_harness_teardown (h);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_flush_cancels)
{
  const gint delay_ms = 3000;
  GstElement *e = slow_element (delay_ms, "mode", 1, "max-new-tokens", 4, NULL);
  GstBus *bus = gst_bus_new ();
  GstHarness *h;
  TextProbe *tp;
  GstSegment segment;
  gint64 t0, flush_us;
  GstMiniObject *o;
  gboolean saw_flush_stop = FALSE, saw_segment_after = FALSE;

  gst_element_set_bus (e, bus);
  h = start (e, i420_caps (48, 32), TRUE);
  tp = text_probe_new (e);
  gst_buffer_unref (gst_harness_push_and_pull (h,
          fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, 1, 0, 0, 40 * MS)));
  fvlm_test_wait_busy (e);

  t0 = g_get_monotonic_time ();
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  flush_us = g_get_monotonic_time () - t0;
  /* FLUSH_STOP waits for the aborted run: it must not have waited for the model */
  fail_unless (flush_us < delay_ms * 1000 / 4,
      "flush took %" G_GINT64_FORMAT " us with a %d ms model", flush_us, delay_ms);
  fail_if (fvlm_test_busy (e));
  fail_unless_equals_uint64 (fvlm_test_stat (e, "frames-captioned"), 0);
  fail_unless_equals_int (count_messages (bus, GST_MESSAGE_ELEMENT,
          "fastvlm-caption"), 0);

  /* it works after the flush: a new segment, a frame, a caption */
  gst_segment_init (&segment, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  gst_buffer_unref (gst_harness_push_and_pull (h,
          fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, 2, 0, 0, 40 * MS)));
  fvlm_test_wait_stat (e, "frames-captioned", 1);

  /* text pad: flush-start, flush-stop, then a segment again before the caption */
  while ((o = text_probe_pop (tp))) {
    if (GST_IS_EVENT (o) && GST_EVENT_TYPE (o) == GST_EVENT_FLUSH_STOP)
      saw_flush_stop = TRUE;
    else if (GST_IS_EVENT (o) && GST_EVENT_TYPE (o) == GST_EVENT_SEGMENT
        && saw_flush_stop)
      saw_segment_after = TRUE;
    else if (GST_IS_BUFFER (o)) {
      fail_unless (saw_flush_stop && saw_segment_after);
      gst_mini_object_unref (o);
      break;
    }
    gst_mini_object_unref (o);
  }
  text_probe_free (tp);
  gst_harness_teardown (h);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_latest_wins)
{
  GstElement *e = slow_element (1500, "mode", 1, "max-new-tokens", 4, NULL);
  GstHarness *h = start (e, i420_caps (48, 32), TRUE);
  GstBuffer *out;
  GPtrArray *metas;

  /* A starts the model; B, C, D arrive while it runs */
  gst_buffer_unref (gst_harness_push_and_pull (h,
          fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, 1, 0, 0, 40 * MS)));
  fvlm_test_wait_busy (e);
  for (gint i = 1; i <= 3; i++) {
    out = gst_harness_push_and_pull (h, fvlm_test_frame (GST_VIDEO_FORMAT_I420,
            48, 32, i + 1, 0, i * 40 * MS, 40 * MS));
    /* nothing is ready yet: no meta on these */
    fail_unless (fvlm_test_meta (out) == NULL);
    gst_buffer_unref (out);
  }
  fvlm_test_wait_stat (e, "frames-captioned", 2);
  /* B and C were replaced in the mailbox by newer frames */
  fail_unless_equals_uint64 (fvlm_test_stat (e, "skipped-busy"), 2);

  /* live: results ride on the next outgoing frame, in order: A then D */
  out = gst_harness_push_and_pull (h, fvlm_test_frame (GST_VIDEO_FORMAT_I420,
          48, 32, 9, 0, 10 * GST_SECOND, 40 * MS));
  metas = caption_metas (out);
  fail_unless_equals_int (metas->len, 2);
  fail_unless_equals_uint64 (field_u64 (g_ptr_array_index (metas, 0),
          "frame-pts"), 0);
  fail_unless_equals_uint64 (field_u64 (g_ptr_array_index (metas, 1),
          "frame-pts"), 120 * MS);
  g_ptr_array_unref (metas);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_qos_skips_inference_only)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 1, "max-new-tokens", 2,
      NULL);
  GstBus *bus = gst_bus_new ();
  GstHarness *h;
  gint n_late = 0, n_qos_msgs = 0;
  GstMessage *msg;

  gst_element_set_bus (e, bus);
  h = start (e, i420_caps (48, 32), TRUE);
  gst_buffer_unref (gst_harness_push_and_pull (h,
          fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, 1, 0, 0, 40 * MS)));
  fvlm_test_wait_stat (e, "frames-captioned", 1);

  /* downstream: the frame at 40 ms was 500 ms late -> frames up to 540 ms are late */
  fail_unless (gst_harness_push_upstream_event (h,
          gst_event_new_qos (GST_QOS_TYPE_UNDERFLOW, 0.5, 500 * MS, 40 * MS)));
  for (gint i = 1; i <= 20; i++) {
    GstClockTime pts = i * 40 * MS;

    /* every frame still goes through */
    gst_buffer_unref (gst_harness_push_and_pull (h,
            fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, i, 0, pts,
                40 * MS)));
    if (pts <= 540 * MS)
      n_late++;
    /* let the model finish so "busy" never explains a skip */
    fvlm_test_wait_stat (e, "frames-captioned",
        1 + (i - n_late > 0 ? i - n_late : 0));
  }
  fail_unless_equals_uint64 (fvlm_test_stat (e, "skipped-qos"), n_late);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "frames-seen"), 21);
  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_QOS))) {
    GstFormat format;
    guint64 processed, dropped;

    gst_message_parse_qos_stats (msg, &format, &processed, &dropped);
    fail_unless_equals_int (format, GST_FORMAT_BUFFERS);
    n_qos_msgs++;
    fail_unless_equals_uint64 (dropped, n_qos_msgs);
    gst_message_unref (msg);
  }
  fail_unless_equals_int (n_qos_msgs, n_late);

  /* THROTTLE: at most one sample per 200 ms from now on */
  fail_unless (gst_harness_push_upstream_event (h,
          gst_event_new_qos (GST_QOS_TYPE_THROTTLE, 1.0, 200 * MS, 800 * MS)));
  for (gint i = 21; i <= 30; i++) {
    gst_buffer_unref (gst_harness_push_and_pull (h,
            fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, i, 0,
                i * 40 * MS, 40 * MS)));
    g_usleep (20000);
  }
  /* 10 frames over 400 ms at >= 200 ms apart: 2 or 3 sampled, the rest by interval */
  fail_unless (fvlm_test_stat (e, "skipped-interval") >= 7);

  gst_harness_teardown (h);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_END_TEST;

static gint
cmp_i64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

/* Pushes @n frames paced at @period_us of wall time; returns push durations (us) and the
 * wall time from the first push to the last output in *elapsed_us. */
static gint64 *
paced_pushes (GstHarness * h, gint n, gint64 period_us, gint64 * elapsed_us)
{
  gint64 *durations = g_new0 (gint64, n);
  gint64 start_us = g_get_monotonic_time ();

  for (gint i = 0; i < n; i++) {
    gint64 due = start_us + i * period_us, t0;
    GstBuffer *out;

    while (g_get_monotonic_time () < due)
      g_usleep (MAX (1, (due - g_get_monotonic_time ())));
    t0 = g_get_monotonic_time ();
    fail_unless_equals_int (gst_harness_push (h,
            fvlm_test_frame (GST_VIDEO_FORMAT_I420, 160, 120, i, 0,
                i * period_us * 1000, period_us * 1000)), GST_FLOW_OK);
    durations[i] = g_get_monotonic_time () - t0;
    out = gst_harness_pull (h);
    fail_unless (out != NULL);
    gst_buffer_unref (out);
  }
  *elapsed_us = g_get_monotonic_time () - start_us;
  return durations;
}

GST_START_TEST (test_live_never_waits)
{
  const gint delay_ms = 800, n = 60;
  const gint64 period_us = 33333;
  GstElement *base_e, *e;
  GstHarness *h;
  gint64 *base, *slow, base_elapsed, slow_elapsed;
  gdouble rate_ratio;

  /* baseline: the same element and frames, no model */
  base_e = fvlm_test_element (FALSE, "mode", 1, NULL);
  h = start (base_e, i420_caps (160, 120), TRUE);
  base = paced_pushes (h, n, period_us, &base_elapsed);
  gst_harness_teardown (h);
  gst_object_unref (base_e);

  /* with a model that takes delay_ms per caption */
  e = slow_element (delay_ms, "mode", 1, "max-new-tokens", 4, NULL);
  h = start (e, i420_caps (160, 120), TRUE);
  slow = paced_pushes (h, n, period_us, &slow_elapsed);
  /* the model really ran during the pushes */
  fail_unless (fvlm_test_stat (e, "frames-captioned") >= 1);

  qsort (base, n, sizeof (gint64), (GCompareFunc) cmp_i64);
  qsort (slow, n, sizeof (gint64), (GCompareFunc) cmp_i64);
  rate_ratio = (gdouble) (n * period_us) / slow_elapsed;
  g_print ("\nlive push times (us): baseline median %" G_GINT64_FORMAT " max %"
      G_GINT64_FORMAT "; with a %d ms model median %" G_GINT64_FORMAT " max %"
      G_GINT64_FORMAT "; output rate %.1f%% of input\n", base[n / 2],
      base[n - 1], delay_ms, slow[n / 2], slow[n - 1], 100.0 * rate_ratio);

  /* no push waited for the model: the slowest is far below one model run, and above
   * the baseline only by the frame copy (a fraction of the model time) */
  fail_unless (slow[n - 1] < delay_ms * 1000 / 4, "a push took %" G_GINT64_FORMAT
      " us", slow[n - 1]);
  fail_unless (slow[n - 1] < base[n - 1] + delay_ms * 1000 / 4);
  /* the video kept >= 95% of its rate */
  fail_unless (rate_ratio >= 0.95, "rate %.3f", rate_ratio);

  g_free (base);
  g_free (slow);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_offline_every_frame)
{
  GstElement *e = slow_element (100, "mode", 2, "max-new-tokens", 3, NULL);
  GstBus *bus = gst_bus_new ();
  GstHarness *h;
  guint64 last_id = 0;

  gst_element_set_bus (e, bus);
  h = start (e, i420_caps (48, 32), FALSE);
  for (gint i = 0; i < 5; i++) {
    GstClockTime pts = i * 40 * MS;
    GstBuffer *out = gst_harness_push_and_pull (h,
        fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, i, 0, pts, 40 * MS));
    GPtrArray *metas = caption_metas (out);
    GstMessage *msg;

    /* exactly its own caption, even with a slow model */
    fail_unless_equals_int (metas->len, 1);
    fail_unless_equals_uint64 (field_u64 (g_ptr_array_index (metas, 0),
            "frame-pts"), pts);
    g_ptr_array_unref (metas);
    gst_buffer_unref (out);

    msg = fvlm_test_pop_message (bus, GST_MESSAGE_ELEMENT, "fastvlm-caption",
        0);
    fail_unless (msg != NULL);
    fail_unless (field_u64 (gst_message_get_structure (msg), "caption-id") >
        last_id);
    last_id = field_u64 (gst_message_get_structure (msg), "caption-id");
    gst_message_unref (msg);
  }
  fail_unless_equals_uint64 (fvlm_test_stat (e, "frames-captioned"), 5);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "skipped-busy"), 0);
  gst_harness_teardown (h);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_interval_framerate0)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 2,
      "interval", (guint64) GST_SECOND, NULL);
  GstHarness *h = start (e, fvlm_test_caps (GST_VIDEO_FORMAT_I420, 48, 32, 0,
          1), FALSE);
  GArray *sampled = g_array_new (FALSE, FALSE, sizeof (GstClockTime));

  /* a still-image stream: framerate 0/1, frames 250 ms apart, no durations */
  for (gint i = 0; i < 10; i++) {
    GstBuffer *out = gst_harness_push_and_pull (h,
        fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, i, 0,
            i * 250 * MS, GST_CLOCK_TIME_NONE));

    if (fvlm_test_meta (out)) {
      GstClockTime pts = field_u64 (fvlm_test_meta (out), "frame-pts");

      g_array_append_val (sampled, pts);
    }
    gst_buffer_unref (out);
  }
  fail_unless_equals_int (sampled->len, 3);
  fail_unless_equals_uint64 (g_array_index (sampled, GstClockTime, 0), 0);
  fail_unless_equals_uint64 (g_array_index (sampled, GstClockTime, 1),
      GST_SECOND);
  fail_unless_equals_uint64 (g_array_index (sampled, GstClockTime, 2),
      2 * GST_SECOND);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "skipped-interval"), 7);
  g_array_unref (sampled);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_max_latency_drops)
{
  GstElement *e = slow_element (5000, "mode", 1, "max-new-tokens", 4,
      "max-latency", (guint64) (300 * MS), NULL);
  GstHarness *h = start (e, i420_caps (48, 32), TRUE);
  gint64 t0 = g_get_monotonic_time ();

  gst_buffer_unref (gst_harness_push_and_pull (h,
          fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, 1, 0, 0, 40 * MS)));
  fvlm_test_wait_stat (e, "skipped-late", 1);
  /* given up at the budget, long before the model would have answered */
  fail_unless (g_get_monotonic_time () - t0 < 5000 * 1000 / 2);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "frames-captioned"), 0);
  /* the declared latency includes the budget */
  fail_unless (gst_harness_query_latency (h) >= 300 * MS);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_truncated_length)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 3,
      NULL);
  GstHarness *h = start (e, rgb_caps (), FALSE);
  GstBuffer *out = gst_harness_push_and_pull (h,
      fvlm_test_frame (GST_VIDEO_FORMAT_RGB, W, H, 5, 0, 0, 40 * MS));
  const GstStructure *m = fvlm_test_meta (out);
  gboolean truncated = FALSE;
  gint n = 0;

  fail_unless (m != NULL);
  fail_unless (gst_structure_get_int (m, "n-tokens", &n));
  fail_unless (gst_structure_get_boolean (m, "truncated", &truncated));
  /* either the model ended within 3 tokens, or it was cut at 3 */
  if (n == 3) {
    fail_unless (truncated);
    fail_unless_equals_string (gst_structure_get_string (m, "stop-reason"),
        "length");
  } else {
    fail_unless (n < 3 && !truncated);
  }
  fail_unless_equals_uint64 (fvlm_test_stat (e, "truncated"), truncated ? 1 : 0);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_reuse_unchanged_scene)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 6,
      "reuse-threshold", 2.0, NULL);
  GstHarness *h = start (e, rgb_caps (), FALSE);
  guint8 *a = fvlm_test_random_rgb (W, H, 31), *b = fvlm_test_random_rgb (W, H,
      32);
  GstBuffer *o1, *o2, *o3;
  gboolean r1, r2, r3;

  o1 = gst_harness_push_and_pull (h, fvlm_test_rgb_frame (a, W, H, 0, 40 * MS));
  o2 = gst_harness_push_and_pull (h, fvlm_test_rgb_frame (a, W, H, 40 * MS,
          40 * MS));
  o3 = gst_harness_push_and_pull (h, fvlm_test_rgb_frame (b, W, H, 80 * MS,
          40 * MS));
  fail_unless (gst_structure_get_boolean (fvlm_test_meta (o1), "reused", &r1));
  fail_unless (gst_structure_get_boolean (fvlm_test_meta (o2), "reused", &r2));
  fail_unless (gst_structure_get_boolean (fvlm_test_meta (o3), "reused", &r3));
  fail_unless (!r1 && r2 && !r3);
  fail_unless_equals_string (gst_structure_get_string (fvlm_test_meta (o1),
          "text"), gst_structure_get_string (fvlm_test_meta (o2), "text"));
  fail_unless_equals_string (gst_structure_get_string (fvlm_test_meta (o2),
          "stop-reason"), "reused");
  fail_unless_equals_uint64 (fvlm_test_stat (e, "reused"), 1);
  /* the model ran twice: only those enter the latency window */
  {
    GstStructure *s = fvlm_test_stats (e);
    guint window = 0;

    fail_unless (gst_structure_get_uint (s, "window", &window));
    fail_unless_equals_int (window, 2);
    gst_structure_free (s);
  }
  gst_buffer_unref (o1);
  gst_buffer_unref (o2);
  gst_buffer_unref (o3);
  g_free (a);
  g_free (b);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_overlay_draws)
{
  const GstVideoFormat fmts[] = { GST_VIDEO_FORMAT_I420, GST_VIDEO_FORMAT_NV12,
    GST_VIDEO_FORMAT_RGB, GST_VIDEO_FORMAT_BGRA, GST_VIDEO_FORMAT_YUY2,
    GST_VIDEO_FORMAT_GRAY8
  };

  for (guint f = 0; f < G_N_ELEMENTS (fmts); f++) {
    GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 8,
        "overlay", TRUE, NULL);
    GstHarness *h = start (e, fvlm_test_caps (fmts[f], 320, 240, 30, 1), FALSE);
    GstBuffer *in = fvlm_test_frame (fmts[f], 320, 240, 3, 0, 0, 40 * MS);
    GstBuffer *copy = gst_buffer_copy_deep (in);
    GstBuffer *out = gst_harness_push_and_pull (h, in);
    GstVideoInfo info;
    GstVideoFrame a, b;
    gint changed_top = 0, changed_bottom = 0;
    gint stride, row_bytes;

    fail_unless (fvlm_test_meta (out) != NULL);
    gst_video_info_set_format (&info, fmts[f], 320, 240);
    fail_unless (gst_video_frame_map (&a, &info, out, GST_MAP_READ));
    fail_unless (gst_video_frame_map (&b, &info, copy, GST_MAP_READ));
    stride = GST_VIDEO_FRAME_PLANE_STRIDE (&a, 0);
    row_bytes = 320 * GST_VIDEO_FRAME_COMP_PSTRIDE (&a, 0);
    for (gint y = 0; y < 240; y++) {
      gint diff = memcmp ((guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&a, 0) +
          y * stride, (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&b, 0) + y * stride,
          row_bytes) != 0;

      if (y < 120)
        changed_top += diff;
      else
        changed_bottom += diff;
    }
    gst_video_frame_unmap (&a);
    gst_video_frame_unmap (&b);
    /* the caption box sits at the bottom: rows there change, the top half does not */
    fail_unless (changed_bottom >= 10, "%s: %d bottom rows changed",
        gst_video_format_to_string (fmts[f]), changed_bottom);
    fail_unless_equals_int (changed_top, 0);
    gst_buffer_unref (out);
    gst_buffer_unref (copy);
    gst_harness_teardown (h);
    gst_object_unref (e);
  }
}

GST_END_TEST;

GST_START_TEST (test_stats_messages)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 2,
      "interval", (guint64) (200 * MS), "stats-interval", (guint64) (100 * MS),
      NULL);
  GstBus *bus = gst_bus_new ();
  GstHarness *h;
  GstMessage *msg;
  gint n_stats = 0;

  gst_element_set_bus (e, bus);
  h = start (e, i420_caps (48, 32), FALSE);
  /* 25 frames, 1 s of running time */
  for (gint i = 0; i < 25; i++)
    gst_buffer_unref (gst_harness_push_and_pull (h,
            fvlm_test_frame (GST_VIDEO_FORMAT_I420, 48, 32, i, 0,
                i * 40 * MS, 40 * MS)));
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT))) {
    const GstStructure *s = gst_message_get_structure (msg);

    if (gst_structure_has_name (s, "fastvlm-stats")) {
      guint64 seen = 0;
      gdouble p50 = -1;

      fail_unless (gst_structure_get_uint64 (s, "frames-seen", &seen));
      fail_unless (gst_structure_get_double (s, "latency-p50-ms", &p50));
      fail_unless (p50 >= 0);
      n_stats++;
    }
    gst_message_unref (msg);
  }
  /* every 100 ms of 1 s (9 or 10) + one at EOS */
  fail_unless (n_stats >= 9, "%d stats messages", n_stats);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "frames-seen"), 25);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "frames-captioned"), 5);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "skipped-interval"), 20);
  gst_harness_teardown (h);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_END_TEST;

/* Lines of /proc/self/maps that map @path, and the resident set in kB. */
static gint
count_mappings (const gchar * path)
{
  gchar *maps = NULL, *real = realpath (path, NULL);
  gint n = 0;

  fail_unless (real != NULL);
  fail_unless (g_file_get_contents ("/proc/self/maps", &maps, NULL, NULL));
  for (gchar * line = strtok (maps, "\n"); line; line = strtok (NULL, "\n"))
    if (g_str_has_suffix (line, real))
      n++;
  g_free (maps);
  free (real);
  return n;
}

static gint64
rss_kb (void)
{
  gchar *status = NULL, *p;
  gint64 kb = -1;

  fail_unless (g_file_get_contents ("/proc/self/status", &status, NULL, NULL));
  p = strstr (status, "VmRSS:");
  if (p)
    kb = g_ascii_strtoll (p + 6, NULL, 10);
  g_free (status);
  return kb;
}

static GstHarness *
run_one_caption (GstElement * e)
{
  GstHarness *h = start (e, rgb_caps (), FALSE);

  gst_buffer_unref (gst_harness_push_and_pull (h,
          fvlm_test_frame (GST_VIDEO_FORMAT_RGB, W, H, 1, 0, 0, 40 * MS)));
  return h;
}

GST_START_TEST (test_share_model)
{
  gchar *dir = g_dir_make_tmp ("fastvlm-gst-XXXXXX", NULL);
  gchar *link_model = g_build_filename (dir, "link.gguf", NULL);
  gchar *link_mmproj = g_build_filename (dir, "link-mmproj.gguf", NULL);
  gchar *copy_model = g_build_filename (dir, "copy.gguf", NULL);
  gchar *copy_mmproj = g_build_filename (dir, "copy-mmproj.gguf", NULL);
  gchar *contents;
  gsize len;
  GstElement *e1, *e2, *e3;
  GstHarness *h1, *h2, *h3;
  gint n0, n1, n2;
  gint64 r0, r1, r2, r3;

  fail_unless (symlink (fvlm_test_model (), link_model) == 0);
  fail_unless (symlink (fvlm_test_mmproj (), link_mmproj) == 0);
  fail_unless (g_file_get_contents (fvlm_test_model (), &contents, &len, NULL));
  fail_unless (g_file_set_contents (copy_model, contents, len, NULL));
  g_free (contents);
  fail_unless (g_file_get_contents (fvlm_test_mmproj (), &contents, &len, NULL));
  fail_unless (g_file_set_contents (copy_mmproj, contents, len, NULL));
  g_free (contents);

  n0 = count_mappings (fvlm_test_mmproj ());
  r0 = rss_kb ();
  e1 = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 2, NULL);
  h1 = run_one_caption (e1);
  n1 = count_mappings (fvlm_test_mmproj ());
  r1 = rss_kb ();

  /* the same files through symlinks: the same loaded model */
  e2 = fvlm_test_element (FALSE, "model", link_model, "mmproj", link_mmproj,
      "threads", 1, "mode", 2, "max-new-tokens", 2, NULL);
  h2 = run_one_caption (e2);
  n2 = count_mappings (fvlm_test_mmproj ());
  r2 = rss_kb ();

  /* a copy of the files: a second model (shows the measurement can tell) */
  e3 = fvlm_test_element (FALSE, "model", copy_model, "mmproj", copy_mmproj,
      "threads", 1, "mode", 2, "max-new-tokens", 2, NULL);
  h3 = run_one_caption (e3);
  r3 = rss_kb ();

  g_print ("\nmodel sharing: mmproj mappings %d -> %d -> %d; RSS +%" G_GINT64_FORMAT
      " kB (first), +%" G_GINT64_FORMAT " kB (second, shared), +%" G_GINT64_FORMAT
      " kB (third, separate copy)\n", n0, n1, n2, r1 - r0, r2 - r1, r3 - r2);
  fail_unless (n1 > n0, "the mmproj is not mapped (read into memory?)");
  fail_unless_equals_int (n2, n1);
  fail_unless (count_mappings (copy_mmproj) > 0);
  /* a separate model costs its weights again (at least half the files' size more than
   * the shared instance, whose own cost is the session) */
  {
    GStatBuf st1, st2;
    gint64 files_kb;

    fail_unless (g_stat (fvlm_test_model (), &st1) == 0);
    fail_unless (g_stat (fvlm_test_mmproj (), &st2) == 0);
    files_kb = (st1.st_size + st2.st_size) / 1024;
    fail_unless ((r2 - r1) + files_kb / 2 < (r3 - r2), "RSS +%" G_GINT64_FORMAT
        " (shared) vs +%" G_GINT64_FORMAT " (separate), files %" G_GINT64_FORMAT
        " kB", r2 - r1, r3 - r2, files_kb);
  }

  gst_harness_teardown (h3);
  gst_harness_teardown (h2);
  gst_harness_teardown (h1);
  gst_object_unref (e3);
  gst_object_unref (e2);
  gst_object_unref (e1);
  /* all released: the model is unmapped */
  fail_unless_equals_int (count_mappings (fvlm_test_mmproj ()), n0);

  g_unlink (link_model);
  g_unlink (link_mmproj);
  g_unlink (copy_model);
  g_unlink (copy_mmproj);
  g_rmdir (dir);
  g_free (link_model);
  g_free (link_mmproj);
  g_free (copy_model);
  g_free (copy_mmproj);
  g_free (dir);
}

GST_END_TEST;

/* Runs @desc (with @MODEL@ args) to EOS; fails on error or after two minutes. */
static void
run_to_eos (const gchar * desc_fmt)
{
  gchar *args = g_strdup_printf ("model=\"%s\" mmproj=\"%s\" threads=1",
      fvlm_test_model (), fvlm_test_mmproj ());
  gchar **parts = g_strsplit (desc_fmt, "@MODEL@", -1);
  gchar *desc = g_strjoinv (args, parts);
  GError *error = NULL;
  GstElement *p = gst_parse_launch (desc, &error);
  GstMessage *msg;

  fail_unless (p != NULL, "%s: %s", desc, error ? error->message : "");
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p), 120 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no EOS in 2 minutes (deadlock?): %s", desc);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;

    gst_message_parse_error (msg, &err, NULL);
    fail ("%s: %s", desc, err->message);
  }
  gst_message_unref (msg);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (p);
  g_free (desc);
  g_strfreev (parts);
  g_free (args);
}

GST_START_TEST (test_downstream_consumers)
{
  gchar *dir = g_dir_make_tmp ("fastvlm-gst-XXXXXX", NULL);
  gchar *vtt = g_build_filename (dir, "out.vtt", NULL);
  gchar *mkv = g_build_filename (dir, "out.mkv", NULL);
  gchar *desc, *contents = NULL;
  gint cues = 0;

  /* textoverlay waits for text (wait-text=true): GAPs and durations keep it going,
   * with no queue between the two */
  run_to_eos ("videotestsrc num-buffers=45 ! video/x-raw,width=160,height=120,"
      "framerate=30/1 ! fastvlmcaption @MODEL@ mode=offline max-new-tokens=4 "
      "interval=500000000 name=c ! textoverlay name=o wait-text=true ! fakesink "
      "c.text_src ! o.text_sink");
  /* subtitles: one cue per caption (3 in 1.5 s at 0.5 s) */
  desc = g_strdup_printf ("videotestsrc num-buffers=45 ! video/x-raw,width=160,"
      "height=120,framerate=30/1 ! fastvlmcaption @MODEL@ mode=offline "
      "max-new-tokens=4 interval=500000000 name=c ! fakesink c.text_src ! "
      "webvttenc ! filesink location=\"%s\"", vtt);
  run_to_eos (desc);
  g_free (desc);
  fail_unless (g_file_get_contents (vtt, &contents, NULL, NULL));
  for (gchar * p = contents; (p = strstr (p, " --> ")); p++)
    cues++;
  fail_unless_equals_int (cues, 3);
  g_free (contents);
  /* a muxer, with the usual queue per branch */
  desc = g_strdup_printf ("videotestsrc num-buffers=45 ! video/x-raw,width=160,"
      "height=120,framerate=30/1 ! fastvlmcaption @MODEL@ mode=offline "
      "max-new-tokens=4 interval=500000000 name=c ! queue ! matroskamux name=m ! "
      "filesink location=\"%s\" c.text_src ! queue ! m.", mkv);
  run_to_eos (desc);
  g_free (desc);
  /* live: a real-time source, the overlay drawn by the element */
  run_to_eos ("videotestsrc is-live=true num-buffers=30 ! video/x-raw,width=160,"
      "height=120,framerate=30/1 ! fastvlmcaption @MODEL@ mode=live "
      "max-new-tokens=4 overlay=true max-latency=2000000000 name=c ! "
      "fakesink sync=true c.text_src ! fakesink sync=false");

  g_unlink (vtt);
  g_unlink (mkv);
  g_rmdir (dir);
  g_free (vtt);
  g_free (mkv);
  g_free (dir);
}

GST_END_TEST;

static Suite *
fastvlmcaption_caption_suite (void)
{
  Suite *s = suite_create ("fastvlmcaption-caption");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_offline_matches_engine);
  tcase_add_test (tc, test_four_outputs);
  tcase_add_test (tc, test_text_no_control_chars);
  tcase_add_test (tc, test_text_stream);
  tcase_add_test (tc, test_prompt_change_playing);
  tcase_add_test (tc, test_ask_oneshot);
  tcase_add_test (tc, test_eos_drain_live);
  tcase_add_test (tc, test_flush_cancels);
  tcase_add_test (tc, test_latest_wins);
  tcase_add_test (tc, test_qos_skips_inference_only);
  tcase_add_test (tc, test_live_never_waits);
  tcase_add_test (tc, test_offline_every_frame);
  tcase_add_test (tc, test_interval_framerate0);
  tcase_add_test (tc, test_max_latency_drops);
  tcase_add_test (tc, test_truncated_length);
  tcase_add_test (tc, test_reuse_unchanged_scene);
  tcase_add_test (tc, test_overlay_draws);
  tcase_add_test (tc, test_stats_messages);
  tcase_add_test (tc, test_share_model);
  tcase_add_test (tc, test_downstream_consumers);
  return s;
}

GST_CHECK_MAIN (fastvlmcaption_caption);
