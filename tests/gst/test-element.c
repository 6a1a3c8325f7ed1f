/*
 * test-element.c — gst-check tests of fastvlmcaption's video path, properties, pads,
 * queries and model errors.
 *
 * What it proves: every advertised format at awkward sizes (1x1, odd widths, padded
 * strides) goes through byte-for-byte without a pixel copy, with and without the model
 * (with it, every frame is also sampled, converted and captioned); properties have the
 * documented defaults/ranges and prompt ids follow changes; base-class QoS is off; the
 * LATENCY query adds max-latency only when live; a missing, corrupt, truncated or wrong
 * model posts a RESOURCE error naming the file and fails the state change; without a
 * model the element warns, passes video and still ends the text stream; the limits of
 * docs/limits.md (prompt bytes, number of prompts) at the limit and one over.
 * What it is not: the threading/caption tests (test-caption.c) or the preprocessing
 * accuracy (test-preprocess.c).
 */
#include <glib/gstdio.h>
#include <gst/base/gstbasetransform.h>

#include "fvlm-test-util.h"

static const GstVideoFormat formats[] = {
  GST_VIDEO_FORMAT_I420, GST_VIDEO_FORMAT_YV12, GST_VIDEO_FORMAT_NV12,
  GST_VIDEO_FORMAT_NV21, GST_VIDEO_FORMAT_Y42B, GST_VIDEO_FORMAT_Y444,
  GST_VIDEO_FORMAT_YUY2, GST_VIDEO_FORMAT_UYVY, GST_VIDEO_FORMAT_RGB,
  GST_VIDEO_FORMAT_BGR, GST_VIDEO_FORMAT_RGBx, GST_VIDEO_FORMAT_BGRx,
  GST_VIDEO_FORMAT_xRGB, GST_VIDEO_FORMAT_xBGR, GST_VIDEO_FORMAT_RGBA,
  GST_VIDEO_FORMAT_BGRA, GST_VIDEO_FORMAT_ARGB, GST_VIDEO_FORMAT_ABGR,
  GST_VIDEO_FORMAT_GRAY8,
};

static const gint sizes[][2] = {
  {1, 1}, {2, 2}, {3, 5}, {7, 3}, {33, 17}, {641, 479}, {64, 64},
};

/* Pushes one frame and checks the output is the same pixels, not copied. */
static GstBuffer *
push_and_check_untouched (GstHarness * h, GstBuffer * in)
{
  GstBuffer *out;
  GstMapInfo a, b;
  GstMemory *in_mem = gst_buffer_peek_memory (in, 0);
  GstBuffer *copy = gst_buffer_copy_deep (in);

  gst_buffer_ref (in);
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  /* same memory: no pixel was copied (the buffer itself may be a metadata copy, as we
   * still hold a ref on the input) */
  fail_unless (gst_buffer_peek_memory (out, 0) == in_mem);
  fail_unless (gst_buffer_map (out, &a, GST_MAP_READ));
  fail_unless (gst_buffer_map (copy, &b, GST_MAP_READ));
  fail_unless_equals_uint64 (a.size, b.size);
  fail_unless (memcmp (a.data, b.data, a.size) == 0, "pixels changed");
  gst_buffer_unmap (out, &a);
  gst_buffer_unmap (copy, &b);
  gst_buffer_unref (copy);
  gst_buffer_unref (in);
  return out;
}

