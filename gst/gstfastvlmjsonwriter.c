/*
 * gstfastvlmjsonwriter.c — the fastvlmjsonwriter element: captions out as JSON Lines.
 *
 * What it is: a passthrough GstBaseTransform that, for every FastVLMCaptionMeta on a buffer
 * going by, writes one line of JSON (every field of the meta plus the stream name, the wall
 * time and the buffer's PTS) to a file, an already-open descriptor or stdout, each line
 * built whole and handed to a single write(). What it is not: a sink (the video goes on to
 * whatever follows, untouched and undelayed) nor a parser of any other metadata.
 */

/**
 * SECTION:element-fastvlmjsonwriter
 * @title: fastvlmjsonwriter
 *
 * Writes the captions of fastvlmcaption as JSON Lines, one object per caption, for
 * `tail -f`, `jq` or a log shipper. It sits on the video path after fastvlmcaption (also
 * after videoconvert, videoscale, queue or tee: the meta survives them) and lets every
 * buffer through untouched: a passthrough filter rather than a sink, so no tee, no extra
 * branch and no preroll or clock wait is needed, and the video still reaches its real
 * sink. Buffers without a caption meta write nothing; a buffer with several (live mode
 * attaches all results not yet delivered to the next frame) writes one line each, oldest
 * first.
 *
 * ## Fields of a line
 *
 * * `stream` (string): the stream-name property; by default the name of the nearest
 *   fastvlmcaption upstream, else this element's name.
 * * `wall-time` (string): UTC time the line was made, ISO 8601 with milliseconds
 *   (`2025-01-31T12:34:56.789Z`).
 * * `wall-time-us` (integer, µs): the same instant since the Unix epoch.
 * * `buffer-pts` (integer ns, or null): PTS of the buffer that carried the meta (live: a
 *   frame after the described one; the described frame is `frame-pts`).
 * * then every field of the meta, in its order and under its name: strings as strings,
 *   booleans as booleans, integers as integers (a guint64 above G_MAXINT64, i.e.
 *   GST_CLOCK_TIME_NONE, as null), doubles as numbers (NaN/infinity as null), anything
 *   else as its GStreamer serialisation (string). See fastvlmcaption for the meta's fields.
 *
 * ## Destination
 *
 * `location` names a file (created, truncated unless append=true); unset or "-" it is
 * `fd` when that is not -1, else stdout. A file that cannot be opened or a descriptor not
 * open for writing is an ERROR (RESOURCE, OPEN_WRITE) naming it, and READY→PAUSED fails.
 * A failed write is an ERROR (RESOURCE, WRITE or NO_SPACE_LEFT) and the flow returns
 * GST_FLOW_ERROR. Each line goes out in one write() (flush-every-line=true, the default),
 * so several writers appending to one file or pipe never interleave inside a line (for
 * pipes, lines up to PIPE_BUF = 4096 bytes); with flush-every-line=false complete lines
 * are batched up to PIPE_BUF bytes and the rest is written at EOS and on stop.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=60 ! \
 *     fastvlmcaption model=m.gguf mmproj=m-mmproj.gguf mode=offline interval=1000000000 ! \
 *     fastvlmjsonwriter location=captions.jsonl ! fakesink
 * ]| One line per second of video in captions.jsonl.
 * |[
 * gst-launch-1.0 -q videotestsrc is-live=true ! fastvlmcaption model=m.gguf \
 *     mmproj=m-mmproj.gguf ! videoconvert ! fastvlmjsonwriter ! autovideosink | jq .text
 * ]| Live captions to stdout (-q keeps gst-launch's own messages out of it).
 */

/* open(), fcntl() and poll() are POSIX, not ISO C (the project builds with -std=c11) */
#define _POSIX_C_SOURCE 200809L

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "gstfastvlmjsonwriter.h"
#include "gstfastvlmcaptionmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_fastvlm_json_writer_debug);
#define GST_CAT_DEFAULT gst_fastvlm_json_writer_debug

