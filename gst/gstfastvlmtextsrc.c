/*
 * gstfastvlmtextsrc.c — stream upkeep of the text_src pad (see the header).
 *
 * Threads: fvlm_text_src_push_* run on the element's worker thread (or, with no model
 * loaded, on the streaming thread — never both); flush_* run on the streaming thread
 * while the worker is idle. The lock only protects the bookkeeping against the reads
 * from other threads; it is dropped before every push, which may block downstream.
 * Only forward playback gets GAP events (with rate < 0 captions still flow, unpadded).
 */
#include <string.h>

#include "gstfastvlmtextsrc.h"

GST_DEBUG_CATEGORY_STATIC (fvlm_text_src_debug);
#define GST_CAT_DEFAULT fvlm_text_src_debug

void
fvlm_text_src_init (FvlmTextSrc * ts, GstPad * pad)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_INIT (fvlm_text_src_debug, "fastvlmtextsrc", 0,
        "fastvlmcaption text pad");
    g_once_init_leave (&done, 1);
  }
  memset (ts, 0, sizeof (*ts));
  ts->pad = pad;
  g_mutex_init (&ts->lock);
  fvlm_text_src_reset (ts);
}

void
fvlm_text_src_clear (FvlmTextSrc * ts)
{
  gst_clear_event (&ts->stream_start);
  g_mutex_clear (&ts->lock);
}

void
fvlm_text_src_reset (FvlmTextSrc * ts)
{
  g_mutex_lock (&ts->lock);
  gst_clear_event (&ts->stream_start);
  ts->need_caps = TRUE;
  ts->have_segment = FALSE;
  gst_segment_init (&ts->segment, GST_FORMAT_TIME);
  ts->position = GST_CLOCK_TIME_NONE;
  ts->eos = FALSE;
  ts->stopped = FALSE;
  g_mutex_unlock (&ts->lock);
}

void
fvlm_text_src_set_stream_start (FvlmTextSrc * ts, GstEvent * video_stream_start)
{
  const gchar *video_id = NULL;
  gchar *id;
  GstEvent *event;
  guint group_id;

  gst_event_parse_stream_start (video_stream_start, &video_id);
  id = g_strdup_printf ("%s/text", video_id ? video_id : "fastvlm");
  event = gst_event_new_stream_start (id);
  g_free (id);
  if (gst_event_parse_group_id (video_stream_start, &group_id))
    gst_event_set_group_id (event, group_id);
  /* captions are sparse: consumers must not wait for them as for audio/video */
  gst_event_set_stream_flags (event, GST_STREAM_FLAG_SPARSE);

  g_mutex_lock (&ts->lock);
  gst_clear_event (&ts->stream_start);
  ts->stream_start = event;
  ts->need_caps = TRUE;
  ts->have_segment = FALSE;
  ts->position = GST_CLOCK_TIME_NONE;
  ts->eos = FALSE;
  ts->stopped = FALSE;
  g_mutex_unlock (&ts->lock);
}

/* Pushes the sticky events the stream still lacks, switching to @segment when it differs
 * from the last one sent. FALSE when the stream is over (EOS sent or downstream gone). */
static gboolean
fvlm_text_src_prepare (FvlmTextSrc * ts, const GstSegment * segment)
{
  GstEvent *stream_start = NULL, *caps = NULL, *seg = NULL;
  GstSegment wanted;

  /* the video segment's position moves with every frame: it is not a new segment */
  if (segment && segment->format == GST_FORMAT_TIME)
    wanted = *segment;
  else
    gst_segment_init (&wanted, GST_FORMAT_TIME);
  wanted.position = wanted.rate >= 0 ? wanted.start : wanted.stop;

  g_mutex_lock (&ts->lock);
  if (ts->eos || ts->stopped) {
    g_mutex_unlock (&ts->lock);
    return FALSE;
  }
  if (ts->stream_start) {
    stream_start = ts->stream_start;
    ts->stream_start = NULL;
  } else if (ts->need_caps) {
    /* upstream sent no stream-start (it should): make one up so caps are legal */
    GstElement *parent = GST_ELEMENT (gst_pad_get_parent (ts->pad));
    gchar *id = gst_pad_create_stream_id (ts->pad, parent, "text");

    stream_start = gst_event_new_stream_start (id);
    gst_event_set_stream_flags (stream_start, GST_STREAM_FLAG_SPARSE);
    g_free (id);
    gst_object_unref (parent);
  }
  if (ts->need_caps) {
    GstCaps *text_caps = gst_caps_new_simple ("text/x-raw", "format",
        G_TYPE_STRING, "utf8", NULL);

    caps = gst_event_new_caps (text_caps);      /* the event takes its own ref */
    gst_caps_unref (text_caps);
    ts->need_caps = FALSE;
  }
  if (!ts->have_segment || !gst_segment_is_equal (&ts->segment, &wanted)) {
    ts->segment = wanted;
    ts->have_segment = TRUE;
    ts->position = wanted.rate >= 0 ? wanted.start : GST_CLOCK_TIME_NONE;
    seg = gst_event_new_segment (&wanted);
  }
  g_mutex_unlock (&ts->lock);

  if (stream_start)
    gst_pad_push_event (ts->pad, stream_start);
  if (caps)
    gst_pad_push_event (ts->pad, caps);
  if (seg)
    gst_pad_push_event (ts->pad, seg);
  return TRUE;
}

