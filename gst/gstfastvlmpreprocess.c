/*
 * gstfastvlmpreprocess.c — video frame -> letterboxed RGBx square (GstVideoConverter) ->
 * normalised float planes (ORC). See the header for what it is and is not.
 *
 * Why these converter options: FastVLM pads the picture to a centred square filled with
 * the pad colour, then resizes with PIL's bicubic (a Keys cubic with a = -0.5, widened
 * when shrinking so it also antialiases). GstVideoConverter's cubic resampler with
 * B = 0, C = 0.5 is that same kernel and also widens its taps when shrinking; the
 * letterbox is done by scaling into a destination rectangle and filling the border.
 */
#include "gstfastvlmpreprocess.h"
#include "fastvlmorc.h"

void
fvlm_preprocess_letterbox (gint width, gint height, gint size, gint * x,
    gint * y, gint * w, gint * h)
{
  gint64 side = MAX (width, height);
  gint64 px = (side - width) / 2, py = (side - height) / 2;
  /* round (v * size / side) with integers */
#define FVLM_SCALE_ROUND(v) ((gint) ((2 * (gint64) (v) * size + side) / (2 * side)))
  gint x0 = FVLM_SCALE_ROUND (px), x1 = FVLM_SCALE_ROUND (px + width);
  gint y0 = FVLM_SCALE_ROUND (py), y1 = FVLM_SCALE_ROUND (py + height);
#undef FVLM_SCALE_ROUND

  /* a 1-pixel-wide sliver of a very long picture still gets one column */
  if (x1 <= x0)
    x1 = MIN (x0 + 1, size), x0 = x1 - 1;
  if (y1 <= y0)
    y1 = MIN (y0 + 1, size), y0 = y1 - 1;
  *x = x0;
  *y = y0;
  *w = x1 - x0;
  *h = y1 - y0;
}

/* TRUE when @src / @dst is an integer >= 3: the case GstVideoConverter's 8-bit scaler
 * can get wrong (see the header). */
static gboolean
fvlm_preprocess_integer_factor (gint src, gint dst)
{
  return dst > 0 && src % dst == 0 && src / dst >= 3;
}

gboolean
fvlm_preprocess_init (FvlmPreprocess * pp, const GstVideoInfo * in_info,
    gint size, const guint8 pad_rgb[3])
{
  GstStructure *config;
  const GstVideoInfo *scale_from = in_info;
  guint32 border;

  g_return_val_if_fail (size > 0, FALSE);

  fvlm_preprocess_clear (pp);
  pp->in_info = *in_info;
  pp->size = size;
  gst_video_info_set_format (&pp->out_info, FVLM_PREPROCESS_FORMAT, size, size);
  /* the converter insists these match; they do not affect the pixels */
  GST_VIDEO_INFO_FPS_N (&pp->out_info) = GST_VIDEO_INFO_FPS_N (in_info);
  GST_VIDEO_INFO_FPS_D (&pp->out_info) = GST_VIDEO_INFO_FPS_D (in_info);
  GST_VIDEO_INFO_INTERLACE_MODE (&pp->out_info) =
      GST_VIDEO_INFO_INTERLACE_MODE (in_info);
  fvlm_preprocess_letterbox (GST_VIDEO_INFO_WIDTH (in_info),
      GST_VIDEO_INFO_HEIGHT (in_info), size, &pp->dest_x, &pp->dest_y,
      &pp->dest_w, &pp->dest_h);

  if (fvlm_preprocess_integer_factor (GST_VIDEO_INFO_WIDTH (in_info), pp->dest_w)
      || fvlm_preprocess_integer_factor (GST_VIDEO_INFO_HEIGHT (in_info),
          pp->dest_h)) {
    gst_video_info_set_format (&pp->wide_info, GST_VIDEO_FORMAT_ARGB64,
        GST_VIDEO_INFO_WIDTH (in_info), GST_VIDEO_INFO_HEIGHT (in_info));
    GST_VIDEO_INFO_FPS_N (&pp->wide_info) = GST_VIDEO_INFO_FPS_N (in_info);
    GST_VIDEO_INFO_FPS_D (&pp->wide_info) = GST_VIDEO_INFO_FPS_D (in_info);
    GST_VIDEO_INFO_INTERLACE_MODE (&pp->wide_info) =
        GST_VIDEO_INFO_INTERLACE_MODE (in_info);
    /* sRGB like the final square: the colour matrix is applied here, once */
    pp->wide_info.colorimetry = pp->out_info.colorimetry;
    pp->widen = gst_video_converter_new (&pp->in_info, &pp->wide_info,
        gst_structure_new ("GstVideoConverter",
            GST_VIDEO_CONVERTER_OPT_DITHER_METHOD, GST_TYPE_VIDEO_DITHER_METHOD,
            GST_VIDEO_DITHER_NONE, GST_VIDEO_CONVERTER_OPT_THREADS, G_TYPE_UINT,
            1, NULL));
    if (pp->widen == NULL)
      return FALSE;
    pp->wide = gst_buffer_new_allocate (NULL,
        GST_VIDEO_INFO_SIZE (&pp->wide_info), NULL);
    scale_from = &pp->wide_info;
  }

  border = 0xff000000u | ((guint32) pad_rgb[0] << 16) |
      ((guint32) pad_rgb[1] << 8) | pad_rgb[2];
  config = gst_structure_new ("GstVideoConverter",
      GST_VIDEO_CONVERTER_OPT_DEST_X, G_TYPE_INT, pp->dest_x,
      GST_VIDEO_CONVERTER_OPT_DEST_Y, G_TYPE_INT, pp->dest_y,
      GST_VIDEO_CONVERTER_OPT_DEST_WIDTH, G_TYPE_INT, pp->dest_w,
      GST_VIDEO_CONVERTER_OPT_DEST_HEIGHT, G_TYPE_INT, pp->dest_h,
      GST_VIDEO_CONVERTER_OPT_FILL_BORDER, G_TYPE_BOOLEAN, TRUE,
      GST_VIDEO_CONVERTER_OPT_BORDER_ARGB, G_TYPE_UINT, border,
      GST_VIDEO_CONVERTER_OPT_RESAMPLER_METHOD,
      GST_TYPE_VIDEO_RESAMPLER_METHOD, GST_VIDEO_RESAMPLER_METHOD_CUBIC,
      GST_VIDEO_RESAMPLER_OPT_CUBIC_B, G_TYPE_DOUBLE, 0.0,
      GST_VIDEO_RESAMPLER_OPT_CUBIC_C, G_TYPE_DOUBLE, 0.5,
      GST_VIDEO_RESAMPLER_OPT_MAX_TAPS, G_TYPE_INT, 256,
      GST_VIDEO_CONVERTER_OPT_DITHER_METHOD, GST_TYPE_VIDEO_DITHER_METHOD,
      GST_VIDEO_DITHER_NONE,
      GST_VIDEO_CONVERTER_OPT_THREADS, G_TYPE_UINT, 1, NULL);

  /* takes ownership of config */
  pp->convert = gst_video_converter_new (scale_from,
      &pp->out_info, config);
  return pp->convert != NULL;
}

