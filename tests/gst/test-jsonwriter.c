/*
 * test-jsonwriter.c — gst-check tests of fastvlmjsonwriter (JSON Lines out of
 * FastVLMCaptionMeta).
 *
 * What it proves: every line parses back with json-glib as one object with exactly the
 * documented fields and JSON types (docs/element.md, "fastvlmjsonwriter"); one line per
 * caption meta (two metas on one buffer: two lines, in order), none for a buffer without
 * one; the buffers go through untouched (same buffer, meta kept); values round-trip
 * (text with quotes, newlines, control and non-ASCII characters; CLOCK_TIME_NONE and
 * NaN as null; doubles printed short and still doubles); stdout ("-" and unset), an fd
 * (not closed by the element), append and truncate; an unopenable path or a read-only fd
 * posts RESOURCE/OPEN_WRITE naming it and fails READY->PAUSED; a full disk (/dev/full)
 * posts a RESOURCE error and returns GST_FLOW_ERROR; flush-every-line=false holds lines
 * until EOS; two writers on one descriptor never mix inside a line; and with the tiny
 * model, one line per fastvlm-caption message after videoconvert/videoscale, with the
 * same text, ids and PTS, and the upstream fastvlmcaption's name as `stream`.
 * What it is not: tests of the captions themselves (test-caption.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "fvlm-test-util.h"

/* A caption text that needs every kind of JSON escape and stays valid UTF-8. */
#define NASTY_TEXT "a \"cat\"\\dog\n\ttab \x01 ctl, caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x90\x88"

/* The JSON types of the documented fields (docs/element.md). */
typedef enum
{
  T_STRING, T_INT, T_INT_OR_NULL, T_DOUBLE, T_BOOL
} FieldType;

static const struct
{
  const gchar *name;
  FieldType type;
} schema[] = {
  {"stream", T_STRING}, {"wall-time", T_STRING}, {"wall-time-us", T_INT},
  {"buffer-pts", T_INT_OR_NULL},
  {"text", T_STRING}, {"prompt", T_STRING}, {"prompt-id", T_INT},
  {"caption-id", T_INT}, {"frame-pts", T_INT_OR_NULL},
  {"frame-duration", T_INT_OR_NULL}, {"frame-running-time", T_INT_OR_NULL},
  {"started-running-time", T_INT_OR_NULL},
  {"ended-running-time", T_INT_OR_NULL},
  {"latency-ms", T_DOUBLE}, {"queue-ms", T_DOUBLE}, {"preprocess-ms", T_DOUBLE},
  {"vision-ms", T_DOUBLE}, {"prefill-ms", T_DOUBLE}, {"decode-ms", T_DOUBLE},
  {"n-tokens", T_INT}, {"tokens-per-second", T_DOUBLE}, {"truncated", T_BOOL},
  {"stop-reason", T_STRING}, {"reused", T_BOOL},
  /* reuse across frames (docs/reuse.md) */
  {"prompt-index", T_INT}, {"n-prompts", T_INT}, {"reuse", T_STRING},
  {"encoded-pts", T_INT_OR_NULL}, {"scene-distance", T_DOUBLE},
  {"n-prompt-tokens", T_INT}, {"n-reused-positions", T_INT}, {"n-draft", T_INT},
  {"n-accepted", T_INT}, {"draft-acceptance", T_DOUBLE},
};

/* The fields fastvlmcaption puts in the meta, with values that test the mapping. */
static GstStructure *
caption_fields (guint64 id, const gchar * text)
{
  return gst_structure_new ("fastvlm-caption",
      "text", G_TYPE_STRING, text,
      "prompt", G_TYPE_STRING, "Describe the image.",
      "prompt-id", G_TYPE_UINT, 7,
      "caption-id", G_TYPE_UINT64, id,
      "frame-pts", G_TYPE_UINT64, id * GST_SECOND,
      "frame-duration", G_TYPE_UINT64, GST_CLOCK_TIME_NONE,
      "frame-running-time", G_TYPE_UINT64, id * GST_SECOND,
      "started-running-time", G_TYPE_UINT64, GST_CLOCK_TIME_NONE,
      "ended-running-time", G_TYPE_UINT64, (guint64) 5,
      "latency-ms", G_TYPE_DOUBLE, 12.3,
      "queue-ms", G_TYPE_DOUBLE, 0.0,
      "preprocess-ms", G_TYPE_DOUBLE, 1e20,
      "vision-ms", G_TYPE_DOUBLE, 0.1 + 0.2,
      "prefill-ms", G_TYPE_DOUBLE, 1.5e-7,
      "decode-ms", G_TYPE_DOUBLE, 3.0,
      "n-tokens", G_TYPE_INT, 4,
      "tokens-per-second", G_TYPE_DOUBLE, 1333.25,
      "truncated", G_TYPE_BOOLEAN, TRUE,
      "stop-reason", G_TYPE_STRING, "length",
      "reused", G_TYPE_BOOLEAN, FALSE,
      "prompt-index", G_TYPE_UINT, 0, "n-prompts", G_TYPE_UINT, 1,
      "reuse", G_TYPE_STRING, "none", "encoded-pts", G_TYPE_UINT64, id * GST_SECOND,
      "scene-distance", G_TYPE_DOUBLE, -1.0, "n-prompt-tokens", G_TYPE_INT, 30,
      "n-reused-positions", G_TYPE_INT, 0, "n-draft", G_TYPE_INT, 0,
      "n-accepted", G_TYPE_INT, 0, "draft-acceptance", G_TYPE_DOUBLE, 0.0, NULL);
}

