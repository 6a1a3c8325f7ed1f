/*
 * gstfastvlmtextsrc.h — the `text_src` pad's stream: captions as timestamped
 * text/x-raw,format=utf8 buffers with GAP events in between.
 *
 * What it is: the bookkeeping that keeps the text stream valid for textoverlay, subtitle
 * encoders and muxers: stream-start (derived from the video's, flagged sparse), caps and
 * segment before the first buffer or GAP; a GAP event for every span the captions leave
 * uncovered, so a consumer waiting for text (textoverlay wait-text=true) can advance; EOS.
 * The worker thread queues data, GAPs and EOS; the pad's own task pushes them, so a
 * consumer that blocks (a sink prerolling in PAUSED, a muxer) blocks neither the video
 * nor the model; flush events come from the streaming thread.
 * What it is not: the policy of when a caption ends (the element computes durations).
 */
#ifndef __GST_FASTVLM_TEXT_SRC_H__
#define __GST_FASTVLM_TEXT_SRC_H__

#include <gst/gst.h>

G_BEGIN_DECLS

typedef struct
{
  GstPad *pad;                  /* not owned */
  GMutex lock;                  /* guards the fields below; never held while pushing */
  GCond cond;                   /* queue filled or flushing */
  GQueue queue;                 /* GstMiniObject*: events and buffers for the pad task */
  gboolean flushing;            /* pad inactive or flushing: nothing is queued */
  GstEvent *stream_start;       /* to push before the next data, owned */
  guint32 stream_start_seqnum;
  gboolean need_caps;
  gboolean have_segment;        /* `segment` has been pushed */
  GstSegment segment;
  GstClockTime position;        /* text covered up to here (segment's PTS units) */
  gboolean sent;                /* a buffer or GAP went out since the last segment */
  gboolean eos;                 /* EOS pushed: nothing more until the next stream/flush */
  gboolean stopped;             /* downstream returned FLUSHING/EOS: stop pushing */
} FvlmTextSrc;

/* Also sets @pad's activate-mode function: activation starts the pad task that pushes
 * the queue, deactivation stops it. */
void     fvlm_text_src_init          (FvlmTextSrc * ts, GstPad * pad);
void     fvlm_text_src_clear         (FvlmTextSrc * ts);
/* Back to "nothing sent" (start()). */
void     fvlm_text_src_reset         (FvlmTextSrc * ts);

/* The video pad got @video_stream_start: the text stream gets "<id>/text", same group. */
void     fvlm_text_src_set_stream_start (FvlmTextSrc * ts, GstEvent * video_stream_start);

/* Queues one caption [pts, pts + duration) in @segment, after a GAP from the covered
 * position when there is a hole. The buffer holds @text as valid UTF-8 without C0
 * control characters other than \n and \t. GST_FLOW_FLUSHING when not queued (flushing, stream
 * over); the downstream flow is the task's concern. */
GstFlowReturn fvlm_text_src_push_caption (FvlmTextSrc * ts, const GstSegment * segment,
                                          GstClockTime pts, GstClockTime duration,
                                          const gchar * text);

/* Covers the text stream up to @until with a GAP event (nothing when already covered). */
void     fvlm_text_src_push_gap      (FvlmTextSrc * ts, const GstSegment * segment,
                                      GstClockTime until);

/* An empty GAP at the covered position (nothing when no segment was sent yet, after EOS, in
 * reverse playback): lets a sink that lost its preroll (PLAYING -> PAUSED) preroll again
 * without waiting for the next caption. Any thread: it neither moves the position nor
 * blocks. */
void     fvlm_text_src_push_preroll_gap (FvlmTextSrc * ts);
/* Queues EOS (with the sticky events first if nothing was sent yet). */
void     fvlm_text_src_push_eos      (FvlmTextSrc * ts, const GstSegment * segment);

/* FLUSH_START / FLUSH_STOP on the pad; after FLUSH_STOP a new segment is sent. */
void     fvlm_text_src_flush_start   (FvlmTextSrc * ts);
void     fvlm_text_src_flush_stop    (FvlmTextSrc * ts, gboolean reset_time);

GstClockTime fvlm_text_src_get_position (FvlmTextSrc * ts);

G_END_DECLS

#endif /* __GST_FASTVLM_TEXT_SRC_H__ */
