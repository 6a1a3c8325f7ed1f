/* test-config.c — unit tests of the YAML preset loader (gst/fastvlm-config.c).
 *
 * What it is: a GLib test program that applies YAML files written into a temporary
 * directory to TestSettings, a small GObject with one property of every type the loader
 * converts (plus read-only, construct-only and object-typed ones it must refuse), and checks
 * the values set, the error codes, and the "FILE:LINE:COLUMN:" position of each error.
 *
 * What it is not: a test of the fastvlmcaption element (test-presets.c loads the shipped
 * presets onto the real element); it needs no GStreamer at all.
 */
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <glib-object.h>

#include "fastvlm-config.h"

/* ---------------------------------------------------------------------------------------- */
/* TestSettings: the object under configuration                                              */

typedef enum { TEST_MODE_LIVE, TEST_MODE_OFFLINE, TEST_MODE_AUTO } TestMode;
typedef enum { TEST_OUT_META = 1, TEST_OUT_TEXT = 2, TEST_OUT_MESSAGE = 4 } TestOutputs;

static GType
test_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { TEST_MODE_LIVE, "TEST_MODE_LIVE", "live" },
    { TEST_MODE_OFFLINE, "TEST_MODE_OFFLINE", "offline" },
    { TEST_MODE_AUTO, "TEST_MODE_AUTO", "auto" },
    { 0, NULL, NULL },
  };
  if (!type)
    type = g_enum_register_static ("TestMode", values);
  return type;
}

static GType
test_outputs_get_type (void)
{
  static GType type = 0;
  static const GFlagsValue values[] = {
    { TEST_OUT_META, "TEST_OUT_META", "meta" },
    { TEST_OUT_TEXT, "TEST_OUT_TEXT", "text" },
    { TEST_OUT_MESSAGE, "TEST_OUT_MESSAGE", "message" },
    { 0, NULL, NULL },
  };
  if (!type)
    type = g_flags_register_static ("TestOutputs", values);
  return type;
}

#define TEST_TYPE_SETTINGS (test_settings_get_type ())
G_DECLARE_FINAL_TYPE (TestSettings, test_settings, TEST, SETTINGS, GObject)

struct _TestSettings {
  GObject parent;
  gchar *model, *mmproj, *prompt, *config;
  gint max_new_tokens;
  gint image_size;              /* a multiple of 64 (the loader's step rule) */
  guint threads;
  glong nice;
  gulong buffer_size;
  gint64 offset;                /* plain signed 64-bit, not a duration */
  gint64 delay;                 /* signed duration, ns */
  guint64 seed;                 /* unsigned 64-bit, not a duration */
  guint64 interval;             /* ns */
  guint64 max_latency;          /* ns, at most 60 s */
  gfloat temperature;
  gdouble top_p;
  gboolean overlay;
  TestMode mode;
  guint outputs;
  gint id;                      /* construct-only */
  GObject *peer;                /* object-typed: no text form */
  guint n_set;                  /* set_property calls since the last reset */
};

enum {
  PROP_0, PROP_MODEL, PROP_MMPROJ, PROP_PROMPT, PROP_CONFIG, PROP_MAX_NEW_TOKENS, PROP_THREADS,
  PROP_NICE, PROP_BUFFER_SIZE, PROP_OFFSET, PROP_DELAY, PROP_SEED, PROP_INTERVAL,
  PROP_MAX_LATENCY, PROP_TEMPERATURE, PROP_TOP_P, PROP_OVERLAY, PROP_MODE, PROP_OUTPUTS,
  PROP_ID, PROP_PEER, PROP_STATS, PROP_IMAGE_SIZE,
};

G_DEFINE_TYPE (TestSettings, test_settings, G_TYPE_OBJECT)

