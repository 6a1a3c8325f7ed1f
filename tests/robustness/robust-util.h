/*
 * robust-util.h — helpers shared by the robustness tests of fastvlmcaption
 * (tests/robustness/, header-only, static functions): pipelines from launch lines with the
 * tiny test model, a recorder of every caption tagged with the flush epoch it was emitted
 * in, state-change and bus helpers, /proc counts of open fds and threads, and the
 * teardown that stops what a test left running even when one of its checks failed.
 *
 * What it is not: a test. It builds on tests/gst/fvlm-test-util.h (model paths, frames,
 * stats polling), which it includes.
 */
#ifndef ROBUST_UTIL_H
#define ROBUST_UTIL_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <glib/gstdio.h>

#include "fvlm-test-util.h"

/* Under ASan (asan.sh sets FASTVLM_ROBUST_ASAN) the loops are shortened: the point there
 * is every code path once, leak-checked, not the repetition. */
static inline gboolean
rb_under_asan (void)
{
  return g_getenv ("FASTVLM_ROBUST_ASAN") != NULL;
}

/* ---- teardown ------------------------------------------------------------------------ */

/* A failed check ends a test where it stands: with CK_FORK=no (asan.sh) check longjmps
 * back into the runner and the next test — and at exit gst_deinit(), which joins every
 * streaming thread — runs with that test's pipeline still PLAYING (a worker in the
 * 10-minute test delay, a source pushing forever): it hung. So every pipeline and every
 * resource a thread may be blocked on is registered here as it is made, and rb_teardown
 * (a checked fixture of every suite: it runs after each test, passed or failed) undoes
 * them last-registered first. Teardown uses no fail_*(): a failure inside it would jump
 * out of the runner. */
typedef struct
{
  GDestroyNotify fn;
  gpointer data;
} RbCleanup;

static GArray *rb_cleanups;     /* RbCleanup, in the order registered */

/* Runs fn(data) at teardown, before everything registered earlier. */
static inline void
rb_defer (GDestroyNotify fn, gpointer data)
{
  RbCleanup c = { fn, data };

  if (rb_cleanups == NULL)
    rb_cleanups = g_array_new (FALSE, FALSE, sizeof (RbCleanup));
  g_array_append_val (rb_cleanups, c);
}

typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean done;
  gchar *what;
} RbWatchdog;

/* A teardown that itself hangs would hang the whole program where no check timeout
 * applies (CK_FORK=no): after 5 minutes the watchdog says what hung and aborts. */
static inline gpointer
rb_watchdog_thread (gpointer data)
{
  RbWatchdog *wd = data;
  gint64 end = g_get_monotonic_time () + 300 * G_USEC_PER_SEC;
  gboolean done;

  g_mutex_lock (&wd->lock);
  while (!wd->done && g_cond_wait_until (&wd->cond, &wd->lock, end));
  done = wd->done;
  g_mutex_unlock (&wd->lock);
  if (!done) {
    g_printerr ("teardown: %s did not finish in 300 s; aborting\n", wd->what);
    abort ();
  }
  return NULL;
}

/* Brings @pipeline to NULL (which ends a run in flight: the worker's test delay waits on a
 * condition the stop path signals) and drops the reference rb_track_pipeline() took. */
static inline void
rb_stop_pipeline (gpointer data)
{
  GstElement *pipeline = data;
  RbWatchdog wd = { 0, };
  GThread *thread;

  g_mutex_init (&wd.lock);
  g_cond_init (&wd.cond);
  wd.what = g_strdup_printf ("stopping %s", GST_OBJECT_NAME (pipeline));
  thread = g_thread_new ("rb-watchdog", rb_watchdog_thread, &wd);
  if (gst_element_set_state (pipeline, GST_STATE_NULL) ==
      GST_STATE_CHANGE_FAILURE)
    g_printerr ("teardown: %s did not go to NULL\n", GST_OBJECT_NAME (pipeline));
  g_mutex_lock (&wd.lock);
  wd.done = TRUE;
  g_cond_broadcast (&wd.cond);
  g_mutex_unlock (&wd.lock);
  g_thread_join (thread);
  g_free (wd.what);
  g_mutex_clear (&wd.lock);
  g_cond_clear (&wd.cond);
  gst_object_unref (pipeline);
}