static gboolean
copy_field (GQuark field, const GValue * value, gpointer dest)
{
  gst_structure_id_set_value ((GstStructure *) dest, field, value);
  return TRUE;
}

/* Adds a FastVLMCaptionMeta with @fields (taken) to @buf. */
static void
add_meta (GstBuffer * buf, GstStructure * fields)
{
  GstCustomMeta *meta = gst_buffer_add_custom_meta (buf, FVLM_META_NAME);

  fail_unless (meta != NULL, "FastVLMCaptionMeta not registered (plugin loaded?)");
  gst_structure_foreach (fields, copy_field,
      gst_custom_meta_get_structure (meta));
  gst_structure_free (fields);
}

/* A 4x4 GRAY8 frame with @n_metas captions numbered from @first_id. */
static GstBuffer *
meta_buffer (GstClockTime pts, guint64 first_id, guint n_metas)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 16, NULL);

  gst_buffer_memset (buf, 0, 0x5a, 16);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = 100 * MS;
  for (guint i = 0; i < n_metas; i++)
    add_meta (buf, caption_fields (first_id + i, NASTY_TEXT));
  return buf;
}

/* A fastvlmjsonwriter named @name with "prop", value, ... set. */
static GstElement *
writer_new (const gchar * name, const gchar * first_prop, ...)
{
  GstElement *e = gst_element_factory_make ("fastvlmjsonwriter", name);
  va_list args;

  fail_unless (e != NULL, "fastvlmjsonwriter not found: check GST_PLUGIN_PATH_1_0");
  if (first_prop) {
    va_start (args, first_prop);
    g_object_set_valist (G_OBJECT (e), first_prop, args);
    va_end (args);
  }
  return e;
}

/* A harness owning @e, playing, with raw video caps. */
static GstHarness *
writer_harness (GstElement * e)
{
  GstHarness *h;

  gst_object_ref_sink (e);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_play (h);
  gst_harness_set_src_caps_str (h,
      "video/x-raw, format=GRAY8, width=4, height=4, framerate=10/1");
  return h;
}

static GType
caption_api (void)
{
  const GstMetaInfo *info = gst_meta_get_info (FVLM_META_NAME);

  fail_unless (info != NULL);
  return info->api;
}

/* Pushes @buf, checks the very same buffer comes out with its metas. */
static void
push_through (GstHarness * h, GstBuffer * buf)
{
  guint n_meta = gst_buffer_get_n_meta (buf, caption_api ());
  GstBuffer *out;

  gst_buffer_ref (buf);
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out == buf, "passthrough: not the same buffer");
  fail_unless_equals_int (gst_buffer_get_n_meta (out, caption_api ()),
      n_meta);
  gst_buffer_unref (out);
  gst_buffer_unref (buf);
}

/* Every line of @data (all '\n'-terminated) parsed back by json-glib, each an object. */
static GPtrArray *
parse_lines (const gchar * data, gsize len)
{
  GPtrArray *objects =
      g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  gchar **lines;

  if (len == 0)
    return objects;
  fail_unless (data[len - 1] == '\n', "last line not terminated");
  fail_unless (strlen (data) == len, "NUL byte in the output");
  lines = g_strsplit (data, "\n", -1);
  for (guint i = 0; lines[i + 1] != NULL; i++) {
    JsonParser *parser = json_parser_new ();
    GError *err = NULL;
    JsonNode *root;

    fail_unless (json_parser_load_from_data (parser, lines[i], -1, &err),
        "line %u is not JSON (%s): %.200s", i + 1, err ? err->message : "",
        lines[i]);
    root = json_parser_get_root (parser);
    fail_unless (root != NULL && JSON_NODE_HOLDS_OBJECT (root),
        "line %u is not an object: %.200s", i + 1, lines[i]);
    g_ptr_array_add (objects, json_object_ref (json_node_get_object (root)));
    g_object_unref (parser);
  }
  g_strfreev (lines);
  return objects;
}

