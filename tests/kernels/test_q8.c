/*
 * test_q8.c — the fast (8-bit activation) matrix product (engine/kernels_q8.h) of every table
 * this CPU can run (scalar, AVX2, AVX-512 VNNI, NEON, NEON dotprod) against the scalar twins:
 *   - activation quantization (both block forms) == fvlm_q8_quantize_scalar, exactly
 *     (TOL_BITS: q, d and bsum bit for bit);
 *   - fvlm_matmul_q8 with each table, every weight type, at awkward sizes (1, 3, 7, 17, 33,
 *     129 weight rows × 1, 3, 7, 17, 33 activation rows, k several multiples of the block)
 *     == fvlm_q8_dot_scalar element by element, bit for bit (TOL_BITS), identical with 1 and
 *     3 threads, and a batch row == the same row computed alone;
 *   - the scalar twin itself against a double-precision sum over the dequantized weights
 *     and the dequantized activations (TOL_DEQ relative to Σ|w·a|): the integer part is
 *     exact, only the float rounding of the scales and lanes differs;
 *   - weights with random payload bytes (not only quantizer output: Q8_0 −128, every
 *     nibble and high bit) and random scales.
 * Not here: the float path (test_simd.c), the model-level numpy reference (q8_ref.py).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels_q8.h"
#include "threadpool.h"

#define TOL_BITS 0          /* SIMD vs scalar twin: ulps allowed (none) */
#define TOL_DEQ 1e-5        /* scalar twin vs double reference, relative to Σ|w·a| */

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint32_t rnd_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rnd_f(void)
{
    return (float)rnd_u32() / 4294967296.0f * 2.0f - 1.0f;
}

static const fvlm_type TYPES[] = {FVLM_TYPE_Q8_0, FVLM_TYPE_Q4_0, FVLM_TYPE_Q4_1, FVLM_TYPE_Q5_0,
                                  FVLM_TYPE_Q5_1, FVLM_TYPE_Q4_K, FVLM_TYPE_Q5_K, FVLM_TYPE_Q6_K};
#define N_TYPES (int)(sizeof TYPES / sizeof TYPES[0])
static const int64_t NROWS[] = {1, 3, 7, 17, 33, 129};
static const int64_t MROWS[] = {1, 3, 7, 17, 33};

/* n rows of k weights of `type`: half from the quantizer, half random bytes with sane
 * fp16 scales (so every bit pattern of the payload appears). */
static uint8_t *make_weights(fvlm_type type, int64_t n, int64_t k, int raw)
{
    const size_t rb = fvlm_row_size(type, k);
    uint8_t *w = malloc(rb * (size_t)n);
    float *x = malloc((size_t)k * sizeof *x);
    const fvlm_type_traits *tt = fvlm_type_get_traits((uint32_t)type);
    for (int64_t j = 0; j < n; j++) {
        uint8_t *row = w + rb * (size_t)j;
        for (int64_t i = 0; i < k; i++)
            x[i] = rnd_f() * (1.0f + (float)(i % 7));
        fvlm_quantize_row(type, x, row, k);
        if (!raw)
            continue;
        for (size_t b = 0; b < rb; b += tt->type_size) {
            uint8_t *blk = row + b;
            for (uint32_t i = 0; i < tt->type_size; i++)
                blk[i] = (uint8_t)rnd_u32();
            /* fp16 scale fields: small finite values of either sign */
            const int nh = type == FVLM_TYPE_Q4_1 || type == FVLM_TYPE_Q5_1 || type == FVLM_TYPE_Q4_K ||
                           type == FVLM_TYPE_Q5_K ? 2 : 1;
            const size_t off = type == FVLM_TYPE_Q6_K ? 208 : 0;
            for (int h = 0; h < nh; h++) {
                const uint16_t f = fvlm_f32_to_f16(rnd_f() * 0.01f);
                blk[off + 2 * h] = (uint8_t)f;
                blk[off + 2 * h + 1] = (uint8_t)(f >> 8);
            }
        }
    }
    free(x);
    return w;
}

