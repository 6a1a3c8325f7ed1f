/*
 * gstfastvlmoverlay.c — caption text -> pango/cairo ARGB rectangle ->
 * GstVideoOverlayComposition -> blended into the frame.
 *
 * Sizes: the font is 1/22 of the frame height (at least 9 px), the box spans the frame
 * width minus a margin of 1/40 of the width and sits the same margin above the bottom;
 * long captions wrap and are cut to the lower half of the frame. The rendering is cached
 * and redone only when the text or the frame size changes.
 * What it is not: thread-safe — one streaming thread uses an FvlmOverlay.
 */
#include "gstfastvlmoverlay.h"

#ifdef HAVE_PANGOCAIRO
#include <pango/pangocairo.h>
#endif

#define FVLM_OVERLAY_MIN_SIDE 16        /* pixels; smaller frames get no caption */

struct _FvlmOverlay
{
  gchar *text;
  gint width, height;           /* frame size the composition was made for */
  GstVideoOverlayComposition *composition;      /* NULL = not rendered / nothing to draw */
  gboolean dirty;
};

FvlmOverlay *
fvlm_overlay_new (void)
{
  FvlmOverlay *overlay = g_new0 (FvlmOverlay, 1);

  overlay->dirty = TRUE;
  return overlay;
}

void
fvlm_overlay_free (FvlmOverlay * overlay)
{
  if (overlay == NULL)
    return;
  if (overlay->composition)
    gst_video_overlay_composition_unref (overlay->composition);
  g_free (overlay->text);
  g_free (overlay);
}

void
fvlm_overlay_set_text (FvlmOverlay * overlay, const gchar * text)
{
  if (g_strcmp0 (overlay->text, text) == 0)
    return;
  g_free (overlay->text);
  overlay->text = g_strdup (text);
  overlay->dirty = TRUE;
}

gboolean
fvlm_overlay_available (void)
{
#ifdef HAVE_PANGOCAIRO
  return TRUE;
#else
  return FALSE;
#endif
}

#ifdef HAVE_PANGOCAIRO
/* Renders @text for a width x height frame; NULL when it does not fit. */
static GstVideoOverlayComposition *
fvlm_overlay_render (const gchar * text, gint width, gint height)
{
  GstVideoOverlayComposition *composition = NULL;
  GstVideoOverlayRectangle *rect;
  PangoFontDescription *font;
  PangoLayout *layout;
  cairo_surface_t *surface;
  cairo_t *cr;
  PangoRectangle ink, logical;
  GstBuffer *buffer;
  GstMapInfo map;
  gint margin = MAX (1, width / 40);
  gint pad = MAX (1, height / 100);
  gint font_px = MAX (9, height / 22);
  gint box_w = width - 2 * margin, box_h, text_h, stride;

  if (box_w <= 2 * pad)
    return NULL;

  /* lay the text out on a scratch context to learn its height */
  surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, 1, 1);
  cr = cairo_create (surface);
  layout = pango_cairo_create_layout (cr);
  font = pango_font_description_from_string ("Sans Bold");
  pango_font_description_set_absolute_size (font, font_px * PANGO_SCALE);
  pango_layout_set_font_description (layout, font);
  pango_font_description_free (font);
  pango_layout_set_width (layout, (box_w - 2 * pad) * PANGO_SCALE);
  pango_layout_set_wrap (layout, PANGO_WRAP_WORD_CHAR);
  pango_layout_set_alignment (layout, PANGO_ALIGN_CENTER);
  pango_layout_set_text (layout, text, -1);
  pango_layout_get_pixel_extents (layout, &ink, &logical);
  text_h = MIN (logical.height, height / 2);
  box_h = text_h + 2 * pad;
  cairo_destroy (cr);
  cairo_surface_destroy (surface);
  if (box_h > height - margin || text_h <= 0)
    goto done;

  /* render into a buffer laid out as the overlay API's ARGB (BGRA in memory on
   * little-endian: exactly cairo's native-endian ARGB32, premultiplied) */
  stride = cairo_format_stride_for_width (CAIRO_FORMAT_ARGB32, box_w);
  buffer = gst_buffer_new_allocate (NULL, (gsize) stride * box_h, NULL);
  gst_buffer_map (buffer, &map, GST_MAP_WRITE);
  surface = cairo_image_surface_create_for_data (map.data, CAIRO_FORMAT_ARGB32,
      box_w, box_h, stride);
  cr = cairo_create (surface);
  cairo_set_operator (cr, CAIRO_OPERATOR_SOURCE);
  cairo_set_source_rgba (cr, 0, 0, 0, 0.6);
  cairo_paint (cr);
  cairo_set_operator (cr, CAIRO_OPERATOR_OVER);
  cairo_rectangle (cr, 0, 0, box_w, box_h);
  cairo_clip (cr);
  cairo_move_to (cr, pad, pad);
  /* a dark outline under the white glyphs keeps them readable on a light box edge */
  pango_cairo_layout_path (cr, layout);
  cairo_set_source_rgba (cr, 0, 0, 0, 1);
  cairo_set_line_width (cr, MAX (1.0, font_px / 10.0));
  cairo_stroke (cr);
  cairo_move_to (cr, pad, pad);
  cairo_set_source_rgba (cr, 1, 1, 1, 1);
  pango_cairo_show_layout (cr, layout);
  cairo_destroy (cr);
  cairo_surface_destroy (surface);
  gst_buffer_unmap (buffer, &map);

  gst_buffer_add_video_meta_full (buffer, GST_VIDEO_FRAME_FLAG_NONE,
      GST_VIDEO_OVERLAY_COMPOSITION_FORMAT_RGB, box_w, box_h, 1,
      (gsize[GST_VIDEO_MAX_PLANES]) {
      0}, (gint[GST_VIDEO_MAX_PLANES]) {
      stride});
  rect = gst_video_overlay_rectangle_new_raw (buffer, margin,
      height - margin - box_h, box_w, box_h,
      GST_VIDEO_OVERLAY_FORMAT_FLAG_PREMULTIPLIED_ALPHA);
  gst_buffer_unref (buffer);
  composition = gst_video_overlay_composition_new (rect);
  gst_video_overlay_rectangle_unref (rect);

done:
  g_object_unref (layout);
  return composition;
}
#endif

gboolean
fvlm_overlay_blend (FvlmOverlay * overlay, GstVideoFrame * frame)
{
  gint width = GST_VIDEO_FRAME_WIDTH (frame);
  gint height = GST_VIDEO_FRAME_HEIGHT (frame);

  if (overlay->dirty || width != overlay->width || height != overlay->height) {
    if (overlay->composition)
      gst_video_overlay_composition_unref (overlay->composition);
    overlay->composition = NULL;
    overlay->width = width;
    overlay->height = height;
    overlay->dirty = FALSE;
#ifdef HAVE_PANGOCAIRO
    if (overlay->text && overlay->text[0] && width >= FVLM_OVERLAY_MIN_SIDE
        && height >= FVLM_OVERLAY_MIN_SIDE)
      overlay->composition = fvlm_overlay_render (overlay->text, width, height);
#endif
  }
  if (overlay->composition == NULL)
    return FALSE;
  return gst_video_overlay_composition_blend (overlay->composition, frame);
}
