/*
 * image.c — the vision tower's image preprocessing, reproducing FastVLM's predict.py
 * (image_aspect_ratio "pad" → expand2square → CLIPImageProcessor) bit for bit on the 8-bit
 * stage:
 *
 *   1. expand2square: paste the W×H RGB image centred on an L×L square (L = max(W, H)) of
 *      the pad colour, at offset (L−H)//2 rows (landscape) or (L−W)//2 columns (portrait).
 *   2. PIL Image.resize((S, S), BICUBIC): separable, antialiased (the kernel support is
 *      widened by the downscale factor), a = −0.5 cubic; horizontal pass first, with the
 *      result rounded and clamped to 8 bits, then the vertical pass, again to 8 bits.
 *      Coefficients are computed in double, normalised, then fixed-point with 22 fraction
 *      bits (PIL's PRECISION_BITS = 32 − 8 − 2); sums start at ½ and are shifted down.
 *   3. v·rescale, then (v − mean)/std per channel → planar float [3][S][S] (R, G, B).
 *
 * The padded square is never materialised: a row of it is the pad colour plus (for the
 * H content rows) one source row, and all pad-only rows have the same horizontal result,
 * computed once. The vertical pass keeps only the window of horizontal rows it needs in a
 * ring buffer, so memory is O(S × kernel size), whatever the input size.
 * Not here: decoding image files (tools/fastvlm/imageio.c) and the tower (vision.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "vision.h"

#define IMG_PRECISION_BITS 22          /* fixed-point fraction bits of the coefficients */
#define IMG_MAX_OUT 16384              /* largest output side */

/* PIL's bicubic kernel, a = −0.5, support 2. */
static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0)
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

/* One axis of the resampling: for output index i, input indices [start[i], start[i]+count[i])
 * weighted by k[i·ksize + j] (fixed point). */
typedef struct {
    int32_t ksize;
    int32_t *start, *count;
    int32_t *k;
} img_axis;

static void axis_free(img_axis *a)
{
    free(a->start);
    free(a->count);
    free(a->k);
}

/* PIL's precompute_coeffs() + normalize_coeffs_8bpc() for in_size → out_size over the
 * whole input (box = (0, in_size)). Returns false on allocation failure. */
static bool axis_init(img_axis *a, int32_t in_size, int32_t out_size)
{
    const double scale = (double)in_size / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 2.0 * filterscale;
    const double ss = 1.0 / filterscale;
    double *w;

    memset(a, 0, sizeof *a);
    a->ksize = (int32_t)ceil(support) * 2 + 1;
    a->start = malloc(sizeof(int32_t) * (size_t)out_size);
    a->count = malloc(sizeof(int32_t) * (size_t)out_size);
    a->k = calloc((size_t)out_size * (size_t)a->ksize, sizeof(int32_t));
    w = malloc(sizeof(double) * (size_t)a->ksize);
    if (!a->start || !a->count || !a->k || !w) {
        free(w);
        axis_free(a);
        return false;
    }
    for (int32_t i = 0; i < out_size; i++) {
        const double center = (i + 0.5) * scale;
        double sum = 0.0;
        int32_t lo = (int32_t)(center - support + 0.5);
        int32_t hi = (int32_t)(center + support + 0.5);
        int32_t *k = a->k + (int64_t)i * a->ksize;
        if (lo < 0)
            lo = 0;
        if (hi > in_size)
            hi = in_size;
        hi -= lo;
        for (int32_t j = 0; j < hi; j++) {
            w[j] = bicubic(((j + lo) - center + 0.5) * ss);
            sum += w[j];
        }
        for (int32_t j = 0; j < hi; j++) {
            const double v = sum != 0.0 ? w[j] / sum : w[j];
            k[j] = v < 0 ? (int32_t)(-0.5 + v * (1 << IMG_PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << IMG_PRECISION_BITS));
        }
        a->start[i] = lo;
        a->count[i] = hi;
    }
    free(w);
    return true;
}