#ifndef PIPE_BUF
#define PIPE_BUF 4096
#endif

#define DEFAULT_LOCATION NULL
#define DEFAULT_FD -1
#define DEFAULT_APPEND FALSE
#define DEFAULT_FLUSH_EVERY_LINE TRUE
#define DEFAULT_STREAM_NAME NULL

/* how far upstream (elements) the default stream name is looked for */
#define MAX_UPSTREAM_HOPS 64

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_FD,
  PROP_APPEND,
  PROP_FLUSH_EVERY_LINE,
  PROP_STREAM_NAME
};

/* The writer never looks at the data: any caps, video being where the meta lives. */
static GstStaticPadTemplate gst_fastvlm_json_writer_sink_template =
GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS_ANY);

static GstStaticPadTemplate gst_fastvlm_json_writer_src_template =
GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS_ANY);

#define gst_fastvlm_json_writer_parent_class parent_class
G_DEFINE_TYPE (GstFastVLMJsonWriter, gst_fastvlm_json_writer,
    GST_TYPE_BASE_TRANSFORM)
GST_ELEMENT_REGISTER_DEFINE (fastvlmjsonwriter, "fastvlmjsonwriter",
    GST_RANK_NONE, GST_TYPE_FASTVLM_JSON_WRITER)

static void gst_fastvlm_json_writer_set_property (GObject * object,
    guint prop_id, const GValue * value, GParamSpec * pspec);
static void gst_fastvlm_json_writer_get_property (GObject * object,
    guint prop_id, GValue * value, GParamSpec * pspec);
static void gst_fastvlm_json_writer_finalize (GObject * object);
static gboolean gst_fastvlm_json_writer_start (GstBaseTransform * trans);
static gboolean gst_fastvlm_json_writer_stop (GstBaseTransform * trans);
static gboolean gst_fastvlm_json_writer_sink_event (GstBaseTransform * trans,
    GstEvent * event);
static GstFlowReturn gst_fastvlm_json_writer_transform_ip (GstBaseTransform *
    trans, GstBuffer * buf);