static void
test_settings_set_property (GObject * object, guint id, const GValue * v, GParamSpec * pspec)
{
  TestSettings *self = TEST_SETTINGS (object);

  self->n_set++;
  switch (id) {
    case PROP_MODEL: g_free (self->model); self->model = g_value_dup_string (v); break;
    case PROP_MMPROJ: g_free (self->mmproj); self->mmproj = g_value_dup_string (v); break;
    case PROP_PROMPT: g_free (self->prompt); self->prompt = g_value_dup_string (v); break;
    case PROP_CONFIG: g_free (self->config); self->config = g_value_dup_string (v); break;
    case PROP_MAX_NEW_TOKENS: self->max_new_tokens = g_value_get_int (v); break;
    case PROP_THREADS: self->threads = g_value_get_uint (v); break;
    case PROP_NICE: self->nice = g_value_get_long (v); break;
    case PROP_BUFFER_SIZE: self->buffer_size = g_value_get_ulong (v); break;
    case PROP_OFFSET: self->offset = g_value_get_int64 (v); break;
    case PROP_DELAY: self->delay = g_value_get_int64 (v); break;
    case PROP_SEED: self->seed = g_value_get_uint64 (v); break;
    case PROP_INTERVAL: self->interval = g_value_get_uint64 (v); break;
    case PROP_MAX_LATENCY: self->max_latency = g_value_get_uint64 (v); break;
    case PROP_TEMPERATURE: self->temperature = g_value_get_float (v); break;
    case PROP_TOP_P: self->top_p = g_value_get_double (v); break;
    case PROP_OVERLAY: self->overlay = g_value_get_boolean (v); break;
    case PROP_MODE: self->mode = g_value_get_enum (v); break;
    case PROP_OUTPUTS: self->outputs = g_value_get_flags (v); break;
    case PROP_ID: self->id = g_value_get_int (v); break;
    case PROP_PEER: g_set_object (&self->peer, g_value_get_object (v)); break;
    case PROP_IMAGE_SIZE: self->image_size = g_value_get_int (v); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec); break;
  }
}

static void
test_settings_get_property (GObject * object, guint id, GValue * v, GParamSpec * pspec)
{
  TestSettings *self = TEST_SETTINGS (object);

  switch (id) {
    case PROP_STATS: g_value_set_string (v, "frames=0"); break;
    case PROP_MODEL: g_value_set_string (v, self->model); break;
    case PROP_PROMPT: g_value_set_string (v, self->prompt); break;
    case PROP_MAX_NEW_TOKENS: g_value_set_int (v, self->max_new_tokens); break;
    case PROP_INTERVAL: g_value_set_uint64 (v, self->interval); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec); break;
  }
}

static void
test_settings_finalize (GObject * object)
{
  TestSettings *self = TEST_SETTINGS (object);

  g_free (self->model);
  g_free (self->mmproj);
  g_free (self->prompt);
  g_free (self->config);
  g_clear_object (&self->peer);
  G_OBJECT_CLASS (test_settings_parent_class)->finalize (object);
}

