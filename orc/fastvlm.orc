# fastvlm.orc — ORC kernels of the fastvlmcaption element's preprocessing and of its
# scene-change fingerprint (the two functions at the end).
#
# What it is: the last step of the element's preprocessing, run on the worker thread:
# one interleaved 8-bit RGBx picture, already letterboxed and scaled to the model's
# size x size by GstVideoConverter, becomes the three float planes the vision tower
# reads ([3][size][size], values after rescale/mean/std).
# What it is not: colour conversion or scaling (GstVideoConverter does those), nor the
# engine's own PIL-exact preprocessing (fastvlm_preprocess_rgb8), which it approximates.
#
# Pixel layout: each source pixel is one native-endian 32-bit word whose low byte is R,
# then G, then B, then the padding byte: GST_VIDEO_FORMAT_RGBx in memory on little-endian,
# xBGR on big-endian (the element picks the right one), so one program serves both.
# Per channel c: out = in * scale_c + bias_c, with scale_c = rescale / std_c and
# bias_c = -mean_c / std_c (in = 0..255).
# orcc generates fastvlm.c/.h at build time; fastvlm-dist.c/.h are the committed copies
# used when orcc is missing (regenerate: orcc --implementation / --header, see meson.build).

.function fastvlm_orc_rgbx_to_planar_f32
.dest 4 dr float
.dest 4 dg float
.dest 4 db float
.source 4 s orc_uint32
.floatparam 4 r_scale
.floatparam 4 r_bias
.floatparam 4 g_scale
.floatparam 4 g_bias
.floatparam 4 b_scale
.floatparam 4 b_bias
.temp 2 lo
.temp 2 hi
.temp 1 r
.temp 1 g
.temp 1 b
.temp 1 x
.temp 2 w
.temp 4 l
.temp 4 f

splitlw hi, lo, s
splitwb g, r, lo
splitwb x, b, hi
convubw w, r
convuwl l, w
convlf f, l
mulf f, f, r_scale
addf dr, f, r_bias
convubw w, g
convuwl l, w
convlf f, l
mulf f, f, g_scale
addf dg, f, g_bias
convubw w, b
convuwl l, w
convlf f, l
mulf f, f, b_scale
addf db, f, b_bias

# Scene-change fingerprint (streaming thread, gstfastvlmworker.c): the RGBx square is cut
# into FVLM_THUMB_SIDE^2 blocks; each block's luma sum, r + 2g + b per pixel (0..1020),
# is one 2-D call over block x block pixels (32-bit accumulator: up to 4096 pixels per
# block at 1020 fit with room to spare), divided by 4 * pixels into a grey thumbnail.
.function fastvlm_orc_rgbx_luma_sum
.flags 2d
.accumulator 4 a orc_uint32
.source 4 s orc_uint32
.temp 2 lo
.temp 2 hi
.temp 1 r
.temp 1 g
.temp 1 b
.temp 1 x
.temp 2 wr
.temp 2 wg
.temp 2 wb
.temp 4 l

splitlw hi, lo, s
splitwb g, r, lo
splitwb x, b, hi
convubw wr, r
convubw wg, g
convubw wb, b
addw wr, wr, wb
addw wg, wg, wg
addw wr, wr, wg
convuwl l, wr
accl a, l

# Sum of absolute differences of two thumbnails (the fingerprint distance, before
# dividing by the number of pixels).
.function fastvlm_orc_sad_u8
.accumulator 4 a orc_uint32
.source 1 s1 orc_uint8
.source 1 s2 orc_uint8

accsadubl a, s1, s2