static void
check_all_formats (gboolean with_model)
{
  for (guint f = 0; f < G_N_ELEMENTS (formats); f++) {
    GstElement *e = fvlm_test_element (with_model, "mode", 2 /* offline */ ,
        "max-new-tokens", 4, NULL);
    GstHarness *h = NULL;
    GstClockTime pts = 0;

    for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
      gint w = sizes[s][0], hh = sizes[s][1];
      GstCaps *caps = fvlm_test_caps (formats[f], w, hh, 30, 1);

      if (h == NULL)
        h = fvlm_test_harness (e, caps, FALSE);
      else
        gst_harness_set_src_caps (h, caps);

      /* tight, then with padded strides described by a GstVideoMeta */
      for (gint pad = 0; pad <= 13; pad += 13) {
        GstBuffer *in = fvlm_test_frame (formats[f], w, hh, s + 1, pad, pts,
            33 * MS);
        GstBuffer *out = push_and_check_untouched (h, in);
        const GstStructure *meta = fvlm_test_meta (out);

        if (with_model) {
          GstClockTime frame_pts = GST_CLOCK_TIME_NONE;

          /* offline: each frame carries its own caption */
          fail_unless (meta != NULL, "%s %dx%d pad %d: no caption meta",
              gst_video_format_to_string (formats[f]), w, hh, pad);
          fail_unless (gst_structure_get_uint64 (meta, "frame-pts", &frame_pts));
          fail_unless_equals_uint64 (frame_pts, pts);
          fail_unless (gst_structure_get_string (meta, "text") != NULL);
        } else {
          fail_unless (meta == NULL);
        }
        gst_buffer_unref (out);
        pts += 33 * MS;
      }
    }
    if (with_model)
      fail_unless_equals_uint64 (fvlm_test_stat (e, "errors"), 0);
    gst_harness_teardown (h);
    gst_object_unref (e);
  }
}

GST_START_TEST (test_formats_passthrough_no_model)
{
  check_all_formats (FALSE);
}

GST_END_TEST;

GST_START_TEST (test_formats_with_model)
{
  check_all_formats (TRUE);
}

GST_END_TEST;

/* The same pixels, packed tight or with padded strides, give the same caption. */
GST_START_TEST (test_padded_strides_same_caption)
{
  const GstVideoFormat fmts[] = { GST_VIDEO_FORMAT_I420, GST_VIDEO_FORMAT_NV12,
    GST_VIDEO_FORMAT_RGB, GST_VIDEO_FORMAT_GRAY8
  };

  for (guint f = 0; f < G_N_ELEMENTS (fmts); f++) {
    GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens", 8,
        NULL);
    GstHarness *h = fvlm_test_harness (e, fvlm_test_caps (fmts[f], 45, 29, 30,
            1), FALSE);
    GstBuffer *tight, *padded;
    const gchar *t1, *t2;

    tight = gst_harness_push_and_pull (h, fvlm_test_frame (fmts[f], 45, 29, 9,
            0, 0, 33 * MS));
    padded = gst_harness_push_and_pull (h, fvlm_test_frame (fmts[f], 45, 29, 9,
            24, 33 * MS, 33 * MS));
    fail_unless (fvlm_test_meta (tight) && fvlm_test_meta (padded));
    t1 = gst_structure_get_string (fvlm_test_meta (tight), "text");
    t2 = gst_structure_get_string (fvlm_test_meta (padded), "text");
    fail_unless_equals_string (t1, t2);
    gst_buffer_unref (tight);
    gst_buffer_unref (padded);
    gst_harness_teardown (h);
    gst_object_unref (e);
  }
}

GST_END_TEST;