static void
gst_fastvlm_json_writer_class_init (GstFastVLMJsonWriterClass * klass)
{
  GObjectClass *gobject_class = (GObjectClass *) klass;
  GstElementClass *element_class = (GstElementClass *) klass;
  GstBaseTransformClass *trans_class = (GstBaseTransformClass *) klass;

  GST_DEBUG_CATEGORY_INIT (gst_fastvlm_json_writer_debug, "fastvlmjsonwriter", 0,
      "FastVLM captions as JSON Lines");

  gobject_class->set_property = gst_fastvlm_json_writer_set_property;
  gobject_class->get_property = gst_fastvlm_json_writer_get_property;
  gobject_class->finalize = gst_fastvlm_json_writer_finalize;

  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "File to write the JSON lines to; unset or \"-\": the fd property, or "
          "stdout when fd is -1", DEFAULT_LOCATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_FD,
      g_param_spec_int ("fd", "File descriptor",
          "Already-open descriptor to write to when location is unset or \"-\" "
          "(never closed by the element); -1 = stdout", -1, G_MAXINT, DEFAULT_FD,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_APPEND,
      g_param_spec_boolean ("append", "Append",
          "Append to the location file instead of truncating it", DEFAULT_APPEND,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_FLUSH_EVERY_LINE,
      g_param_spec_boolean ("flush-every-line", "Flush every line",
          "Write each line as soon as it is made (for tail -f); false: batch "
          "complete lines up to PIPE_BUF bytes, the rest at EOS",
          DEFAULT_FLUSH_EVERY_LINE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_STREAM_NAME,
      g_param_spec_string ("stream-name", "Stream name",
          "Value of the \"stream\" field of every line; unset: the name of the "
          "nearest fastvlmcaption upstream, else this element's name",
          DEFAULT_STREAM_NAME,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_set_static_metadata (element_class,
      "FastVLM caption JSON writer", "Filter/Metadata/Video",
      "Writes every FastVLMCaptionMeta passing by as one JSON line to a file, a "
      "descriptor or stdout; the video passes through untouched",
      "gst-fastvlm developers");
  gst_element_class_add_static_pad_template (element_class,
      &gst_fastvlm_json_writer_sink_template);
  gst_element_class_add_static_pad_template (element_class,
      &gst_fastvlm_json_writer_src_template);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_fastvlm_json_writer_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_fastvlm_json_writer_stop);
  trans_class->sink_event =
      GST_DEBUG_FUNCPTR (gst_fastvlm_json_writer_sink_event);
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_fastvlm_json_writer_transform_ip);
  /* transform_ip reads the metas of buffers it does not own: keep it in passthrough */
  trans_class->transform_ip_on_passthrough = TRUE;
  trans_class->passthrough_on_same_caps = TRUE;
}

static void
gst_fastvlm_json_writer_init (GstFastVLMJsonWriter * self)
{
  self->location = g_strdup (DEFAULT_LOCATION);
  self->fd = DEFAULT_FD;
  self->append = DEFAULT_APPEND;
  self->flush_every_line = DEFAULT_FLUSH_EVERY_LINE;
  self->stream_name = g_strdup (DEFAULT_STREAM_NAME);
  self->out_fd = -1;
  self->pending = g_string_new (NULL);

  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_fastvlm_json_writer_finalize (GObject * object)
{
  GstFastVLMJsonWriter *self = GST_FASTVLM_JSON_WRITER (object);

  g_free (self->location);
  g_free (self->stream_name);
  g_free (self->out_name);
  g_free (self->auto_stream);
  g_string_free (self->pending, TRUE);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_fastvlm_json_writer_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstFastVLMJsonWriter *self = GST_FASTVLM_JSON_WRITER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_FD:
      self->fd = g_value_get_int (value);
      break;
    case PROP_APPEND:
      self->append = g_value_get_boolean (value);
      break;
    case PROP_FLUSH_EVERY_LINE:
      self->flush_every_line = g_value_get_boolean (value);
      break;
    case PROP_STREAM_NAME:
      g_free (self->stream_name);
      self->stream_name = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_fastvlm_json_writer_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstFastVLMJsonWriter *self = GST_FASTVLM_JSON_WRITER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_FD:
      g_value_set_int (value, self->fd);
      break;
    case PROP_APPEND:
      g_value_set_boolean (value, self->append);
      break;
    case PROP_FLUSH_EVERY_LINE:
      g_value_set_boolean (value, self->flush_every_line);
      break;
    case PROP_STREAM_NAME:
      g_value_set_string (value, self->stream_name);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ---- destination ---- */

static gboolean
gst_fastvlm_json_writer_start (GstBaseTransform * trans)
{
  GstFastVLMJsonWriter *self = GST_FASTVLM_JSON_WRITER (trans);
  gchar *location;
  gint fd, flags, err = 0;
  gboolean append;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  fd = self->fd;
  append = self->append;
  GST_OBJECT_UNLOCK (self);

  g_clear_pointer (&self->out_name, g_free);
  g_clear_pointer (&self->auto_stream, g_free);
  g_string_truncate (self->pending, 0);
  self->n_lines = 0;
  self->own_fd = FALSE;
  self->is_stdout = FALSE;

  if (location != NULL && location[0] != '\0' && strcmp (location, "-") != 0) {
    flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
    self->out_name = g_strdup (location);
    do {
      self->out_fd = open (location, flags, 0666);
    } while (self->out_fd < 0 && errno == EINTR);
    if (self->out_fd < 0) {
      err = errno;
      goto open_failed;
    }
    self->own_fd = TRUE;
  } else {
    if (fd < 0) {
      fd = STDOUT_FILENO;
      self->is_stdout = TRUE;
      self->out_name = g_strdup ("stdout");
    } else {
      self->out_name = g_strdup_printf ("fd %d", fd);
    }
    /* fail now, not at the first caption, when the descriptor cannot be written to */
    flags = fcntl (fd, F_GETFL);
    if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY) {
      err = flags < 0 ? errno : EBADF;
      goto fd_not_writable;
    }
    self->out_fd = fd;
  }
  GST_INFO_OBJECT (self, "writing JSON lines to %s (%s)", self->out_name,
      self->own_fd ? (append ? "append" : "truncate") : "not owned");
  g_free (location);
  return TRUE;

  /* ERRORS */
open_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("Could not open file \"%s\" for writing.", location),
        ("open(\"%s\"): %s", location, g_strerror (err)));
    g_free (location);
    return FALSE;
  }
fd_not_writable:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("Could not write to %s: not open for writing.", self->out_name),
        ("fcntl(%d, F_GETFL): %s", fd, flags < 0 ? g_strerror (err) :
            "opened read-only"));
    g_free (location);
    return FALSE;
  }
}