/* Makes the teardown stop @pipeline (it keeps a reference of its own: the test unrefs
 * its reference as usual). */
static inline GstElement *
rb_track_pipeline (GstElement * pipeline)
{
  rb_defer (rb_stop_pipeline, gst_object_ref (pipeline));
  return pipeline;
}

/* The checked teardown of every robustness suite. */
static inline void
rb_teardown (void)
{
  if (rb_cleanups) {
    for (guint i = rb_cleanups->len; i > 0; i--) {
      RbCleanup c = g_array_index (rb_cleanups, RbCleanup, i - 1);

      c.fn (c.data);
    }
    g_array_free (rb_cleanups, TRUE);
    rb_cleanups = NULL;
  }
  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
}

/* A test case with rb_teardown as its checked fixture. */
static inline TCase *
rb_tcase_new (const gchar * name)
{
  TCase *tc = tcase_create (name);

  tcase_add_checked_fixture (tc, NULL, rb_teardown);
  return tc;
}

/* A pipeline from a launch line in which @MODEL@ stands for the tiny model's properties;
 * the teardown stops it. */
static inline GstElement *
rb_pipeline (const gchar * fmt, ...)
{
  gchar *desc, *model, **parts;
  GstElement *p;
  GError *error = NULL;
  va_list args;

  va_start (args, fmt);
  desc = g_strdup_vprintf (fmt, args);
  va_end (args);
  model = g_strdup_printf ("model=\"%s\" mmproj=\"%s\" threads=1",
      fvlm_test_model (), fvlm_test_mmproj ());
  parts = g_strsplit (desc, "@MODEL@", -1);
  g_free (desc);
  desc = g_strjoinv (model, parts);
  g_strfreev (parts);
  g_free (model);
  p = gst_parse_launch (desc, &error);
  fail_unless (p != NULL && error == NULL, "%s: %s", desc,
      error ? error->message : "?");
  g_free (desc);
  return rb_track_pipeline (p);
}

static inline GstElement *
rb_get (GstElement * pipeline, const gchar * name)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipeline), name);

  fail_unless (e != NULL, "no element %s", name);
  gst_object_unref (e);         /* the pipeline keeps it alive */
  return e;
}

/* Prints every element's state (and the caption element's stats): what a state change
 * that never completed was waiting for. */
static inline void
rb_dump_states (GstElement * pipeline)
{
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (pipeline));
  GValue item = G_VALUE_INIT;

  while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&item);
    GstState cur, pending;

    gst_element_get_state (e, &cur, &pending, 0);
    g_printerr ("  %s: %s (pending %s)\n", GST_OBJECT_NAME (e),
        gst_element_state_get_name (cur), gst_element_state_get_name (pending));
    if (g_object_class_find_property (G_OBJECT_GET_CLASS (e), "stats")
        && g_str_has_prefix (G_OBJECT_TYPE_NAME (e), "GstFastVLM")) {
      GstStructure *s = fvlm_test_stats (e);
      gchar *str = gst_structure_to_string (s);

      g_printerr ("    %s\n", str);
      g_free (str);
      gst_structure_free (s);
    }
    g_value_reset (&item);
  }
  g_value_unset (&item);
  gst_iterator_free (it);
}

/* Sets @state and waits (a minute at most: CI is loaded) until the change completes. */
static inline void
rb_set_state_wait (GstElement * pipeline, GstState state)
{
  GstStateChangeReturn ret;
  GstState current = GST_STATE_VOID_PENDING;

  ret = gst_element_set_state (pipeline, state);
  fail_if (ret == GST_STATE_CHANGE_FAILURE, "cannot go to %s",
      gst_element_state_get_name (state));
  ret = gst_element_get_state (pipeline, &current, NULL, 60 * GST_SECOND);
  if (ret != GST_STATE_CHANGE_SUCCESS && ret != GST_STATE_CHANGE_NO_PREROLL) {
    g_printerr ("going to %s did not complete:\n",
        gst_element_state_get_name (state));
    rb_dump_states (pipeline);
  }
  fail_unless (ret == GST_STATE_CHANGE_SUCCESS
      || ret == GST_STATE_CHANGE_NO_PREROLL, "%s: state change returned %s",
      gst_element_state_get_name (state),
      gst_element_state_change_return_get_name (ret));
  fail_unless_equals_int (current, state);
}