static void
test_settings_class_init (TestSettingsClass * klass)
{
  GObjectClass *oc = G_OBJECT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  oc->set_property = test_settings_set_property;
  oc->get_property = test_settings_get_property;
  oc->finalize = test_settings_finalize;

  g_object_class_install_property (oc, PROP_MODEL,
      g_param_spec_string ("model", "Model", "LLM GGUF path", NULL, rw));
  g_object_class_install_property (oc, PROP_MMPROJ,
      g_param_spec_string ("mmproj", "Mmproj", "Vision GGUF path", NULL, rw));
  g_object_class_install_property (oc, PROP_PROMPT,
      g_param_spec_string ("prompt", "Prompt", "Prompt", NULL, rw));
  g_object_class_install_property (oc, PROP_CONFIG,
      g_param_spec_string ("config", "Config", "YAML preset", NULL, rw));
  g_object_class_install_property (oc, PROP_MAX_NEW_TOKENS,
      g_param_spec_int ("max-new-tokens", "Max", "Max tokens", 1, 4096, 64, rw));
  g_object_class_install_property (oc, PROP_THREADS,
      g_param_spec_uint ("threads", "Threads", "Threads", 0, 256, 0, rw));
  g_object_class_install_property (oc, PROP_NICE,
      g_param_spec_long ("nice", "Nice", "Nice", -20, 19, 0, rw));
  g_object_class_install_property (oc, PROP_BUFFER_SIZE,
      g_param_spec_ulong ("buffer-size", "Size", "Size", 16, G_MAXULONG, 16, rw));
  g_object_class_install_property (oc, PROP_OFFSET,
      g_param_spec_int64 ("offset", "Offset", "Offset", G_MININT64, G_MAXINT64, 0, rw));
  g_object_class_install_property (oc, PROP_DELAY,
      g_param_spec_int64 ("delay", "Delay", "Delay (ns)", -10 * G_GINT64_CONSTANT (1000000000),
          10 * G_GINT64_CONSTANT (1000000000), 0, rw));
  g_object_class_install_property (oc, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed", "Seed", 0, G_MAXUINT64, 0, rw));
  g_object_class_install_property (oc, PROP_INTERVAL,
      g_param_spec_uint64 ("interval", "Interval", "Interval (ns)", 0, G_MAXUINT64,
          G_GUINT64_CONSTANT (1000000000), rw));
  g_object_class_install_property (oc, PROP_MAX_LATENCY,
      g_param_spec_uint64 ("max-latency", "Latency", "Latency (ns)", 0,
          60 * G_GUINT64_CONSTANT (1000000000), 0, rw));
  g_object_class_install_property (oc, PROP_TEMPERATURE,
      g_param_spec_float ("temperature", "Temp", "Temp", 0.0f, 2.0f, 0.0f, rw));
  g_object_class_install_property (oc, PROP_TOP_P,
      g_param_spec_double ("top-p", "Top-p", "Top-p", 0.0, 1.0, 1.0, rw));
  g_object_class_install_property (oc, PROP_OVERLAY,
      g_param_spec_boolean ("overlay", "Overlay", "Overlay", FALSE, rw));
  g_object_class_install_property (oc, PROP_MODE,
      g_param_spec_enum ("mode", "Mode", "Mode", test_mode_get_type (), TEST_MODE_AUTO, rw));
  g_object_class_install_property (oc, PROP_OUTPUTS,
      g_param_spec_flags ("outputs", "Outputs", "Outputs", test_outputs_get_type (),
          TEST_OUT_META, rw));
  g_object_class_install_property (oc, PROP_ID,
      g_param_spec_int ("id", "Id", "Id", 0, 100, 0, rw | G_PARAM_CONSTRUCT_ONLY));
  g_object_class_install_property (oc, PROP_PEER,
      g_param_spec_object ("peer", "Peer", "Peer", G_TYPE_OBJECT, rw));
  g_object_class_install_property (oc, PROP_IMAGE_SIZE,
      g_param_spec_int ("image-size", "Size", "Side, a multiple of 64", 0, 4096, 0, rw));
  g_object_class_install_property (oc, PROP_STATS,
      g_param_spec_string ("stats", "Stats", "Stats", NULL,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
}

static void
test_settings_init (TestSettings * self)
{
  self->max_new_tokens = 64;
  self->buffer_size = 16;
  self->interval = G_GUINT64_CONSTANT (1000000000);
  self->top_p = 1.0;
  self->mode = TEST_MODE_AUTO;
  self->outputs = TEST_OUT_META;
}

static TestSettings *
settings_new (void)
{
  TestSettings *s = g_object_new (TEST_TYPE_SETTINGS, NULL);
  s->n_set = 0;
  return s;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static gchar *tmpdir;

/* Writes @len bytes (or a NUL-terminated string when @len < 0) to tmpdir/@name. */
static gchar *
write_file (const gchar * name, const gchar * contents, gssize len)
{
  gchar *path = g_build_filename (tmpdir, name, NULL);
  gchar *dir = g_path_get_dirname (path);
  GError *err = NULL;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  g_file_set_contents (path, contents, len, &err);
  g_assert_no_error (err);
  g_free (dir);
  return path;
}

/* Applies @yaml to a fresh TestSettings; returns it (caller unrefs) with @error set or not. */
static TestSettings *
apply_text (const gchar * yaml, GError ** error, gboolean * ok)
{
  gchar *path = write_file ("cfg.yaml", yaml, -1);
  TestSettings *s = settings_new ();

  *ok = fastvlm_config_apply (G_OBJECT (s), path, error);
  g_free (path);
  return s;
}

/* Asserts that @yaml is refused with @code at 1-based @line:@column, that the message
 * contains @needle, and that nothing was set on the object. */
static void
assert_refused (const gchar * yaml, FastvlmConfigError code, guint line, guint column,
    const gchar * needle)
{
  GError *err = NULL;
  gboolean ok;
  TestSettings *s = apply_text (yaml, &err, &ok);
  gchar *prefix = g_strdup_printf ("%s/cfg.yaml:%u:%u: ", tmpdir, line, column);

  if (g_test_verbose () && err)
    g_printerr ("  %s\n", err->message);
  g_assert_false (ok);
  g_assert_error (err, FASTVLM_CONFIG_ERROR, (gint) code);
  if (!g_str_has_prefix (err->message, prefix))
    g_error ("for %s\nexpected prefix \"%s\", got \"%s\"", yaml, prefix, err->message);
  if (needle && !strstr (err->message, needle))
    g_error ("for %s\nexpected \"%s\" in \"%s\"", yaml, needle, err->message);
  g_assert_cmpuint (s->n_set, ==, 0);
  g_free (prefix);
  g_error_free (err);
  g_object_unref (s);
}

/* Applies @yaml, which must succeed; returns the object. */
static TestSettings *
apply_ok (const gchar * yaml)
{
  GError *err = NULL;
  gboolean ok;
  TestSettings *s = apply_text (yaml, &err, &ok);

  if (!ok)
    g_error ("for %s\nunexpected error: %s", yaml, err->message);
  g_assert_true (ok);
  return s;
}

/* ---------------------------------------------------------------------------------------- */
/* Values                                                                                     */

static void
test_all_types (void)
{
  TestSettings *s = apply_ok (
      "# every supported type\n"
      "prompt: Describe the scene.\n"
      "max_new_tokens: 24\n"            /* underscore spelling */
      "threads: 3\n"
      "nice: -5\n"
      "buffer-size: 4096\n"
      "offset: -9223372036854775808\n"
      "delay: -1.5s\n"
      "seed: 18446744073709551615\n"
      "interval: 500ms\n"
      "max-latency: 2s\n"
      "temperature: 0.25\n"
      "top-p: 9e-1\n"
      "overlay: yes\n"
      "mode: offline\n"
      "outputs: text+message\n");

  g_assert_cmpstr (s->prompt, ==, "Describe the scene.");
  g_assert_cmpint (s->max_new_tokens, ==, 24);
  g_assert_cmpuint (s->threads, ==, 3);
  g_assert_cmpint (s->nice, ==, -5);
  g_assert_cmpuint (s->buffer_size, ==, 4096);
  g_assert_cmpint (s->offset, ==, G_MININT64);
  g_assert_cmpint (s->delay, ==, -G_GINT64_CONSTANT (1500000000));
  g_assert_cmpuint (s->seed, ==, G_MAXUINT64);
  g_assert_cmpuint (s->interval, ==, G_GUINT64_CONSTANT (500000000));
  g_assert_cmpuint (s->max_latency, ==, G_GUINT64_CONSTANT (2000000000));
  g_assert_cmpfloat (s->temperature, ==, 0.25f);
  g_assert_cmpfloat_with_epsilon (s->top_p, 0.9, 1e-12);
  g_assert_true (s->overlay);
  g_assert_cmpint (s->mode, ==, TEST_MODE_OFFLINE);
  g_assert_cmpuint (s->outputs, ==, TEST_OUT_TEXT | TEST_OUT_MESSAGE);
  g_assert_cmpuint (s->n_set, ==, 15);
  g_object_unref (s);

  /* Enum by full name, flags by name, quoted numbers, flow mapping. */
  s = apply_ok ("{ mode: TEST_MODE_LIVE, outputs: \"TEST_OUT_META | text\", "
      "max-new-tokens: '7', prompt: \"  keep blanks # too  \" }\n");
  g_assert_cmpint (s->mode, ==, TEST_MODE_LIVE);
  g_assert_cmpuint (s->outputs, ==, TEST_OUT_META | TEST_OUT_TEXT);
  g_assert_cmpint (s->max_new_tokens, ==, 7);
  g_assert_cmpstr (s->prompt, ==, "  keep blanks # too  ");
  g_object_unref (s);

  /* Literal block scalar for a multi-line prompt; empty quoted string is a value. */
  s = apply_ok ("prompt: |\n  line one\n  line two\nmodel: \"\"\n");
  g_assert_cmpstr (s->prompt, ==, "line one\nline two\n");
  g_assert_cmpstr (s->model, ==, "");
  g_object_unref (s);
}

static void
test_booleans (void)
{
  static const struct { const gchar *text; gboolean value; } cases[] = {
    { "true", TRUE }, { "True", TRUE }, { "YES", TRUE }, { "on", TRUE },
    { "false", FALSE }, { "No", FALSE }, { "OFF", FALSE }, { "'yes'", TRUE },
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++) {
    gchar *yaml = g_strdup_printf ("overlay: %s\n", cases[i].text);
    TestSettings *s = settings_new ();
    GError *err = NULL;
    gchar *path = write_file ("bool.yaml", yaml, -1);

    /* Start from the opposite value so a no-op cannot pass. */
    s->overlay = !cases[i].value;
    g_assert_true (fastvlm_config_apply (G_OBJECT (s), path, &err));
    g_assert_no_error (err);
    g_assert_cmpint (s->overlay, ==, cases[i].value);
    g_object_unref (s);
    g_free (path);
    g_free (yaml);
  }
  assert_refused ("overlay: maybe\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 10, "not a boolean");
  assert_refused ("overlay: 1\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 10, "not a boolean");
}

static void
test_durations (void)
{
  static const struct { const gchar *text; guint64 ns; } ok[] = {
    { "0", 0 }, { "1500", 1500 }, { "250us", 250000 }, { "250 us", 250000 },
    { "250\xc2\xb5s", 250000 }, { "7ns", 7 }, { "500ms", 500000000 },
    { "2s", G_GUINT64_CONSTANT (2000000000) }, { "1.5s", G_GUINT64_CONSTANT (1500000000) },
    { ".25s", 250000000 }, { "0.000000001s", 1 }, { "1.500000000000s", 1500000000 },
    { "1min", G_GUINT64_CONSTANT (60000000000) }, { "1h", G_GUINT64_CONSTANT (3600000000000) },
    { "18446744073709551615", G_MAXUINT64 }, { "+3ms", 3000000 },
  };
  static const struct { const gchar *text; FastvlmConfigError code; } bad[] = {
    { "1.5", FASTVLM_CONFIG_ERROR_TYPE },          /* 1.5 ns */
    { "0.0000000001s", FASTVLM_CONFIG_ERROR_TYPE },
    { "2 seconds", FASTVLM_CONFIG_ERROR_TYPE },
    { "ms", FASTVLM_CONFIG_ERROR_TYPE },
    { "s2", FASTVLM_CONFIG_ERROR_TYPE },
    { "2ss", FASTVLM_CONFIG_ERROR_TYPE },
    { "-1s", FASTVLM_CONFIG_ERROR_RANGE },         /* unsigned property */
    { "18446744073709551616", FASTVLM_CONFIG_ERROR_RANGE },
    { "99999999999s", FASTVLM_CONFIG_ERROR_RANGE },
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (ok); i++) {
    gchar *yaml = g_strdup_printf ("interval: %s\n", ok[i].text);
    TestSettings *s = apply_ok (yaml);
    g_assert_cmpuint (s->interval, ==, ok[i].ns);
    g_object_unref (s);
    g_free (yaml);
  }
  for (i = 0; i < G_N_ELEMENTS (bad); i++) {
    gchar *yaml = g_strdup_printf ("interval: %s\n", bad[i].text);
    assert_refused (yaml, bad[i].code, 1, 11, bad[i].text);
    g_free (yaml);
  }
  /* The property's own maximum applies to durations too (max-latency <= 60 s). */
  assert_refused ("max-latency: 61s\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 14, "out of range");
  {
    TestSettings *s = apply_ok ("max-latency: 1min\ndelay: -10s\n");
    g_assert_cmpuint (s->max_latency, ==, G_GUINT64_CONSTANT (60000000000));
    g_assert_cmpint (s->delay, ==, -G_GINT64_CONSTANT (10000000000));
    g_object_unref (s);
  }
  assert_refused ("delay: -10.000000001s\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 8, NULL);
  /* Units belong to durations only: seed is a plain uint64. */
  assert_refused ("seed: 2s\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 7, "not an integer");
}

static void
test_integers (void)
{
  TestSettings *s = apply_ok ("max-new-tokens: 4096\nthreads: 0\nnice: -20\nbuffer-size: 16\n");
  g_assert_cmpint (s->max_new_tokens, ==, 4096);
  g_assert_cmpint (s->nice, ==, -20);
  g_object_unref (s);

  assert_refused ("max-new-tokens: 4097\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 17, "1..4096");
  assert_refused ("max-new-tokens: 0\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 17, "out of range");
  assert_refused ("threads: -1\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 10, "0..256");
  assert_refused ("nice: 20\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 7, "-20..19");
  assert_refused ("buffer-size: 15\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 14, NULL);
  assert_refused ("max-new-tokens: 12abc\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 17, "not an integer");
  assert_refused ("max-new-tokens: 1.5\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 17, "not an integer");
  assert_refused ("max-new-tokens: 0x10\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 17, NULL);
  assert_refused ("max-new-tokens: ' 5'\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 17, NULL);
  assert_refused ("offset: 9223372036854775808\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 9, NULL);
  assert_refused ("offset: -9223372036854775809\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 9, NULL);
  assert_refused ("seed: 99999999999999999999999\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 7,
      "too large");

  /* image-size: within the GParamSpec's range but not a multiple of 64. */
  s = apply_ok ("image-size: 512\n");
  g_assert_cmpint (s->image_size, ==, 512);
  g_object_unref (s);
  s = apply_ok ("image-size: 0\n");
  g_assert_cmpint (s->image_size, ==, 0);
  g_object_unref (s);
  assert_refused ("threads: 1\nimage-size: 500\n", FASTVLM_CONFIG_ERROR_RANGE, 2, 13,
      "not a multiple of 64");
  assert_refused ("image-size: 4160\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 13, "0..4096");
}

static void
test_floats (void)
{
  TestSettings *s = apply_ok ("temperature: 2\ntop-p: 0\n");
  g_assert_cmpfloat (s->temperature, ==, 2.0f);
  g_assert_cmpfloat (s->top_p, ==, 0.0);
  g_object_unref (s);

  assert_refused ("temperature: 2.5\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 14, "out of range");
  assert_refused ("top-p: -0.1\n", FASTVLM_CONFIG_ERROR_RANGE, 1, 8, "0..1");
  assert_refused ("top-p: nan\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 8, "finite");
  assert_refused ("top-p: .inf\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 8, NULL);
  assert_refused ("temperature: inf\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 14, NULL);
  assert_refused ("temperature: 1e400\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 14, NULL);
  assert_refused ("temperature: warm\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 14, "not a finite");
  assert_refused ("temperature: 0.5x\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 14, NULL);
}

static void
test_enums (void)
{
  assert_refused ("mode: fast\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 7,
      "expected one of: live, offline, auto");
  assert_refused ("outputs: meta+video\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 10, "'video'");
}

/* ---------------------------------------------------------------------------------------- */
/* Structure and key errors                                                                   */

static void
test_malformed (void)
{
  /* libyaml's own problem text and mark. */
  assert_refused ("prompt: a: b\n", FASTVLM_CONFIG_ERROR_SYNTAX, 1, 10,
      "mapping values are not allowed");
  assert_refused ("threads: 2\nprompt: \"unterminated\n", FASTVLM_CONFIG_ERROR_SYNTAX, 3, 1,
      "while scanning a quoted scalar at line 2, column 9");
  assert_refused ("prompt: 2\n  seed: 3\n", FASTVLM_CONFIG_ERROR_SYNTAX, 2, 7,
      "mapping values are not allowed");
  assert_refused ("prompt: 'a'b\n", FASTVLM_CONFIG_ERROR_SYNTAX, 1, 12, "invalid YAML");
  assert_refused ("threads: 2\n\tseed: 3\n", FASTVLM_CONFIG_ERROR_SYNTAX, 2, 1, "tab");
  /* Reader errors have an offset, not a mark: invalid UTF-8 on line 2, after "prompt: ab". */
  assert_refused ("threads: 2\nprompt: ab\xff\n", FASTVLM_CONFIG_ERROR_SYNTAX, 2, 11,
      "invalid");
  assert_refused ("threads: 2\nprompt: \x01\n", FASTVLM_CONFIG_ERROR_SYNTAX, 2, 9,
      "control characters");
}

static void
test_structure (void)
{
  assert_refused ("- threads\n- seed\n", FASTVLM_CONFIG_ERROR_STRUCTURE, 1, 1, "not a sequence");
  assert_refused ("\n\njust text\n", FASTVLM_CONFIG_ERROR_STRUCTURE, 3, 1, "not a scalar");
  assert_refused ("prompt:\n  text: hi\n", FASTVLM_CONFIG_ERROR_STRUCTURE, 2, 3,
      "value of 'prompt' is a mapping");
  assert_refused ("threads: 2\nprompt: [a, b]\n", FASTVLM_CONFIG_ERROR_STRUCTURE, 2, 9,
      "value of 'prompt' is a sequence");
  assert_refused ("prompt: &p hello\nmodel: *p\n", FASTVLM_CONFIG_ERROR_STRUCTURE, 2, 8,
      "aliases");
  assert_refused ("threads: 2\n---\nseed: 3\n", FASTVLM_CONFIG_ERROR_STRUCTURE, 2, 1,
      "second");
  assert_refused ("? [a, b]\n: 1\n", FASTVLM_CONFIG_ERROR_STRUCTURE, 1, 3,
      "keys must be scalars");
}

static void
test_unknown_keys (void)
{
  assert_refused ("threads: 2\nmax-new-token: 5\n", FASTVLM_CONFIG_ERROR_UNKNOWN_KEY, 2, 1,
      "did you mean 'max-new-tokens'?");
  assert_refused ("  temprature: 0.5\n", FASTVLM_CONFIG_ERROR_UNKNOWN_KEY, 1, 3,
      "did you mean 'temperature'?");
  assert_refused ("top_q: 0.5\n", FASTVLM_CONFIG_ERROR_UNKNOWN_KEY, 1, 1,
      "did you mean 'top-p'?");
  /* Nothing close: no suggestion, and the class is named. */
  {
    GError *err = NULL;
    gboolean ok;
    TestSettings *s = apply_text ("banana: 3\n", &err, &ok);
    g_assert_false (ok);
    g_assert_error (err, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_UNKNOWN_KEY);
    g_assert_null (strstr (err->message, "did you mean"));
    g_assert_nonnull (strstr (err->message, "TestSettings has no such property"));
    g_error_free (err);
    g_object_unref (s);
  }
  /* Read-only stats is never suggested, even though it is the closest name. */
  {
    GError *err = NULL;
    gboolean ok;
    TestSettings *s = apply_text ("stat: 1\n", &err, &ok);
    g_assert_false (ok);
    g_assert_null (strstr (err->message, "'stats'"));
    g_error_free (err);
    g_object_unref (s);
  }
}

static void
test_duplicates (void)
{
  assert_refused ("threads: 1\nmax-new-tokens: 5\nthreads: 2\n",
      FASTVLM_CONFIG_ERROR_DUPLICATE_KEY, 3, 1, "already set on line 1");
  /* Both spellings name the same property. */
  assert_refused ("max_new_tokens: 5\n\n  \nmax-new-tokens: 6\n",
      FASTVLM_CONFIG_ERROR_DUPLICATE_KEY, 4, 1, "'max-new-tokens' is already set on line 1");
}

static void
test_not_settable (void)
{
  assert_refused ("stats: x\n", FASTVLM_CONFIG_ERROR_NOT_SETTABLE, 1, 1, "read-only");
  assert_refused ("threads: 1\nid: 3\n", FASTVLM_CONFIG_ERROR_NOT_SETTABLE, 2, 1,
      "when the object is created");
  assert_refused ("config: other.yaml\n", FASTVLM_CONFIG_ERROR_NOT_SETTABLE, 1, 1,
      "another config file");
  assert_refused ("peer: x\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 7, "GObject");
  assert_refused ("prompt:\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 8, "'prompt' has no value");
  assert_refused ("threads: ~\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 10, "has no value");
  assert_refused ("prompt: \"a\\0b\"\n", FASTVLM_CONFIG_ERROR_TYPE, 1, 9, "NUL");
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                      */

static void
test_files (void)
{
  gchar *missing = g_build_filename (tmpdir, "no-such.yaml", NULL);
  TestSettings *s = settings_new ();
  GError *err = NULL;
  gchar *path, *big;
  gsize limit = FASTVLM_CONFIG_MAX_SIZE;

  g_assert_false (fastvlm_config_apply (G_OBJECT (s), missing, &err));
  g_assert_error (err, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_FILE);
  g_assert_true (g_str_has_prefix (err->message, missing));
  g_assert_nonnull (strstr (err->message, "No such file"));
  g_clear_error (&err);

  g_assert_false (fastvlm_config_apply (G_OBJECT (s), tmpdir, &err));
  g_assert_error (err, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_FILE);
  g_assert_nonnull (strstr (err->message, "directory"));
  g_clear_error (&err);

  /* Exactly at the limit is fine (a valid key followed by comment padding)... */
  big = g_malloc (limit + 2);
  memset (big, '#', limit + 1);
  memcpy (big, "threads: 9\n", 11);
  big[limit - 1] = '\n';
  path = write_file ("big.yaml", big, (gssize) limit);
  g_assert_true (fastvlm_config_apply (G_OBJECT (s), path, &err));
  g_assert_no_error (err);
  g_assert_cmpuint (s->threads, ==, 9);
  g_free (path);
  /* ...one byte more is refused before parsing. */
  big[limit] = '\n';
  path = write_file ("big.yaml", big, (gssize) limit + 1);
  s->n_set = 0;
  g_assert_false (fastvlm_config_apply (G_OBJECT (s), path, &err));
  g_assert_error (err, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_TOO_LARGE);
  g_assert_true (g_str_has_prefix (err->message, path));
  g_assert_nonnull (strstr (err->message, "64 KiB"));
  g_assert_cmpuint (s->n_set, ==, 0);
  g_clear_error (&err);
  g_free (path);
  g_free (big);

  g_free (missing);
  g_object_unref (s);
}

static void
test_empty (void)
{
  static const gchar *const texts[] = { "", "# only a comment\n\n", "---\n", "---\n...\n", "{}\n" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (texts); i++) {
    TestSettings *s = apply_ok (texts[i]);
    g_assert_cmpuint (s->n_set, ==, 0);
    g_object_unref (s);
  }
}

static void
test_relative_paths (void)
{
  gchar *path = write_file ("presets/sub/cfg.yaml",
      "model: m.gguf\nmmproj: ../vision/./v.gguf\nprompt: keep/relative.txt\n", -1);
  gchar *expect_model = g_build_filename (tmpdir, "presets", "sub", "m.gguf", NULL);
  gchar *expect_mmproj = g_build_filename (tmpdir, "presets", "vision", "v.gguf", NULL);
  gchar *cwd = g_get_current_dir ();
  TestSettings *s = settings_new ();
  GError *err = NULL;

  g_assert_true (fastvlm_config_apply (G_OBJECT (s), path, &err));
  g_assert_no_error (err);
  g_assert_cmpstr (s->model, ==, expect_model);
  g_assert_cmpstr (s->mmproj, ==, expect_mmproj);
  g_assert_cmpstr (s->prompt, ==, "keep/relative.txt");       /* not a path property */

  /* The YAML path itself relative to the working directory: results are still absolute. */
  g_assert_cmpint (g_chdir (tmpdir), ==, 0);
  g_assert_true (fastvlm_config_apply (G_OBJECT (s), "presets/sub/cfg.yaml", &err));
  g_assert_no_error (err);
  g_assert_cmpint (g_chdir (cwd), ==, 0);
  g_assert_cmpstr (s->model, ==, expect_model);

  /* Absolute paths are kept as written. */
  g_free (path);
  path = write_file ("presets/abs.yaml", "model: /opt/models/x.gguf\n", -1);
  g_assert_true (fastvlm_config_apply (G_OBJECT (s), path, &err));
  g_assert_cmpstr (s->model, ==, "/opt/models/x.gguf");

  g_object_unref (s);
  g_free (cwd);
  g_free (path);
  g_free (expect_model);
  g_free (expect_mmproj);
}

static void
test_all_or_nothing (void)
{
  GError *err = NULL;
  gboolean ok;
  /* Eight valid keys, the bad one last: none of the eight may have been applied. */
  TestSettings *s = apply_text ("model: a.gguf\nprompt: hi\nmax-new-tokens: 9\n"
      "threads: 2\ninterval: 1s\ntemperature: 1\noverlay: on\nmode: live\n"
      "top-p: 1.5\n", &err, &ok);

  g_assert_false (ok);
  g_assert_error (err, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_RANGE);
  g_assert_true (strstr (err->message, "cfg.yaml:9:8: ") != NULL);
  g_assert_cmpuint (s->n_set, ==, 0);
  g_assert_null (s->model);
  g_assert_null (s->prompt);
  g_assert_cmpint (s->max_new_tokens, ==, 64);
  g_assert_cmpuint (s->interval, ==, G_GUINT64_CONSTANT (1000000000));
  g_assert_false (s->overlay);
  g_assert_cmpint (s->mode, ==, TEST_MODE_AUTO);
  g_clear_error (&err);
  g_object_unref (s);

  /* Same with a YAML syntax error after valid pairs. */
  s = apply_text ("prompt: hi\nthreads: 2\nseed: \"3\n", &err, &ok);
  g_assert_false (ok);
  g_assert_error (err, FASTVLM_CONFIG_ERROR, FASTVLM_CONFIG_ERROR_SYNTAX);
  g_assert_cmpuint (s->n_set, ==, 0);
  g_clear_error (&err);
  g_object_unref (s);
}

/* Notifications are batched: nothing is announced until every property is set. */
static void
on_notify (GObject * object, GParamSpec * pspec, gpointer user_data)
{
  TestSettings *s = TEST_SETTINGS (object);
  guint *calls = user_data;

  (*calls)++;
  g_assert_cmpuint (s->n_set, ==, 3);
  g_assert_cmpint (s->max_new_tokens, ==, 5);
  g_assert_cmpstr (s->prompt, ==, "p");
}

static void
test_notify_batched (void)
{
  gchar *path = write_file ("n.yaml", "max-new-tokens: 5\nthreads: 1\nprompt: p\n", -1);
  TestSettings *s = settings_new ();
  guint calls = 0;

  g_signal_connect (s, "notify", G_CALLBACK (on_notify), &calls);
  g_assert_true (fastvlm_config_apply (G_OBJECT (s), path, NULL));
  g_assert_cmpuint (calls, ==, 3);
  g_object_unref (s);
  g_free (path);
}

static void
remove_tree (const gchar * path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const gchar *name;

  if (dir) {
    while ((name = g_dir_read_name (dir))) {
      gchar *child = g_build_filename (path, name, NULL);
      remove_tree (child);
      g_free (child);
    }
    g_dir_close (dir);
  }
  g_remove (path);
}

int
main (int argc, char **argv)
{
  GError *err = NULL;
  int ret;

  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("fastvlm-config-XXXXXX", &err);
  g_assert_no_error (err);

  g_test_add_func ("/config/values/all-types", test_all_types);
  g_test_add_func ("/config/values/booleans", test_booleans);
  g_test_add_func ("/config/values/durations", test_durations);
  g_test_add_func ("/config/values/integers", test_integers);
  g_test_add_func ("/config/values/floats", test_floats);
  g_test_add_func ("/config/values/enums", test_enums);
  g_test_add_func ("/config/errors/malformed", test_malformed);
  g_test_add_func ("/config/errors/structure", test_structure);
  g_test_add_func ("/config/errors/unknown-keys", test_unknown_keys);
  g_test_add_func ("/config/errors/duplicates", test_duplicates);
  g_test_add_func ("/config/errors/not-settable", test_not_settable);
  g_test_add_func ("/config/files/errors", test_files);
  g_test_add_func ("/config/files/empty", test_empty);
  g_test_add_func ("/config/files/relative-paths", test_relative_paths);
  g_test_add_func ("/config/all-or-nothing", test_all_or_nothing);
  g_test_add_func ("/config/notify-batched", test_notify_batched);

  ret = g_test_run ();
  remove_tree (tmpdir);
  g_free (tmpdir);
  return ret;
}
