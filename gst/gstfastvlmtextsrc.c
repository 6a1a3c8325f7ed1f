/*
 * gstfastvlmtextsrc.c — stream upkeep of the text_src pad (see the header).
 *
 * Threads: fvlm_text_src_push_* run on the element's worker thread (or, with no model
 * loaded, on the streaming thread — never both; push_preroll_gap on any) and only queue;
 * the pad's task pushes the queue downstream, where it may block. A queue, and not the
 * worker pushing itself,
 * because offline the video waits for the worker: a text sink that prerolled on a caption
 * after a PLAYING->PAUSED change held the worker, the next frame waited for its caption,
 * the video sink never prerolled — pausing never completed (tests/robustness test-states
 * offline_pause_text_sink). flush_* run on the streaming thread while the worker is idle.
 * The lock guards the bookkeeping and the queue; it is never held while pushing. The
 * queue is unbounded: it holds a few small events per caption, and the video it follows
 * stops when downstream does.
 * Only forward playback gets GAP events (with rate < 0 captions still flow, unpadded).
 */
#include <string.h>

#include "gstfastvlmtextsrc.h"

GST_DEBUG_CATEGORY_STATIC (fvlm_text_src_debug);
#define GST_CAT_DEFAULT fvlm_text_src_debug

/* ---- the pad task ------------------------------------------------------------------- */

/* Queues @item for the task (ownership taken); dropped when flushing. Lock held. */
static void
fvlm_text_src_enqueue_locked (FvlmTextSrc * ts, gpointer item)
{
  if (ts->flushing) {
    gst_mini_object_unref (item);
    return;
  }
  g_queue_push_tail (&ts->queue, item);
  g_cond_broadcast (&ts->cond);
}

/* Empties the queue (flush, deactivation). Sticky events dropped here never reached the
 * pad: the bookkeeping goes back to "still to send" so the next data gets them. */
static void
fvlm_text_src_drop_queue_locked (FvlmTextSrc * ts)
{
  gpointer item;

  while ((item = g_queue_pop_head (&ts->queue))) {
    if (GST_IS_EVENT (item)) {
      switch (GST_EVENT_TYPE (item)) {
        case GST_EVENT_STREAM_START:
          ts->need_caps = TRUE;
          if (ts->stream_start == NULL) {
            ts->stream_start = item;    /* still the stream's; a newer one wins */
            item = NULL;
          }
          break;
        case GST_EVENT_CAPS:
          ts->need_caps = TRUE;
          break;
        case GST_EVENT_SEGMENT:
          ts->have_segment = FALSE;
          break;
        default:
          break;
      }
    }
    if (item)
      gst_mini_object_unref (item);
  }
}

static void
fvlm_text_src_loop (gpointer data)
{
  FvlmTextSrc *ts = data;
  gpointer item;
  GstFlowReturn ret;

  g_mutex_lock (&ts->lock);
  while (!ts->flushing && g_queue_is_empty (&ts->queue))
    g_cond_wait (&ts->cond, &ts->lock);
  if (ts->flushing) {
    g_mutex_unlock (&ts->lock);
    gst_pad_pause_task (ts->pad);
    return;
  }
  item = g_queue_pop_head (&ts->queue);
  g_mutex_unlock (&ts->lock);

  if (GST_IS_EVENT (item)) {
    gst_pad_push_event (ts->pad, GST_EVENT (item));
    return;
  }
  ret = gst_pad_push (ts->pad, GST_BUFFER (item));
  if (ret != GST_FLOW_OK && ret != GST_FLOW_NOT_LINKED)
    GST_DEBUG_OBJECT (ts->pad, "push returned %s", gst_flow_get_name (ret));
  if (ret == GST_FLOW_FLUSHING || ret == GST_FLOW_EOS) {
    g_mutex_lock (&ts->lock);
    ts->stopped = TRUE;
    g_mutex_unlock (&ts->lock);
  }
}

static gboolean
fvlm_text_src_activate_mode (GstPad * pad, GstObject * parent, GstPadMode mode,
    gboolean active)
{
  FvlmTextSrc *ts = gst_pad_get_element_private (pad);

  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  g_mutex_lock (&ts->lock);
  ts->flushing = !active;
  fvlm_text_src_drop_queue_locked (ts);
  g_cond_broadcast (&ts->cond);
  g_mutex_unlock (&ts->lock);
  if (active)
    return gst_pad_start_task (pad, fvlm_text_src_loop, ts, NULL);
  return gst_pad_stop_task (pad);
}

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
  g_cond_init (&ts->cond);
  g_queue_init (&ts->queue);
  ts->flushing = TRUE;          /* until the pad is activated */
  gst_pad_set_activatemode_function (pad, fvlm_text_src_activate_mode);
  gst_pad_set_element_private (pad, ts);
  fvlm_text_src_reset (ts);
}