/* GAP from the covered position to @until; lock not held. */
static void
fvlm_text_src_fill (FvlmTextSrc * ts, GstClockTime until)
{
  GstClockTime from;

  g_mutex_lock (&ts->lock);
  from = ts->position;
  if (GST_CLOCK_TIME_IS_VALID (from) && GST_CLOCK_TIME_IS_VALID (until)
      && until > from && ts->segment.rate >= 0)
    ts->position = until;
  else
    from = GST_CLOCK_TIME_NONE;
  g_mutex_unlock (&ts->lock);

  if (GST_CLOCK_TIME_IS_VALID (from)) {
    GST_LOG_OBJECT (ts->pad, "gap %" GST_TIME_FORMAT " - %" GST_TIME_FORMAT,
        GST_TIME_ARGS (from), GST_TIME_ARGS (until));
    gst_pad_push_event (ts->pad, gst_event_new_gap (from, until - from));
  }
}

GstFlowReturn
fvlm_text_src_push_caption (FvlmTextSrc * ts, const GstSegment * segment,
    GstClockTime pts, GstClockTime duration, const gchar * text)
{
  GstBuffer *buffer;
  GstFlowReturn ret;
  gsize len = text ? strlen (text) : 0;

  if (!fvlm_text_src_prepare (ts, segment))
    return GST_FLOW_FLUSHING;
  fvlm_text_src_fill (ts, pts);

  buffer = len ? gst_buffer_new_memdup (text, len) : gst_buffer_new ();
  GST_BUFFER_PTS (buffer) = pts;
  GST_BUFFER_DURATION (buffer) = duration;

  GST_DEBUG_OBJECT (ts->pad, "caption %" GST_TIME_FORMAT " + %" GST_TIME_FORMAT
      ": %s", GST_TIME_ARGS (pts), GST_TIME_ARGS (duration), text);
  ret = gst_pad_push (ts->pad, buffer);

  g_mutex_lock (&ts->lock);
  if (GST_CLOCK_TIME_IS_VALID (pts) && GST_CLOCK_TIME_IS_VALID (duration)
      && ts->segment.rate >= 0) {
    GstClockTime end = pts + duration;

    if (!GST_CLOCK_TIME_IS_VALID (ts->position) || end > ts->position)
      ts->position = end;
  }
  if (ret == GST_FLOW_FLUSHING || ret == GST_FLOW_EOS)
    ts->stopped = TRUE;
  g_mutex_unlock (&ts->lock);

  if (ret != GST_FLOW_OK && ret != GST_FLOW_NOT_LINKED)
    GST_DEBUG_OBJECT (ts->pad, "push returned %s", gst_flow_get_name (ret));
  return ret;
}

void
fvlm_text_src_push_gap (FvlmTextSrc * ts, const GstSegment * segment,
    GstClockTime until)
{
  if (!GST_CLOCK_TIME_IS_VALID (until))
    return;
  if (!fvlm_text_src_prepare (ts, segment))
    return;
  fvlm_text_src_fill (ts, until);
}

void
fvlm_text_src_push_eos (FvlmTextSrc * ts, const GstSegment * segment)
{
  gboolean already_sent;

  g_mutex_lock (&ts->lock);
  already_sent = ts->eos;
  /* EOS is owed even after downstream returned EOS/FLUSHING to a buffer */
  ts->stopped = FALSE;
  g_mutex_unlock (&ts->lock);
  if (already_sent)
    return;

  fvlm_text_src_prepare (ts, segment);
  g_mutex_lock (&ts->lock);
  ts->eos = TRUE;
  g_mutex_unlock (&ts->lock);
  gst_pad_push_event (ts->pad, gst_event_new_eos ());
}

void
fvlm_text_src_flush_start (FvlmTextSrc * ts)
{
  gst_pad_push_event (ts->pad, gst_event_new_flush_start ());
}

void
fvlm_text_src_flush_stop (FvlmTextSrc * ts, gboolean reset_time)
{
  g_mutex_lock (&ts->lock);
  /* FLUSH_STOP drops the pad's sticky segment: send one again before the next data */
  ts->have_segment = FALSE;
  ts->position = GST_CLOCK_TIME_NONE;
  ts->eos = FALSE;
  ts->stopped = FALSE;
  g_mutex_unlock (&ts->lock);
  gst_pad_push_event (ts->pad, gst_event_new_flush_stop (reset_time));
}

GstClockTime
fvlm_text_src_get_position (FvlmTextSrc * ts)
{
  GstClockTime position;

  g_mutex_lock (&ts->lock);
  position = ts->position;
  g_mutex_unlock (&ts->lock);
  return position;
}
