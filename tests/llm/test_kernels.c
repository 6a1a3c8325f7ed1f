/*
 * test_kernels.c — the scalar kernels of kernels_scalar.c against naive double-precision
 * loops written here: fvlm_matmul for every weight type (F32, F16, BF16, Q8_0, Q4_0, with
 * the weights decoded by this file's own f16/bf16/block decoders, not tensor.c's), with
 * and without bias, at awkward sizes (1, 3, 7, 17, 33, 129 and a k that crosses the
 * kernel's 2048-column tile), on pools of 1-3 threads (results must be bit-identical);
 * fvlm_sgemm_nt with strides; rmsnorm, layernorm, softmax, silu, gelu_erf; RoPE against
 * the direct formula.
 * Not a speed test.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels.h"

static const int64_t SIZES[] = {1, 3, 7, 17, 33, 129};
#define N_SIZES (int)(sizeof SIZES / sizeof SIZES[0])

static uint64_t rng_state = 0x1234567887654321ull;
static uint32_t rnd_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rnd_f(void) /* uniform in [-1, 1) */
{
    return (float)((double)rnd_u32() / 2147483648.0 - 1.0);
}

/* ---- this file's own decoders of the weight formats ---- */

static double half_to_double(uint16_t h)
{
    const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0)
        v = ldexp((double)m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(1024.0 + m, e - 25);
    return s ? -v : v;
}

/* A random normal f16 with |v| in about [2^-4, 2): exponent 11..15. */
static uint16_t rnd_half(void)
{
    const uint16_t s = (uint16_t)(rnd_u32() & 1), e = (uint16_t)(11 + rnd_u32() % 5);
    return (uint16_t)(s << 15 | e << 10 | (rnd_u32() & 1023));
}

static double bf16_to_double(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Builds a random n×k weight of `type` (raw bytes) and its decoded values in double. */
static void *make_weight(fvlm_type type, int64_t n, int64_t k, double *dec, size_t *nbytes)
{
    uint8_t *buf;
    size_t sz;
    switch (type) {
    case FVLM_TYPE_F32: {
        float *w;
        sz = (size_t)(n * k) * 4;
        w = malloc(sz);
        for (int64_t i = 0; i < n * k; i++) {
            w[i] = rnd_f();
            dec[i] = w[i];
        }
        *nbytes = sz;
        return w;
    }
    case FVLM_TYPE_F16:
    case FVLM_TYPE_BF16: {
        uint16_t *w;
        sz = (size_t)(n * k) * 2;
        w = malloc(sz);
        for (int64_t i = 0; i < n * k; i++) {
            if (type == FVLM_TYPE_F16) {
                w[i] = rnd_half();
                dec[i] = half_to_double(w[i]);
            } else {
                float f = rnd_f();
                uint32_t u;
                memcpy(&u, &f, 4);
                w[i] = (uint16_t)(u >> 16);
                dec[i] = bf16_to_double(w[i]);
            }
        }
        *nbytes = sz;
        return w;
    }
    case FVLM_TYPE_Q8_0:
    case FVLM_TYPE_Q4_0: {
        const bool q8 = type == FVLM_TYPE_Q8_0;
        const int bsz = q8 ? 34 : 18;
        const int64_t nb = n * k / 32;
        sz = (size_t)nb * (size_t)bsz;
        buf = malloc(sz);
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = buf + b * bsz;
            /* block scale: a random f16 of magnitude 2^-8..2^-5 (exponent field 7..9),
             * so that scale·q stays O(1) */
            const uint16_t d = (uint16_t)((rnd_u32() & 1) << 15 | (7 + rnd_u32() % 3) << 10 |
                                          (rnd_u32() & 1023));
            blk[0] = (uint8_t)(d & 0xff);
            blk[1] = (uint8_t)(d >> 8);
            const double scale = half_to_double(d);
            if (q8) {
                for (int j = 0; j < 32; j++) {
                    const int8_t q = (int8_t)(rnd_u32() % 255 - 127);
                    blk[2 + j] = (uint8_t)q;
                    dec[b * 32 + j] = scale * q;
                }
            } else {
                for (int j = 0; j < 16; j++) {
                    const uint8_t lo = (uint8_t)(rnd_u32() & 15), hi = (uint8_t)(rnd_u32() & 15);
                    blk[2 + j] = (uint8_t)(lo | hi << 4);
                    dec[b * 32 + j] = scale * (lo - 8);        /* element j */
                    dec[b * 32 + 16 + j] = scale * (hi - 8);   /* element j + 16 */
                }
            }
        }
        *nbytes = sz;
        return buf;
    }
    default:
        return NULL;
    }
}

