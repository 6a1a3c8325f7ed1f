/*
 * test-reuse.c — gst-check tests of fastvlmcaption's reuse across frames (docs/reuse.md,
 * "The element"), with the tiny random model (tests/gst/make_model.py), offline mode so
 * every frame carries its own results.
 *
 * What it proves, test by test:
 *   speculation_exact       reuse=true (KV prefix + previous-answer drafts, gate off)
 *                           gives the same text as reuse=false on every frame of a slowly
 *                           changing clip, and drafts were really verified
 *   cut_never_reused        scenes cut every 4 frames (with camera-like noise inside a
 *                           scene): each cut is encoded again (reuse none, encoded-pts =
 *                           the cut), later frames of a scene reuse, never across a cut
 *   prompts                 `prompts`: one result per question per frame, prompt-index,
 *                           prompt and prompt-id right, each text equal to a single-prompt
 *                           element's; the next identical frame republishes all of them
 *   features_skip_tower     same picture, another question (or sampling): reuse
 *                           "features", vision-ms 0, encoded-pts of the encoded frame,
 *                           text equal to a fresh element's
 *   properties_playing      reuse, reuse-threshold and prompts changed in PLAYING apply
 *                           to the next frame; stats count reuse by kind
 * Frames are synthetic 64x64 RGB pictures: a background and a rectangle per scene.
 */
#include "fvlm-test-util.h"

#define W 64
#define H 64
#define DUR (40 * MS)
#define MAX_TOKENS 10

/* Scene @k: a flat background and one rectangle, both coloured and placed from @k;
 * @shift moves the rectangle right by that many pixels; @noise > 0 adds +-noise to every
 * byte (seeded by @seed), as a camera would on a static scene. */
static guint8 *
scene_rgb (guint k, gint shift, gint noise, guint32 seed)
{
  guint8 *rgb = g_malloc ((gsize) W * H * 3);
  guint32 state = seed * 2654435761u + 11;
  guint8 bg[3] = { (guint8) (40 + 70 * (k % 3)), (guint8) (200 - 50 * (k % 4)),
    (guint8) (30 + 90 * ((k / 2) % 3))
  };
  guint8 fg[3] = { (guint8) (255 - bg[0]), (guint8) (255 - bg[1]),
    (guint8) (255 - bg[2])
  };
  gint x0 = 4 + (gint) (k * 13 % 24) + shift, y0 = 6 + (gint) (k * 7 % 20);

  for (gint y = 0; y < H; y++) {
    for (gint x = 0; x < W; x++) {
      gboolean in = x >= x0 && x < x0 + 24 && y >= y0 && y < y0 + 30;

      for (gint c = 0; c < 3; c++) {
        gint v = in ? fg[c] : bg[c];

        if (noise > 0)
          v += (gint) (fvlm_test_rand8 (&state) % (2 * noise + 1)) - noise;
        rgb[((gsize) y * W + x) * 3 + c] = (guint8) CLAMP (v, 0, 255);
      }
    }
  }
  return rgb;
}

static GstCaps *
rgb_caps (void)
{
  return fvlm_test_caps (GST_VIDEO_FORMAT_RGB, W, H, 25, 1);
}

static GstHarness *
start_offline (GstElement * e)
{
  GstHarness *h = fvlm_test_harness (e, rgb_caps (), FALSE);

  gst_harness_play (h);
  return h;
}

/* Every caption meta of @buf, in order (copies). */
static GPtrArray *
metas_of (GstBuffer * buf)
{
  GPtrArray *a = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_structure_free);
  gpointer state = NULL;
  GstMeta *meta;

  while ((meta = gst_buffer_iterate_meta (buf, &state))) {
    if (gst_meta_info_is_custom (meta->info)
        && gst_custom_meta_has_name ((GstCustomMeta *) meta, FVLM_META_NAME))
      g_ptr_array_add (a, gst_structure_copy (gst_custom_meta_get_structure
              ((GstCustomMeta *) meta)));
  }
  return a;
}