GST_START_TEST (test_properties)
{
  GstElement *e = fvlm_test_element (FALSE, NULL);
  gchar *s = NULL;
  guint u, id0, id1;
  gfloat f;
  gint i;
  guint64 u64;
  gboolean b;
  gdouble d;
  GstStructure *stats;
  GstPad *text;
  GstCaps *caps;

  g_object_get (e, "prompt", &s, NULL);
  fail_unless_equals_string (s, "Describe the image.");
  g_free (s);
  g_object_get (e, "system-prompt", &s, NULL);
  fail_unless_equals_string (s, "You are a helpful assistant.");
  g_free (s);
  g_object_get (e, "max-new-tokens", &u, "temperature", &f, "image-size", &i,
      NULL);
  fail_unless_equals_int (u, 64);
  fail_unless (f == 0.0f);
  fail_unless_equals_int (i, 0);
  g_object_get (e, "top-p", &f, "seed", &u64, "threads", &i, NULL);
  fail_unless (f == 1.0f);
  fail_unless_equals_uint64 (u64, 0);
  fail_unless_equals_int (i, 0);
  g_object_get (e, "interval", &u64, "max-latency", &u64, "overlay", &b, NULL);
  fail_unless_equals_uint64 (u64, 0);
  fail_unless (!b);
  g_object_get (e, "stats-interval", &u64, "reuse-threshold", &d, "mode", &i,
      NULL);
  fail_unless_equals_uint64 (u64, GST_SECOND);
  fail_unless (d == 1.0);       /* default measured in docs/reuse.md */
  fail_unless_equals_int (i, 0);

  /* prompt ids: a change makes a new id, setting the same text does not */
  g_object_get (e, "prompt-id", &id0, NULL);
  g_object_set (e, "prompt", "What is moving?", NULL);
  g_object_get (e, "prompt-id", &id1, NULL);
  fail_unless_equals_int (id1, id0 + 1);
  g_object_set (e, "prompt", "What is moving?", NULL);
  g_object_get (e, "prompt-id", &id1, NULL);
  fail_unless_equals_int (id1, id0 + 1);
  g_object_set (e, "system-prompt", "Be brief.", NULL);
  g_object_get (e, "prompt-id", &id1, NULL);
  fail_unless_equals_int (id1, id0 + 2);

  /* round trips of the writable properties */
  g_object_set (e, "max-new-tokens", 7, "temperature", 0.5f, "top-p", 0.9f,
      "seed", (guint64) 42, "image-size", 128, "threads", 3,
      "interval", (guint64) (250 * MS), "max-latency", (guint64) (900 * MS),
      "overlay", TRUE, "stats-interval", (guint64) 0, "reuse-threshold", 2.5,
      "mode", 1, NULL);
  g_object_get (e, "max-new-tokens", &u, "temperature", &f, NULL);
  fail_unless_equals_int (u, 7);
  fail_unless (f == 0.5f);
  g_object_get (e, "seed", &u64, "image-size", &i, NULL);
  fail_unless_equals_uint64 (u64, 42);
  fail_unless_equals_int (i, 128);
  g_object_get (e, "interval", &u64, NULL);
  fail_unless_equals_uint64 (u64, 250 * MS);
  g_object_get (e, "max-latency", &u64, "mode", &i, "overlay", &b, NULL);
  fail_unless_equals_uint64 (u64, 900 * MS);
  fail_unless_equals_int (i, 1);
  fail_unless (b);

  /* the documented mutability: prompts and sampling change while PLAYING */
  fail_unless (g_object_class_find_property (G_OBJECT_GET_CLASS (e),
          "prompt")->flags & GST_PARAM_MUTABLE_PLAYING);
  fail_unless (g_object_class_find_property (G_OBJECT_GET_CLASS (e),
          "system-prompt")->flags & GST_PARAM_MUTABLE_PLAYING);
  fail_unless (g_object_class_find_property (G_OBJECT_GET_CLASS (e),
          "interval")->flags & GST_PARAM_MUTABLE_PLAYING);
  fail_unless (g_object_class_find_property (G_OBJECT_GET_CLASS (e),
          "model")->flags & GST_PARAM_MUTABLE_READY);
  fail_if (g_object_class_find_property (G_OBJECT_GET_CLASS (e),
          "stats")->flags & G_PARAM_WRITABLE);

  stats = fvlm_test_stats (e);
  fail_unless (gst_structure_has_name (stats, "fastvlm-stats"));
  for (const gchar ** field = (const gchar *[]) {
  "frames-seen", "frames-captioned", "skipped-interval", "skipped-busy",
          "skipped-qos", "skipped-late", "reused", "truncated", "errors",
          "latency-p50-ms", "latency-p95-ms", "latency-p99-ms", "preprocess-ms",
          "vision-ms", "prefill-ms", "decode-ms", "decode-tokens-per-second",
          NULL}; *field; field++)
    fail_unless (gst_structure_has_field (stats, *field), "stats lacks %s",
        *field);
  gst_structure_free (stats);

  /* base-class QoS off: it would drop frames */
  fail_if (gst_base_transform_is_qos_enabled (GST_BASE_TRANSFORM (e)));

  /* the always text pad */
  text = gst_element_get_static_pad (e, "text_src");
  fail_unless (text != NULL);
  caps = gst_pad_query_caps (text, NULL);
  fail_unless (gst_caps_is_equal (caps,
          gst_caps_from_string ("text/x-raw, format=(string)utf8")));
  gst_caps_unref (caps);
  gst_object_unref (text);

  /* element metadata */
  fail_unless_equals_string (gst_element_class_get_metadata (GST_ELEMENT_GET_CLASS
          (e), GST_ELEMENT_METADATA_KLASS), "Filter/Analyzer/Video");
  gst_object_unref (e);
}

