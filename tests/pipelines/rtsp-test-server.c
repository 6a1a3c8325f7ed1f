/* rtsp-test-server.c — a tiny RTSP server for the pipeline tests, on 127.0.0.1 only.
 *
 * What it is: gst-rtsp-server serving one mount, /test, whose media is a live videotestsrc
 * (moving ball) encoded as JPEG over RTP. It binds a free port chosen by the kernel, prints
 * the URL ("rtsp://127.0.0.1:PORT/test") on stdout as its first line once it is listening,
 * and runs until SIGTERM/SIGINT, its stdin closing (with --watch-stdin: the test driver
 * holds the other end of a pipe), or --lifetime seconds (a safety net so a crashed test
 * never leaves it running).
 *
 *   rtsp-test-server [--frames N] [--width W] [--height H] [--fps F] [--lifetime S]
 *                    [--watch-stdin]
 *
 * What it is not: a general streaming server; it never listens on anything but loopback.
 */
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>

static gboolean
on_quit (gpointer loop)
{
  g_main_loop_quit (loop);
  return G_SOURCE_REMOVE;
}

/* The parent closing our stdin (or dying) also stops the server. */
static gboolean
on_stdin (gint fd, GIOCondition cond, gpointer loop)
{
  gchar buf[64];
  gssize n = read (fd, buf, sizeof buf);

  if (n <= 0 || (cond & (G_IO_HUP | G_IO_ERR))) {
    g_main_loop_quit (loop);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  gint frames = -1, width = 160, height = 120, fps = 10, lifetime = 600;
  gboolean watch_stdin = FALSE;
  GOptionEntry entries[] = {
    { "frames", 0, 0, G_OPTION_ARG_INT, &frames, "Frames per session (-1: endless)", "N" },
    { "width", 0, 0, G_OPTION_ARG_INT, &width, "Frame width", "W" },
    { "height", 0, 0, G_OPTION_ARG_INT, &height, "Frame height", "H" },
    { "fps", 0, 0, G_OPTION_ARG_INT, &fps, "Frames per second", "F" },
    { "lifetime", 0, 0, G_OPTION_ARG_INT, &lifetime, "Exit after S seconds", "S" },
    { "watch-stdin", 0, 0, G_OPTION_ARG_NONE, &watch_stdin, "Exit when stdin closes", NULL },
    { NULL, 0, 0, G_OPTION_ARG_NONE, NULL, NULL, NULL },
  };
  GOptionContext *ctx;
  GError *err = NULL;
  GMainLoop *loop;
  GstRTSPServer *server;
  GstRTSPMountPoints *mounts;
  GstRTSPMediaFactory *factory;
  gchar *launch;
  guint source_id;

  ctx = g_option_context_new ("- serve a test video over RTSP on 127.0.0.1");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    fprintf (stderr, "rtsp-test-server: %s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (width <= 0 || height <= 0 || width % 8 || height % 8 || fps <= 0 || lifetime <= 0) {
    fprintf (stderr, "rtsp-test-server: width/height must be positive multiples of 8 "
        "(JPEG/RTP), fps and lifetime positive\n");
    return 2;
  }

  loop = g_main_loop_new (NULL, FALSE);
  server = gst_rtsp_server_new ();
  gst_rtsp_server_set_address (server, "127.0.0.1");
  gst_rtsp_server_set_service (server, "0");        /* any free port */

  launch = g_strdup_printf ("( videotestsrc is-live=true pattern=ball num-buffers=%d "
      "! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1 ! jpegenc quality=60 "
      "! rtpjpegpay name=pay0 pt=26 )", frames, width, height, fps);
  factory = gst_rtsp_media_factory_new ();
  gst_rtsp_media_factory_set_launch (factory, launch);
  g_free (launch);
  mounts = gst_rtsp_server_get_mount_points (server);
  gst_rtsp_mount_points_add_factory (mounts, "/test", factory);
  g_object_unref (mounts);

  source_id = gst_rtsp_server_attach (server, NULL);
  if (source_id == 0) {
    fprintf (stderr, "rtsp-test-server: cannot listen on 127.0.0.1\n");
    return 1;
  }
  printf ("rtsp://127.0.0.1:%d/test\n", gst_rtsp_server_get_bound_port (server));
  fflush (stdout);

  g_unix_signal_add (SIGTERM, on_quit, loop);
  g_unix_signal_add (SIGINT, on_quit, loop);
  if (watch_stdin)
    g_unix_fd_add (0, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, loop);
  g_timeout_add_seconds ((guint) lifetime, on_quit, loop);
  g_main_loop_run (loop);

  g_source_remove (source_id);
  g_object_unref (server);
  g_main_loop_unref (loop);
  return 0;
}