/* Pushes @rgb as the frame at index @i and returns its results (@n expected). */
static GPtrArray *
push_frame (GstHarness * h, const guint8 * rgb, guint i, guint n)
{
  GstBuffer *out = gst_harness_push_and_pull (h,
      fvlm_test_rgb_frame (rgb, W, H, i * DUR, DUR));
  GPtrArray *a;

  fail_unless (out != NULL);
  a = metas_of (out);
  fail_unless_equals_int (a->len, n);
  gst_buffer_unref (out);
  return a;
}

static const gchar *
field_str (GPtrArray * a, guint i, const gchar * name)
{
  const gchar *v = gst_structure_get_string (g_ptr_array_index (a, i), name);

  fail_unless (v != NULL, "no field %s", name);
  return v;
}

static gint
field_int (GPtrArray * a, guint i, const gchar * name)
{
  gint v = -1;

  fail_unless (gst_structure_get_int (g_ptr_array_index (a, i), name, &v),
      "no field %s", name);
  return v;
}

static guint
field_uint (GPtrArray * a, guint i, const gchar * name)
{
  guint v = 0;

  fail_unless (gst_structure_get_uint (g_ptr_array_index (a, i), name, &v),
      "no field %s", name);
  return v;
}

static guint64
field_u64 (GPtrArray * a, guint i, const gchar * name)
{
  guint64 v = 0;

  fail_unless (gst_structure_get_uint64 (g_ptr_array_index (a, i), name, &v),
      "no field %s", name);
  return v;
}

static gdouble
field_double (GPtrArray * a, guint i, const gchar * name)
{
  gdouble v = -1;

  fail_unless (gst_structure_get_double (g_ptr_array_index (a, i), name, &v),
      "no field %s", name);
  return v;
}

/* The caption of one frame by a fresh element without any reuse (the reference). */
static gchar *
fresh_caption (const guint8 * rgb, const gchar * prompt)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens",
      MAX_TOKENS, "reuse", FALSE, "prompt", prompt, NULL);
  GstHarness *h = start_offline (e);
  GPtrArray *a = push_frame (h, rgb, 0, 1);
  gchar *text = g_strdup (field_str (a, 0, "text"));

  g_ptr_array_unref (a);
  gst_harness_teardown (h);
  gst_object_unref (e);
  return text;
}

/* ---- tests ------------------------------------------------------------------------- */

#define N_SLOW 10

GST_START_TEST (test_speculation_exact)
{
  gchar *texts[2][N_SLOW];
  gint64 drafted = 0, reused_pos = 0;

  for (gint run = 0; run < 2; run++) {
    gboolean reuse = run == 1;
    GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens",
        MAX_TOKENS, "reuse", reuse, "reuse-threshold", 0.0, NULL);
    GstHarness *h = start_offline (e);

    for (guint i = 0; i < N_SLOW; i++) {
      guint8 *rgb = scene_rgb (1, (gint) i, 0, 0);
      GPtrArray *a = push_frame (h, rgb, i, 1);

      texts[run][i] = g_strdup (field_str (a, 0, "text"));
      fail_unless_equals_string (field_str (a, 0, "reuse"), "none");
      fail_unless_equals_uint64 (field_u64 (a, 0, "encoded-pts"), i * DUR);
      if (reuse) {
        drafted += field_int (a, 0, "n-draft");
        reused_pos += field_int (a, 0, "n-reused-positions");
        fail_unless (field_int (a, 0, "n-accepted") <= field_int (a, 0,
                "n-draft"));
      } else {
        fail_unless_equals_int (field_int (a, 0, "n-draft"), 0);
        fail_unless_equals_int (field_int (a, 0, "n-reused-positions"), 0);
      }
      g_ptr_array_unref (a);
      g_free (rgb);
    }
    gst_harness_teardown (h);
    gst_object_unref (e);
  }
  for (guint i = 0; i < N_SLOW; i++) {
    fail_unless_equals_string (texts[1][i], texts[0][i]);
    g_free (texts[0][i]);
    g_free (texts[1][i]);
  }
  /* drafts of the previous answer were verified, the system prompt came from the cache */
  fail_unless (drafted > 0);
  fail_unless (reused_pos > 0);
}

