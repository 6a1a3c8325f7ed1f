/*
 * test-rtsp.c — fastvlmcaption behind rtspsrc when the RTSP server goes away and comes
 * back, with the loopback server of tests/pipelines (rtsp-test-server, path in
 * FASTVLM_RTSP_SERVER), the tiny random model and the worker's delay hook.
 *
 * The contract (docs/element.md, "Robustness"): the element does not reconnect and posts
 * nothing of its own for a lost source. rtspsrc reports it — over TCP as a WARNING ("The
 * server closed the connection") followed by EOS, which the element drains (the run in
 * flight is delivered) and forwards on both pads; over UDP as an ERROR. The application
 * restarts: NULL (returns at once, aborting any run), the new location, PLAYING; the
 * element starts afresh and captions resume.
 *
 * What it proves, test by test (each: 2 rounds, the server killed with SIGKILL, then
 * stopped with SIGTERM, while a generation runs):
 *   disconnect_tcp   EOS reaches the bus within a minute; the caption in flight at the
 *                    disconnect was delivered before it; fastvlmcaption posted no ERROR or
 *                    WARNING; NULL succeeds; a new server, PLAYING, captions again.
 *   disconnect_udp   an ERROR from rtspsrc (not from fastvlmcaption) within a minute; the
 *                    same restart.
 * What it is not: a test of rtspsrc's own retry logic, nor of the pipelines/rtsp.sh
 * script (tests/pipelines).
 */
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "robust-util.h"

typedef struct
{
  GPid pid;
  gchar *url;
} Server;

static Server
server_start (void)
{
  const gchar *path = g_getenv ("FASTVLM_RTSP_SERVER");
  /* --lifetime: a safety net should the test die without killing it */
  const gchar *argv[] = { path, "--width", "64", "--height", "48", "--fps", "15",
    "--lifetime", "600", NULL
  };
  Server s = { 0, };
  GError *error = NULL;
  gint out_fd = -1;
  GIOChannel *ch;
  gsize len = 0;

  fail_unless (path != NULL, "FASTVLM_RTSP_SERVER must name rtsp-test-server");
  fail_unless (g_spawn_async_with_pipes (NULL, (gchar **) argv, NULL,
          G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &s.pid, NULL, &out_fd, NULL,
          &error), "%s", error ? error->message : "?");
  ch = g_io_channel_unix_new (out_fd);
  g_io_channel_set_close_on_unref (ch, TRUE);
  fail_unless (g_io_channel_read_line (ch, &s.url, &len, NULL, NULL) ==
      G_IO_STATUS_NORMAL && s.url != NULL, "the server printed no URL");
  g_strchomp (s.url);
  fail_unless (g_str_has_prefix (s.url, "rtsp://127.0.0.1:"), "%s", s.url);
  g_io_channel_unref (ch);
  return s;
}

static void
server_stop (Server * s, gint sig)
{
  gint status;

  kill (s->pid, sig);
  fail_unless (waitpid (s->pid, &status, 0) == s->pid);
  g_spawn_close_pid (s->pid);
  g_clear_pointer (&s->url, g_free);
}

/* rtspsrc makes a new pad for every session; gst_parse_launch links only the first one,
 * so an application that restarts links them itself. */
static void
on_pad_added (GstElement * src, GstPad * pad, GstElement * depay)
{
  GstPad *sink = gst_element_get_static_pad (depay, "sink");

  if (!gst_pad_is_linked (sink))
    gst_pad_link (pad, sink);
  gst_object_unref (sink);
}

/* Captions a round must see before the disconnect. */
#define ROUND_CAPTIONS 2

