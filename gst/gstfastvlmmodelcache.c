/*
 * gstfastvlmmodelcache.c — shares one loaded fastvlm_model between all fastvlmcaption
 * elements of a process that name the same model files.
 *
 * What it is: a GHashTable from a key built from both files' identities (device, inode,
 * size, mtime — two paths to one file, e.g. through a symlink, give the same key; a file
 * rewritten in place gives a new one) to a refcounted entry, under one global mutex. The
 * mutex is held while a model loads so two elements starting together load it once.
 * What it is not: a session pool; nor does it keep a model alive after its last user
 * (a later start() maps the file again, which is cheap: the engine memory-maps weights).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "gstfastvlmmodelcache.h"

GST_DEBUG_CATEGORY_STATIC (fvlm_model_cache_debug);
#define GST_CAT_DEFAULT fvlm_model_cache_debug
GST_DEBUG_CATEGORY_STATIC (fvlm_engine_debug);

struct _FvlmModelHandle
{
  gchar *key;
  gint refcount;                /* under cache_lock */
  fastvlm_model *model;
  FvlmScheduler *scheduler;     /* run slots of this model, shared by its users */
  fastvlm_batcher *batcher;     /* joins decode steps of concurrent runs (batch-decode) */
};

static GMutex cache_lock;
static GHashTable *cache_table; /* key -> FvlmModelHandle*, under cache_lock */

static void
fvlm_model_cache_init_debug (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_INIT (fvlm_model_cache_debug, "fastvlmmodelcache", 0,
        "fastvlm shared model cache");
    GST_DEBUG_CATEGORY_INIT (fvlm_engine_debug, "fastvlmengine", 0,
        "libfastvlm log output");
    g_once_init_leave (&done, 1);
  }
}

/* Routes the engine's log lines into the GStreamer debug log. */
static void
fvlm_engine_log (fastvlm_log_level level, const char *msg, void *user_data)
{
  GstDebugLevel gst_level;

  switch (level) {
    case FASTVLM_LOG_ERROR:
      gst_level = GST_LEVEL_ERROR;
      break;
    case FASTVLM_LOG_WARN:
      gst_level = GST_LEVEL_WARNING;
      break;
    case FASTVLM_LOG_INFO:
      gst_level = GST_LEVEL_INFO;
      break;
    default:
      gst_level = GST_LEVEL_DEBUG;
      break;
  }
  GST_CAT_LEVEL_LOG (fvlm_engine_debug, gst_level, NULL, "%s", msg);
}

/* Appends "dev:ino:size:mtime" of @path to @key; FALSE with @error when it cannot. */
static gboolean
fvlm_model_cache_append_identity (GString * key, const gchar * path,
    GError ** error)
{
  GStatBuf st;

  if (g_stat (path, &st) != 0) {
    int saved = errno;

    g_set_error (error, GST_RESOURCE_ERROR,
        saved == ENOENT || saved == ENOTDIR ? GST_RESOURCE_ERROR_NOT_FOUND :
        GST_RESOURCE_ERROR_OPEN_READ, "%s: %s", path, g_strerror (saved));
    return FALSE;
  }
  if (!S_ISREG (st.st_mode)) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
        "%s: not a regular file", path);
    return FALSE;
  }
  if (g_access (path, R_OK) != 0) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
        "%s: %s", path, g_strerror (errno));
    return FALSE;
  }
  g_string_append_printf (key, "%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT
      ":%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT, (guint64) st.st_dev,
      (guint64) st.st_ino, (gint64) st.st_size, (gint64) st.st_mtime);
  return TRUE;
}

static GstResourceError
fvlm_model_cache_status_to_code (fastvlm_status status)
{
  switch (status) {
    case FASTVLM_ERR_IO:
      return GST_RESOURCE_ERROR_OPEN_READ;
    default:
      return GST_RESOURCE_ERROR_FAILED;
  }
}