static const char *type_name(fvlm_type t)
{
    switch (t) {
    case FVLM_TYPE_F32: return "f32";
    case FVLM_TYPE_F16: return "f16";
    case FVLM_TYPE_BF16: return "bf16";
    case FVLM_TYPE_Q8_0: return "q8_0";
    case FVLM_TYPE_Q4_0: return "q4_0";
    default: return "?";
    }
}

/* Y = X·Wᵀ (+bias) by fvlm_matmul on every pool, against a double loop. */
static void test_matmul_case(fvlm_pool **pools, int n_pools, fvlm_type type, int64_t m,
                             int64_t n, int64_t k, bool with_bias)
{
    double *dec = malloc((size_t)(n * k) * sizeof *dec);
    size_t nbytes = 0;
    void *wdata = make_weight(type, n, k, dec, &nbytes);
    float *X = malloc((size_t)(m * k) * sizeof *X);
    float *bias = malloc((size_t)n * sizeof *bias);
    float *Y0 = malloc((size_t)(m * n) * sizeof *Y0);
    float *Y1 = malloc((size_t)(m * n) * sizeof *Y1);
    fvlm_tensor W;
    double worst = 0.0;

    for (int64_t i = 0; i < m * k; i++)
        X[i] = rnd_f();
    for (int64_t j = 0; j < n; j++)
        bias[j] = rnd_f();
    memset(&W, 0, sizeof W);
    W.name = "test";
    W.type = type;
    W.n_dims = 2;
    W.ne[0] = k;
    W.ne[1] = n;
    W.ne[2] = W.ne[3] = 1;
    W.nbytes = nbytes;
    W.data = wdata;

    fvlm_matmul(NULL, &W, X, m, Y0, with_bias ? bias : NULL);
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double ref = with_bias ? bias[j] : 0.0, mag = fabs(ref);
            for (int64_t c = 0; c < k; c++) {
                ref += (double)X[i * k + c] * dec[j * k + c];
                mag += fabs((double)X[i * k + c] * dec[j * k + c]);
            }
            const double e = fabs(Y0[i * n + j] - ref) / (mag + 1e-30);
            if (e > worst)
                worst = e;
        }
    }
    /* float32 accumulation: relative to Σ|x·w| the error stays near k·2^-24 at worst. */
    CHECK(worst <= 2e-6 + 6e-8 * sqrt((double)k), "matmul %s m=%lld n=%lld k=%lld bias=%d: "
          "rel err %.3g", type_name(type), (long long)m, (long long)n, (long long)k, with_bias,
          worst);
    for (int p = 0; p < n_pools; p++) {
        fvlm_matmul(pools[p], &W, X, m, Y1, with_bias ? bias : NULL);
        CHECK(memcmp(Y0, Y1, (size_t)(m * n) * sizeof *Y0) == 0,
              "matmul %s m=%lld n=%lld k=%lld: pool of %d threads differs from no pool",
              type_name(type), (long long)m, (long long)n, (long long)k, fvlm_pool_size(pools[p]));
    }
    /* Row i of a batch equals the same row computed alone (prefill == decode). */
    if (m > 1) {
        const int64_t i = m - 1;
        fvlm_matmul(pools[0], &W, X + i * k, 1, Y1, with_bias ? bias : NULL);
        CHECK(memcmp(Y0 + i * n, Y1, (size_t)n * sizeof *Y0) == 0,
              "matmul %s: row %lld of a batch differs from the row alone", type_name(type),
              (long long)i);
    }
    free(dec);
    free(wdata);
    free(X);
    free(bias);
    free(Y0);
    free(Y1);
}

