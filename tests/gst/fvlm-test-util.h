/*
 * fvlm-test-util.h — helpers shared by the gst-check tests of fastvlmcaption (header-only,
 * static functions): the tiny test model's paths, frames of any format filled with
 * deterministic pseudo-random bytes (optionally with padded strides), element/harness
 * construction, bus and stats polling, and the engine's own answer for an RGB frame (the
 * independent reference the element's captions are compared with).
 *
 * What it is not: a test — each test-*.c states what it proves.
 */
#ifndef FVLM_TEST_UTIL_H
#define FVLM_TEST_UTIL_H

#include <string.h>
#include <gst/gst.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "fastvlm.h"

#define FVLM_META_NAME "FastVLMCaptionMeta"
#define MS (GST_MSECOND)

/* The tiny random model made by tests/gst/make_model.py (paths set by meson). */
static inline const gchar *
fvlm_test_model (void)
{
  const gchar *p = g_getenv ("FASTVLM_TEST_MODEL");

  fail_unless (p != NULL && g_file_test (p, G_FILE_TEST_EXISTS),
      "FASTVLM_TEST_MODEL must name the tiny test model");
  return p;
}

static inline const gchar *
fvlm_test_mmproj (void)
{
  const gchar *p = g_getenv ("FASTVLM_TEST_MMPROJ");

  fail_unless (p != NULL && g_file_test (p, G_FILE_TEST_EXISTS),
      "FASTVLM_TEST_MMPROJ must name the tiny test model's mmproj");
  return p;
}

/* xorshift32: a deterministic byte stream so a failure reproduces. */
static inline guint8
fvlm_test_rand8 (guint32 * state)
{
  guint32 x = *state;

  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *state = x;
  return (guint8) (x >> 24);
}

static inline GstCaps *
fvlm_test_caps (GstVideoFormat format, gint width, gint height, gint fps_n,
    gint fps_d)
{
  GstVideoInfo info;

  gst_video_info_set_format (&info, format, width, height);
  GST_VIDEO_INFO_FPS_N (&info) = fps_n;
  GST_VIDEO_INFO_FPS_D (&info) = fps_d;
  return gst_video_info_to_caps (&info);
}

/* A frame of @format with random pixels from @seed. With @extra_stride > 0 every plane's
 * rows are that many bytes longer than needed (filled with 0xEE, never read) and a
 * GstVideoMeta describes the layout, as a hardware decoder's padded buffers would. */
static inline GstBuffer *
fvlm_test_frame (GstVideoFormat format, gint width, gint height,
    guint32 seed, gint extra_stride, GstClockTime pts, GstClockTime duration)
{
  GstVideoInfo info, padded;
  GstBuffer *buf;
  GstVideoFrame frame;
  guint32 state = seed * 2654435761u + 1;

  gst_video_info_set_format (&info, format, width, height);
  padded = info;
  if (extra_stride > 0) {
    gsize offset = 0;

    for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES (&info); p++) {
      gint comp[GST_VIDEO_MAX_COMPONENTS];
      gint rows;

      gst_video_format_info_component (info.finfo, p, comp);
      rows = GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT (info.finfo, comp[0], height);
      GST_VIDEO_INFO_PLANE_STRIDE (&padded, p) =
          GST_VIDEO_INFO_PLANE_STRIDE (&info, p) + extra_stride;
      GST_VIDEO_INFO_PLANE_OFFSET (&padded, p) = offset;
      offset += (gsize) GST_VIDEO_INFO_PLANE_STRIDE (&padded, p) * rows;
    }
    GST_VIDEO_INFO_SIZE (&padded) = offset;
  }
  buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&padded), NULL);
  gst_buffer_memset (buf, 0, 0xEE, GST_VIDEO_INFO_SIZE (&padded));
  if (extra_stride > 0)
    gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE, format,
        width, height, GST_VIDEO_INFO_N_PLANES (&padded), padded.offset,
        padded.stride);
  fail_unless (gst_video_frame_map (&frame, &padded, buf, GST_MAP_WRITE));
  for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES (&frame); p++) {
    guint8 *data = GST_VIDEO_FRAME_PLANE_DATA (&frame, p);
    gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, p);
    gint comp[GST_VIDEO_MAX_COMPONENTS];
    gint row_bytes, rows;

    gst_video_format_info_component (info.finfo, p, comp);
    rows = GST_VIDEO_FRAME_COMP_HEIGHT (&frame, comp[0]);
    row_bytes = GST_VIDEO_FRAME_COMP_WIDTH (&frame, comp[0]) *
        GST_VIDEO_FRAME_COMP_PSTRIDE (&frame, comp[0]);
    for (gint y = 0; y < rows; y++)
      for (gint x = 0; x < row_bytes; x++)
        data[(gsize) y * stride + x] = fvlm_test_rand8 (&state);
  }
  gst_video_frame_unmap (&frame);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = duration;
  return buf;
}

/* A tightly packed RGB frame of the given bytes (3*width*height). */
static inline GstBuffer *
fvlm_test_rgb_frame (const guint8 * rgb, gint width, gint height,
    GstClockTime pts, GstClockTime duration)
{
  GstVideoInfo info;
  GstVideoFrame frame;
  GstBuffer *buf;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, width, height);
  buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  fail_unless (gst_video_frame_map (&frame, &info, buf, GST_MAP_WRITE));
  for (gint y = 0; y < height; y++)
    memcpy ((guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0) +
        (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0),
        rgb + (gsize) y * width * 3, (gsize) width * 3);
  gst_video_frame_unmap (&frame);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = duration;
  return buf;
}