FvlmModelHandle *
fvlm_model_cache_acquire (const gchar * model_path, const gchar * mmproj_path,
    GError ** error)
{
  FvlmModelHandle *handle = NULL;
  fastvlm_model_params params;
  fastvlm_error err;
  fastvlm_status status;
  GString *key;

  g_return_val_if_fail (model_path != NULL, NULL);
  fvlm_model_cache_init_debug ();

  key = g_string_new (NULL);
  if (!fvlm_model_cache_append_identity (key, model_path, error))
    goto failed;
  g_string_append_c (key, '|');
  if (mmproj_path && !fvlm_model_cache_append_identity (key, mmproj_path, error))
    goto failed;

  g_mutex_lock (&cache_lock);
  if (cache_table == NULL)
    cache_table = g_hash_table_new (g_str_hash, g_str_equal);

  handle = g_hash_table_lookup (cache_table, key->str);
  if (handle) {
    handle->refcount++;
    GST_INFO ("sharing loaded model %s (%d users)", key->str, handle->refcount);
    g_mutex_unlock (&cache_lock);
    g_string_free (key, TRUE);
    return handle;
  }

  params = fastvlm_model_default_params ();
  params.mmproj_path = mmproj_path;
  params.log = fvlm_engine_log;
  params.log_level = FASTVLM_LOG_DEBUG;

  handle = g_new0 (FvlmModelHandle, 1);
  GST_INFO ("loading model %s + %s", model_path, GST_STR_NULL (mmproj_path));
  status = fastvlm_model_load (model_path, &params, &handle->model, &err);
  if (status != FASTVLM_OK) {
    g_mutex_unlock (&cache_lock);
    g_set_error (error, GST_RESOURCE_ERROR,
        fvlm_model_cache_status_to_code (status), "%s", err.message);
    g_free (handle);
    goto failed;
  }
  handle->refcount = 1;
  handle->scheduler = fvlm_scheduler_new ();
  if (fastvlm_batcher_new (handle->model, &handle->batcher, &err) != FASTVLM_OK)
    GST_WARNING ("no decode batcher: %s", err.message);
  handle->key = g_string_free (key, FALSE);
  g_hash_table_insert (cache_table, handle->key, handle);
  g_mutex_unlock (&cache_lock);
  return handle;

  /* ERRORS */
failed:
  {
    g_string_free (key, TRUE);
    return NULL;
  }
}

void
fvlm_model_cache_release (FvlmModelHandle * handle)
{
  if (handle == NULL)
    return;

  g_mutex_lock (&cache_lock);
  if (--handle->refcount > 0) {
    g_mutex_unlock (&cache_lock);
    return;
  }
  g_hash_table_remove (cache_table, handle->key);
  if (g_hash_table_size (cache_table) == 0) {
    g_hash_table_unref (cache_table);
    cache_table = NULL;
  }
  g_mutex_unlock (&cache_lock);

  GST_INFO ("freeing model %s", handle->key);
  fvlm_scheduler_free (handle->scheduler);
  fastvlm_batcher_free (handle->batcher);
  fastvlm_model_free (handle->model);
  g_free (handle->key);
  g_free (handle);
}

const fastvlm_model *
fvlm_model_handle_get_model (FvlmModelHandle * handle)
{
  return handle->model;
}

FvlmScheduler *
fvlm_model_handle_get_scheduler (FvlmModelHandle * handle)
{
  return handle->scheduler;
}

fastvlm_batcher *
fvlm_model_handle_get_batcher (FvlmModelHandle * handle)
{
  return handle->batcher;
}

guint
fvlm_model_handle_get_users (FvlmModelHandle * handle)
{
  guint n;

  g_mutex_lock (&cache_lock);
  n = (guint) handle->refcount;
  g_mutex_unlock (&cache_lock);
  return n;
}

const gchar *
fvlm_model_handle_get_key (FvlmModelHandle * handle)
{
  return handle->key;
}

guint
fvlm_model_cache_n_loaded (void)
{
  guint n;

  g_mutex_lock (&cache_lock);
  n = cache_table ? g_hash_table_size (cache_table) : 0;
  g_mutex_unlock (&cache_lock);
  return n;
}