static void test_matmul(fvlm_pool **pools, int n_pools)
{
    static const fvlm_type types[] = {FVLM_TYPE_F32, FVLM_TYPE_F16, FVLM_TYPE_BF16,
                                      FVLM_TYPE_Q8_0, FVLM_TYPE_Q4_0};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const bool blocked = types[t] == FVLM_TYPE_Q8_0 || types[t] == FVLM_TYPE_Q4_0;
        /* k: the awkward sizes (times 32 for block types), and one past the 2048 tile */
        int64_t ks[N_SIZES + 1];
        for (int i = 0; i < N_SIZES; i++)
            ks[i] = blocked ? 32 * SIZES[i] : SIZES[i];
        ks[N_SIZES] = blocked ? 2048 + 96 : 2048 + 37;
        for (int ki = 0; ki <= N_SIZES; ki++) {
            if (ks[ki] > 3000)
                continue;
            for (int ni = 0; ni < N_SIZES; ni++) {
                for (int mi = 0; mi < 4; mi++) {
                    if (ks[ki] > 1000 && (SIZES[ni] > 17 || SIZES[mi] > 3))
                        continue; /* keep the big-k cases small */
                    test_matmul_case(pools, n_pools, types[t], SIZES[mi], SIZES[ni], ks[ki],
                                     (ni + mi) % 2 == 0);
                }
            }
        }
    }
}

static void test_sgemm(fvlm_pool **pools, int n_pools)
{
    for (int mi = 0; mi < 4; mi++) {
        for (int ni = 0; ni < N_SIZES; ni++) {
            for (int ki = 0; ki < N_SIZES; ki++) {
                const int64_t m = SIZES[mi], n = SIZES[ni], k = SIZES[ki];
                const int64_t lda = k + 3, ldb = k + 5, ldc = n + 2;
                float *A = malloc((size_t)(m * lda) * sizeof *A);
                float *B = malloc((size_t)(n * ldb) * sizeof *B);
                float *bias = malloc((size_t)n * sizeof *bias);
                float *C0 = malloc((size_t)(m * ldc) * sizeof *C0);
                float *C1 = malloc((size_t)(m * ldc) * sizeof *C1);
                const bool wb = (ni + ki) % 2 == 1;
                double worst = 0.0;
                for (int64_t i = 0; i < m * lda; i++)
                    A[i] = rnd_f();
                for (int64_t i = 0; i < n * ldb; i++)
                    B[i] = rnd_f();
                for (int64_t i = 0; i < n; i++)
                    bias[i] = rnd_f();
                for (int64_t i = 0; i < m * ldc; i++)
                    C0[i] = C1[i] = 12345.0f; /* padding columns must stay untouched */
                fvlm_sgemm_nt(NULL, m, n, k, A, lda, B, ldb, C0, ldc, wb ? bias : NULL);
                for (int64_t i = 0; i < m; i++) {
                    for (int64_t j = 0; j < n; j++) {
                        double ref = wb ? bias[j] : 0.0, mag = fabs(ref);
                        for (int64_t c = 0; c < k; c++) {
                            ref += (double)A[i * lda + c] * B[j * ldb + c];
                            mag += fabs((double)A[i * lda + c] * B[j * ldb + c]);
                        }
                        const double e = fabs(C0[i * ldc + j] - ref) / (mag + 1e-30);
                        if (e > worst)
                            worst = e;
                    }
                    for (int64_t j = n; j < ldc; j++)
                        CHECK(C0[i * ldc + j] == 12345.0f, "sgemm wrote past n at (%lld,%lld)",
                              (long long)i, (long long)j);
                }
                CHECK(worst <= 2e-6, "sgemm m=%lld n=%lld k=%lld: rel err %.3g", (long long)m,
                      (long long)n, (long long)k, worst);
                for (int p = 0; p < n_pools; p++) {
                    fvlm_sgemm_nt(pools[p], m, n, k, A, lda, B, ldb, C1, ldc, wb ? bias : NULL);
                    CHECK(memcmp(C0, C1, (size_t)(m * ldc) * sizeof *C0) == 0,
                          "sgemm m=%lld n=%lld k=%lld: %d threads differ", (long long)m,
                          (long long)n, (long long)k, fvlm_pool_size(pools[p]));
                }
                free(A);
                free(B);
                free(bias);
                free(C0);
                free(C1);
            }
        }
    }
}

