/*
 * test_conv.c — the vision convolutions (engine/kernels_conv.c) at awkward sizes:
 *   fvlm_conv2d (planar reference)   vs a naive double-precision loop written here;
 *   fvlm_conv2d_cw_hwc (token-major) vs fvlm_conv2d with groups = cin, cout = mult·cin;
 *   fvlm_conv2d_dense_chw_hwc         vs fvlm_conv2d with groups = 1;
 * each with 1 and 3 threads, sizes 1..17, kernels 1/3/7, strides 1/2, channel multipliers
 * 1/2/3, with and without bias. Tolerance: 1e-5 relative to the sum of |terms| (float32
 * accumulation of at most 49·3 products). Exit 1 on the first failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kernels_vision.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static int failures;

/* Naive grouped conv in double, planar; also returns Σ|terms| per output in `mag`. */
static void naive_conv(const float *in, int cin, int h, int w, const float *wt, const float *b,
                       int cout, int k, int s, int p, int groups, double *out, double *mag)
{
    const int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
    const int cig = cin / groups, cog = cout / groups;
    for (int o = 0; o < cout; o++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                double acc = b ? b[o] : 0.0, m = b ? fabs(b[o]) : 0.0;
                for (int j = 0; j < cig; j++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            const int iy = y * s - p + ky, ix = x * s - p + kx;
                            const int ci = (o / cog) * cig + j;
                            double t;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            t = (double)wt[((o * cig + j) * k + ky) * k + kx] *
                                in[(ci * h + iy) * w + ix];
                            acc += t;
                            m += fabs(t);
                        }
                out[(o * oh + y) * ow + x] = acc;
                mag[(o * oh + y) * ow + x] = m;
            }
}

static void check(const char *what, const float *got, const double *want, const double *mag,
                  int n, int cfg[8])
{
    for (int i = 0; i < n; i++) {
        const double tol = 1e-5 * (mag[i] + 1e-6);
        if (!(fabs(got[i] - want[i]) <= tol)) {
            fprintf(stderr, "FAIL %s: h=%d w=%d cin=%d cout=%d k=%d s=%d groups=%d threads=%d "
                    "at %d: got %.9g want %.9g\n", what, cfg[0], cfg[1], cfg[2], cfg[3], cfg[4],
                    cfg[5], cfg[6], cfg[7], i, got[i], want[i]);
            failures++;
            return;
        }
    }
}

/* planar [c][h][w] → token-major [h][w][c] */
static void to_hwc(const float *chw, int c, int h, int w, float *hwc)
{
    for (int ci = 0; ci < c; ci++)
        for (int i = 0; i < h * w; i++)
            hwc[(size_t)i * c + ci] = chw[(size_t)ci * h * w + i];
}
static void to_chw_d(const float *hwc, int c, int h, int w, double *chw)
{
    for (int ci = 0; ci < c; ci++)
        for (int i = 0; i < h * w; i++)
            chw[(size_t)ci * h * w + i] = hwc[(size_t)i * c + ci];
}

static void run_case(fvlm_pool *pool, int nth, int h, int w, int cin, int mult, int k, int s,
                     bool bias, bool dense)
{
    const int p = k / 2, cout = dense ? mult : cin * mult, groups = dense ? 1 : cin;
    const int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
    const int cig = cin / groups;
    const size_t n_in = (size_t)cin * h * w, n_out = (size_t)cout * oh * ow;
    const size_t n_w = (size_t)cout * cig * k * k;
    float *in = malloc(n_in * sizeof(float)), *hwc_in = malloc(n_in * sizeof(float));
    float *wt = malloc(n_w * sizeof(float)), *wtap = malloc(n_w * sizeof(float));
    float *b = malloc((size_t)cout * sizeof(float));
    float *out = malloc(n_out * sizeof(float)), *hwc_out = malloc(n_out * sizeof(float));
    double *want = malloc(n_out * sizeof(double)), *mag = malloc(n_out * sizeof(double));
    double *got_d = malloc(n_out * sizeof(double));
    float *got = malloc(n_out * sizeof(float));
    int cfg[8] = {h, w, cin, cout, k, s, groups, nth};

    for (size_t i = 0; i < n_in; i++)
        in[i] = frand();
    for (size_t i = 0; i < n_w; i++)
        wt[i] = frand();
    for (int i = 0; i < cout; i++)
        b[i] = frand();
    naive_conv(in, cin, h, w, wt, bias ? b : NULL, cout, k, s, p, groups, want, mag);

    /* planar reference */
    fvlm_conv2d(pool, in, cin, h, w, wt, bias ? b : NULL, cout, k, s, p, groups, out);
    check("fvlm_conv2d", out, want, mag, (int)n_out, cfg);

    /* token-major kernels: weights tap-major */
    to_hwc(in, cin, h, w, hwc_in);
    if (dense) {
        for (int o = 0; o < cout; o++)
            for (int j = 0; j < cin; j++)
                for (int t = 0; t < k * k; t++)
                    wtap[((size_t)t * cin + j) * cout + o] = wt[((size_t)o * cin + j) * k * k + t];
        fvlm_conv2d_dense_chw_hwc(pool, in, cin, h, w, wtap, bias ? b : NULL, cout, k, s, p,
                                  hwc_out);
    } else {
        for (int o = 0; o < cout; o++)
            for (int t = 0; t < k * k; t++)
                wtap[(size_t)t * cout + o] = wt[(size_t)o * k * k + t];
        fvlm_conv2d_cw_hwc(pool, hwc_in, cin, h, w, wtap, bias ? b : NULL, mult, k, s, p,
                           hwc_out);
    }
    to_chw_d(hwc_out, cout, oh, ow, got_d);
    for (size_t i = 0; i < n_out; i++)
        got[i] = (float)got_d[i];
    check(dense ? "fvlm_conv2d_dense_chw_hwc" : "fvlm_conv2d_cw_hwc", got, want, mag,
          (int)n_out, cfg);

    free(in), free(hwc_in), free(wt), free(wtap), free(b), free(out), free(hwc_out);
    free(want), free(mag), free(got_d), free(got);
}

int main(void)
{
    static const int sizes[] = {1, 2, 3, 7, 17};
    static const int kernels[] = {1, 3, 7};
    int n_cases = 0;

    for (int nth = 1; nth <= 3; nth += 2) {
        fvlm_pool *pool = fvlm_pool_new(nth);
        if (!pool) {
            fprintf(stderr, "FAIL: cannot create a pool of %d\n", nth);
            return 1;
        }
        for (size_t hi = 0; hi < sizeof sizes / sizeof *sizes; hi++)
            for (size_t wi = 0; wi < sizeof sizes / sizeof *sizes; wi++)
                for (size_t ki = 0; ki < sizeof kernels / sizeof *kernels; ki++)
                    for (int s = 1; s <= 2; s++) {
                        const int h = sizes[hi], w = sizes[wi], k = kernels[ki];
                        /* depthwise, 2 and 3 outputs per channel, odd channel counts */
                        run_case(pool, nth, h, w, 5, 1, k, s, true, false);
                        run_case(pool, nth, h, w, 3, 2, k, s, (h + w) % 2 == 0, false);
                        run_case(pool, nth, h, w, 2, 3, k, s, true, false);
                        /* dense from planar: 3 input channels like the stem, 1 and 7 outputs */
                        run_case(pool, nth, h, w, 3, 7, k, s, true, true);
                        run_case(pool, nth, h, w, 1, 1, k, s, false, true);
                        n_cases += 5;
                    }
        fvlm_pool_free(pool);
    }
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("test_conv: %d cases OK\n", n_cases);
    return 0;
}
