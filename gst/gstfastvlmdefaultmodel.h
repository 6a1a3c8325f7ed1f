/*
 * gstfastvlmdefaultmodel.h — where fastvlmcaption finds its built-in demo model when the
 * `model` property is left unset.
 *
 * What it is: the search for models/fastvlm-demo.gguf + models/fastvlm-demo-mmproj.gguf (the
 * small captioner trained by tools/train_demo_model.py, docs/demo-model.md), in this order:
 *   1. the directory named by the environment variable FASTVLM_MODEL_DIR, if set;
 *   2. the installed copy, DATADIR/gst-fastvlm/models (meson installs the files there);
 *   3. the source tree's models/ (an uninstalled build run with GST_PLUGIN_PATH=build/gst).
 * The first directory holding both files wins.
 * What it is not: model loading or sharing (gstfastvlmmodelcache.c).
 */
#ifndef __GST_FASTVLM_DEFAULT_MODEL_H__
#define __GST_FASTVLM_DEFAULT_MODEL_H__

#include <glib.h>

G_BEGIN_DECLS

#define FVLM_DEFAULT_MODEL_NAME  "fastvlm-demo.gguf"
#define FVLM_DEFAULT_MMPROJ_NAME "fastvlm-demo-mmproj.gguf"

/* On success returns TRUE with newly allocated paths of the demo model's two files. On
 * failure returns FALSE and, when @searched is not NULL, a newly allocated list of the
 * directories looked in (for the warning). */
gboolean fvlm_default_model_find (gchar ** model_path, gchar ** mmproj_path,
                                  gchar ** searched);

/* The directories searched, in order, joined by ", " (for property docs); newly allocated. */
gchar *  fvlm_default_model_search_path (void);

G_END_DECLS

#endif
