/*
 * kernels_vision.h — the vision tower's own convolution kernels, on token-major maps.
 *
 * The tower keeps its feature maps in HWC ("token-major") layout: pixel (y, x), channel c
 * at (y·W + x)·C + c. That makes every 1×1 conv a plain fvlm_matmul over H·W token rows
 * (≈87 % of the tower's work) with no transposes, and lets the depthwise convs run along
 * contiguous channel vectors. The planar CHW reference convolution, fvlm_conv2d(), is in
 * kernels.h; the functions here are checked against it (tests/vision/test_conv.c).
 * Implemented in kernels_conv.c. Not here: the tower itself (vision.c).
 */
#ifndef FVLM_KERNELS_VISION_H
#define FVLM_KERNELS_VISION_H

#include <stdint.h>
#include "threadpool.h"

/* Output side of a k×k conv with zero padding `pad`: (n + 2·pad − k)/stride + 1. */
static inline int32_t fvlm_conv_out_size(int32_t n, int32_t k, int32_t stride, int32_t pad)
{
    return (n + 2 * pad - k) / stride + 1;
}

/* Channel-wise conv on an HWC map: cout = mult·cin, output channel o reads only input
 * channel o / mult (mult 1 = depthwise; mult 2 = FastViTHD's PatchEmbed 7×7 and conv_exp
 * 3×3, i.e. PyTorch groups = cin with 2 outputs per group).
 * in [h][w][cin] → out [oh][ow][cout]; weight tap-major [k·k][cout] (tap = ky·k + kx);
 * bias [cout] or NULL. Threaded over output rows. in and out must not alias. */
void fvlm_conv2d_cw_hwc(fvlm_pool *pool, const float *in, int32_t cin, int32_t h, int32_t w,
                        const float *weight, const float *bias, int32_t mult, int32_t k,
                        int32_t stride, int32_t pad, float *out);

/* Dense conv (groups 1) from a planar CHW input to an HWC output — the stem's first conv,
 * which reads the planar image. in [cin][h][w] → out [oh][ow][cout];
 * weight [k·k][cin][cout] (tap-major, then input channel); bias [cout] or NULL. */
void fvlm_conv2d_dense_chw_hwc(fvlm_pool *pool, const float *in, int32_t cin, int32_t h,
                               int32_t w, const float *weight, const float *bias,
                               int32_t cout, int32_t k, int32_t stride, int32_t pad,
                               float *out);

#endif
