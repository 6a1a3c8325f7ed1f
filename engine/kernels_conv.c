/*
 * kernels_conv.c — 2-D convolutions for the FastViTHD vision tower (kernels.h,
 * kernels_vision.h): the planar CHW reference fvlm_conv2d() and the token-major (HWC)
 * kernels the tower actually runs. All zero padding, square kernels, float32 accumulation.
 * Not here: 1×1 convolutions (they are GEMMs: fvlm_matmul in kernels_scalar.c) and the
 * tower's dataflow (vision.c).
 */
#include <string.h>

#include "kernels.h"
#include "kernels_vision.h"

/* Splits [0, n) into nth near-equal parts and returns part ith as [*lo, *hi). */
static void split_range(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

/* Valid tap range [*k0, *k1) for output coordinate o: input i = o·stride − pad + kk must
 * lie in [0, n). */
static void tap_range(int32_t o, int32_t stride, int32_t pad, int32_t k, int32_t n,
                      int32_t *k0, int32_t *k1)
{
    int32_t i0 = o * stride - pad;
    *k0 = i0 < 0 ? -i0 : 0;
    *k1 = n - i0 < k ? n - i0 : k;
    if (*k1 < *k0)
        *k1 = *k0;
}

/* ---- planar reference ------------------------------------------------------------- */

typedef struct {
    const float *in, *weight, *bias;
    float *out;
    int32_t cin, h, w, cout, k, stride, pad, groups, oh, ow;
} conv2d_args;

static void conv2d_worker(void *arg, int ith, int nth)
{
    const conv2d_args *a = arg;
    const int32_t cin_g = a->cin / a->groups, cout_g = a->cout / a->groups;
    int64_t o0, o1;

    split_range(a->cout, ith, nth, &o0, &o1);
    for (int64_t o = o0; o < o1; o++) {
        const int32_t g = (int32_t)(o / cout_g);
        float *dst = a->out + o * (int64_t)a->oh * a->ow;
        for (int32_t oy = 0; oy < a->oh; oy++) {
            int32_t ky0, ky1;
            tap_range(oy, a->stride, a->pad, a->k, a->h, &ky0, &ky1);
            for (int32_t ox = 0; ox < a->ow; ox++) {
                int32_t kx0, kx1;
                float acc = a->bias ? a->bias[o] : 0.0f;
                tap_range(ox, a->stride, a->pad, a->k, a->w, &kx0, &kx1);
                for (int32_t j = 0; j < cin_g; j++) {
                    const float *src = a->in + (int64_t)(g * cin_g + j) * a->h * a->w;
                    const float *wk = a->weight + ((int64_t)o * cin_g + j) * a->k * a->k;
                    for (int32_t ky = ky0; ky < ky1; ky++) {
                        const int32_t iy = oy * a->stride - a->pad + ky;
                        for (int32_t kx = kx0; kx < kx1; kx++) {
                            const int32_t ix = ox * a->stride - a->pad + kx;
                            acc += wk[ky * a->k + kx] * src[(int64_t)iy * a->w + ix];
                        }
                    }
                }
                dst[(int64_t)oy * a->ow + ox] = acc;
            }
        }
    }
}

void fvlm_conv2d(fvlm_pool *pool, const float *in, int32_t cin, int32_t h, int32_t w,
                 const float *weight, const float *bias, int32_t cout, int32_t k,
                 int32_t stride, int32_t pad, int32_t groups, float *out)
{
    conv2d_args a = {
        .in = in, .weight = weight, .bias = bias, .out = out, .cin = cin, .h = h, .w = w,
        .cout = cout, .k = k, .stride = stride, .pad = pad, .groups = groups,
        .oh = fvlm_conv_out_size(h, k, stride, pad), .ow = fvlm_conv_out_size(w, k, stride, pad),
    };
    if (a.oh <= 0 || a.ow <= 0 || groups <= 0 || cin % groups || cout % groups)
        return;
    fvlm_pool_run(pool, conv2d_worker, &a);
}

/* ---- token-major (HWC) kernels ---------------------------------------------------- */

typedef struct {
    const float *in, *weight, *bias;
    float *out;
    int32_t cin, h, w, cout, mult, k, stride, pad, oh, ow;
} conv_hwc_args;

/* One output pixel's channel vector accumulates k·k tap products; with mult 1 or 2 the
 * inner loops run over contiguous channels (vectorisable). */
static void cw_hwc_worker(void *arg, int ith, int nth)
{
    const conv_hwc_args *a = arg;
    const int32_t cin = a->cin, cout = a->cout;
    int64_t y0, y1;

    split_range(a->oh, ith, nth, &y0, &y1);
    for (int64_t oy = y0; oy < y1; oy++) {
        int32_t ky0, ky1;
        tap_range((int32_t)oy, a->stride, a->pad, a->k, a->h, &ky0, &ky1);
        for (int32_t ox = 0; ox < a->ow; ox++) {
            float *restrict dst = a->out + (oy * a->ow + ox) * cout;
            int32_t kx0, kx1;
            tap_range(ox, a->stride, a->pad, a->k, a->w, &kx0, &kx1);
            if (a->bias)
                memcpy(dst, a->bias, sizeof(float) * (size_t)cout);
            else
                memset(dst, 0, sizeof(float) * (size_t)cout);
            for (int32_t ky = ky0; ky < ky1; ky++) {
                const int64_t iy = oy * a->stride - a->pad + ky;
                for (int32_t kx = kx0; kx < kx1; kx++) {
                    const int64_t ix = (int64_t)ox * a->stride - a->pad + kx;
                    const float *restrict src = a->in + (iy * a->w + ix) * cin;
                    const float *restrict wk = a->weight + (int64_t)(ky * a->k + kx) * cout;
                    if (a->mult == 1) {
                        for (int32_t c = 0; c < cout; c++)
                            dst[c] += wk[c] * src[c];
                    } else if (a->mult == 2) {
                        for (int32_t c = 0; c < cin; c++) {
                            dst[2 * c] += wk[2 * c] * src[c];
                            dst[2 * c + 1] += wk[2 * c + 1] * src[c];
                        }
                    } else {
                        for (int32_t c = 0; c < cout; c++)
                            dst[c] += wk[c] * src[c / a->mult];
                    }
                }
            }
        }
    }
}

void fvlm_conv2d_cw_hwc(fvlm_pool *pool, const float *in, int32_t cin, int32_t h, int32_t w,
                        const float *weight, const float *bias, int32_t mult, int32_t k,
                        int32_t stride, int32_t pad, float *out)
{
    conv_hwc_args a = {
        .in = in, .weight = weight, .bias = bias, .out = out, .cin = cin, .h = h, .w = w,
        .cout = cin * mult, .mult = mult, .k = k, .stride = stride, .pad = pad,
        .oh = fvlm_conv_out_size(h, k, stride, pad), .ow = fvlm_conv_out_size(w, k, stride, pad),
    };
    if (a.oh <= 0 || a.ow <= 0 || mult <= 0)
        return;
    fvlm_pool_run(pool, cw_hwc_worker, &a);
}

static void dense_chw_hwc_worker(void *arg, int ith, int nth)
{
    const conv_hwc_args *a = arg;
    const int32_t cin = a->cin, cout = a->cout;
    const int64_t plane = (int64_t)a->h * a->w;
    int64_t y0, y1;

    split_range(a->oh, ith, nth, &y0, &y1);
    for (int64_t oy = y0; oy < y1; oy++) {
        int32_t ky0, ky1;
        tap_range((int32_t)oy, a->stride, a->pad, a->k, a->h, &ky0, &ky1);
        for (int32_t ox = 0; ox < a->ow; ox++) {
            float *restrict dst = a->out + (oy * a->ow + ox) * cout;
            int32_t kx0, kx1;
            tap_range(ox, a->stride, a->pad, a->k, a->w, &kx0, &kx1);
            if (a->bias)
                memcpy(dst, a->bias, sizeof(float) * (size_t)cout);
            else
                memset(dst, 0, sizeof(float) * (size_t)cout);
            for (int32_t ky = ky0; ky < ky1; ky++) {
                const int64_t iy = oy * a->stride - a->pad + ky;
                for (int32_t kx = kx0; kx < kx1; kx++) {
                    const int64_t ix = (int64_t)ox * a->stride - a->pad + kx;
                    for (int32_t ci = 0; ci < cin; ci++) {
                        const float v = a->in[ci * plane + iy * a->w + ix];
                        const float *restrict wk =
                            a->weight + ((int64_t)(ky * a->k + kx) * cin + ci) * cout;
                        for (int32_t c = 0; c < cout; c++)
                            dst[c] += wk[c] * v;
                    }
                }
            }
        }
    }
}

void fvlm_conv2d_dense_chw_hwc(fvlm_pool *pool, const float *in, int32_t cin, int32_t h,
                               int32_t w, const float *weight, const float *bias,
                               int32_t cout, int32_t k, int32_t stride, int32_t pad,
                               float *out)
{
    conv_hwc_args a = {
        .in = in, .weight = weight, .bias = bias, .out = out, .cin = cin, .h = h, .w = w,
        .cout = cout, .mult = 0, .k = k, .stride = stride, .pad = pad,
        .oh = fvlm_conv_out_size(h, k, stride, pad), .ow = fvlm_conv_out_size(w, k, stride, pad),
    };
    if (a.oh <= 0 || a.ow <= 0)
        return;
    fvlm_pool_run(pool, dense_chw_hwc_worker, &a);
}
