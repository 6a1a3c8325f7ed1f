/* test-presets.c — every YAML preset in configs/ applied to a real fastvlmcaption.
 *
 * What it is: a GLib test program that creates the element from the freshly built plugin
 * (GST_PLUGIN_PATH_1_0 points at it), applies every preset with fastvlm_config_apply(), and
 * checks that each is accepted whole and that the values the presets promise (model files
 * next to the preset, image sizes, token budgets, intervals) are what the element reports.
 * It also checks the element-specific refusals (GstObject's name/parent, read-only stats).
 *
 * What it is not: a model test. The element stays in the NULL state, so no model file is
 * opened; the presets' model files need not exist. Loader details are in test-config.c.
 */
#include <string.h>

#include <gst/gst.h>
#include <glib/gstdio.h>

#include "fastvlm-config.h"

#define SECOND G_GUINT64_CONSTANT (1000000000)

static gchar *configs_dir;

static GstElement *
make_element (void)
{
  GstElement *e = gst_element_factory_make ("fastvlmcaption", NULL);

  if (!e)
    g_error ("cannot create fastvlmcaption: is GST_PLUGIN_PATH_1_0 set to the built plugin?");
  return gst_object_ref_sink (e);
}

static GstElement *
apply_preset (const gchar * name)
{
  gchar *path = g_build_filename (configs_dir, name, NULL);
  GstElement *e = make_element ();
  GError *err = NULL;

  if (!fastvlm_config_apply (G_OBJECT (e), path, &err))
    g_error ("%s", err->message);
  g_free (path);
  return e;
}

static void
assert_path_prop (GstElement * e, const gchar * prop, const gchar * relative)
{
  gchar *value = NULL, *expect = g_canonicalize_filename (relative, configs_dir);

  g_object_get (e, prop, &value, NULL);
  g_assert_cmpstr (value, ==, expect);
  g_free (value);
  g_free (expect);
}

/* Every *.yaml in configs/ is accepted by the real element. */
static void
test_every_preset (void)
{
  GDir *dir = g_dir_open (configs_dir, 0, NULL);
  const gchar *name;
  guint n = 0;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir))) {
    GstElement *e;
    GstState state;
    if (!g_str_has_suffix (name, ".yaml"))
      continue;
    if (g_test_verbose ())
      g_printerr ("  %s\n", name);
    e = apply_preset (name);
    gst_element_get_state (e, &state, NULL, 0);
    g_assert_cmpint (state, ==, GST_STATE_NULL);
    gst_object_unref (e);
    n++;
  }
  g_dir_close (dir);
  g_assert_cmpuint (n, >=, 3);
}

static void
test_fastvlm_05b (void)
{
  GstElement *e = apply_preset ("fastvlm-0.5b.yaml");
  gint image_size = 0;
  guint max_new_tokens = 0;
  gchar *prompt = NULL;

  assert_path_prop (e, "model", "FastVLM-0.5B.gguf");
  assert_path_prop (e, "mmproj", "FastVLM-0.5B-mmproj.gguf");
  g_object_get (e, "image-size", &image_size, "max-new-tokens", &max_new_tokens,
      "prompt", &prompt, NULL);
  g_assert_cmpint (image_size, ==, 1024);
  g_assert_cmpuint (max_new_tokens, >, 0);
  g_assert_true (prompt && *prompt);
  g_free (prompt);
  gst_object_unref (e);
}

static void
test_fast_edge (void)
{
  GstElement *e = apply_preset ("fast-edge.yaml");
  gint image_size = 0;
  guint max_new_tokens = 0;
  guint64 interval = 0;

  assert_path_prop (e, "model", "FastVLM-0.5B.gguf");
  g_object_get (e, "image-size", &image_size, "max-new-tokens", &max_new_tokens,
      "interval", &interval, NULL);
  g_assert_cmpint (image_size, ==, 512);
  g_assert_cmpuint (max_new_tokens, ==, 24);
  g_assert_cmpuint (interval, ==, 2 * SECOND);
  gst_object_unref (e);
}

static void
test_tiny (void)
{
  GstElement *e = apply_preset ("tiny-test.yaml");
  gint image_size = 0;

  /* configs/../build/models/: the tiny model tests/run.sh makes in build/. */
  assert_path_prop (e, "model", "../build/models/tiny.gguf");
  assert_path_prop (e, "mmproj", "../build/models/tiny-mmproj.gguf");
  g_object_get (e, "image-size", &image_size, NULL);
  g_assert_cmpint (image_size, ==, 256);
  gst_object_unref (e);
}