static inline guint8 *
fvlm_test_random_rgb (gint width, gint height, guint32 seed)
{
  guint8 *rgb = g_malloc ((gsize) width * height * 3);
  guint32 state = seed * 2654435761u + 7;

  for (gsize i = 0; i < (gsize) width * height * 3; i++)
    rgb[i] = fvlm_test_rand8 (&state);
  return rgb;
}

/* A fastvlmcaption with the tiny model (when @with_model) and "name", value, ... set. */
static inline GstElement *
fvlm_test_element (gboolean with_model, const gchar * first_prop, ...)
{
  GstElement *e = gst_element_factory_make ("fastvlmcaption", NULL);
  va_list args;

  fail_unless (e != NULL, "fastvlmcaption not found: check GST_PLUGIN_PATH_1_0");
  if (with_model)
    g_object_set (e, "model", fvlm_test_model (), "mmproj", fvlm_test_mmproj (),
        "threads", 1, NULL);
  else                          /* "" = no model (unset would be the demo model) */
    g_object_set (e, "model", "", NULL);
  if (first_prop) {
    va_start (args, first_prop);
    g_object_set_valist (G_OBJECT (e), first_prop, args);
    va_end (args);
  }
  return e;
}

/* Harness on the element's video pads (starts it: start() loads the model). */
static inline GstHarness *
fvlm_test_harness (GstElement * e, GstCaps * caps, gboolean live)
{
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");

  gst_harness_set_live (h, live);
  gst_harness_set_src_caps (h, caps);
  return h;
}

static inline GstStructure *
fvlm_test_stats (GstElement * e)
{
  GstStructure *s = NULL;

  g_object_get (e, "stats", &s, NULL);
  fail_unless (s != NULL);
  return s;
}

static inline guint64
fvlm_test_stat (GstElement * e, const gchar * field)
{
  GstStructure *s = fvlm_test_stats (e);
  guint64 v = 0;

  fail_unless (gst_structure_get_uint64 (s, field, &v), "no stats field %s", field);
  gst_structure_free (s);
  return v;
}

static inline gboolean
fvlm_test_busy (GstElement * e)
{
  GstStructure *s = fvlm_test_stats (e);
  gboolean busy = FALSE;

  gst_structure_get_boolean (s, "busy", &busy);
  gst_structure_free (s);
  return busy;
}

/* Polls until the worker runs the model (generous timeout: CI is slow). */
static inline void
fvlm_test_wait_busy (GstElement * e)
{
  gint64 end = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

  while (!fvlm_test_busy (e)) {
    fail_unless (g_get_monotonic_time () < end, "the worker never started");
    g_usleep (1000);
  }
}

/* Polls until stats field @field reaches @value. */
static inline void
fvlm_test_wait_stat (GstElement * e, const gchar * field, guint64 value)
{
  gint64 end = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;

  while (fvlm_test_stat (e, field) < value) {
    fail_unless (g_get_monotonic_time () < end, "%s never reached %"
        G_GUINT64_FORMAT, field, value);
    g_usleep (1000);
  }
}

/* The caption meta of @buf (first one), or NULL. */
static inline const GstStructure *
fvlm_test_meta (GstBuffer * buf)
{
  GstCustomMeta *meta = gst_buffer_get_custom_meta (buf, FVLM_META_NAME);

  return meta ? gst_custom_meta_get_structure (meta) : NULL;
}

/* The engine's own answer for an RGB image, through its own preprocessing
 * (fastvlm_session_set_image_rgb8): the reference the element must agree with. */
static inline gchar *
fvlm_test_engine_caption (const guint8 * rgb, gint width, gint height,
    const gchar * prompt, const gchar * system_prompt, gint max_new_tokens)
{
  fastvlm_model_params mp = fastvlm_model_default_params ();
  fastvlm_session_params sp = fastvlm_session_default_params ();
  fastvlm_generate_params gp = fastvlm_generate_default_params ();
  fastvlm_model *model = NULL;
  fastvlm_session *session = NULL;
  fastvlm_result res;
  fastvlm_error err;
  gchar *text;

  mp.mmproj_path = fvlm_test_mmproj ();
  fail_unless (fastvlm_model_load (fvlm_test_model (), &mp, &model, &err) ==
      FASTVLM_OK, "%s", err.message);
  sp.n_threads = 1;
  fail_unless (fastvlm_session_new (model, &sp, &session, &err) == FASTVLM_OK,
      "%s", err.message);
  fail_unless (fastvlm_session_set_image_rgb8 (session, rgb, width, height,
          (size_t) width * 3, &err) == FASTVLM_OK, "%s", err.message);
  gp.prompt = prompt;
  gp.system_prompt = system_prompt;
  gp.max_new_tokens = max_new_tokens;
  fail_unless (fastvlm_session_ask (session, &gp, &res, &err) == FASTVLM_OK,
      "%s", err.message);
  text = g_strdup (res.text);
  fastvlm_result_clear (&res);
  fastvlm_session_free (session);
  fastvlm_model_free (model);
  return text;
}

/* Pops messages of @type (and, for element messages, structure name @name) from @bus. */
static inline GstMessage *
fvlm_test_pop_message (GstBus * bus, GstMessageType type, const gchar * name,
    GstClockTime timeout)
{
  gint64 end = g_get_monotonic_time () + timeout / 1000;

  for (;;) {
    gint64 left = MAX (0, end - g_get_monotonic_time ());
    GstMessage *msg;

    /* a zero timeout still takes what is already there */
    msg = gst_bus_timed_pop_filtered (bus, left * 1000, type);
    if (msg == NULL)
      return NULL;
    if (name == NULL || (gst_message_get_structure (msg) &&
            gst_structure_has_name (gst_message_get_structure (msg), name)))
      return msg;
    gst_message_unref (msg);
  }
}

#endif /* FVLM_TEST_UTIL_H */