GST_END_TEST;

#define N_SCENES 5
#define SCENE_LEN 4

GST_START_TEST (test_cut_never_reused)
{
  /* scenes 0 1 2 0 3: the return to scene 0 comes after the kept features moved on */
  const guint scenes[N_SCENES] = { 0, 1, 2, 0, 3 };
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens",
      MAX_TOKENS, NULL);
  GstHarness *h = start_offline (e);
  guint n_reused = 0;
  gdouble thr = 0;

  g_object_get (e, "reuse-threshold", &thr, NULL);
  fail_unless (thr > 0, "reuse-threshold defaults to a non-zero value");

  for (guint s = 0; s < N_SCENES; s++) {
    GstClockTime cut = (GstClockTime) s * SCENE_LEN * DUR;
    guint8 *cut_rgb = scene_rgb (scenes[s], 0, 1, s * 100);
    gchar *ref = fresh_caption (cut_rgb, "Describe the image.");

    for (guint f = 0; f < SCENE_LEN; f++) {
      guint i = s * SCENE_LEN + f;
      guint8 *rgb = f == 0 ? cut_rgb : scene_rgb (scenes[s], 0, 1, i + 1000);
      GPtrArray *a = push_frame (h, rgb, i, 1);
      guint64 enc = field_u64 (a, 0, "encoded-pts");
      const gchar *kind = field_str (a, 0, "reuse");

      /* the described picture is never older than the cut */
      fail_unless (enc >= cut && enc <= i * DUR, "frame %u described by the "
          "frame at %" GST_TIME_FORMAT " (scene from %" GST_TIME_FORMAT ")", i,
          GST_TIME_ARGS (enc), GST_TIME_ARGS (cut));
      if (f == 0) {
        fail_unless_equals_string (kind, "none");
        fail_unless_equals_uint64 (enc, cut);
        fail_unless (field_double (a, 0, "vision-ms") > 0);
      } else if (strcmp (kind, "none") != 0) {
        n_reused++;
      }
      /* the cut frame's caption, whether computed or republished */
      fail_unless_equals_string (field_str (a, 0, "text"), ref);
      g_ptr_array_unref (a);
      if (f != 0)
        g_free (rgb);
    }
    g_free (cut_rgb);
    g_free (ref);
  }
  /* +-1 noise stays below the default threshold: the gate does reuse */
  fail_unless_equals_int (n_reused, N_SCENES * (SCENE_LEN - 1));
  fail_unless_equals_uint64 (fvlm_test_stat (e, "reused"),
      N_SCENES * (SCENE_LEN - 1));
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_prompts)
{
  const gchar *questions[] = { "Describe the image.", "What colour is it?",
    "Is there a person?"
  };
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens",
      MAX_TOKENS, NULL);
  GValue arr = G_VALUE_INIT;
  GstHarness *h;
  guint id0 = 0, id = 0;
  guint8 *rgb = scene_rgb (2, 0, 0, 0);
  GPtrArray *a, *b;

  g_object_get (e, "prompt-id", &id0, NULL);
  gst_value_array_init (&arr, 3);
  for (guint i = 0; i < 3; i++) {
    GValue v = G_VALUE_INIT;

    g_value_init (&v, G_TYPE_STRING);
    g_value_set_string (&v, questions[i]);
    gst_value_array_append_and_take_value (&arr, &v);
  }
  g_object_set_property (G_OBJECT (e), "prompts", &arr);
  g_value_unset (&arr);
  g_object_get (e, "prompt-id", &id, NULL);
  fail_unless (id != id0, "prompts gets a new prompt-id");

  h = start_offline (e);
  a = push_frame (h, rgb, 0, 3);
  for (guint i = 0; i < 3; i++) {
    gchar *ref = fresh_caption (rgb, questions[i]);

    fail_unless_equals_int (field_uint (a, i, "prompt-index"), i);
    fail_unless_equals_int (field_uint (a, i, "n-prompts"), 3);
    fail_unless_equals_int (field_uint (a, i, "prompt-id"), id);
    fail_unless_equals_string (field_str (a, i, "prompt"), questions[i]);
    fail_unless_equals_string (field_str (a, i, "text"), ref);
    fail_unless_equals_string (field_str (a, i, "reuse"), "none");
    /* questions after the first reuse the image rows from the KV cache */
    if (i > 0)
      fail_unless (field_int (a, i, "n-reused-positions") > field_int (a, 0,
              "n-reused-positions"));
    g_free (ref);
  }
  /* the same picture again: every answer republished, in order */
  b = push_frame (h, rgb, 1, 3);
  for (guint i = 0; i < 3; i++) {
    fail_unless_equals_int (field_uint (b, i, "prompt-index"), i);
    fail_unless_equals_string (field_str (b, i, "reuse"), "answer");
    fail_unless_equals_string (field_str (b, i, "text"), field_str (a, i,
            "text"));
    fail_unless_equals_uint64 (field_u64 (b, i, "encoded-pts"), 0);
  }
  fail_unless_equals_uint64 (fvlm_test_stat (e, "frames-captioned"), 6);
  g_ptr_array_unref (a);
  g_ptr_array_unref (b);
  g_free (rgb);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_features_skip_tower)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens",
      MAX_TOKENS, "prompt", "Describe the image.", NULL);
  GstHarness *h = start_offline (e);
  guint8 *rgb = scene_rgb (3, 0, 0, 0), *noisy = scene_rgb (3, 0, 1, 5);
  gchar *ref = fresh_caption (noisy, "What is in the picture?");
  GPtrArray *a, *b, *c;

  a = push_frame (h, rgb, 0, 1);
  fail_unless_equals_string (field_str (a, 0, "reuse"), "none");
  fail_unless (field_double (a, 0, "vision-ms") > 0);

  /* another question about (nearly) the same picture: no tower, same answer as a
   * fresh element asked about the noisy picture? No: about the kept one. */
  g_object_set (e, "prompt", "What is in the picture?", NULL);
  b = push_frame (h, noisy, 1, 1);
  fail_unless_equals_string (field_str (b, 0, "reuse"), "features");
  fail_unless (!gst_structure_has_field_typed (g_ptr_array_index (b, 0),
          "reused", G_TYPE_BOOLEAN) || field_int (b, 0, "n-tokens") >= 0);
  fail_unless_equals_int (field_double (b, 0, "vision-ms") == 0.0, TRUE);
  fail_unless_equals_uint64 (field_u64 (b, 0, "encoded-pts"), 0);
  fail_unless (field_double (b, 0, "scene-distance") > 0);
  g_free (ref);
  ref = fresh_caption (rgb, "What is in the picture?");
  fail_unless_equals_string (field_str (b, 0, "text"), ref);

  /* sampling (temperature > 0): the features are reused, the answer is not */
  g_object_set (e, "temperature", 0.7f, "seed", (guint64) 5, NULL);
  c = push_frame (h, rgb, 2, 1);
  fail_unless_equals_string (field_str (c, 0, "reuse"), "features");
  fail_unless (field_double (c, 0, "vision-ms") == 0.0);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "reused-features"), 2);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "reused"), 0);

  g_ptr_array_unref (a);
  g_ptr_array_unref (b);
  g_ptr_array_unref (c);
  g_free (ref);
  g_free (rgb);
  g_free (noisy);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_properties_playing)
{
  GstElement *e = fvlm_test_element (TRUE, "mode", 2, "max-new-tokens",
      MAX_TOKENS, NULL);
  GstHarness *h = start_offline (e);
  guint8 *rgb = scene_rgb (4, 0, 0, 0);
  GValue arr = G_VALUE_INIT;
  GPtrArray *a;
  GstStructure *s;
  gdouble acc = -1;
  guint i = 0;

  a = push_frame (h, rgb, i++, 1);
  fail_unless_equals_string (field_str (a, 0, "reuse"), "none");
  g_ptr_array_unref (a);
  a = push_frame (h, rgb, i++, 1);
  fail_unless_equals_string (field_str (a, 0, "reuse"), "answer");
  g_ptr_array_unref (a);

  /* threshold 0: never reuse */
  g_object_set (e, "reuse-threshold", 0.0, NULL);
  a = push_frame (h, rgb, i++, 1);
  fail_unless_equals_string (field_str (a, 0, "reuse"), "none");
  fail_unless (field_int (a, 0, "n-draft") > 0);
  g_ptr_array_unref (a);

  /* reuse off: nothing reused at all, whatever the threshold */
  g_object_set (e, "reuse-threshold", 10.0, "reuse", FALSE, NULL);
  a = push_frame (h, rgb, i++, 1);
  fail_unless_equals_string (field_str (a, 0, "reuse"), "none");
  fail_unless_equals_int (field_int (a, 0, "n-reused-positions"), 0);
  fail_unless_equals_int (field_int (a, 0, "n-draft"), 0);
  g_ptr_array_unref (a);

  /* back on: that frame's features were not kept, the next one is encoded */
  g_object_set (e, "reuse", TRUE, NULL);
  a = push_frame (h, rgb, i++, 1);
  fail_unless_equals_string (field_str (a, 0, "reuse"), "none");
  fail_unless (field_int (a, 0, "n-reused-positions") > 0);
  g_ptr_array_unref (a);
  a = push_frame (h, rgb, i++, 1);
  fail_unless_equals_string (field_str (a, 0, "reuse"), "answer");
  g_ptr_array_unref (a);

  /* prompts: a new question set on the same picture -> features, two results */
  gst_value_array_init (&arr, 2);
  for (guint k = 0; k < 2; k++) {
    GValue v = G_VALUE_INIT;

    g_value_init (&v, G_TYPE_STRING);
    g_value_set_string (&v, k ? "Second?" : "First?");
    gst_value_array_append_and_take_value (&arr, &v);
  }
  g_object_set_property (G_OBJECT (e), "prompts", &arr);
  g_value_unset (&arr);
  a = push_frame (h, rgb, i++, 2);
  fail_unless_equals_string (field_str (a, 0, "reuse"), "features");
  fail_unless_equals_string (field_str (a, 1, "reuse"), "features");
  fail_unless_equals_string (field_str (a, 1, "prompt"), "Second?");
  g_ptr_array_unref (a);
  /* an empty list: back to `prompt` */
  gst_value_array_init (&arr, 0);
  g_object_set_property (G_OBJECT (e), "prompts", &arr);
  g_value_unset (&arr);
  a = push_frame (h, rgb, i++, 1);
  fail_unless_equals_string (field_str (a, 0, "prompt"), "Describe the image.");
  g_ptr_array_unref (a);

  s = fvlm_test_stats (e);
  fail_unless (gst_structure_get_double (s, "draft-acceptance", &acc));
  fail_unless (acc > 0 && acc <= 1.0);
  gst_structure_free (s);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "reused-answer"), 2);
  fail_unless_equals_uint64 (fvlm_test_stat (e, "reused-features"), 3);
  fail_unless (fvlm_test_stat (e, "n-reused-positions") > 0);
  fail_unless (fvlm_test_stat (e, "n-accepted") <= fvlm_test_stat (e,
          "n-draft"));
  g_free (rgb);
  gst_harness_teardown (h);
  gst_object_unref (e);
}

GST_END_TEST;

static Suite *
reuse_suite (void)
{
  Suite *s = suite_create ("fastvlmcaption-reuse");
  TCase *tc = tcase_create ("reuse");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_speculation_exact);
  tcase_add_test (tc, test_cut_never_reused);
  tcase_add_test (tc, test_prompts);
  tcase_add_test (tc, test_features_skip_tower);
  tcase_add_test (tc, test_properties_playing);
  return s;
}

GST_CHECK_MAIN (reuse);