/* The element's own properties decide what is refused; nothing is half-applied. */
static void
test_element_refusals (void)
{
  static const struct {
    const gchar *yaml;
    FastvlmConfigError code;
    const gchar *needle;
  } cases[] = {
    { "max-new-tokens: 5\nname: cap0\n", FASTVLM_CONFIG_ERROR_NOT_SETTABLE, ":2:1: " },
    { "parent: bin0\n", FASTVLM_CONFIG_ERROR_NOT_SETTABLE, ":1:1: " },
    { "stats: x\n", FASTVLM_CONFIG_ERROR_NOT_SETTABLE, "read-only" },
    { "config: other.yaml\n", FASTVLM_CONFIG_ERROR_NOT_SETTABLE, "config" },
    { "max-new-tokens: 5\nimage-sise: 512\n", FASTVLM_CONFIG_ERROR_UNKNOWN_KEY,
      "did you mean 'image-size'?" },
    { "mode: sometimes\n", FASTVLM_CONFIG_ERROR_TYPE, "live" },
    { "interval: 2 sec\n", FASTVLM_CONFIG_ERROR_TYPE, ":1:11: " },
    { "max_new_tokens: -1\n", FASTVLM_CONFIG_ERROR_RANGE, ":1:17: " },
    { "max_new_tokens: 5\nimage-size: 1000\n", FASTVLM_CONFIG_ERROR_RANGE, "multiple of 64" },
  };
  gchar *dir = g_dir_make_tmp ("fastvlm-presets-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "bad.yaml", NULL);
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++) {
    GstElement *e = make_element ();
    GError *err = NULL;
    guint max_new_tokens_before, max_new_tokens_after;
    gchar *name = NULL;

    g_object_get (e, "max-new-tokens", &max_new_tokens_before, NULL);
    g_assert_true (g_file_set_contents (path, cases[i].yaml, -1, NULL));
    g_assert_false (fastvlm_config_apply (G_OBJECT (e), path, &err));
    if (g_test_verbose ())
      g_printerr ("  %s\n", err->message);
    g_assert_error (err, FASTVLM_CONFIG_ERROR, (gint) cases[i].code);
    g_assert_true (g_str_has_prefix (err->message, path));
    if (!strstr (err->message, cases[i].needle))
      g_error ("expected \"%s\" in \"%s\"", cases[i].needle, err->message);
    g_object_get (e, "max-new-tokens", &max_new_tokens_after, "name", &name, NULL);
    g_assert_cmpuint (max_new_tokens_after, ==, max_new_tokens_before);
    g_assert_cmpstr (name, !=, "cap0");
    g_free (name);
    g_error_free (err);
    gst_object_unref (e);
  }
  g_remove (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
}

/* The element's own `config` property: a good preset is applied when the property is set,
 * a bad one makes the next start fail with the loader's FILE:LINE:COLUMN message. Neither
 * loads a model (the failing start stops before it). */
static void
test_config_property (void)
{
  gchar *good = g_build_filename (configs_dir, "fast-edge.yaml", NULL);
  gchar *dir = g_dir_make_tmp ("fastvlm-presets-XXXXXX", NULL);
  gchar *bad = g_build_filename (dir, "bad.yaml", NULL);
  GstElement *e = make_element (), *pipe;
  GstMessage *msg;
  GError *err = NULL;
  gchar *config = NULL, *dbg = NULL;
  gint image_size = 0;

  g_object_set (e, "config", good, NULL);
  g_object_get (e, "image-size", &image_size, "config", &config, NULL);
  g_assert_cmpint (image_size, ==, 512);
  g_assert_cmpstr (config, ==, good);
  g_free (config);
  gst_object_unref (e);

  g_assert_true (g_file_set_contents (bad, "image-size: 512\nmax-new-tokenz: 3\n", -1, NULL));
  pipe = gst_pipeline_new (NULL);
  e = gst_element_factory_make ("fastvlmcaption", NULL);
  gst_bin_add (GST_BIN (pipe), e);
  g_object_set (e, "config", bad, NULL);
  g_object_get (e, "image-size", &image_size, NULL);
  g_assert_cmpint (image_size, !=, 512);       /* all or nothing */
  g_assert_cmpint (gst_element_set_state (pipe, GST_STATE_PAUSED), ==,
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipe), 10 * GST_SECOND,
      GST_MESSAGE_ERROR);
  g_assert_nonnull (msg);
  gst_message_parse_error (msg, &err, &dbg);
  if (g_test_verbose ())
    g_printerr ("  %s\n", err->message);
  g_assert_nonnull (strstr (err->message, "bad.yaml:2:1: unknown key 'max-new-tokenz'"));
  g_assert_nonnull (strstr (err->message, "did you mean 'max-new-tokens'?"));
  g_error_free (err);
  g_free (dbg);
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);

  g_remove (bad);
  g_rmdir (dir);
  g_free (bad);
  g_free (dir);
  g_free (good);
}

int
main (int argc, char **argv)
{
  const gchar *src = g_getenv ("FASTVLM_SRCDIR");
  int ret;

  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  if (!src)
    g_error ("FASTVLM_SRCDIR is not set (run through meson test)");
  configs_dir = g_build_filename (src, "configs", NULL);

  g_test_add_func ("/presets/every-preset", test_every_preset);
  g_test_add_func ("/presets/fastvlm-0.5b", test_fastvlm_05b);
  g_test_add_func ("/presets/fast-edge", test_fast_edge);
  g_test_add_func ("/presets/tiny-test", test_tiny);
  g_test_add_func ("/presets/element-refusals", test_element_refusals);
  g_test_add_func ("/presets/config-property", test_config_property);
  ret = g_test_run ();
  g_free (configs_dir);
  return ret;
}