static GPtrArray *
read_lines (const gchar * path, gchar ** raw)
{
  gchar *data = NULL;
  gsize len = 0;
  GError *err = NULL;
  GPtrArray *objects;

  fail_unless (g_file_get_contents (path, &data, &len, &err), "%s: %s", path,
      err ? err->message : "");
  objects = parse_lines (data, len);
  if (raw)
    *raw = data;
  else
    g_free (data);
  return objects;
}

static gboolean
holds (JsonNode * node, GType type)
{
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == type;
}

/* The documented fields, each of its documented JSON type; with @exact, no other. */
static void
check_schema_full (JsonObject * o, gboolean exact)
{
  GRegex *iso = g_regex_new ("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$",
      0, 0, NULL);
  const gchar *wall;
  GDateTime *dt;
  gint64 us;

  for (guint i = 0; i < G_N_ELEMENTS (schema); i++) {
    JsonNode *n = json_object_get_member (o, schema[i].name);
    gboolean ok = FALSE;

    fail_unless (n != NULL, "field %s missing", schema[i].name);
    switch (schema[i].type) {
      case T_STRING:
        ok = holds (n, G_TYPE_STRING);
        break;
      case T_INT:
        ok = holds (n, G_TYPE_INT64);
        break;
      case T_INT_OR_NULL:
        ok = JSON_NODE_HOLDS_NULL (n) || holds (n, G_TYPE_INT64);
        break;
      case T_DOUBLE:
        ok = holds (n, G_TYPE_DOUBLE);
        break;
      case T_BOOL:
        ok = holds (n, G_TYPE_BOOLEAN);
        break;
    }
    fail_unless (ok, "field %s has the wrong JSON type", schema[i].name);
  }
  if (exact)
    fail_unless_equals_int (json_object_get_size (o), G_N_ELEMENTS (schema));

  /* wall-time and wall-time-us are the same instant (to the millisecond) */
  wall = json_object_get_string_member (o, "wall-time");
  fail_unless (g_regex_match (iso, wall, 0, NULL), "wall-time %s", wall);
  dt = g_date_time_new_from_iso8601 (wall, NULL);
  fail_unless (dt != NULL);
  us = json_object_get_int_member (o, "wall-time-us");
  fail_unless_equals_int64 (g_date_time_to_unix (dt) * G_USEC_PER_SEC +
      g_date_time_get_microsecond (dt), us / 1000 * 1000);
  g_date_time_unref (dt);
  g_regex_unref (iso);
}

static void
check_schema (JsonObject * o)
{
  check_schema_full (o, TRUE);
}

/* Every field of @fields is in @o under its name, mapped as documented (an independent
 * statement of the mapping), and @o has nothing else but the writer's four fields. */
static void
check_same_fields (JsonObject * o, const GstStructure * fields)
{
  gint n = gst_structure_n_fields (fields);

  for (gint i = 0; i < n; i++) {
    const gchar *name = gst_structure_nth_field_name (fields, i);
    const GValue *v = gst_structure_get_value (fields, name);
    JsonNode *node = json_object_get_member (o, name);
    GType t = G_VALUE_TYPE (v);

    fail_unless (node != NULL, "field %s not written", name);
    if (t == G_TYPE_STRING) {
      gchar *valid = g_utf8_make_valid (g_value_get_string (v), -1);

      fail_unless (holds (node, G_TYPE_STRING), "%s", name);
      fail_unless_equals_string (json_node_get_string (node), valid);
      g_free (valid);
    } else if (t == G_TYPE_BOOLEAN) {
      fail_unless (holds (node, G_TYPE_BOOLEAN), "%s", name);
      fail_unless (!json_node_get_boolean (node) == !g_value_get_boolean (v));
    } else if (t == G_TYPE_INT || t == G_TYPE_UINT || t == G_TYPE_INT64) {
      GValue as64 = G_VALUE_INIT;

      g_value_init (&as64, G_TYPE_INT64);
      fail_unless (g_value_transform (v, &as64));
      fail_unless (holds (node, G_TYPE_INT64), "%s", name);
      fail_unless_equals_int64 (json_node_get_int (node),
          g_value_get_int64 (&as64));
    } else if (t == G_TYPE_UINT64) {
      if (g_value_get_uint64 (v) > (guint64) G_MAXINT64) {
        fail_unless (JSON_NODE_HOLDS_NULL (node), "%s", name);
      } else {
        fail_unless (holds (node, G_TYPE_INT64), "%s", name);
        fail_unless_equals_int64 (json_node_get_int (node),
            g_value_get_uint64 (v));
      }
    } else if (t == G_TYPE_DOUBLE) {
      if (!isfinite (g_value_get_double (v))) {
        fail_unless (JSON_NODE_HOLDS_NULL (node), "%s", name);
      } else {
        fail_unless (holds (node, G_TYPE_DOUBLE), "%s", name);
        /* exact: the shortest decimal that reads back as the same double */
        fail_unless (json_node_get_double (node) == g_value_get_double (v),
            "%s: %.17g != %.17g", name, json_node_get_double (node),
            g_value_get_double (v));
      }
    }
  }
  fail_unless_equals_int (json_object_get_size (o), 4 + n);
}