static void test_elementwise(void)
{
    for (int si = 0; si < N_SIZES; si++) {
        const int64_t n = SIZES[si];
        float *x = malloc((size_t)n * sizeof *x), *w = malloc((size_t)n * sizeof *w);
        float *b = malloc((size_t)n * sizeof *b), *y = malloc((size_t)n * sizeof *y);
        double worst;
        for (int64_t i = 0; i < n; i++) {
            x[i] = 3.0f * rnd_f();
            w[i] = rnd_f();
            b[i] = rnd_f();
        }

        /* rmsnorm (also in place) */
        {
            double ss = 0.0;
            for (int64_t i = 0; i < n; i++)
                ss += (double)x[i] * x[i];
            const double r = 1.0 / sqrt(ss / n + 1e-6);
            fvlm_rmsnorm(y, x, w, n, 1e-6f);
            worst = 0.0;
            for (int64_t i = 0; i < n; i++)
                worst = fmax(worst, fabs(y[i] - x[i] * r * w[i]));
            CHECK(worst <= 1e-5, "rmsnorm n=%lld: err %.3g", (long long)n, worst);
            memcpy(y, x, (size_t)n * sizeof *y);
            fvlm_rmsnorm(y, y, w, n, 1e-6f);
            for (int64_t i = 0; i < n; i++)
                worst = fmax(worst, fabs(y[i] - x[i] * r * w[i]));
            CHECK(worst <= 1e-5, "rmsnorm in place n=%lld: err %.3g", (long long)n, worst);
        }
        /* layernorm */
        {
            double mean = 0.0, var = 0.0;
            for (int64_t i = 0; i < n; i++)
                mean += x[i];
            mean /= n;
            for (int64_t i = 0; i < n; i++)
                var += (x[i] - mean) * (x[i] - mean);
            var /= n;
            fvlm_layernorm(y, x, w, b, n, 1e-5f);
            worst = 0.0;
            for (int64_t i = 0; i < n; i++)
                worst = fmax(worst, fabs(y[i] - ((x[i] - mean) / sqrt(var + 1e-5) * w[i] + b[i])));
            CHECK(worst <= 1e-5, "layernorm n=%lld: err %.3g", (long long)n, worst);
        }
        /* softmax (with large logits: must not overflow) */
        {
            double mx = -INFINITY, sum = 0.0;
            for (int64_t i = 0; i < n; i++) {
                y[i] = 40.0f * x[i] + 50.0f;
                mx = fmax(mx, y[i]);
            }
            for (int64_t i = 0; i < n; i++)
                sum += exp(y[i] - mx);
            float *z = malloc((size_t)n * sizeof *z);
            memcpy(z, y, (size_t)n * sizeof *z);
            fvlm_softmax(z, n);
            worst = 0.0;
            double tot = 0.0;
            for (int64_t i = 0; i < n; i++) {
                worst = fmax(worst, fabs(z[i] - exp(y[i] - mx) / sum));
                tot += z[i];
            }
            CHECK(worst <= 1e-6 && fabs(tot - 1.0) <= 1e-5, "softmax n=%lld: err %.3g sum %.9g",
                  (long long)n, worst, tot);
            free(z);
        }
        /* silu, gelu_erf */
        {
            memcpy(y, x, (size_t)n * sizeof *y);
            fvlm_silu(y, n);
            worst = 0.0;
            for (int64_t i = 0; i < n; i++)
                worst = fmax(worst, fabs(y[i] - x[i] / (1.0 + exp(-(double)x[i]))));
            CHECK(worst <= 1e-6, "silu n=%lld: err %.3g", (long long)n, worst);
            memcpy(y, x, (size_t)n * sizeof *y);
            fvlm_gelu_erf(y, n);
            worst = 0.0;
            for (int64_t i = 0; i < n; i++)
                worst = fmax(worst, fabs(y[i] - 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)))));
            CHECK(worst <= 1e-6, "gelu_erf n=%lld: err %.3g", (long long)n, worst);
        }
        free(x);
        free(w);
        free(b);
        free(y);
    }
    /* extremes */
    {
        float v[4] = {-100.0f, 100.0f, 0.0f, -20.0f};
        fvlm_silu(v, 4);
        CHECK(fabsf(v[0]) < 1e-30f && v[1] == 100.0f && v[2] == 0.0f && isfinite(v[3]),
              "silu extremes: %g %g %g %g", (double)v[0], (double)v[1], (double)v[2], (double)v[3]);
    }
}