static int same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static void test_quantize(const fvlm_q8_kernels *kt)
{
    static const int64_t KS[] = {256, 512, 1280, 4864};
    for (int form = 0; form < FVLM_Q8_FORMS; form++)
        for (size_t ki = 0; ki < sizeof KS / sizeof KS[0]; ki++) {
            const int64_t k = KS[ki];
            float *x = malloc((size_t)k * sizeof *x);
            int8_t *q0 = malloc((size_t)k), *q1 = malloc((size_t)k);
            float d0[160], d1[160];
            int16_t s0[160], s1[160];
            for (int64_t i = 0; i < k; i++)
                x[i] = rnd_f() * (i % 97 == 0 ? 50.0f : 1.0f);
            for (int64_t i = 0; i < 32 && i < k; i++)   /* an all-zero block */
                x[i] = 0.0f;
            fvlm_q8_quantize_scalar(x, k, form, q0, d0, s0);
            kt->quantize(x, k, form, q1, d1, s1);
            int bad = memcmp(q0, q1, (size_t)k) != 0;
            for (int64_t b = 0; b < k / (form ? 256 : 32); b++)
                bad |= !same_bits(d0[b], d1[b]);
            bad |= memcmp(s0, s1, (size_t)(k / 32) * sizeof *s0) != 0;
            CHECK(!bad, "%s quantize form %d k %lld differs from the scalar twin", kt->name, form,
                  (long long)k);
            free(x);
            free(q0);
            free(q1);
        }
}

/* The scalar twin against double sums of the dequantized operands. */
static void test_twin_vs_double(void)
{
    for (int t = 0; t < N_TYPES; t++) {
        const fvlm_type type = TYPES[t];
        const int64_t k = 768;
        fvlm_q8_act act;
        memset(&act, 0, sizeof act);
        float *x = malloc((size_t)k * sizeof *x), *wf = malloc((size_t)k * sizeof *wf);
        for (int64_t i = 0; i < k; i++)
            x[i] = rnd_f();
        uint8_t *w = make_weights(type, 4, k, 0);
        const int form = fvlm_q8_form(type);
        fvlm_q8_act_reserve(&act, k);
        act.m = 1;
        act.k = k;
        fvlm_q8_row r = fvlm_q8_act_row(&act, form, 0);
        fvlm_q8_quantize_scalar(x, k, form, (int8_t *)r.qs, (float *)r.d, (int16_t *)r.bsum);
        const int B = form ? 256 : 32;
        for (int j = 0; j < 4; j++) {
            const uint8_t *row = w + fvlm_row_size(type, k) * (size_t)j;
            fvlm_dequantize_row(type, row, wf, k);
            double ref = 0.0, mag = 0.0;
            for (int64_t i = 0; i < k; i++) {
                const double a = (double)r.d[i / B] * r.qs[i];
                ref += a * wf[i];
                mag += fabs(a * wf[i]);
            }
            const float got = fvlm_q8_dot_scalar(type, k, row, &r);
            CHECK(fabs(got - ref) <= TOL_DEQ * mag + 1e-30, "twin %s row %d: %.9g vs double %.9g (mag %g)",
                  fvlm_type_get_traits((uint32_t)type)->name, j, (double)got, ref, mag);
        }
        fvlm_q8_act_free(&act);
        free(w);
        free(x);
        free(wf);
    }
}