/* The values of caption_fields (@id) came back; @pts is the carrying buffer's. */
static void
check_values (JsonObject * o, guint64 id, GstClockTime pts, const gchar * stream)
{
  check_schema (o);
  fail_unless_equals_string (json_object_get_string_member (o, "stream"), stream);
  if (GST_CLOCK_TIME_IS_VALID (pts)) {
    fail_unless_equals_int64 (json_object_get_int_member (o, "buffer-pts"), pts);
  } else {
    fail_unless (json_object_get_null_member (o, "buffer-pts"));
  }
  fail_unless_equals_string (json_object_get_string_member (o, "text"),
      NASTY_TEXT);
  fail_unless_equals_string (json_object_get_string_member (o, "prompt"),
      "Describe the image.");
  fail_unless_equals_int64 (json_object_get_int_member (o, "prompt-id"), 7);
  fail_unless_equals_int64 (json_object_get_int_member (o, "caption-id"), id);
  fail_unless_equals_int64 (json_object_get_int_member (o, "frame-pts"),
      id * GST_SECOND);
  fail_unless (json_object_get_null_member (o, "frame-duration"));
  fail_unless (json_object_get_null_member (o, "started-running-time"));
  fail_unless_equals_int64 (json_object_get_int_member (o,
          "ended-running-time"), 5);
  fail_unless_equals_float (json_object_get_double_member (o, "latency-ms"),
      12.3);
  fail_unless_equals_float (json_object_get_double_member (o, "queue-ms"), 0.0);
  fail_unless_equals_float (json_object_get_double_member (o, "preprocess-ms"),
      1e20);
  fail_unless_equals_float (json_object_get_double_member (o, "vision-ms"),
      0.1 + 0.2);
  fail_unless_equals_float (json_object_get_double_member (o, "prefill-ms"),
      1.5e-7);
  fail_unless_equals_float (json_object_get_double_member (o, "decode-ms"),
      3.0);
  fail_unless_equals_int64 (json_object_get_int_member (o, "n-tokens"), 4);
  fail_unless_equals_float (json_object_get_double_member (o,
          "tokens-per-second"), 1333.25);
  fail_unless (json_object_get_boolean_member (o, "truncated"));
  fail_unless_equals_string (json_object_get_string_member (o, "stop-reason"),
      "length");
  fail_unless (!json_object_get_boolean_member (o, "reused"));
}

static gchar *
tmp_path (gchar ** dir, const gchar * name)
{
  *dir = g_dir_make_tmp ("fastvlm-json-XXXXXX", NULL);
  fail_unless (*dir != NULL);
  return g_build_filename (*dir, name, NULL);
}

static void
remove_tmp (gchar * dir, gchar * path)
{
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
}

GST_START_TEST (test_lines_and_schema)
{
  gchar *dir, *path = tmp_path (&dir, "c.jsonl"), *raw = NULL;
  GstElement *e = writer_new ("jw", "location", path, NULL);
  GstHarness *h = writer_harness (e);
  GPtrArray *lines;

  push_through (h, meta_buffer (0, 1, 1));
  push_through (h, meta_buffer (100 * MS, 0, 0));       /* no meta: no line */
  push_through (h, meta_buffer (200 * MS, 2, 2));       /* two metas: two lines */
  push_through (h, meta_buffer (GST_CLOCK_TIME_NONE, 4, 1));
  /* flush-every-line: each line is in the file while the element still runs */
  lines = read_lines (path, NULL);
  fail_unless_equals_int (lines->len, 4);
  g_ptr_array_unref (lines);
  gst_harness_teardown (h);

  lines = read_lines (path, &raw);
  fail_unless_equals_int (lines->len, 4);
  /* no upstream fastvlmcaption: the stream is the writer's own name */
  check_values (g_ptr_array_index (lines, 0), 1, 0, "jw");
  check_values (g_ptr_array_index (lines, 1), 2, 200 * MS, "jw");
  check_values (g_ptr_array_index (lines, 2), 3, 200 * MS, "jw");
  check_values (g_ptr_array_index (lines, 3), 4, GST_CLOCK_TIME_NONE, "jw");
  /* numbers as a person would write them, still read back as doubles */
  fail_unless (strstr (raw, "\"latency-ms\":12.3,") != NULL, "%s", raw);
  fail_unless (strstr (raw, "\"decode-ms\":3.0,") != NULL, "%s", raw);
  fail_unless (strstr (raw, "\"preprocess-ms\":1e+20,") != NULL, "%s", raw);
  fail_unless (strstr (raw, "\"frame-duration\":null,") != NULL, "%s", raw);
  /* the writer's fields first, then the meta's in its order */
  fail_unless (g_str_has_prefix (raw, "{\"stream\":\"jw\",\"wall-time\":"));
  g_free (raw);
  g_ptr_array_unref (lines);
  remove_tmp (dir, path);
}

