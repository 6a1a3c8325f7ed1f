/*
 * gstfastvlmpreprocess.h — turns one video frame into the vision tower's input.
 *
 * What it is: two steps. (1) On the streaming thread, GstVideoConverter converts any
 * supported raw format (colour conversion, chroma upsampling, cubic scaling) into an 8-bit
 * RGBx square of the model's size, the picture letterboxed into it and centred ("pad to
 * square" with the model's pad colour, as FastVLM's own preprocessing does). (2) On the
 * worker thread, the ORC kernel of orc/fastvlm.orc turns that square into three float
 * planes [3][size][size] after rescale and per-channel mean/std.
 * What it is not: the engine's PIL-exact bicubic preprocessing (fastvlm_preprocess_rgb8);
 * docs/element.md gives the measured distance between the two.
 *
 * Precision: GstVideoConverter scales 8-bit pictures with 6-bit filter taps; when a
 * downscale factor is an integer >= 3 every output pixel uses the same taps, and for
 * several factors (3, 5, 7, 9, 10, 12...) their rounding cannot make them sum to exactly 1:
 * the picture comes out up to 4 levels too bright or dark. In that case (only) the frame
 * is first widened to 16 bits (ARGB64, full size) and scaled from there with 12-bit taps,
 * at 2-4x the cost. Other factors give a uniform picture back exactly (test-preprocess).
 */
#ifndef __GST_FASTVLM_PREPROCESS_H__
#define __GST_FASTVLM_PREPROCESS_H__

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

/* The 8-bit format of the square: one native-endian 32-bit word per pixel with R in the low
 * byte (RGBx in memory on little-endian, xBGR on big-endian), as orc/fastvlm.orc expects. */
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
#define FVLM_PREPROCESS_FORMAT GST_VIDEO_FORMAT_RGBx
#else
#define FVLM_PREPROCESS_FORMAT GST_VIDEO_FORMAT_xBGR
#endif

/* Per-channel affine map applied by the ORC step: out = in * scale + bias, in = 0..255.
 * From the model: scale = rescale / std, bias = -mean / std. */
typedef struct
{
  gfloat scale[3];
  gfloat bias[3];
} FvlmNormalize;

typedef struct
{
  GstVideoInfo in_info;
  gint size;                    /* side of the square, pixels */
  GstVideoInfo out_info;        /* FVLM_PREPROCESS_FORMAT, size x size, stride size*4 */
  GstVideoConverter *convert;   /* in_info (or wide_info) -> out_info, letterboxed */
  GstVideoConverter *widen;     /* in_info -> wide_info, or NULL (see "Precision") */
  GstVideoInfo wide_info;       /* ARGB64, input size */
  GstBuffer *wide;              /* wide_info.size bytes, reused */
  /* where the picture lands inside the square (the rest is pad colour), pixels */
  gint dest_x, dest_y, dest_w, dest_h;
} FvlmPreprocess;

/* Where a width x height picture lands once padded to a centred square and scaled to
 * size x size: the square's side is max(width, height), the picture is pasted at
 * ((side - width) / 2, (side - height) / 2) (integer division, as PIL's expand2square), and
 * both edges are scaled and rounded to whole pixels. */
void      fvlm_preprocess_letterbox (gint width, gint height, gint size,
                                     gint * x, gint * y, gint * w, gint * h);

/* Prepares the converter for frames of @in_info. @pad_rgb is the letterbox colour (0..255).
 * Returns FALSE when GstVideoConverter cannot handle the format. */
gboolean  fvlm_preprocess_init      (FvlmPreprocess * pp, const GstVideoInfo * in_info,
                                     gint size, const guint8 pad_rgb[3]);
void      fvlm_preprocess_clear     (FvlmPreprocess * pp);

/* Step 1: @frame (mapped for reading, any stride) -> @rgbx (size*size*4 bytes). */
void      fvlm_preprocess_convert   (FvlmPreprocess * pp, const GstVideoFrame * frame,
                                     guint8 * rgbx);

/* Step 2: @rgbx (n_pixels words) -> @planar (3 planes of n_pixels floats: R, G, B). */
void      fvlm_preprocess_to_planar (const guint8 * rgbx, gsize n_pixels,
                                     const FvlmNormalize * norm, gfloat * planar);

/* FvlmNormalize from the model's rescale, mean[3] and std[3]. */
void      fvlm_normalize_init       (FvlmNormalize * norm, gfloat rescale,
                                     const gfloat mean[3], const gfloat std[3]);

G_END_DECLS

#endif /* __GST_FASTVLM_PREPROCESS_H__ */
