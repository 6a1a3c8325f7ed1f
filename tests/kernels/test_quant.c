/*
 * test_quant.c — the quantized block formats of tensor.c (Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
 * Q6_K, Q8_K) and the quantizers of every type:
 *   - dequantization of blocks built here by hand, field by field, from ggml's layout
 *     description, with the expected value of each element written out as its formula;
 *   - quantization: a hand-computed Q8_0 and Q4_0 block (exact bytes), then for every type
 *     the round trip x → q → x' within that type's step (named bounds below), the K-quant
 *     header fields in range, zero rows, and fvlm_quantize_row's refusals.
 * The numpy re-implementation of all decoders is test_quant_ref.py. Not here: kernels.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tensor.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint32_t rnd_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rnd_f(void)
{
    return (float)((double)rnd_u32() / 2147483648.0 - 1.0);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* half-precision constants used below, exact */
#define H_0_5 0x3800   /* 0.5 */
#define H_0_25 0x3400  /* 0.25 */
#define H_2 0x4000     /* 2 */
#define H_M1 0xbc00    /* -1 */
#define H_3 0x4200     /* 3 */

/* ---- hand-built blocks ---------------------------------------------------------------- */

static void test_q4_1_q5(void)
{
    uint8_t b[24];
    float out[32];
    /* q4_1: d = 0.5, m = -1, byte j = (j & 15) | (15 - j) << 4: element j = 0.5·j − 1,
     * element 16 + j = 0.5·(15 − j) − 1 */
    put16(b, H_0_5);
    put16(b + 2, H_M1);
    for (int j = 0; j < 16; j++)
        b[4 + j] = (uint8_t)(j | (15 - j) << 4);
    fvlm_dequantize_row(FVLM_TYPE_Q4_1, b, out, 32);
    int bad = 0;
    for (int j = 0; j < 16; j++) {
        bad += out[j] != 0.5f * j - 1.0f;
        bad += out[16 + j] != 0.5f * (15 - j) - 1.0f;
    }
    CHECK(bad == 0, "q4_1 hand block: %d wrong (out[1] %g, out[17] %g)", bad, (double)out[1],
          (double)out[17]);

    /* q5_0: d = 2, qh = 0xA5A5_0F0F (bit j → fifth bit of element j), nibbles as above:
     * element j = 2·((j | bit_j·16) − 16), element 16+j = 2·(((15−j) | bit_{16+j}·16) − 16) */
    const uint32_t qh = 0xA5A50F0Fu;
    put16(b, H_2);
    for (int i = 0; i < 4; i++)
        b[2 + i] = (uint8_t)(qh >> (8 * i));
    for (int j = 0; j < 16; j++)
        b[6 + j] = (uint8_t)(j | (15 - j) << 4);
    fvlm_dequantize_row(FVLM_TYPE_Q5_0, b, out, 32);
    bad = 0;
    for (int j = 0; j < 16; j++) {
        const int q0 = j | (int)((qh >> j) & 1) << 4, q1 = (15 - j) | (int)((qh >> (16 + j)) & 1) << 4;
        bad += out[j] != 2.0f * (q0 - 16);
        bad += out[16 + j] != 2.0f * (q1 - 16);
    }
    CHECK(bad == 0, "q5_0 hand block: %d wrong", bad);

    /* q5_1: d = 0.25, m = 3, the same qh and nibbles: x = 0.25·q + 3 */
    put16(b, H_0_25);
    put16(b + 2, H_3);
    for (int i = 0; i < 4; i++)
        b[4 + i] = (uint8_t)(qh >> (8 * i));
    for (int j = 0; j < 16; j++)
        b[8 + j] = (uint8_t)(j | (15 - j) << 4);
    fvlm_dequantize_row(FVLM_TYPE_Q5_1, b, out, 32);
    bad = 0;
    for (int j = 0; j < 16; j++) {
        const int q0 = j | (int)((qh >> j) & 1) << 4, q1 = (15 - j) | (int)((qh >> (16 + j)) & 1) << 4;
        bad += out[j] != 0.25f * q0 + 3.0f;
        bad += out[16 + j] != 0.25f * q1 + 3.0f;
    }
    CHECK(bad == 0, "q5_1 hand block: %d wrong", bad);
}