GST_END_TEST;

GST_START_TEST (test_value_mapping)
{
  gchar *dir, *path = tmp_path (&dir, "m.jsonl");
  GstElement *e = writer_new (NULL, "location", path, "stream-name", "cam-1",
      NULL);
  GstHarness *h = writer_harness (e);
  GstBuffer *buf = meta_buffer (0, 0, 0);
  GstCaps *caps = gst_caps_from_string ("video/x-raw, width=(int)4");
  GPtrArray *lines;
  JsonObject *o;

  /* fields a future meta might carry: every GValue type has a JSON form */
  add_meta (buf, gst_structure_new ("fastvlm-caption",
          "stream", G_TYPE_STRING, "not the stream",    /* the writer's field wins */
          "neg", G_TYPE_INT64, G_GINT64_CONSTANT (-5),
          "big", G_TYPE_UINT64, G_MAXUINT64,
          "nan", G_TYPE_DOUBLE, NAN,
          "inf", G_TYPE_DOUBLE, INFINITY,
          "f", G_TYPE_FLOAT, 0.5f,
          "none", G_TYPE_STRING, NULL,
          "caps", GST_TYPE_CAPS, caps, NULL));
  push_through (h, buf);
  gst_harness_teardown (h);
  gst_caps_unref (caps);

  lines = read_lines (path, NULL);
  fail_unless_equals_int (lines->len, 1);
  o = g_ptr_array_index (lines, 0);
  fail_unless_equals_string (json_object_get_string_member (o, "stream"),
      "cam-1");
  fail_unless_equals_int64 (json_object_get_int_member (o, "neg"), -5);
  fail_unless (json_object_get_null_member (o, "big"));
  fail_unless (json_object_get_null_member (o, "nan"));
  fail_unless (json_object_get_null_member (o, "inf"));
  fail_unless (holds (json_object_get_member (o, "f"), G_TYPE_DOUBLE));
  fail_unless_equals_float (json_object_get_double_member (o, "f"), 0.5);
  fail_unless (json_object_get_null_member (o, "none"));
  fail_unless (strstr (json_object_get_string_member (o, "caps"),
          "video/x-raw") != NULL);
  /* 4 of the writer + 7 of the meta ("stream" once) */
  fail_unless_equals_int (json_object_get_size (o), 4 + 7);
  g_ptr_array_unref (lines);
  remove_tmp (dir, path);
}

GST_END_TEST;

/* Runs a writer with @location (NULL: unset) and fd -1 with fd 1 redirected to a file;
 * returns what reached fd 1. */
static gchar *
capture_stdout (const gchar * location, gsize * len)
{
  gchar *dir, *path = tmp_path (&dir, "stdout");
  gint saved = dup (STDOUT_FILENO);
  gint fd = g_open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  GstElement *e = writer_new (NULL, "location", location, NULL);
  GstHarness *h;
  gchar *data = NULL;

  fail_unless (saved >= 0 && fd >= 0);
  fflush (stdout);
  fail_unless (dup2 (fd, STDOUT_FILENO) == STDOUT_FILENO);
  close (fd);
  h = writer_harness (e);
  push_through (h, meta_buffer (0, 1, 1));
  push_through (h, meta_buffer (100 * MS, 0, 0));
  push_through (h, meta_buffer (200 * MS, 2, 1));
  gst_harness_teardown (h);
  fflush (stdout);
  fail_unless (dup2 (saved, STDOUT_FILENO) == STDOUT_FILENO);
  close (saved);
  fail_unless (g_file_get_contents (path, &data, len, NULL));
  remove_tmp (dir, path);
  return data;
}

GST_START_TEST (test_stdout)
{
  const gchar *locations[] = { NULL, "-" };

  for (guint i = 0; i < G_N_ELEMENTS (locations); i++) {
    gsize len;
    gchar *data = capture_stdout (locations[i], &len);
    GPtrArray *lines = parse_lines (data, len);

    fail_unless_equals_int (lines->len, 2);
    fail_unless_equals_int64 (json_object_get_int_member (g_ptr_array_index
            (lines, 1), "caption-id"), 2);
    check_schema (g_ptr_array_index (lines, 0));
    g_ptr_array_unref (lines);
    g_free (data);
  }
}

