/*
 * gstfastvlmdefaultmodel.c — finding the built-in demo model (see the header for the order).
 * Not here: loading it (gstfastvlmmodelcache.c) or deciding when to use it
 * (gstfastvlmcaption.c: only when `model` was never set; an empty string means "no model").
 */
#include "gstfastvlmdefaultmodel.h"

#ifndef FVLM_MODELS_INSTALL_DIR
#  error "FVLM_MODELS_INSTALL_DIR must be defined by the build (gst/meson.build)"
#endif
#ifndef FVLM_MODELS_SOURCE_DIR
#  error "FVLM_MODELS_SOURCE_DIR must be defined by the build (gst/meson.build)"
#endif

/* The candidate directories, in search order; NULL-terminated, newly allocated. */
static gchar **
candidate_dirs (void)
{
  GPtrArray *dirs = g_ptr_array_new ();
  const gchar *env = g_getenv ("FASTVLM_MODEL_DIR");

  if (env != NULL && *env != '\0')
    g_ptr_array_add (dirs, g_strdup (env));
  g_ptr_array_add (dirs, g_strdup (FVLM_MODELS_INSTALL_DIR));
  g_ptr_array_add (dirs, g_strdup (FVLM_MODELS_SOURCE_DIR));
  g_ptr_array_add (dirs, NULL);
  return (gchar **) g_ptr_array_free (dirs, FALSE);
}

gboolean
fvlm_default_model_find (gchar ** model_path, gchar ** mmproj_path, gchar ** searched)
{
  gchar **dirs = candidate_dirs ();
  gboolean found = FALSE;

  *model_path = NULL;
  *mmproj_path = NULL;
  for (guint i = 0; dirs[i] != NULL && !found; i++) {
    gchar *m = g_build_filename (dirs[i], FVLM_DEFAULT_MODEL_NAME, NULL);
    gchar *p = g_build_filename (dirs[i], FVLM_DEFAULT_MMPROJ_NAME, NULL);

    if (g_file_test (m, G_FILE_TEST_IS_REGULAR)
        && g_file_test (p, G_FILE_TEST_IS_REGULAR)) {
      *model_path = m;
      *mmproj_path = p;
      found = TRUE;
    } else {
      g_free (m);
      g_free (p);
    }
  }
  if (!found && searched != NULL)
    *searched = g_strjoinv (", ", dirs);
  g_strfreev (dirs);
  return found;
}

gchar *
fvlm_default_model_search_path (void)
{
  return g_strdup ("$FASTVLM_MODEL_DIR, " FVLM_MODELS_INSTALL_DIR ", "
      FVLM_MODELS_SOURCE_DIR);
}