GST_END_TEST;

/* Sets @e (with @model/@mmproj) to PAUSED, expects failure and a RESOURCE error with
 * @code naming @name_in_message. */
static void
check_load_error (const gchar * model, const gchar * mmproj, gint code,
    const gchar * name_in_message)
{
  GstElement *e = gst_element_factory_make ("fastvlmcaption", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;
  gchar *debug = NULL;
  gboolean saw_progress_error = FALSE;

  g_object_set (e, "model", model, "mmproj", mmproj, NULL);
  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);

  while ((msg = gst_bus_pop (bus))) {
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_PROGRESS) {
      GstProgressType type;

      gst_message_parse_progress (msg, &type, NULL, NULL);
      if (type == GST_PROGRESS_TYPE_ERROR)
        saw_progress_error = TRUE;
    } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR && err == NULL) {
      gst_message_parse_error (msg, &err, &debug);
    }
    gst_message_unref (msg);
  }
  fail_unless (err != NULL, "no error message for %s", model);
  fail_unless (err->domain == GST_RESOURCE_ERROR);
  fail_unless_equals_int (err->code, code);
  fail_unless (strstr (err->message, name_in_message) != NULL,
      "error '%s' does not name %s", err->message, name_in_message);
  fail_unless (saw_progress_error);
  g_clear_error (&err);
  g_free (debug);

  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

static gchar *
write_file (const gchar * dir, const gchar * name, const guint8 * data,
    gsize len)
{
  gchar *path = g_build_filename (dir, name, NULL);

  fail_unless (g_file_set_contents (path, (const gchar *) data, len, NULL));
  return path;
}

GST_START_TEST (test_model_errors)
{
  gchar *dir = g_dir_make_tmp ("fastvlm-gst-XXXXXX", NULL);
  gchar *contents, *garbage, *truncated, *missing;
  gsize len;
  guint8 junk[4096];
  guint32 state = 5;

  /* missing file */
  missing = g_build_filename (dir, "no-such-model.gguf", NULL);
  check_load_error (missing, fvlm_test_mmproj (), GST_RESOURCE_ERROR_NOT_FOUND,
      "no-such-model.gguf");
  /* missing mmproj */
  check_load_error (fvlm_test_model (), missing, GST_RESOURCE_ERROR_NOT_FOUND,
      "no-such-model.gguf");

  /* not a GGUF at all */
  for (gsize i = 0; i < sizeof (junk); i++)
    junk[i] = fvlm_test_rand8 (&state);
  garbage = write_file (dir, "garbage.gguf", junk, sizeof (junk));
  check_load_error (garbage, fvlm_test_mmproj (), GST_RESOURCE_ERROR_FAILED,
      "garbage.gguf");

  /* a real model cut in half */
  fail_unless (g_file_get_contents (fvlm_test_model (), &contents, &len, NULL));
  truncated = write_file (dir, "truncated.gguf", (guint8 *) contents, len / 2);
  check_load_error (truncated, fvlm_test_mmproj (), GST_RESOURCE_ERROR_FAILED,
      "truncated.gguf");
  g_free (contents);

  /* the right files the wrong way round */
  check_load_error (fvlm_test_mmproj (), fvlm_test_model (),
      GST_RESOURCE_ERROR_FAILED, "");

  g_unlink (garbage);
  g_unlink (truncated);
  g_rmdir (dir);
  g_free (garbage);
  g_free (truncated);
  g_free (missing);
  g_free (dir);
}