GST_END_TEST;

GST_START_TEST (test_fd)
{
  gint p[2];
  GstElement *e;
  GstHarness *h;
  gchar *name;
  gchar buf[65536];
  GString *got = g_string_new (NULL);
  GPtrArray *lines;
  ssize_t n;

  fail_unless (pipe (p) == 0);
  /* location "-" defers to fd */
  e = writer_new (NULL, "fd", p[1], "location", "-", NULL);
  h = writer_harness (e);
  name = gst_element_get_name (e);
  for (guint i = 1; i <= 3; i++)
    push_through (h, meta_buffer (i * 100 * MS, i, 1));
  gst_harness_teardown (h);

  /* the element did not close a descriptor it did not open */
  fail_unless (fcntl (p[1], F_GETFD) != -1, "fd closed by the element");
  close (p[1]);
  while ((n = read (p[0], buf, sizeof buf)) > 0)
    g_string_append_len (got, buf, n);
  close (p[0]);
  lines = parse_lines (got->str, got->len);
  fail_unless_equals_int (lines->len, 3);
  for (guint i = 0; i < 3; i++)
    check_values (g_ptr_array_index (lines, i), i + 1, (i + 1) * 100 * MS,
        name);
  g_ptr_array_unref (lines);
  g_free (name);
  g_string_free (got, TRUE);
}

GST_END_TEST;

/* One run of a writer on @path writing captions @first_id.. (@n of them). */
static void
run_writer (const gchar * path, gboolean append, guint64 first_id, guint n)
{
  GstElement *e = writer_new (NULL, "location", path, "append", append, NULL);
  GstHarness *h = writer_harness (e);

  for (guint i = 0; i < n; i++)
    push_through (h, meta_buffer (i * 100 * MS, first_id + i, 1));
  gst_harness_teardown (h);
}

GST_START_TEST (test_append)
{
  gchar *dir, *path = tmp_path (&dir, "a.jsonl");
  GPtrArray *lines;

  fail_unless (g_file_set_contents (path, "{\"old\":1}\n", -1, NULL));
  run_writer (path, TRUE, 1, 2);
  run_writer (path, TRUE, 3, 2);
  lines = read_lines (path, NULL);
  fail_unless_equals_int (lines->len, 5);
  fail_unless (json_object_has_member (g_ptr_array_index (lines, 0), "old"));
  for (guint i = 1; i < 5; i++)
    fail_unless_equals_int64 (json_object_get_int_member (g_ptr_array_index
            (lines, i), "caption-id"), i);
  g_ptr_array_unref (lines);

  /* default: truncated */
  run_writer (path, FALSE, 9, 1);
  lines = read_lines (path, NULL);
  fail_unless_equals_int (lines->len, 1);
  fail_unless_equals_int64 (json_object_get_int_member (g_ptr_array_index
          (lines, 0), "caption-id"), 9);
  g_ptr_array_unref (lines);
  remove_tmp (dir, path);
}

GST_END_TEST;

/* READY->PAUSED fails with RESOURCE/OPEN_WRITE whose text contains @needle. */
static void
check_open_fails (GstElement * writer, const gchar * needle)
{
  GstElement *p = gst_pipeline_new (NULL);
  GstElement *src = gst_element_factory_make ("fakesrc", NULL);
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  GstMessage *msg;
  GError *err = NULL;
  gchar *dbg = NULL;

  gst_bin_add_many (GST_BIN (p), src, writer, sink, NULL);
  fail_unless (gst_element_link_many (src, writer, sink, NULL));
  fail_unless_equals_int (gst_element_set_state (p, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = fvlm_test_pop_message (GST_ELEMENT_BUS (p), GST_MESSAGE_ERROR, NULL, 0);
  fail_unless (msg != NULL, "no ERROR message");
  fail_unless (GST_MESSAGE_SRC (msg) == GST_OBJECT (writer));
  gst_message_parse_error (msg, &err, &dbg);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_OPEN_WRITE), "%s", err->message);
  fail_unless (strstr (err->message, needle) != NULL, "\"%s\" not in \"%s\"",
      needle, err->message);
  g_error_free (err);
  g_free (dbg);
  gst_message_unref (msg);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (p);
}

