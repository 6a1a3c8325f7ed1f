/*
 * gstfastvlmmodelcache.h — the process-wide cache through which every fastvlmcaption in
 * one process shares a single loaded fastvlm_model per pair of model files.
 *
 * What it is: a refcounted table keyed by the files' canonical paths (plus device, inode,
 * size and mtime, so a file replaced on disk is loaded afresh), guarded by one mutex.
 * Each entry also owns the model's run scheduler (gstfastvlmscheduler.c), through which
 * the elements sharing the model take turns running it.
 * What it is not: a session pool — sessions (KV cache, scratch, threads) stay per element,
 * and a fastvlm_model is immutable, so sharing it needs no further locking.
 */
#ifndef __GST_FASTVLM_MODEL_CACHE_H__
#define __GST_FASTVLM_MODEL_CACHE_H__

#include <gst/gst.h>
#include "fastvlm.h"
#include "gstfastvlmscheduler.h"

G_BEGIN_DECLS

typedef struct _FvlmModelHandle FvlmModelHandle;

/* Returns a handle on the model loaded from @model_path (+ @mmproj_path, may be NULL),
 * loading it if no other handle holds it. On failure returns NULL and sets @error in
 * GST_RESOURCE_ERROR: NOT_FOUND (a file does not exist), OPEN_READ (exists but cannot be
 * read) or FAILED (not a valid FastVLM GGUF: truncated, wrong architecture...), with the
 * engine's message, which names the file. */
FvlmModelHandle *      fvlm_model_cache_acquire (const gchar * model_path,
                                                 const gchar * mmproj_path,
                                                 GError ** error);

/* Drops the handle; the model is freed when its last handle goes. NULL is ignored. */
void                   fvlm_model_cache_release (FvlmModelHandle * handle);

const fastvlm_model *  fvlm_model_handle_get_model (FvlmModelHandle * handle);

/* The run scheduler of the loaded model, shared by all its handles (lives as long as
 * the model). */
FvlmScheduler *        fvlm_model_handle_get_scheduler (FvlmModelHandle * handle);

/* The model's decode batcher (fastvlm_batcher), shared by its handles; NULL if it could
 * not be made. Sessions attached to it must be freed before the last release. */
fastvlm_batcher *      fvlm_model_handle_get_batcher (FvlmModelHandle * handle);

/* Number of handles on the same loaded model (elements sharing it), for stats/tests. */
guint                  fvlm_model_handle_get_users (FvlmModelHandle * handle);

/* The cache key of the handle (canonical paths + file identities), for logs and tests. */
const gchar *          fvlm_model_handle_get_key (FvlmModelHandle * handle);

/* Number of distinct models currently loaded in the process (for tests). */
guint                  fvlm_model_cache_n_loaded (void);

G_END_DECLS

#endif /* __GST_FASTVLM_MODEL_CACHE_H__ */