GST_END_TEST;

/* A language model alone cannot caption: refused with a clear message. */
GST_START_TEST (test_model_without_mmproj)
{
  GstElement *e = gst_element_factory_make ("fastvlmcaption", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;

  g_object_set (e, "model", fvlm_test_model (), NULL);
  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (err->domain == GST_RESOURCE_ERROR);
  fail_unless (strstr (err->message, "mmproj") != NULL);
  g_clear_error (&err);
  gst_message_unref (msg);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_END_TEST;

/* image-size must be a multiple of 64 */
GST_START_TEST (test_bad_image_size)
{
  GstElement *e = fvlm_test_element (TRUE, "image-size", 100, NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;

  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_SETTINGS));
  g_clear_error (&err);
  gst_message_unref (msg);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_END_TEST;

/* A string of exactly @n bytes. */
static gchar *
limit_text (gsize n)
{
  gchar *t = g_malloc (n + 1);

  memset (t, 'q', n);
  t[n] = '\0';
  return t;
}

/* Sets `prompts` to @n questions: @text at index 1, "Q" elsewhere. */
static void
set_prompts (GstElement * e, guint n, const gchar * text)
{
  GValue arr = G_VALUE_INIT;

  gst_value_array_init (&arr, n);
  for (guint i = 0; i < n; i++) {
    GValue v = G_VALUE_INIT;

    g_value_init (&v, G_TYPE_STRING);
    g_value_set_string (&v, i == 1 ? text : "Q");
    gst_value_array_append_and_take_value (&arr, &v);
  }
  g_object_set_property (G_OBJECT (e), "prompts", &arr);
  g_value_unset (&arr);
}

/* Pops the messages of @type from @bus; returns how many there were and, in *text, the
 * message of the last one (NULL when none). */
static guint
pop_messages (GstBus * bus, GstMessageType type, gchar ** text)
{
  GstMessage *msg;
  guint n = 0;

  *text = NULL;
  while ((msg = gst_bus_pop_filtered (bus, type))) {
    GError *err = NULL;

    if (type == GST_MESSAGE_WARNING)
      gst_message_parse_warning (msg, &err, NULL);
    else
      gst_message_parse_error (msg, &err, NULL);
    fail_unless (g_error_matches (err, GST_RESOURCE_ERROR,
            GST_RESOURCE_ERROR_SETTINGS), "%s", err->message);
    g_free (*text);
    *text = g_strdup (err->message);
    g_clear_error (&err);
    gst_message_unref (msg);
    n++;
  }
  return n;
}

/* The limits of docs/limits.md on the element, at the limit and one over: prompt,
 * system-prompt and each of prompts at most FASTVLM_MAX_PROMPT_BYTES, at most
 * FASTVLM_MAX_PROMPTS prompts, the ask signal's question. Over: the value is refused
 * (the property keeps its previous value, the prompt-id does not move), a WARNING names
 * the limit and the value, and starting fails with an ERROR saying the same until a
 * value within the limit is set. */
GST_START_TEST (test_limits)
{
  GstElement *e = fvlm_test_element (TRUE, NULL);
  GstBus *bus = gst_bus_new ();
  gchar *at = limit_text (FASTVLM_MAX_PROMPT_BYTES);
  gchar *over = limit_text (FASTVLM_MAX_PROMPT_BYTES + 1);
  gchar *s = NULL, *msg = NULL;
  GValue arr = G_VALUE_INIT;
  guint id0, id;

  gst_element_set_bus (e, bus);
  for (gint p = 0; p < 2; p++) {
    const gchar *prop = p == 0 ? "prompt" : "system-prompt";
    gchar *want = g_strdup_printf ("%s is 65537 bytes, over the limit of 65536 bytes "
        "(FASTVLM_MAX_PROMPT_BYTES)", prop);

    /* at the limit: taken */
    g_object_get (e, "prompt-id", &id0, NULL);
    g_object_set (e, prop, at, NULL);
    g_object_get (e, prop, &s, "prompt-id", &id, NULL);
    fail_unless (strcmp (s, at) == 0, "%s of 65536 bytes not taken", prop);
    g_free (s);
    fail_unless_equals_int (id, id0 + 1);
    fail_unless_equals_int (pop_messages (bus, GST_MESSAGE_WARNING, &msg), 0);
    /* one over: refused, the previous value stays */
    g_object_set (e, prop, over, NULL);
    g_object_get (e, prop, &s, "prompt-id", &id, NULL);
    fail_unless (strcmp (s, at) == 0, "%s of 65537 bytes was taken", prop);
    g_free (s);
    fail_unless_equals_int (id, id0 + 1);
    fail_unless_equals_int (pop_messages (bus, GST_MESSAGE_WARNING, &msg), 1);
    fail_unless (strstr (msg, want) != NULL, "warning: %s", msg);
    g_free (msg);
    /* and the element does not start with a refused value */
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
        GST_STATE_CHANGE_FAILURE);
    fail_unless_equals_int (pop_messages (bus, GST_MESSAGE_ERROR, &msg), 1);
    fail_unless (strstr (msg, want) != NULL, "error: %s", msg);
    g_free (msg);
    gst_element_set_state (e, GST_STATE_NULL);
    /* a value within the limit clears it: the element starts */
    g_object_set (e, prop, "Short.", NULL);
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
        GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int (pop_messages (bus, GST_MESSAGE_ERROR, &msg), 0);
    gst_element_set_state (e, GST_STATE_NULL);
    g_free (want);
  }

  /* prompts: 64 questions, one of them 65536 bytes, are taken; 65 questions, or one
   * of 65537 bytes, are refused */
  set_prompts (e, FASTVLM_MAX_PROMPTS, at);
  g_value_init (&arr, GST_TYPE_ARRAY);
  g_object_get_property (G_OBJECT (e), "prompts", &arr);
  fail_unless_equals_int (gst_value_array_get_size (&arr), FASTVLM_MAX_PROMPTS);
  g_value_unset (&arr);
  fail_unless_equals_int (pop_messages (bus, GST_MESSAGE_WARNING, &msg), 0);
  g_object_get (e, "prompt-id", &id0, NULL);
  set_prompts (e, FASTVLM_MAX_PROMPTS + 1, "Q");
  fail_unless_equals_int (pop_messages (bus, GST_MESSAGE_WARNING, &msg), 1);
  fail_unless (strstr (msg, "prompts has 65 questions, over the limit of 64 "
          "(FASTVLM_MAX_PROMPTS)") != NULL, "warning: %s", msg);
  g_free (msg);
  set_prompts (e, 2, over);
  fail_unless_equals_int (pop_messages (bus, GST_MESSAGE_WARNING, &msg), 1);
  fail_unless (strstr (msg, "prompts[1] is 65537 bytes, over the limit of 65536 "
          "bytes") != NULL, "warning: %s", msg);
  g_free (msg);
  g_value_init (&arr, GST_TYPE_ARRAY);
  g_object_get_property (G_OBJECT (e), "prompts", &arr);
  fail_unless_equals_int (gst_value_array_get_size (&arr), FASTVLM_MAX_PROMPTS);
  g_value_unset (&arr);
  g_object_get (e, "prompt-id", &id, NULL);
  fail_unless_equals_int (id, id0);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  fail_unless_equals_int (pop_messages (bus, GST_MESSAGE_ERROR, &msg), 1);
  fail_unless (strstr (msg, "prompts[1] is 65537 bytes") != NULL, "error: %s", msg);
  g_free (msg);
  gst_element_set_state (e, GST_STATE_NULL);
  set_prompts (e, 0, NULL);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_SUCCESS);

  /* ask: a question at the limit gets an id, one over gets 0 and a warning */
  g_signal_emit_by_name (e, "ask", at, &id);
  fail_unless (id != 0);
  g_signal_emit_by_name (e, "ask", over, &id);
  fail_unless_equals_int (id, 0);
  fail_unless_equals_int (pop_messages (bus, GST_MESSAGE_WARNING, &msg), 1);
  fail_unless (strstr (msg, "ask question is 65537 bytes") != NULL, "warning: %s", msg);
  g_free (msg);

  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
  g_free (at);
  g_free (over);
}