GST_START_TEST (test_open_errors)
{
  gchar *dir, *path = tmp_path (&dir, "no/such/dir/c.jsonl");
  gint ro = g_open ("/dev/null", O_RDONLY, 0);
  gint closed = 1000;

  /* a descriptor nothing uses (low numbers get reused by the pipeline's own fds) */
  while (fcntl (closed, F_GETFD) != -1)
    closed++;

  check_open_fails (writer_new (NULL, "location", path, NULL), path);
  /* a directory (not a permission test: the tests may run as root) */
  check_open_fails (writer_new (NULL, "location", dir, NULL), dir);
  check_open_fails (writer_new (NULL, "fd", ro, NULL), "fd ");
  check_open_fails (writer_new (NULL, "fd", closed, NULL), "fd ");
  close (ro);
  g_free (path);
  g_rmdir (dir);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_write_error)
{
  GstElement *e;
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;

  if (!g_file_test ("/dev/full", G_FILE_TEST_EXISTS)) {
    GST_INFO ("no /dev/full: skipped");
    gst_object_unref (bus);
    return;
  }
  e = writer_new (NULL, "location", "/dev/full", NULL);
  gst_element_set_bus (e, bus);
  h = writer_harness (e);
  /* nothing to write: no error */
  fail_unless_equals_int (gst_harness_push (h, meta_buffer (0, 0, 0)),
      GST_FLOW_OK);
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR) == NULL);
  fail_unless_equals_int (gst_harness_push (h, meta_buffer (0, 1, 1)),
      GST_FLOW_ERROR);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no ERROR message");
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (err->domain == GST_RESOURCE_ERROR, "%s", err->message);
  fail_unless (strstr (err->message, "/dev/full") != NULL, "%s", err->message);
  g_error_free (err);
  gst_message_unref (msg);
  gst_harness_teardown (h);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
}

GST_END_TEST;

GST_START_TEST (test_batched)
{
  gchar *dir, *path = tmp_path (&dir, "b.jsonl");
  GstElement *e = writer_new (NULL, "location", path, "flush-every-line", FALSE,
      NULL);
  GstHarness *h = writer_harness (e);
  GPtrArray *lines;
  GStatBuf st;
  gchar *long_text = g_strnfill (1500, 'x');
  GstBuffer *buf;

  push_through (h, meta_buffer (0, 1, 1));
  push_through (h, meta_buffer (100 * MS, 2, 1));
  fail_unless (g_stat (path, &st) == 0);
  fail_unless_equals_int64 (st.st_size, 0);     /* held back */
  /* past PIPE_BUF the batch goes out, complete lines only */
  for (guint i = 0; i < 4; i++) {
    buf = meta_buffer (0, 10 + i, 0);
    add_meta (buf, caption_fields (10 + i, long_text));
    push_through (h, buf);
  }
  lines = read_lines (path, NULL);
  fail_unless (lines->len >= 2 && lines->len < 6, "%u lines", lines->len);
  g_ptr_array_unref (lines);
  /* EOS writes the rest */
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  lines = read_lines (path, NULL);
  fail_unless_equals_int (lines->len, 6);
  g_ptr_array_unref (lines);
  gst_harness_teardown (h);
  g_free (long_text);
  remove_tmp (dir, path);
}

GST_END_TEST;

typedef struct
{
  GstHarness *h;
  guint n;
  const gchar *text;
} WriterThread;

static gpointer
writer_thread (gpointer data)
{
  WriterThread *w = data;

  for (guint i = 0; i < w->n; i++) {
    GstBuffer *buf = meta_buffer (i * MS, i, 0);

    add_meta (buf, caption_fields (i, w->text));
    if (gst_harness_push (w->h, buf) != GST_FLOW_OK)
      return GINT_TO_POINTER (FALSE);
    gst_buffer_unref (gst_harness_pull (w->h));
  }
  return GINT_TO_POINTER (TRUE);
}