/* Writes all of @data in as few write() calls as the kernel allows (one, unless it is
 * interrupted or the descriptor is a full non-blocking pipe). Returns 0 or an errno. */
static gint
fvlm_json_write_all (gint fd, const gchar * data, gsize len)
{
  while (len > 0) {
    ssize_t n = write (fd, data, len);

    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        /* a non-blocking descriptor handed to us: wait until it can take more */
        struct pollfd pfd = { fd, POLLOUT, 0 };

        if (poll (&pfd, 1, -1) < 0 && errno != EINTR)
          return errno;
        continue;
      }
      return errno;
    }
    data += n;
    len -= (gsize) n;
  }
  return 0;
}

/* Writes and empties the pending lines; posts an ERROR and returns FALSE on failure. */
static gboolean
gst_fastvlm_json_writer_flush (GstFastVLMJsonWriter * self)
{
  gint err;

  if (self->pending->len == 0 || self->out_fd < 0)
    return TRUE;
  /* whatever the application printed with stdio before goes out first */
  if (self->is_stdout)
    fflush (stdout);
  err = fvlm_json_write_all (self->out_fd, self->pending->str,
      self->pending->len);
  g_string_truncate (self->pending, 0);
  if (err != 0)
    goto write_failed;
  return TRUE;

  /* ERRORS */
write_failed:
  {
    if (err == ENOSPC)
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
          ("No space left on the resource (%s).", self->out_name),
          ("write: %s", g_strerror (err)));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
          ("Could not write to %s.", self->out_name),
          ("write: %s", g_strerror (err)));
    return FALSE;
  }
}

static gboolean
gst_fastvlm_json_writer_stop (GstBaseTransform * trans)
{
  GstFastVLMJsonWriter *self = GST_FASTVLM_JSON_WRITER (trans);

  /* streaming has stopped: lines batched since the last write go out now */
  gst_fastvlm_json_writer_flush (self);
  if (self->own_fd && close (self->out_fd) != 0) {
    gint err = errno;

    GST_ELEMENT_ERROR (self, RESOURCE, CLOSE,
        ("Could not close file \"%s\".", self->out_name),
        ("close: %s", g_strerror (err)));
  }
  GST_DEBUG_OBJECT (self, "%" G_GUINT64_FORMAT " lines written to %s",
      self->n_lines, self->out_name);
  self->out_fd = -1;
  self->own_fd = FALSE;
  g_clear_pointer (&self->auto_stream, g_free);
  return TRUE;
}

static gboolean
gst_fastvlm_json_writer_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstFastVLMJsonWriter *self = GST_FASTVLM_JSON_WRITER (trans);

  /* the file is complete when the application sees EOS on the bus */
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS)
    gst_fastvlm_json_writer_flush (self);
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

/* ---- stream name ---- */