GST_END_TEST;

/* No model: a warning, video through, and the text stream still starts and ends. */
GST_START_TEST (test_no_model_text_eos)
{
  GstElement *e = fvlm_test_element (FALSE, NULL);
  GstBus *bus = gst_bus_new ();
  GstHarness *h, *ht;
  GstMessage *msg;
  GstEvent *ev;
  gboolean saw_stream_start = FALSE, saw_caps = FALSE, saw_segment = FALSE;

  gst_element_set_bus (e, bus);
  h = fvlm_test_harness (e, fvlm_test_caps (GST_VIDEO_FORMAT_I420, 16, 16, 30,
          1), FALSE);
  ht = gst_harness_new_with_element (e, NULL, "text_src");
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "no warning about the missing model");
  gst_message_unref (msg);

  gst_buffer_unref (gst_harness_push_and_pull (h,
          fvlm_test_frame (GST_VIDEO_FORMAT_I420, 16, 16, 1, 0, 0, 33 * MS)));
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  /* the text pad's task pushes them: wait for each (up to a minute) */
  while ((ev = gst_harness_pull_event (ht))) {
    switch (GST_EVENT_TYPE (ev)) {
      case GST_EVENT_STREAM_START:
        saw_stream_start = TRUE;
        break;
      case GST_EVENT_CAPS:
        fail_unless (saw_stream_start);
        saw_caps = TRUE;
        break;
      case GST_EVENT_SEGMENT:
        fail_unless (saw_caps);
        saw_segment = TRUE;
        break;
      case GST_EVENT_EOS:
        fail_unless (saw_segment);
        gst_event_unref (ev);
        goto done;
      default:
        break;
    }
    gst_event_unref (ev);
  }
  fail ("no EOS on the text pad");
