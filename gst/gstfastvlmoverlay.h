/*
 * gstfastvlmoverlay.h — draws the latest caption onto outgoing video frames (overlay=true).
 *
 * What it is: pango + cairo render the text once per caption (white on a translucent black
 * box along the bottom, wrapped to the frame width, so it reads on any background) into a
 * GstVideoOverlayComposition, which is then blended into every frame in any raw format.
 * What it is not: textoverlay — no markup, no placement options; for styled subtitles,
 * link the text_src pad to textoverlay instead.
 */
#ifndef __GST_FASTVLM_OVERLAY_H__
#define __GST_FASTVLM_OVERLAY_H__

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

typedef struct _FvlmOverlay FvlmOverlay;

FvlmOverlay * fvlm_overlay_new      (void);
void          fvlm_overlay_free     (FvlmOverlay * overlay);

/* The text to draw from now on (NULL or "" draws nothing). Cheap: renders lazily. */
void          fvlm_overlay_set_text (FvlmOverlay * overlay, const gchar * text);

/* Blends the caption into @frame (mapped for writing). Returns FALSE when there is nothing
 * to draw (no text, or a frame too small to hold a line). */
gboolean      fvlm_overlay_blend    (FvlmOverlay * overlay, GstVideoFrame * frame);

/* TRUE when built with pango/cairo; without them overlay=true draws nothing. */
gboolean      fvlm_overlay_available (void);

G_END_DECLS

#endif /* __GST_FASTVLM_OVERLAY_H__ */