void
fvlm_text_src_clear (FvlmTextSrc * ts)
{
  g_queue_clear_full (&ts->queue, (GDestroyNotify) gst_mini_object_unref);
  gst_clear_event (&ts->stream_start);
  g_cond_clear (&ts->cond);
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

/* Queues the sticky events the stream still lacks, switching to @segment when it differs
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
    ts->sent = FALSE;
    seg = gst_event_new_segment (&wanted);
  }
  if (stream_start)
    fvlm_text_src_enqueue_locked (ts, stream_start);
  if (caps)
    fvlm_text_src_enqueue_locked (ts, caps);
  if (seg)
    fvlm_text_src_enqueue_locked (ts, seg);
  g_mutex_unlock (&ts->lock);
  return TRUE;
}

/* GAP from the covered position to @until; lock not held. */
static void
fvlm_text_src_fill (FvlmTextSrc * ts, GstClockTime until)
{
  GstClockTime from;

  g_mutex_lock (&ts->lock);
  from = ts->position;
  /* nothing sent in this segment yet: even an empty GAP at its start lets a sink
   * preroll (a live stream's first frame is often stamped with the segment start) */
  if (GST_CLOCK_TIME_IS_VALID (from) && GST_CLOCK_TIME_IS_VALID (until)
      && (until > from || (until == from && !ts->sent))
      && ts->segment.rate >= 0) {
    ts->position = until;
    ts->sent = TRUE;
    GST_LOG_OBJECT (ts->pad, "gap %" GST_TIME_FORMAT " - %" GST_TIME_FORMAT,
        GST_TIME_ARGS (from), GST_TIME_ARGS (until));
    fvlm_text_src_enqueue_locked (ts, gst_event_new_gap (from, until - from));
  }
  g_mutex_unlock (&ts->lock);
}

/* The bytes of a text buffer for caption @text: valid UTF-8 (text/x-raw,format=utf8
 * requires it; the engine's text already is, this makes sure), without C0 control
 * characters other than \n and \t — a model may emit any byte, and a subtitle renderer
 * or file format (WebVTT, SRT) must not see them. Returns a new string. */
static gchar *
fvlm_text_src_clean (const gchar * text)
{
  gchar *valid = g_utf8_make_valid (text ? text : "", -1);
  gchar *w = valid;

  for (const gchar * r = valid; *r; r++) {
    guchar c = (guchar) * r;

    if (c >= 0x20 || c == '\n' || c == '\t')
      *w++ = *r;
  }
  *w = '\0';
  return valid;
}

GstFlowReturn
fvlm_text_src_push_caption (FvlmTextSrc * ts, const GstSegment * segment,
    GstClockTime pts, GstClockTime duration, const gchar * text)
{
  GstBuffer *buffer;
  GstFlowReturn ret = GST_FLOW_OK;
  gchar *clean;
  gsize len;

  if (!fvlm_text_src_prepare (ts, segment))
    return GST_FLOW_FLUSHING;
  fvlm_text_src_fill (ts, pts);

  clean = fvlm_text_src_clean (text);
  len = strlen (clean);
  if (len) {
    buffer = gst_buffer_new_wrapped (clean, len);
  } else {
    g_free (clean);
    buffer = gst_buffer_new ();
  }
  GST_BUFFER_PTS (buffer) = pts;
  GST_BUFFER_DURATION (buffer) = duration;

  GST_DEBUG_OBJECT (ts->pad, "caption %" GST_TIME_FORMAT " + %" GST_TIME_FORMAT
      ": %s", GST_TIME_ARGS (pts), GST_TIME_ARGS (duration), text);

  g_mutex_lock (&ts->lock);
  if (ts->flushing)
    ret = GST_FLOW_FLUSHING;
  fvlm_text_src_enqueue_locked (ts, buffer);
  ts->sent = TRUE;
  if (GST_CLOCK_TIME_IS_VALID (pts) && GST_CLOCK_TIME_IS_VALID (duration)
      && ts->segment.rate >= 0) {
    GstClockTime end = pts + duration;

    if (!GST_CLOCK_TIME_IS_VALID (ts->position) || end > ts->position)
      ts->position = end;
  }
  g_mutex_unlock (&ts->lock);
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
fvlm_text_src_push_preroll_gap (FvlmTextSrc * ts)
{
  g_mutex_lock (&ts->lock);
  if (ts->have_segment && !ts->eos && !ts->stopped && ts->segment.rate >= 0
      && GST_CLOCK_TIME_IS_VALID (ts->position))
    fvlm_text_src_enqueue_locked (ts, gst_event_new_gap (ts->position, 0));
  g_mutex_unlock (&ts->lock);
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
  fvlm_text_src_enqueue_locked (ts, gst_event_new_eos ());
  g_mutex_unlock (&ts->lock);
}

/* Drops what is queued, unblocks downstream, then waits for the task to pause. */
void
fvlm_text_src_flush_start (FvlmTextSrc * ts)
{
  g_mutex_lock (&ts->lock);
  ts->flushing = TRUE;
  fvlm_text_src_drop_queue_locked (ts);
  g_cond_broadcast (&ts->cond);
  g_mutex_unlock (&ts->lock);
  gst_pad_push_event (ts->pad, gst_event_new_flush_start ());
  gst_pad_pause_task (ts->pad);
}

void
fvlm_text_src_flush_stop (FvlmTextSrc * ts, gboolean reset_time)
{
  gboolean active = gst_pad_is_active (ts->pad);

  g_mutex_lock (&ts->lock);
  fvlm_text_src_drop_queue_locked (ts);
  /* FLUSH_STOP drops the pad's sticky segment: send one again before the next data */
  ts->have_segment = FALSE;
  ts->position = GST_CLOCK_TIME_NONE;
  ts->eos = FALSE;
  ts->stopped = FALSE;
  g_mutex_unlock (&ts->lock);
  gst_pad_push_event (ts->pad, gst_event_new_flush_stop (reset_time));
  if (active) {
    g_mutex_lock (&ts->lock);
    ts->flushing = FALSE;
    g_mutex_unlock (&ts->lock);
    gst_pad_start_task (ts->pad, fvlm_text_src_loop, ts, NULL);
  }
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