/* The element whose source pad feeds @sinkpad, looking through ghost pads. */
static GstElement *
fvlm_json_upstream_element (GstPad * sinkpad)
{
  GstPad *pad = gst_pad_get_peer (sinkpad);
  GstElement *element;

  while (pad != NULL) {
    GstPad *next = NULL;

    if (GST_IS_GHOST_PAD (pad)) {
      /* a bin's source ghost pad: go inside */
      next = gst_ghost_pad_get_target (GST_GHOST_PAD (pad));
    } else if (GST_IS_PROXY_PAD (pad) && GST_PAD_IS_SRC (pad)) {
      /* inside a bin, fed through its sink ghost pad: go outside */
      GstProxyPad *ghost = gst_proxy_pad_get_internal (GST_PROXY_PAD (pad));

      if (ghost != NULL) {
        next = gst_pad_get_peer (GST_PAD (ghost));
        gst_object_unref (ghost);
      }
    } else {
      break;
    }
    gst_object_unref (pad);
    pad = next;
  }
  if (pad == NULL)
    return NULL;
  element = gst_pad_get_parent_element (pad);
  gst_object_unref (pad);
  return element;
}

/* The only sink pad of @element, or NULL when it has none or several (a mixer). */
static GstPad *
fvlm_json_only_sink_pad (GstElement * element)
{
  GstPad *pad = NULL;

  GST_OBJECT_LOCK (element);
  if (element->numsinkpads == 1)
    pad = gst_object_ref (element->sinkpads->data);
  GST_OBJECT_UNLOCK (element);
  return pad;
}

/* The name of the nearest fastvlmcaption upstream through single-input elements
 * (videoconvert, queue, tee, bins...), else ours. */
static gchar *
gst_fastvlm_json_writer_find_stream (GstFastVLMJsonWriter * self)
{
  GstPad *sinkpad = gst_object_ref (GST_BASE_TRANSFORM_SINK_PAD (self));
  gchar *name = NULL;

  for (gint hop = 0; hop < MAX_UPSTREAM_HOPS && sinkpad != NULL && !name; hop++) {
    GstElement *up = fvlm_json_upstream_element (sinkpad);
    GstElementFactory *factory;

    gst_object_unref (sinkpad);
    sinkpad = NULL;
    if (up == NULL)
      break;
    factory = gst_element_get_factory (up);
    if (factory && strcmp (GST_OBJECT_NAME (factory), "fastvlmcaption") == 0)
      name = gst_element_get_name (up);
    else
      sinkpad = fvlm_json_only_sink_pad (up);
    gst_object_unref (up);
  }
  if (sinkpad)
    gst_object_unref (sinkpad);
  if (name == NULL)
    name = gst_element_get_name (GST_ELEMENT (self));
  GST_DEBUG_OBJECT (self, "default stream name \"%s\"", name);
  return name;
}

/* ---- one line ---- */

/* A meta field as a JSON value (see "Fields of a line" above). */
static JsonNode *
fvlm_json_node_from_value (const GValue * value)
{
  JsonNode *node = json_node_alloc ();
  GType type = G_VALUE_TYPE (value);

  if (type == G_TYPE_STRING) {
    const gchar *s = g_value_get_string (value);

    if (s == NULL) {
      json_node_init_null (node);
    } else if (g_utf8_validate (s, -1, NULL)) {
      json_node_init_string (node, s);
    } else {
      gchar *valid = g_utf8_make_valid (s, -1);

      json_node_init_string (node, valid);
      g_free (valid);
    }
  } else if (type == G_TYPE_BOOLEAN) {
    json_node_init_boolean (node, g_value_get_boolean (value));
  } else if (type == G_TYPE_INT) {
    json_node_init_int (node, g_value_get_int (value));
  } else if (type == G_TYPE_UINT) {
    json_node_init_int (node, g_value_get_uint (value));
  } else if (type == G_TYPE_INT64) {
    json_node_init_int (node, g_value_get_int64 (value));
  } else if (type == G_TYPE_UINT64) {
    guint64 v = g_value_get_uint64 (value);

    /* GST_CLOCK_TIME_NONE and anything else JSON integers (int64) cannot hold */
    if (v > (guint64) G_MAXINT64)
      json_node_init_null (node);
    else
      json_node_init_int (node, (gint64) v);
  } else if (type == G_TYPE_DOUBLE || type == G_TYPE_FLOAT) {
    gdouble v = type == G_TYPE_DOUBLE ? g_value_get_double (value) :
        g_value_get_float (value);

    if (isfinite (v))
      json_node_init_double (node, v);
    else
      json_node_init_null (node);
  } else {
    gchar *s = gst_value_serialize (value);

    if (s != NULL && g_utf8_validate (s, -1, NULL))
      json_node_init_string (node, s);
    else
      json_node_init_null (node);
    g_free (s);
  }
  return node;
}