/* Fails on any ERROR message waiting on @bus; warnings are popped and returned (the
 * caller decides which are expected). */
static inline void
rb_assert_no_error (GstBus * bus)
{
  GstMessage *msg;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR))) {
    GError *err = NULL;
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    fail ("ERROR from %s: %s (%s)", GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)),
        err->message, dbg);
  }
}

/* Polls the element's busy flag for up to @seconds. */
static inline gboolean
rb_wait_busy (GstElement * caption, gint seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64) seconds * G_USEC_PER_SEC;

  while (!fvlm_test_busy (caption)) {
    if (g_get_monotonic_time () > end)
      return FALSE;
    g_usleep (1000);
  }
  return TRUE;
}

/* ---- /proc -------------------------------------------------------------------------- */

static inline gint
rb_count_dir (const gchar * path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  gint n = 0;

  fail_unless (dir != NULL, "cannot list %s", path);
  while (g_dir_read_name (dir))
    n++;
  g_dir_close (dir);
  return n;
}

static inline gint
rb_count_fds (void)
{
  return rb_count_dir ("/proc/self/fd");
}

static inline gint
rb_count_threads (void)
{
  return rb_count_dir ("/proc/self/task");
}

/* ---- captions ----------------------------------------------------------------------- */

/* Every result of one element, from its `caption` signal (worker thread), each a copy of
 * the structure with an extra uint field "rb-epoch": the value of `epoch` when it was
 * emitted. The tests bump `epoch` from a probe on the element's video src pad when a
 * FLUSH_STOP leaves the element — by then the element has finished with everything from
 * before the flush, so a caption tagged with the new epoch must describe a new frame. */
typedef struct
{
  GMutex lock;
  GCond cond;
  GPtrArray *all;               /* GstStructure* */
  guint epoch;
} RbCaptions;

static inline void
rb_captions_on_caption (GstElement * e, const GstStructure * s, RbCaptions * rc)
{
  GstStructure *copy = gst_structure_copy (s);

  g_mutex_lock (&rc->lock);
  gst_structure_set (copy, "rb-epoch", G_TYPE_UINT, rc->epoch, NULL);
  g_ptr_array_add (rc->all, copy);
  g_cond_broadcast (&rc->cond);
  g_mutex_unlock (&rc->lock);
}

static inline RbCaptions *
rb_captions_new (GstElement * caption)
{
  RbCaptions *rc = g_new0 (RbCaptions, 1);

  g_mutex_init (&rc->lock);
  g_cond_init (&rc->cond);
  rc->all = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_structure_free);
  g_signal_connect (caption, "caption", G_CALLBACK (rb_captions_on_caption),
      rc);
  return rc;
}

/* Disconnect before freeing (the element may outlive the recorder). */
static inline void
rb_captions_free (RbCaptions * rc, GstElement * caption)
{
  g_signal_handlers_disconnect_by_data (caption, rc);
  g_ptr_array_unref (rc->all);
  g_mutex_clear (&rc->lock);
  g_cond_clear (&rc->cond);
  g_free (rc);
}

static inline guint
rb_captions_count (RbCaptions * rc)
{
  guint n;

  g_mutex_lock (&rc->lock);
  n = rc->all->len;
  g_mutex_unlock (&rc->lock);
  return n;
}

/* Waits (up to @seconds) until there are at least @n captions; FALSE on timeout. */
static inline gboolean
rb_captions_wait (RbCaptions * rc, guint n, gint seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64) seconds * G_USEC_PER_SEC;
  gboolean ok = TRUE;

  g_mutex_lock (&rc->lock);
  while (rc->all->len < n && ok)
    ok = g_cond_wait_until (&rc->cond, &rc->lock, end) || rc->all->len >= n;
  g_mutex_unlock (&rc->lock);
  return ok;
}

static inline guint64
rb_u64 (const GstStructure * s, const gchar * field)
{
  guint64 v = 0;

  fail_unless (gst_structure_get_uint64 (s, field, &v), "no field %s", field);
  return v;
}

static inline guint
rb_uint (const GstStructure * s, const gchar * field)
{
  guint v = 0;

  fail_unless (gst_structure_get_uint (s, field, &v), "no field %s", field);
  return v;
}

#endif /* ROBUST_UTIL_H */
