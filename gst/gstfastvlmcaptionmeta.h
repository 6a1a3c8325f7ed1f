/*
 * gstfastvlmcaptionmeta.h — "FastVLMCaptionMeta", the GstCustomMeta that carries a caption
 * on a video buffer.
 *
 * What it is: a custom meta registered with NO tags, so GstBaseTransform-based elements
 * (videoconvert, videoscale, ...) copy it along; its GstStructure holds the same fields as
 * the element's "fastvlm-caption" message (documented in the element's SECTION comment).
 * Read it with gst_buffer_get_custom_meta (buffer, "FastVLMCaptionMeta") and
 * gst_custom_meta_get_structure(); from Python through GObject introspection.
 * What it is not: a GstAnalytics meta (1.24+); the fields map onto 1.30's text mtd.
 */
#ifndef __GST_FASTVLM_CAPTION_META_H__
#define __GST_FASTVLM_CAPTION_META_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define FVLM_CAPTION_META_NAME "FastVLMCaptionMeta"

/* Registers the meta once per process; returns its info. */
const GstMetaInfo * fvlm_caption_meta_get_info (void);

/* Adds a caption meta to the writable @buffer with a copy of every field of @fields. */
GstCustomMeta *     fvlm_caption_meta_add      (GstBuffer * buffer,
                                                const GstStructure * fields);

G_END_DECLS

#endif /* __GST_FASTVLM_CAPTION_META_H__ */