/* Two writers on one O_APPEND descriptor: every line intact, none lost. */
GST_START_TEST (test_two_writers_one_fd)
{
  gchar *dir, *path = tmp_path (&dir, "shared.jsonl");
  gint fd = g_open (path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  WriterThread w[2];
  GThread *t[2];
  GPtrArray *lines;
  guint count[2] = { 0, 0 };
  gchar *texts[2] = { g_strnfill (3000, 'a'), g_strnfill (3000, 'b') };
  const guint n = 150;

  fail_unless (fd >= 0);
  for (guint i = 0; i < 2; i++) {
    gchar *name = g_strdup_printf ("w%u", i);

    w[i].h = writer_harness (writer_new (name, "fd", fd, NULL));
    w[i].n = n;
    w[i].text = texts[i];
    g_free (name);
  }
  for (guint i = 0; i < 2; i++)
    t[i] = g_thread_new ("writer", writer_thread, &w[i]);
  for (guint i = 0; i < 2; i++) {
    fail_unless (g_thread_join (t[i]));
    gst_harness_teardown (w[i].h);
  }
  close (fd);

  lines = read_lines (path, NULL);
  fail_unless_equals_int (lines->len, 2 * n);
  for (guint i = 0; i < lines->len; i++) {
    JsonObject *o = g_ptr_array_index (lines, i);
    guint k = strcmp (json_object_get_string_member (o, "stream"), "w0") ? 1 : 0;

    fail_unless_equals_string (json_object_get_string_member (o, "text"),
        texts[k]);
    count[k]++;
  }
  fail_unless_equals_int (count[0], n);
  fail_unless_equals_int (count[1], n);
  g_ptr_array_unref (lines);
  g_free (texts[0]);
  g_free (texts[1]);
  remove_tmp (dir, path);
}

GST_END_TEST;

/* The real thing: fastvlmcaption (tiny model) -> videoconvert -> videoscale -> writer.
 * One line per fastvlm-caption message, with the same values. */
GST_START_TEST (test_tiny_model_pipeline)
{
  gchar *dir, *path = tmp_path (&dir, "p.jsonl");
  gchar *desc = g_strdup_printf ("videotestsrc num-buffers=20 ! "
      "video/x-raw,width=64,height=48,framerate=10/1 ! "
      "fastvlmcaption name=cap model=\"%s\" mmproj=\"%s\" threads=1 mode=offline "
      "interval=500000000 max-new-tokens=4 ! videoconvert ! videoscale ! "
      "video/x-raw,format=I420,width=32,height=24 ! queue ! "
      "fastvlmjsonwriter location=\"%s\" ! fakesink", fvlm_test_model (),
      fvlm_test_mmproj (), path);
  GError *error = NULL;
  GstElement *p = gst_parse_launch (desc, &error);
  GPtrArray *messages = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_structure_free);
  GPtrArray *lines;
  GstMessage *msg;

  fail_unless (p != NULL, "%s: %s", desc, error ? error->message : "");
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  while ((msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p),
              120 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR |
              GST_MESSAGE_ELEMENT))) {
    const GstStructure *s = gst_message_get_structure (msg);

    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *err = NULL;

      gst_message_parse_error (msg, &err, NULL);
      fail ("%s", err->message);
    }
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
      gst_message_unref (msg);
      break;
    }
    if (gst_structure_has_name (s, "fastvlm-caption"))
      g_ptr_array_add (messages, gst_structure_copy (s));
    gst_message_unref (msg);
  }
  fail_unless (msg != NULL, "no EOS in 2 minutes");
  gst_element_set_state (p, GST_STATE_NULL);

  lines = read_lines (path, NULL);
  /* 2 s of video sampled every 0.5 s */
  fail_unless_equals_int (messages->len, 4);
  fail_unless_equals_int (lines->len, messages->len);
  for (guint i = 0; i < lines->len; i++) {
    JsonObject *o = g_ptr_array_index (lines, i);
    const GstStructure *s = g_ptr_array_index (messages, i);
    guint64 id, pts;

    /* the meta may have gained fields since the table: all are written */
    check_schema_full (o, FALSE);
    check_same_fields (o, s);
    fail_unless (gst_structure_get_uint64 (s, "caption-id", &id));
    fail_unless (gst_structure_get_uint64 (s, "frame-pts", &pts));
    fail_unless_equals_string (json_object_get_string_member (o, "stream"),
        "cap");
    fail_unless_equals_int64 (json_object_get_int_member (o, "caption-id"), id);
    fail_unless_equals_int64 (json_object_get_int_member (o, "frame-pts"), pts);
    /* offline: the meta is on the described frame */
    fail_unless_equals_int64 (json_object_get_int_member (o, "buffer-pts"), pts);
    fail_unless_equals_int64 (pts, i * 500 * MS);
  }
  g_ptr_array_unref (lines);
  g_ptr_array_unref (messages);
  gst_object_unref (p);
  g_free (desc);
  remove_tmp (dir, path);
}

GST_END_TEST;

static Suite *
fastvlmjsonwriter_suite (void)
{
  Suite *s = suite_create ("fastvlmjsonwriter");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_lines_and_schema);
  tcase_add_test (tc, test_value_mapping);
  tcase_add_test (tc, test_stdout);
  tcase_add_test (tc, test_fd);
  tcase_add_test (tc, test_append);
  tcase_add_test (tc, test_open_errors);
  tcase_add_test (tc, test_write_error);
  tcase_add_test (tc, test_batched);
  tcase_add_test (tc, test_two_writers_one_fd);
  tcase_add_test (tc, test_tiny_model_pipeline);
  return s;
}

GST_CHECK_MAIN (fastvlmjsonwriter);