/* A fixed-point sum (started at ½) back to 8 bits, clamped like PIL's clip8(). */
static inline uint8_t clip8(int64_t ss)
{
    if (ss < 0)
        return 0;
    ss >>= IMG_PRECISION_BITS;
    return ss > 255 ? 255 : (uint8_t)ss;
}

/* Horizontal pass of one L-pixel RGB row into out_w RGB pixels. */
static void resample_row(const img_axis *ax, const uint8_t *src, int32_t out_w, uint8_t *dst)
{
    for (int32_t i = 0; i < out_w; i++) {
        const int32_t *k = ax->k + (int64_t)i * ax->ksize;
        const uint8_t *p = src + (int64_t)ax->start[i] * 3;
        int64_t s0 = 1 << (IMG_PRECISION_BITS - 1), s1 = s0, s2 = s0;
        for (int32_t j = 0; j < ax->count[i]; j++) {
            s0 += (int64_t)p[3 * j + 0] * k[j];
            s1 += (int64_t)p[3 * j + 1] * k[j];
            s2 += (int64_t)p[3 * j + 2] * k[j];
        }
        dst[3 * i + 0] = clip8(s0);
        dst[3 * i + 1] = clip8(s1);
        dst[3 * i + 2] = clip8(s2);
    }
}

fastvlm_status fvlm_image_preprocess(const uint8_t *rgb, int32_t width, int32_t height,
                                     size_t stride, int32_t size, const float pad_rgb[3],
                                     float rescale, const float mean[3], const float std[3],
                                     float *out, fastvlm_error *err)
{
    int32_t L, ox, oy, ring_cap = 0;
    uint8_t pad[3], *srow = NULL, *ring = NULL, *padrow = NULL;
    const uint8_t **rp = NULL;
    float lut[3][256];
    img_axis ax = {0}, ay = {0};
    const int64_t plane = (int64_t)size * size;
    int64_t next = 0;
    bool padrow_done = false;
    fastvlm_status st = FASTVLM_OK;

    if (!rgb || !out || !pad_rgb || !mean || !std)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "image preprocess: NULL argument");
    if (width < 1 || height < 1)
        return fvlm_set_error(err, FASTVLM_ERR_IMAGE, "image %dx%d: width and height must be "
                              ">= 1", width, height);
    if ((uint64_t)width * (uint64_t)height > FASTVLM_MAX_IMAGE_PIXELS)
        return fvlm_set_error(err, FASTVLM_ERR_IMAGE, "image %dx%d: %llu pixels is over the "
                              "limit of %u (FASTVLM_MAX_IMAGE_PIXELS)", width, height,
                              (unsigned long long)width * (unsigned long long)height,
                              FASTVLM_MAX_IMAGE_PIXELS);
    if (width > FASTVLM_MAX_IMAGE_SIDE || height > FASTVLM_MAX_IMAGE_SIDE)
        return fvlm_set_error(err, FASTVLM_ERR_IMAGE, "image %dx%d: a side is over the limit "
                              "of %d pixels (FASTVLM_MAX_IMAGE_SIDE)", width, height,
                              FASTVLM_MAX_IMAGE_SIDE);
    if (stride < (size_t)width * 3)
        return fvlm_set_error(err, FASTVLM_ERR_IMAGE, "image %dx%d: row stride %zu is less "
                              "than 3*width = %lld bytes", width, height, stride,
                              (long long)width * 3);
    if (size < 1 || size > IMG_MAX_OUT)
        return fvlm_set_error(err, FASTVLM_ERR_IMAGE, "image output size %d is outside "
                              "[1, %d]", size, IMG_MAX_OUT);

    for (int c = 0; c < 3; c++) {
        const float p = pad_rgb[c] < 0.0f ? 0.0f : pad_rgb[c] > 255.0f ? 255.0f : pad_rgb[c];
        pad[c] = (uint8_t)lrintf(p);
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v * rescale - mean[c]) / std[c];
    }

    /* expand2square geometry */
    L = width > height ? width : height;
    ox = (L - width) / 2;
    oy = (L - height) / 2;

    if (!axis_init(&ax, L, size) || !axis_init(&ay, L, size))
        goto nomem;
    for (int32_t i = 0; i < size; i++)
        if (ay.count[i] > ring_cap)
            ring_cap = ay.count[i];
    srow = malloc((size_t)L * 3);
    ring = malloc((size_t)ring_cap * (size_t)size * 3);
    padrow = malloc((size_t)size * 3);
    rp = malloc(sizeof *rp * (size_t)ring_cap);
    if (!srow || !ring || !padrow || !rp)
        goto nomem;
    /* the square row buffer keeps its pad columns; content rows overwrite [ox, ox+W) */
    for (int32_t x = 0; x < L; x++)
        memcpy(srow + 3 * (size_t)x, pad, 3);

    for (int32_t yy = 0; yy < size; yy++) {
        const int32_t y0 = ay.start[yy], n = ay.count[yy];
        const int32_t *k = ay.k + (int64_t)yy * ay.ksize;
        /* horizontal rows y0 .. y0+n−1 into the ring (windows only move forward) */
        if (next < y0)
            next = y0;
        for (; next < y0 + n; next++) {
            uint8_t *dst = ring + (size_t)(next % ring_cap) * (size_t)size * 3;
            if (next >= oy && next < oy + height) {
                memcpy(srow + 3 * (size_t)ox, rgb + (size_t)(next - oy) * stride,
                       (size_t)width * 3);
                resample_row(&ax, srow, size, dst);
            } else {
                if (!padrow_done) {
                    uint8_t *tmp = malloc((size_t)L * 3);
                    if (!tmp)
                        goto nomem;
                    for (int32_t x = 0; x < L; x++)
                        memcpy(tmp + 3 * (size_t)x, pad, 3);
                    resample_row(&ax, tmp, size, padrow);
                    free(tmp);
                    padrow_done = true;
                }
                memcpy(dst, padrow, (size_t)size * 3);
            }
        }
        for (int32_t j = 0; j < n; j++)
            rp[j] = ring + (size_t)((y0 + j) % ring_cap) * (size_t)size * 3;
        /* vertical pass for output row yy, then to float planes */
        for (int32_t xx = 0; xx < size; xx++) {
            for (int c = 0; c < 3; c++) {
                const int32_t i = 3 * xx + c;
                int64_t s = 1 << (IMG_PRECISION_BITS - 1);
                for (int32_t j = 0; j < n; j++)
                    s += (int64_t)rp[j][i] * k[j];
                out[c * plane + (int64_t)yy * size + xx] = lut[c][clip8(s)];
            }
        }
    }
    goto done;

nomem:
    st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "image %dx%d: out of memory resizing to %dx%d",
                        width, height, size, size);
done:
    axis_free(&ax);
    axis_free(&ay);
    free(srow);
    free(ring);
    free(padrow);
    free((void *)rp);
    return st;
}

fastvlm_status fastvlm_preprocess_rgb8(const fastvlm_model *model, const uint8_t *rgb,
                                       int32_t width, int32_t height, size_t stride,
                                       int32_t size, float *out, fastvlm_error *err)
{
    fastvlm_model_info info;

    if (!model || !rgb || !out)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fastvlm_preprocess_rgb8: NULL "
                              "argument");
    if (!model->vision)
        return fvlm_set_error(err, FASTVLM_ERR_NO_VISION, "fastvlm_preprocess_rgb8: the model "
                              "was loaded without an mmproj");
    memset(&info, 0, sizeof info);
    fvlm_vision_fill_info(model->vision, &info);
    if (size <= 0)
        size = info.image_size;
    return fvlm_image_preprocess(rgb, width, height, stride, size, info.image_pad_rgb,
                                 info.image_rescale, info.image_mean, info.image_std, out, err);
}