done:
  gst_harness_teardown (ht);
  gst_harness_teardown (h);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_END_TEST;

/* LATENCY: max-latency is added when upstream is live, not otherwise. */
GST_START_TEST (test_latency_query)
{
  for (gint live = 0; live <= 1; live++) {
    GstElement *e = fvlm_test_element (FALSE, "max-latency",
        (guint64) (500 * MS), NULL);
    GstHarness *h = fvlm_test_harness (e, fvlm_test_caps (GST_VIDEO_FORMAT_I420,
            16, 16, 30, 1), live);
    GstQuery *q;
    GstPad *text;
    gboolean is_live;
    GstClockTime min, max;

    gst_harness_set_upstream_latency (h, 10 * MS);
    fail_unless_equals_uint64 (gst_harness_query_latency (h),
        live ? 510 * MS : 10 * MS);

    /* the text pad answers the same */
    text = gst_element_get_static_pad (e, "text_src");
    q = gst_query_new_latency ();
    fail_unless (gst_pad_query (text, q));
    gst_query_parse_latency (q, &is_live, &min, &max);
    fail_unless_equals_int (is_live, live);
    fail_unless_equals_uint64 (min, live ? 510 * MS : 10 * MS);
    gst_query_unref (q);
    gst_object_unref (text);

    gst_harness_teardown (h);
    gst_object_unref (e);
  }
}

GST_END_TEST;

static Suite *
fastvlmcaption_element_suite (void)
{
  Suite *s = suite_create ("fastvlmcaption-element");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_formats_passthrough_no_model);
  tcase_add_test (tc, test_formats_with_model);
  tcase_add_test (tc, test_padded_strides_same_caption);
  tcase_add_test (tc, test_model_errors);
  tcase_add_test (tc, test_model_without_mmproj);
  tcase_add_test (tc, test_bad_image_size);
  tcase_add_test (tc, test_limits);
  tcase_add_test (tc, test_no_model_text_eos);
  tcase_add_test (tc, test_latency_query);
  return s;
}

GST_CHECK_MAIN (fastvlmcaption_element);