/* The four fields the writer adds; a meta field of the same name is left out. */
static gboolean
fvlm_json_is_writer_field (const gchar * name)
{
  return strcmp (name, "stream") == 0 || strcmp (name, "wall-time") == 0 ||
      strcmp (name, "wall-time-us") == 0 || strcmp (name, "buffer-pts") == 0;
}

static gboolean
fvlm_json_add_field (GQuark field, const GValue * value, gpointer object)
{
  const gchar *name = g_quark_to_string (field);

  if (!fvlm_json_is_writer_field (name))
    json_object_set_member ((JsonObject *) object, name,
        fvlm_json_node_from_value (value));
  return TRUE;
}

/* A JSON string literal of @s, escaped by json-glib. */
static void
fvlm_json_append_string (GString * out, const gchar * s)
{
  JsonNode *node = json_node_init_string (json_node_alloc (), s);
  gchar *quoted = json_to_string (node, FALSE);

  g_string_append (out, quoted);
  g_free (quoted);
  json_node_unref (node);
}

/* The shortest decimal that reads back as @v, always with a '.' or an exponent so that
 * it parses back as a double: json-glib 1.6's generator prints %.17g (12.3 comes out
 * 12.300000000000001) and appends ".0" after exponents (1e+20.0, not JSON). */
static void
fvlm_json_append_double (GString * out, gdouble v)
{
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];

  for (gint precision = 1; precision <= 17; precision++) {
    gchar format[8];

    g_snprintf (format, sizeof format, "%%.%dg", precision);
    g_ascii_formatd (buf, sizeof buf, format, v);
    if (g_ascii_strtod (buf, NULL) == v)
      break;
  }
  g_string_append (out, buf);
  if (strpbrk (buf, ".e") == NULL)
    g_string_append (out, ".0");
}

/* @object as one line of JSON (keys in insertion order), newline included. Values are
 * scalars only (fvlm_json_node_from_value makes nothing else). */
static void
fvlm_json_append_line (GString * out, JsonObject * object)
{
  JsonObjectIter iter;
  const gchar *name;
  JsonNode *node;
  gboolean first = TRUE;

  g_string_append_c (out, '{');
  json_object_iter_init_ordered (&iter, object);
  while (json_object_iter_next_ordered (&iter, &name, &node)) {
    if (!first)
      g_string_append_c (out, ',');
    first = FALSE;
    fvlm_json_append_string (out, name);
    g_string_append_c (out, ':');
    if (JSON_NODE_HOLDS_NULL (node)) {
      g_string_append (out, "null");
    } else if (json_node_get_value_type (node) == G_TYPE_STRING) {
      fvlm_json_append_string (out, json_node_get_string (node));
    } else if (json_node_get_value_type (node) == G_TYPE_BOOLEAN) {
      g_string_append (out, json_node_get_boolean (node) ? "true" : "false");
    } else if (json_node_get_value_type (node) == G_TYPE_INT64) {
      g_string_append_printf (out, "%" G_GINT64_FORMAT,
          json_node_get_int (node));
    } else {
      fvlm_json_append_double (out, json_node_get_double (node));
    }
  }
  g_string_append (out, "}\n");
}