static void test_rope(void)
{
    static const int32_t dims[] = {2, 16, 64, 128};
    static const int32_t positions[] = {0, 1, 17, 1000, 32767, 100000};
    static const float thetas[] = {10000.0f, 1000000.0f};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
            for (size_t ti = 0; ti < 2; ti++) {
                const int32_t d = dims[di], pos = positions[pi];
                float x[128], y[128], z[128], cs[128];
                double worst = 0.0;
                for (int32_t i = 0; i < d; i++)
                    x[i] = rnd_f();
                memcpy(y, x, sizeof x);
                fvlm_rope_rotate_half(y, d, pos, thetas[ti]);
                /* direct formula: pair (i, i + d/2) rotated by pos·θ^(-2i/d) */
                for (int32_t i = 0; i < d / 2; i++) {
                    const double a = pos * pow((double)thetas[ti], -2.0 * i / d);
                    const double r0 = x[i] * cos(a) - x[i + d / 2] * sin(a);
                    const double r1 = x[i + d / 2] * cos(a) + x[i] * sin(a);
                    worst = fmax(worst, fmax(fabs(y[i] - r0), fabs(y[i + d / 2] - r1)));
                }
                CHECK(worst <= 3e-7, "rope d=%d pos=%d theta=%g: err %.3g", d, pos,
                      (double)thetas[ti], worst);
                memcpy(z, x, sizeof x);
                fvlm_rope_sincos(cs, d, pos, thetas[ti]);
                fvlm_rope_apply(z, cs, d);
                CHECK(memcmp(y, z, (size_t)d * sizeof *y) == 0,
                      "rope d=%d pos=%d: sincos+apply differs from rotate_half", d, pos);
            }
        }
    }
}

int main(void)
{
    fvlm_pool *pools[3];
    for (int i = 0; i < 3; i++) {
        pools[i] = fvlm_pool_new(i + 1);
        CHECK(pools[i] != NULL, "fvlm_pool_new(%d) failed", i + 1);
        if (!pools[i])
            return check_summary("test_kernels");
    }
    test_matmul(pools, 3);
    test_sgemm(pools, 3);
    test_elementwise();
    test_rope();
    for (int i = 0; i < 3; i++)
        fvlm_pool_free(pools[i]);
    return check_summary("test_kernels");
}