void
fvlm_preprocess_clear (FvlmPreprocess * pp)
{
  if (pp->convert)
    gst_video_converter_free (pp->convert);
  pp->convert = NULL;
  if (pp->widen)
    gst_video_converter_free (pp->widen);
  pp->widen = NULL;
  gst_clear_buffer (&pp->wide);
}

void
fvlm_preprocess_convert (FvlmPreprocess * pp, const GstVideoFrame * frame,
    guint8 * rgbx)
{
  gsize n_bytes = (gsize) pp->size * pp->size * 4;
  GstBuffer *outbuf;
  GstVideoFrame out_frame;

  outbuf = gst_buffer_new_wrapped_full (0, rgbx, n_bytes, 0, n_bytes, NULL,
      NULL);
  if (!gst_video_frame_map (&out_frame, &pp->out_info, outbuf, GST_MAP_WRITE)) {
    /* cannot happen for a wrapped system-memory buffer of the right size */
    g_critical ("fvlm_preprocess_convert: cannot map the output square");
    gst_buffer_unref (outbuf);
    return;
  }
  if (pp->widen) {
    GstVideoFrame wide_frame;

    if (!gst_video_frame_map (&wide_frame, &pp->wide_info, pp->wide,
            GST_MAP_READWRITE)) {
      g_critical ("fvlm_preprocess_convert: cannot map the 16-bit frame");
      gst_video_frame_unmap (&out_frame);
      gst_buffer_unref (outbuf);
      return;
    }
    gst_video_converter_frame (pp->widen, frame, &wide_frame);
    gst_video_converter_frame (pp->convert, &wide_frame, &out_frame);
    gst_video_frame_unmap (&wide_frame);
  } else {
    gst_video_converter_frame (pp->convert, frame, &out_frame);
  }
  gst_video_frame_unmap (&out_frame);
  gst_buffer_unref (outbuf);
}

void
fvlm_preprocess_to_planar (const guint8 * rgbx, gsize n_pixels,
    const FvlmNormalize * norm, gfloat * planar)
{
  fastvlm_orc_rgbx_to_planar_f32 (planar, planar + n_pixels,
      planar + 2 * n_pixels, (const orc_uint32 *) rgbx,
      norm->scale[0], norm->bias[0], norm->scale[1], norm->bias[1],
      norm->scale[2], norm->bias[2], (int) n_pixels);
}

void
fvlm_normalize_init (FvlmNormalize * norm, gfloat rescale,
    const gfloat mean[3], const gfloat std[3])
{
  for (gint c = 0; c < 3; c++) {
    gfloat s = std[c] != 0.0f ? std[c] : 1.0f;

    norm->scale[c] = rescale / s;
    norm->bias[c] = -mean[c] / s;
  }
}