/* ISO 8601 UTC with milliseconds of @us since the epoch: 2025-01-31T12:34:56.789Z */
static gchar *
fvlm_json_format_wall_time (gint64 us)
{
  GDateTime *dt = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);
  gchar *seconds, *text;

  if (dt == NULL)
    return g_strdup ("");
  seconds = g_date_time_format (dt, "%Y-%m-%dT%H:%M:%S");
  text = g_strdup_printf ("%s.%03dZ", seconds,
      (gint) ((us % G_USEC_PER_SEC) / 1000));
  g_free (seconds);
  g_date_time_unref (dt);
  return text;
}

static GstFlowReturn
gst_fastvlm_json_writer_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstFastVLMJsonWriter *self = GST_FASTVLM_JSON_WRITER (trans);
  GType api = fvlm_caption_meta_get_info ()->api;
  gpointer state = NULL;
  GstMeta *meta;
  gchar *stream = NULL;
  GString *line = NULL;
  gboolean flush_every_line;

  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state, api))) {
    const GstStructure *fields;
    JsonObject *object;
    gint64 wall_us;
    gchar *wall_time;

    if (!gst_custom_meta_has_name ((GstCustomMeta *) meta,
            FVLM_CAPTION_META_NAME))
      continue;
    fields = gst_custom_meta_get_structure ((GstCustomMeta *) meta);
    if (line == NULL)
      line = g_string_sized_new (1024);

    GST_OBJECT_LOCK (self);
    if (stream == NULL)
      stream = g_strdup (self->stream_name);
    flush_every_line = self->flush_every_line;
    GST_OBJECT_UNLOCK (self);
    if (stream == NULL) {
      if (self->auto_stream == NULL)
        self->auto_stream = gst_fastvlm_json_writer_find_stream (self);
      stream = g_strdup (self->auto_stream);
    }

    wall_us = g_get_real_time ();
    wall_time = fvlm_json_format_wall_time (wall_us);
    object = json_object_new ();
    json_object_set_string_member (object, "stream", stream);
    json_object_set_string_member (object, "wall-time", wall_time);
    json_object_set_int_member (object, "wall-time-us", wall_us);
    if (GST_BUFFER_PTS_IS_VALID (buf) && GST_BUFFER_PTS (buf) <= G_MAXINT64)
      json_object_set_int_member (object, "buffer-pts",
          (gint64) GST_BUFFER_PTS (buf));
    else
      json_object_set_null_member (object, "buffer-pts");
    gst_structure_foreach (fields, fvlm_json_add_field, object);

    g_string_truncate (line, 0);
    fvlm_json_append_line (line, object);
    json_object_unref (object);
    g_free (wall_time);
    self->n_lines++;
    GST_LOG_OBJECT (self, "line %" G_GUINT64_FORMAT ": %.*s", self->n_lines,
        (gint) line->len - 1, line->str);

    /* batched: a batch never grows past PIPE_BUF, so each write stays atomic on a pipe */
    if (!flush_every_line && self->pending->len > 0
        && self->pending->len + line->len > PIPE_BUF
        && !gst_fastvlm_json_writer_flush (self))
      goto write_failed;
    g_string_append_len (self->pending, line->str, line->len);
    if ((flush_every_line || self->pending->len >= PIPE_BUF)
        && !gst_fastvlm_json_writer_flush (self))
      goto write_failed;
  }
  g_free (stream);
  if (line)
    g_string_free (line, TRUE);
  return GST_FLOW_OK;

  /* ERRORS */
write_failed:
  {
    /* the ERROR message is posted by _flush() */
    g_free (stream);
    g_string_free (line, TRUE);
    return GST_FLOW_ERROR;
  }
}