static void
run_disconnects (const gchar * protocol, gboolean tcp)
{
  GstElement *pipeline, *caption, *src;
  GstBus *bus;
  RbCaptions *rc;
  const gint sigs[] = { SIGKILL, SIGTERM };

  g_setenv ("FASTVLM_GST_TEST_DELAY_MS", "400", TRUE);
  pipeline = rb_pipeline ("rtspsrc name=src protocols=%s latency=100 "
      "rtpjpegdepay name=depay ! jpegdec ! videoconvert ! fastvlmcaption name=c "
      "@MODEL@ max-new-tokens=3 ! fakesink sync=false c.text_src ! "
      "fakesink sync=false", protocol);
  caption = rb_get (pipeline, "c");
  src = rb_get (pipeline, "src");
  g_signal_connect (src, "pad-added", G_CALLBACK (on_pad_added),
      rb_get (pipeline, "depay"));
  rc = rb_captions_new (caption);
  bus = gst_element_get_bus (pipeline);

  for (guint round = 0; round < G_N_ELEMENTS (sigs); round++) {
    Server server = server_start ();
    GstMessage *msg;
    guint before = rb_captions_count (rc), at_kill;
    gboolean busy_at_kill;
    GstMessageType expect = tcp ? GST_MESSAGE_EOS : GST_MESSAGE_ERROR;

    g_object_set (src, "location", server.url, NULL);
    fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE, "round %u: cannot start", round);
    fail_unless (rb_captions_wait (rc, before + ROUND_CAPTIONS, 120),
        "round %u: no captions from %s", round, server.url);
    fail_unless (rb_wait_busy (caption, 60));
    rb_assert_no_error (bus);

    /* the server goes away while the model runs */
    at_kill = rb_captions_count (rc);
    busy_at_kill = fvlm_test_busy (caption);
    server_stop (&server, sigs[round]);

    msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    fail_unless (msg != NULL, "round %u (%s): nothing on the bus after the "
        "server died", round, protocol);
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *err = NULL;

      gst_message_parse_error (msg, &err, NULL);
      GST_INFO ("round %u: ERROR from %s: %s", round,
          GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message);
      /* the error is the source's, never the captioner's */
      fail_unless (GST_MESSAGE_SRC (msg) != GST_OBJECT (caption),
          "fastvlmcaption posted the error: %s", err->message);
      g_error_free (err);
    }
    fail_unless_equals_int (GST_MESSAGE_TYPE (msg), expect);
    gst_message_unref (msg);
    if (tcp && busy_at_kill)
      fail_unless (rb_captions_count (rc) > at_kill,
          "round %u: the caption in flight at the disconnect was lost", round);
    /* nothing from fastvlmcaption itself */
    while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR |
                GST_MESSAGE_WARNING))) {
      fail_if (GST_MESSAGE_SRC (msg) == GST_OBJECT (caption),
          "fastvlmcaption posted an error or warning");
      gst_message_unref (msg);
    }

    /* the application's restart */
    fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    fail_if (fvlm_test_busy (caption));
    g_print ("rtsp %s round %u: %u captions, busy at the disconnect %d, %s\n",
        protocol, round, rb_captions_count (rc) - before, busy_at_kill,
        tcp ? "EOS" : "ERROR");
  }

  /* and once more to PLAYING, to prove the last restart works too */
  {
    Server server = server_start ();
    guint before = rb_captions_count (rc);

    g_object_set (src, "location", server.url, NULL);
    fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE);
    fail_unless (rb_captions_wait (rc, before + ROUND_CAPTIONS, 120),
        "no captions after the restarts");
    rb_assert_no_error (bus);
    fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    server_stop (&server, SIGTERM);
  }

  g_unsetenv ("FASTVLM_GST_TEST_DELAY_MS");
  rb_captions_free (rc, caption);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
}

GST_START_TEST (test_disconnect_tcp)
{
  run_disconnects ("tcp", TRUE);
}

GST_END_TEST;

GST_START_TEST (test_disconnect_udp)
{
  run_disconnects ("udp", FALSE);
}

GST_END_TEST;

static Suite *
robustness_rtsp_suite (void)
{
  Suite *s = suite_create ("fastvlmcaption-rtsp");
  TCase *tc = rb_tcase_new ("general");

  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_disconnect_tcp);
  tcase_add_test (tc, test_disconnect_udp);
  return s;
}

GST_CHECK_MAIN (robustness_rtsp);