static void test_matmul(const fvlm_q8_kernels *kt, fvlm_pool *pool3)
{
    for (int t = 0; t < N_TYPES; t++) {
        const fvlm_type type = TYPES[t];
        const int form = fvlm_q8_form(type);
        const int64_t KS32[] = {32, 96, 224, 896}, KS256[] = {256, 768};
        const int64_t *KS = form ? KS256 : KS32;
        const int nk = form ? 2 : 4;
        int bad_twin = 0, bad_thr = 0, bad_row = 0, cases = 0;
        for (int ki = 0; ki < nk; ki++)
            for (size_t ni = 0; ni < sizeof NROWS / sizeof NROWS[0]; ni++)
                for (size_t mi = 0; mi < sizeof MROWS / sizeof MROWS[0]; mi++) {
                    const int64_t k = KS[ki], n = NROWS[ni], m = MROWS[mi];
                    if (n * m > 129 * 17 && k > 256)
                        continue;   /* keep the scalar twin's run time modest */
                    const int raw = (int)((ni + mi + ki) & 1);
                    uint8_t *w = make_weights(type, n, k, raw);
                    float *x = malloc((size_t)(m * k) * sizeof *x);
                    float *bias = malloc((size_t)n * sizeof *bias);
                    float *y1 = malloc((size_t)(m * n) * sizeof *y1), *y3 = malloc((size_t)(m * n) * sizeof *y3);
                    float *yr = malloc((size_t)n * sizeof *yr);
                    for (int64_t i = 0; i < m * k; i++)
                        x[i] = rnd_f() * (i % 13 == 0 ? 4.0f : 1.0f);
                    for (int64_t j = 0; j < n; j++)
                        bias[j] = rnd_f();
                    fvlm_tensor W = {.name = "w", .type = type, .n_dims = 2, .ne = {k, n, 1, 1},
                                     .nbytes = fvlm_row_size(type, k) * (size_t)n, .data = w};
                    fvlm_q8_act act;
                    memset(&act, 0, sizeof act);
                    fvlm_q8_act_quantize(kt, NULL, &act, x, m, k, form);
                    fvlm_matmul_q8(kt, NULL, &W, &act, y1, (mi & 1) ? bias : NULL);
                    fvlm_q8_act_quantize(kt, pool3, &act, x, m, k, form);
                    fvlm_matmul_q8(kt, pool3, &W, &act, y3, (mi & 1) ? bias : NULL);
                    for (int64_t i = 0; i < m; i++) {
                        const fvlm_q8_row a = fvlm_q8_act_row(&act, form, i);
                        for (int64_t j = 0; j < n; j++) {
                            const float ref = fvlm_q8_dot_scalar(type, k, w + fvlm_row_size(type, k) * (size_t)j, &a) +
                                              ((mi & 1) ? bias[j] : 0.0f);
                            if (!same_bits(ref, y1[i * n + j]) && bad_twin++ < 3)
                                fprintf(stderr, "  %s %s k %lld n %lld m %lld [%lld][%lld]: %.9g vs twin %.9g\n",
                                        kt->name, fvlm_type_get_traits((uint32_t)type)->name, (long long)k,
                                        (long long)n, (long long)m, (long long)i, (long long)j,
                                        (double)y1[i * n + j], (double)ref);
                            bad_thr += !same_bits(y1[i * n + j], y3[i * n + j]);
                        }
                    }
                    /* the last row alone (decode path) == its batch row */
                    fvlm_q8_act_quantize(kt, NULL, &act, x + (m - 1) * k, 1, k, form);
                    fvlm_matmul_q8(kt, pool3, &W, &act, yr, (mi & 1) ? bias : NULL);
                    for (int64_t j = 0; j < n; j++)
                        bad_row += !same_bits(yr[j], y1[(m - 1) * n + j]);
                    cases++;
                    fvlm_q8_act_free(&act);
                    free(w);
                    free(x);
                    free(bias);
                    free(y1);
                    free(y3);
                    free(yr);
                }
        const char *tn = fvlm_type_get_traits((uint32_t)type)->name;
        CHECK(bad_twin <= TOL_BITS, "%s %s: %d outputs differ from the scalar twin (%d cases)", kt->name, tn,
              bad_twin, cases);
        CHECK(bad_thr == 0, "%s %s: %d outputs differ between 1 and 3 threads", kt->name, tn, bad_thr);
        CHECK(bad_row == 0, "%s %s: %d outputs of a row alone differ from its batch row", kt->name, tn,
              bad_row);
    }
}

int main(void)
{
    const fvlm_q8_kernels *tabs[8];
    const int nt = fvlm_q8_kernels_all(tabs, 8);
    fvlm_pool *pool3 = fvlm_pool_new(3);

    printf("q8 tables:");
    for (int i = 0; i < nt; i++)
        printf(" %s", tabs[i]->name);
    printf(" (active: %s)\n", fvlm_q8_kernels_get()->name);
    CHECK(pool3 != NULL, "pool");
    test_twin_vs_double();
    for (int i = 0; i < nt; i++) {
        test_quantize(tabs[i]);
        test_matmul(tabs[i], pool3);
    }
    fvlm_pool_free(pool3);
    return check_summary("test_q8");
}