/* The 12 scale bytes of a Q4_K/Q5_K block from 8 six-bit scales and mins, packed by the
 * description: j < 4 in the low 6 bits of bytes j (scale) and j+4 (min); j >= 4: low four
 * bits in byte j+4 (scale low nibble, min high nibble), top two bits in bits 6-7 of bytes
 * j-4 (scale) and j (min). */
static void pack_k_scales(const int *sc, const int *mn, uint8_t *s12)
{
    memset(s12, 0, 12);
    for (int j = 0; j < 4; j++) {
        s12[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s12[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        s12[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
}

static void test_k45(void)
{
    static const int sc[8] = {1, 63, 17, 32, 45, 2, 60, 33};
    static const int mn[8] = {0, 5, 63, 31, 16, 48, 1, 62};
    uint8_t b[176];
    float out[256];
    for (int five = 0; five < 2; five++) {
        uint8_t *qs = b + (five ? 48 : 16), *qh = b + 16;
        put16(b, H_0_5);        /* d */
        put16(b + 2, H_0_25);   /* dmin */
        pack_k_scales(sc, mn, b + 4);
        for (int i = 0; i < 128; i++)
            qs[i] = (uint8_t)rnd_u32();
        if (five)
            for (int i = 0; i < 32; i++)
                qh[i] = (uint8_t)rnd_u32();
        fvlm_dequantize_row(five ? FVLM_TYPE_Q5_K : FVLM_TYPE_Q4_K, b, out, 256);
        int bad = 0;
        /* element e: chunk c = e/64, half h = (e%64)/32, l = e%32, sub-block j = 2c+h;
         * q = nibble h of qs[32c + l] (+16 if bit 2c+h of qh[l]); x = 0.5·sc_j·q − 0.25·mn_j */
        for (int e = 0; e < 256; e++) {
            const int c = e / 64, h = (e % 64) / 32, l = e % 32, j = 2 * c + h;
            int q = h ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
            if (five)
                q += ((qh[l] >> (2 * c + h)) & 1) * 16;
            const float want = (0.5f * (float)sc[j]) * (float)q - 0.25f * (float)mn[j];
            if (out[e] != want && bad++ < 3)
                CHECK(0, "q%d_K element %d: %g want %g", five ? 5 : 4, e, (double)out[e],
                      (double)want);
        }
        CHECK(bad == 0, "q%d_K hand block: %d wrong", five ? 5 : 4, bad);
    }
}

static void test_q6k_q8k(void)
{
    uint8_t b[292];
    float out[256];
    int8_t sc[16];
    /* q6_K: ql[128], qh[64], scales[16] (int8), d at 208 */
    for (int i = 0; i < 192; i++)
        b[i] = (uint8_t)rnd_u32();
    for (int j = 0; j < 16; j++) {
        sc[j] = (int8_t)(j * 17 - 128 + (j == 15));
        b[192 + j] = (uint8_t)sc[j];
    }
    put16(b + 208, H_0_25);
    fvlm_dequantize_row(FVLM_TYPE_Q6_K, b, out, 256);
    int bad = 0;
    /* element e: half n = e/128, r = e%128, quarter g = r/32, l = r%32;
     * low 4 bits: ql[64n + l + 32·(g&1)], nibble g>>1; high 2 bits: bits 2g..2g+1 of
     * qh[32n + l]; sub-block 8n + 2g + l/16; x = (0.25·sc)·(q − 32) */
    for (int e = 0; e < 256; e++) {
        const int n = e / 128, r = e % 128, g = r / 32, l = r % 32;
        const uint8_t lo = b[64 * n + l + 32 * (g & 1)];
        const int q = ((g >> 1) ? lo >> 4 : lo & 15) | ((b[128 + 32 * n + l] >> (2 * g)) & 3) << 4;
        const float want = (0.25f * (float)sc[8 * n + 2 * g + l / 16]) * (float)(q - 32);
        if (out[e] != want && bad++ < 3)
            CHECK(0, "q6_K element %d: %g want %g", e, (double)out[e], (double)want);
    }
    CHECK(bad == 0, "q6_K hand block: %d wrong", bad);

    /* q8_K: float d, 256 int8 */
    const float d = 0.125f;
    memcpy(b, &d, 4);
    for (int i = 0; i < 256; i++)
        b[4 + i] = (uint8_t)(i * 7);
    fvlm_dequantize_row(FVLM_TYPE_Q8_K, b, out, 256);
    bad = 0;
    for (int i = 0; i < 256; i++)
        bad += out[i] != 0.125f * (float)(int8_t)(uint8_t)(i * 7);
    CHECK(bad == 0, "q8_K hand block: %d wrong", bad);
}

/* ---- quantizers ---------------------------------------------------------------------------- */

static void test_quant_hand(void)
{
    float x[32];
    uint8_t q[34];
    /* q8_0: max |x| = 12.7 → d = 0.1 (fp16 0x2e66), q = round(x / 0.1) half away from 0 */
    for (int i = 0; i < 32; i++)
        x[i] = 0.1f * (float)(i - 16);
    x[31] = 12.7f;
    x[5] = -0.25f;          /* −2.5 → −3 (away from zero) */
    CHECK(fvlm_quantize_row(FVLM_TYPE_Q8_0, x, q, 32) == 34, "q8_0 size");
    CHECK(q[0] == 0x66 && q[1] == 0x2e, "q8_0 d bytes %02x %02x", q[0], q[1]);
    CHECK((int8_t)q[2 + 31] == 127 && (int8_t)q[2 + 0] == -16 && (int8_t)q[2 + 5] == -3 &&
              (int8_t)q[2 + 16] == 0 && (int8_t)q[2 + 20] == 4,
          "q8_0 values %d %d %d %d %d", (int8_t)q[33], (int8_t)q[2], (int8_t)q[7], (int8_t)q[18],
          (int8_t)q[22]);
    /* q4_0: extreme −8 → d = 1 (the extreme maps to q = 0), q = trunc(x + 8.5) ≤ 15 */
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i % 16) - 7.75f;   /* −7.75 .. 7.25 */
    x[3] = -8.0f;
    x[9] = 7.5f;                           /* 16 → clamped to 15 */
    CHECK(fvlm_quantize_row(FVLM_TYPE_Q4_0, x, q, 32) == 18, "q4_0 size");
    CHECK(q[0] == 0x00 && q[1] == 0x3c, "q4_0 d = 1: %02x %02x", q[0], q[1]);
    /* element 0: −7.75 + 8.5 = 0.75 → 0; element 16: same → 0; element 3: 0;
     * element 9: 15; element 1: −6.75 → 1; element 17: 1 */
    CHECK(q[2] == 0x00 && q[3] == 0x11 && (q[2 + 3] & 15) == 0 && (q[2 + 9] & 15) == 15,
          "q4_0 nibbles %02x %02x %02x %02x", q[2], q[3], q[5], q[11]);
}

/* Round-trip bound per type: |x − x'| ≤ STEP · (block range) with STEP from the number of
 * levels (half a step, plus the fp16 rounding of the scales, plus slack for the K-quants'
 * 6-bit sub-scales). */
static void test_roundtrip(void)
{
    static const struct { fvlm_type t; double step; } cases[] = {
        {FVLM_TYPE_Q8_0, 0.5 / 127 + 2e-3}, {FVLM_TYPE_Q4_0, 0.5 / 8 + 2e-3},
        {FVLM_TYPE_Q4_1, 0.5 / 15 + 2e-3}, {FVLM_TYPE_Q5_0, 0.5 / 16 + 2e-3},
        {FVLM_TYPE_Q5_1, 0.5 / 31 + 2e-3}, {FVLM_TYPE_Q8_K, 0.5 / 127 + 1e-6},
        {FVLM_TYPE_Q4_K, 0.5 / 15 + 0.05}, {FVLM_TYPE_Q5_K, 0.5 / 31 + 0.04},
        {FVLM_TYPE_Q6_K, 0.5 / 32 + 0.03}, {FVLM_TYPE_F16, 1e-3}, {FVLM_TYPE_BF16, 8e-3},
        {FVLM_TYPE_F32, 0.0},
    };
    const int64_t n = 1024;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint8_t *q = malloc(4 * n + 64);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const fvlm_type t = cases[c].t;
        const int64_t bs = fvlm_type_get_traits(t)->block_size == 1 ? 32
                                                                     : fvlm_type_get_traits(t)->block_size;
        double worst = 0.0;
        for (int rep = 0; rep < 8; rep++) {
            for (int64_t i = 0; i < n; i++) {
                /* blocks of different scale, an all-positive and an all-negative one */
                const float s = powf(10.0f, (float)((i / 256) % 4) - 2.0f);
                x[i] = s * rnd_f();
                if (rep == 1)
                    x[i] = fabsf(x[i]) + s;
                if (rep == 2)
                    x[i] = -fabsf(x[i]);
                if (rep == 3 && i % 256 < 128)
                    x[i] = 0.0f;
            }
            CHECK(fvlm_quantize_row(t, x, q, n) == fvlm_row_size(t, n), "%s size",
                  fvlm_type_get_traits(t)->name);
            fvlm_dequantize_row(t, q, y, n);
            for (int64_t b0 = 0; b0 < n; b0 += bs) {
                double range = 0.0;
                for (int64_t i = b0; i < b0 + bs; i++)
                    range = fmax(range, fabs(x[i]));
                for (int64_t i = b0; i < b0 + bs; i++) {
                    const double e = fabs((double)x[i] - y[i]) / (range > 0 ? 2 * range : 1.0);
                    worst = fmax(worst, e);
                }
            }
        }
        CHECK(worst <= cases[c].step, "%s round trip: worst error %.4g of the block range "
              "(bound %.4g)", fvlm_type_get_traits(t)->name, worst, cases[c].step);
        printf("  %-5s round trip worst %.4g of 2·max|x| (bound %.4g)\n",
               fvlm_type_get_traits(t)->name, worst, cases[c].step);
    }
    /* zeros give zeros; refusals */
    memset(x, 0, n * sizeof *x);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fvlm_quantize_row(cases[c].t, x, q, 256);
        fvlm_dequantize_row(cases[c].t, q, y, 256);
        int nz = 0;
        for (int i = 0; i < 256; i++)
            nz += y[i] != 0.0f;
        CHECK(nz == 0, "%s of zeros gives %d non-zeros", fvlm_type_get_traits(cases[c].t)->name, nz);
    }
    CHECK(fvlm_quantize_row(FVLM_TYPE_Q8_0, x, q, 33) == 0, "q8_0 n=33 refused");
    CHECK(fvlm_quantize_row(FVLM_TYPE_Q6_K, x, q, 128) == 0, "q6_K n=128 refused");
    CHECK(fvlm_quantize_row(FVLM_TYPE_Q2_K, x, q, 256) == 0, "q2_K not a quantizer");
    CHECK(fvlm_quantize_row(FVLM_TYPE_Q8_0, x, q, 0) == 0, "n=0");
    /* q8_K bsums are the sums of each 16 q */
    for (int i = 0; i < 256; i++)
        x[i] = rnd_f();
    fvlm_quantize_row(FVLM_TYPE_Q8_K, x, q, 256);
    int bad = 0;
    for (int j = 0; j < 16; j++) {
        int s = 0;
        int16_t got;
        for (int i = 0; i < 16; i++)
            s += (int8_t)q[4 + 16 * j + i];
        memcpy(&got, q + 260 + 2 * j, 2);
        bad += got != s;
    }
    CHECK(bad == 0, "q8_K bsums: %d wrong", bad);
    free(x);
    free(y);
    free(q);
}

int main(void)
{
    test_q4_1_q5();
    test_k45();
    test_q6k_q8k();
    test_quant_hand();
    test_roundtrip();
    return check_summary("test_quant");
}
