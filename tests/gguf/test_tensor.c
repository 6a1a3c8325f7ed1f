/*
 * test_tensor.c — tensor.c against independent references: the type traits against ggml's
 * block formulas, fp16/bf16 conversions against their textbook definitions (ldexp decode,
 * nearest-value search with ties-to-even for encode) including subnormals, infinities and
 * NaNs, and row dequantization against the block formulas written out element by element.
 *
 * Not tested here: the GGUF reader (test_gguf.c).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tensor.h"

/* ---- references --------------------------------------------------------------------- */

/* binary16 by definition: (-1)^s · 2^(e-15) · (1 + m/1024), subnormal 2^-14 · m/1024. */
static double ref_f16_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -24);
    else
        v = ldexp(1024.0 + m, e - 25);
    return s ? -v : v;
}

/* bfloat16 by definition: 8 exponent bits (bias 127), 7 mantissa bits. */
static double ref_bf16_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 7) & 255, m = h & 127;
    double v;
    if (e == 255)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -133);
    else
        v = ldexp(128.0 + m, e - 134);
    return s ? -v : v;
}

static double half_table[0x7c01];   /* value of every non-negative finite half, + 65536 */

/* Nearest binary16 to a finite float, ties to even, by search over the value table. */
static uint16_t ref_f32_to_f16(float f)
{
    double a = fabs((double)f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    int lo = 0, hi = 0x7c00, r;
    /* largest lo with half_table[lo] <= a (table[0x7c00] = 65536 stands for overflow) */
    if (a >= 65536.0)
        return sign | 0x7c00;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (half_table[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    if (half_table[lo] == a) {
        r = lo;
    } else {
        double twice = 2.0 * a, sum = half_table[lo] + half_table[lo + 1];   /* both exact */
        r = twice < sum ? lo : twice > sum ? lo + 1 : (lo & 1 ? lo + 1 : lo);
    }
    return (uint16_t)(sign | r);
}

/* Nearest bfloat16 to a finite float, ties to even: the two candidates around it. */
static uint16_t ref_f32_to_bf16(float f)
{
    uint32_t u;
    uint16_t sign, lo, hi;
    double a, vlo, vhi;
    memcpy(&u, &f, 4);
    sign = (uint16_t)((u >> 16) & 0x8000);
    lo = (uint16_t)((u >> 16) & 0x7fff);           /* truncation: |value| <= |f| */
    hi = (uint16_t)(lo + 1);
    a = fabs((double)f);
    vlo = ref_bf16_value(lo);
    vhi = hi == 0x7f80 ? ldexp(1.0, 128) : ref_bf16_value(hi);
    if (vlo == a)
        return sign | lo;
    if (2.0 * a < vlo + vhi)
        return sign | lo;
    if (2.0 * a > vlo + vhi)
        return sign | hi;
    return sign | ((lo & 1) ? hi : lo);
}

static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state ^ (rng_state >> 15);
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_traits(void)
{
    /* ggml's block sizes, from its struct definitions (QK_K = 256, K_SCALE_SIZE = 12) */
    static const struct { uint32_t id; const char *name; uint32_t bs, ts; bool sup; } want[] = {
        {0, "f32", 1, 4, true},
        {1, "f16", 1, 2, true},
        {2, "q4_0", 32, 2 + 16, true},
        {3, "q4_1", 32, 2 * 2 + 16, true},
        {6, "q5_0", 32, 2 + 4 + 16, true},
        {7, "q5_1", 32, 2 * 2 + 4 + 16, true},
        {8, "q8_0", 32, 2 + 32, true},
        {9, "q8_1", 32, 2 * 2 + 32, false},
        {10, "q2_K", 256, 2 * 2 + 256 / 16 + 256 / 4, false},
        {11, "q3_K", 256, 2 + 256 / 4 + 256 / 8 + 12, false},
        {12, "q4_K", 256, 2 * 2 + 12 + 256 / 2, true},
        {13, "q5_K", 256, 2 * 2 + 12 + 256 / 2 + 256 / 8, true},
        {14, "q6_K", 256, 2 + 256 / 16 + 3 * 256 / 4, true},
        {15, "q8_K", 256, 4 + 256 + 256 / 16 * 2, true},
        {30, "bf16", 1, 2, true},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const fvlm_type_traits *t = fvlm_type_get_traits(want[i].id);
        CHECK(t != NULL, "type %u has no traits", want[i].id);
        if (!t)
            continue;
        CHECK(!strcmp(t->name, want[i].name), "type %u name %s", want[i].id, t->name);
        CHECK(t->block_size == want[i].bs, "type %s block %u want %u", t->name, t->block_size,
              want[i].bs);
        CHECK(t->type_size == want[i].ts, "type %s size %u want %u", t->name, t->type_size,
              want[i].ts);
        CHECK(t->supported == want[i].sup, "type %s supported %d", t->name, t->supported);
    }
    CHECK(fvlm_type_get_traits(4) == NULL, "removed id 4 must be unknown");
    CHECK(fvlm_type_get_traits(5) == NULL, "removed id 5 must be unknown");
    CHECK(fvlm_type_get_traits(FVLM_TYPE_COUNT) == NULL, "COUNT must be unknown");
    CHECK(fvlm_type_get_traits(0xffffffffu) == NULL, "huge id must be unknown");

    CHECK(fvlm_row_size(FVLM_TYPE_F32, 10) == 40, "f32 row");
    CHECK(fvlm_row_size(FVLM_TYPE_F16, 7) == 14, "f16 row");
    CHECK(fvlm_row_size(FVLM_TYPE_BF16, 3) == 6, "bf16 row");
    CHECK(fvlm_row_size(FVLM_TYPE_Q8_0, 64) == 68, "q8_0 row");
    CHECK(fvlm_row_size(FVLM_TYPE_Q4_0, 96) == 54, "q4_0 row");
    CHECK(fvlm_row_size(FVLM_TYPE_Q4_K, 512) == 288, "q4_K row");
    CHECK(fvlm_row_size(FVLM_TYPE_Q8_0, 33) == 0, "q8_0 33 is not a multiple of 32");
    CHECK(fvlm_row_size(FVLM_TYPE_Q6_K, 128) == 0, "q6_K 128 is not a multiple of 256");
    CHECK(fvlm_row_size(FVLM_TYPE_F32, -4) == 0, "negative n");
    CHECK(fvlm_row_size((fvlm_type)4, 32) == 0, "unknown type");
    CHECK(fvlm_row_size(FVLM_TYPE_F32, INT64_MAX) == 0, "f32 overflow must give 0");
    CHECK(fvlm_row_size(FVLM_TYPE_F32, INT64_MAX / 2) == (size_t)(INT64_MAX / 2) * 4, "f32 2^62-1");
    CHECK(fvlm_row_size(FVLM_TYPE_F32, 0) == 0, "empty row");
}

static void test_f16_decode(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float got = fvlm_f16_to_f32((uint16_t)h);
        double want = ref_f16_value((uint16_t)h);
        bool ok;
        if (isnan(want)) {
            /* NaN stays NaN with the same sign and the payload in the top mantissa bits */
            ok = isnan(got) && !!signbit(got) == !!(h & 0x8000) &&
                 ((f_bits(got) >> 13) & 0x3ff) == (h & 0x3ff);
        } else {
            ok = (double)got == want && !!signbit(got) == !!(h & 0x8000);  /* incl. -0 */
        }
        if (!ok && bad++ < 5)
            CHECK(ok, "f16 0x%04x -> %a, want %a", h, (double)got, want);
    }
    CHECK(bad == 0, "%d of 65536 halfs decode wrong", bad);
    /* a few by name */
    CHECK(fvlm_f16_to_f32(0x3c00) == 1.0f, "1.0");
    CHECK(fvlm_f16_to_f32(0xc000) == -2.0f, "-2.0");
    CHECK(fvlm_f16_to_f32(0x7bff) == 65504.0f, "max half");
    CHECK(fvlm_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "smallest subnormal");
    CHECK(fvlm_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24), "largest subnormal");
    CHECK(fvlm_f16_to_f32(0x0400) == ldexpf(1.0f, -14), "smallest normal");
    CHECK(isinf(fvlm_f16_to_f32(0x7c00)) && fvlm_f16_to_f32(0x7c00) > 0, "+inf");
    CHECK(isinf(fvlm_f16_to_f32(0xfc00)) && fvlm_f16_to_f32(0xfc00) < 0, "-inf");
}

static void check_f16_encode(float f, int *bad)
{
    uint16_t got = fvlm_f32_to_f16(f), want;
    if (isnan(f)) {
        bool ok = (got & 0x7c00) == 0x7c00 && (got & 0x3ff) && !!(got & 0x8000) == !!signbit(f);
        if (!ok && (*bad)++ < 5)
            CHECK(ok, "f16 encode NaN %08x -> %04x", f_bits(f), got);
        return;
    }
    if (isinf(f))
        want = signbit(f) ? 0xfc00 : 0x7c00;
    else
        want = ref_f32_to_f16(f);
    if (got != want && (*bad)++ < 5)
        CHECK(got == want, "f16 encode %a (%08x) -> %04x, want %04x", (double)f, f_bits(f), got,
              want);
}

static void test_f16_encode(void)
{
    int bad = 0;
    long n = 0;

    for (int h = 0; h <= 0x7c00; h++)
        half_table[h] = h == 0x7c00 ? 65536.0 : ref_f16_value((uint16_t)h);

    /* every half value, every midpoint between neighbours and the floats just around it */
    for (int h = 0; h < 0x7c00; h++) {
        float v = (float)half_table[h];
        float mid = (float)((half_table[h] + half_table[h + 1]) / 2);  /* exact in float */
        float s[] = {v, -v, mid, -mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY),
                     nextafterf(v, 0.0f), nextafterf(v, INFINITY)};
        for (size_t k = 0; k < sizeof s / sizeof s[0]; k++, n++)
            check_f16_encode(s[k], &bad);
    }
    /* random bit patterns, and random values concentrated in the half range */
    for (int i = 0; i < 1000000; i++, n += 2) {
        check_f16_encode(bits_f(rng()), &bad);
        check_f16_encode(bits_f((rng() & 0x80ffffffu) | ((100u + rng() % 45u) << 23)), &bad);
    }
    /* specials */
    check_f16_encode(0.0f, &bad);
    check_f16_encode(-0.0f, &bad);
    check_f16_encode(INFINITY, &bad);
    check_f16_encode(-INFINITY, &bad);
    check_f16_encode(NAN, &bad);
    check_f16_encode(-NAN, &bad);
    check_f16_encode(bits_f(0x7f800001u), &bad);          /* signalling NaN, tiny payload */
    check_f16_encode(65504.0f, &bad);
    check_f16_encode(65519.996f, &bad);
    check_f16_encode(65520.0f, &bad);                      /* tie: rounds to inf */
    check_f16_encode(FLT_MAX, &bad);
    check_f16_encode(ldexpf(1.0f, -25), &bad);             /* tie with 0: rounds to 0 */
    check_f16_encode(nextafterf(ldexpf(1.0f, -25), 1.0f), &bad);
    check_f16_encode(ldexpf(3.0f, -26), &bad);
    check_f16_encode(bits_f(1), &bad);                     /* float subnormal */
    CHECK(fvlm_f32_to_f16(65520.0f) == 0x7c00, "65520 rounds to inf");
    CHECK(fvlm_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000, "2^-25 rounds to 0 (even)");
    CHECK(fvlm_f32_to_f16(ldexpf(3.0f, -25)) == 0x0002, "1.5 ulp rounds to 2 (even)");
    CHECK(fvlm_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00, "tie to even (down)");
    CHECK(fvlm_f32_to_f16(1.0f + ldexpf(3.0f, -11)) == 0x3c02, "tie to even (up)");
    CHECK(bad == 0, "%d of %ld f32->f16 conversions wrong", bad, n);
}

static void test_bf16(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float got = fvlm_bf16_to_f32((uint16_t)h);
        double want = ref_bf16_value((uint16_t)h);
        bool ok = isnan(want) ? isnan(got) && !!signbit(got) == !!(h & 0x8000)
                              : (double)got == want && !!signbit(got) == !!(h & 0x8000);
        if (!ok && bad++ < 5)
            CHECK(ok, "bf16 0x%04x -> %a, want %a", h, (double)got, want);
        /* every non-NaN bf16 value must encode back to itself */
        if (!isnan(want) && fvlm_f32_to_bf16(got) != h && bad++ < 5)
            CHECK(0, "bf16 0x%04x does not round-trip", h);
    }
    for (int i = 0; i < 2000000; i++) {
        float f = bits_f(rng());
        uint16_t got = fvlm_f32_to_bf16(f), want;
        if (isnan(f)) {
            bool ok = (got & 0x7f80) == 0x7f80 && (got & 0x7f) && !!(got & 0x8000) == !!signbit(f);
            if (!ok && bad++ < 5)
                CHECK(ok, "bf16 NaN %08x -> %04x", f_bits(f), got);
            continue;
        }
        want = isinf(f) ? (uint16_t)(signbit(f) ? 0xff80 : 0x7f80) : ref_f32_to_bf16(f);
        if (got != want && bad++ < 5)
            CHECK(got == want, "bf16 encode %08x -> %04x, want %04x", f_bits(f), got, want);
    }
    CHECK(fvlm_f32_to_bf16(1.0f) == 0x3f80, "1.0");
    CHECK(fvlm_f32_to_bf16(bits_f(0x3f808000u)) == 0x3f80, "tie to even (down)");
    CHECK(fvlm_f32_to_bf16(bits_f(0x3f818000u)) == 0x3f82, "tie to even (up)");
    CHECK(fvlm_f32_to_bf16(FLT_MAX) == 0x7f80, "FLT_MAX rounds to inf");
    CHECK(fvlm_f32_to_bf16(bits_f(0x7f800001u)) != 0x7f80 &&
          (fvlm_f32_to_bf16(bits_f(0x7f800001u)) & 0x7f), "sNaN with low payload stays NaN");
    CHECK(fvlm_f32_to_bf16(bits_f(0x00000001u)) == 0x0000, "tiny subnormal rounds to 0");
    CHECK(fvlm_f32_to_bf16(bits_f(0x00018000u)) == 0x0002, "subnormal tie to even");
    CHECK(bad == 0, "%d bf16 conversions wrong", bad);
}

static bool same_float(float a, float b)
{
    return (isnan(a) && isnan(b)) || f_bits(a) == f_bits(b);
}

/* A random finite half for block scales (sometimes subnormal, sometimes large). */
static uint16_t rand_scale(void)
{
    for (;;) {
        uint16_t h = (uint16_t)rng();
        if ((h & 0x7c00) != 0x7c00)
            return h;
    }
}

static void test_dequant(void)
{
    static const int64_t lens[] = {32, 64, 96, 224, 1024};
    float *out = malloc(1040 * sizeof(float));
    uint8_t *buf = malloc(2 * 1024 + 16);   /* the largest row: 1024 f16 + 1 */

    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int64_t n = lens[li], nb = n / 32;
        int bad = 0;

        /* q8_0: block = fp16 d (little-endian) then 32 int8; x = d · q */
        for (int64_t b = 0; b < nb; b++) {
            uint16_t d = rand_scale();
            buf[b * 34] = (uint8_t)d;
            buf[b * 34 + 1] = (uint8_t)(d >> 8);
            for (int i = 0; i < 32; i++)
                buf[b * 34 + 2 + i] = (uint8_t)rng();
        }
        buf[0] = 0xff; /* first q8_0 block: include -128 and 127 */
        buf[2] = 0x80;
        buf[3] = 0x7f;
        out[n] = 12345.0f;   /* sentinel: nothing written past n */
        fvlm_dequantize_row(FVLM_TYPE_Q8_0, buf, out, n);
        for (int64_t k = 0; k < n; k++) {
            const uint8_t *blk = buf + (k / 32) * 34;
            double d = ref_f16_value((uint16_t)(blk[0] | blk[1] << 8));
            double want = d * (double)(int8_t)blk[2 + k % 32];
            if (!same_float(out[k], (float)want) && bad++ < 3)
                CHECK(0, "q8_0 n=%lld k=%lld: %g want %g", (long long)n, (long long)k,
                      (double)out[k], want);
        }
        CHECK(out[n] == 12345.0f, "q8_0 wrote past the row");

        /* q4_0: fp16 d then 16 bytes; element j<16 = low nibble of byte j, j>=16 = high
         * nibble of byte j-16; x = d · (q - 8) */
        for (int64_t b = 0; b < nb; b++) {
            uint16_t d = rand_scale();
            buf[b * 18] = (uint8_t)d;
            buf[b * 18 + 1] = (uint8_t)(d >> 8);
            for (int i = 0; i < 16; i++)
                buf[b * 18 + 2 + i] = (uint8_t)rng();
        }
        out[n] = 12345.0f;
        fvlm_dequantize_row(FVLM_TYPE_Q4_0, buf, out, n);
        for (int64_t k = 0; k < n; k++) {
            const uint8_t *blk = buf + (k / 32) * 18;
            int j = (int)(k % 32);
            int q = j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4);
            double d = ref_f16_value((uint16_t)(blk[0] | blk[1] << 8));
            double want = d * (q - 8);
            if (!same_float(out[k], (float)want) && bad++ < 3)
                CHECK(0, "q4_0 n=%lld k=%lld: %g want %g", (long long)n, (long long)k,
                      (double)out[k], want);
        }
        CHECK(out[n] == 12345.0f, "q4_0 wrote past the row");

        /* f16 / bf16 / f32 rows, from an odd (unaligned) address */
        for (int64_t k = 0; k < 2 * n + 1; k++)
            buf[k] = (uint8_t)rng();
        fvlm_dequantize_row(FVLM_TYPE_F16, buf + 1, out, n);
        for (int64_t k = 0; k < n; k++) {
            double want = ref_f16_value((uint16_t)(buf[1 + 2 * k] | buf[2 + 2 * k] << 8));
            if (!(isnan(want) ? isnan(out[k]) : (double)out[k] == want) && bad++ < 3)
                CHECK(0, "f16 row k=%lld", (long long)k);
        }
        fvlm_dequantize_row(FVLM_TYPE_BF16, buf + 1, out, n);
        for (int64_t k = 0; k < n; k++) {
            double want = ref_bf16_value((uint16_t)(buf[1 + 2 * k] | buf[2 + 2 * k] << 8));
            if (!(isnan(want) ? isnan(out[k]) : (double)out[k] == want) && bad++ < 3)
                CHECK(0, "bf16 row k=%lld", (long long)k);
        }
        fvlm_dequantize_row(FVLM_TYPE_F32, buf + 1, out, n / 2);
        for (int64_t k = 0; k < n / 2; k++) {
            uint32_t u = (uint32_t)buf[1 + 4 * k] | (uint32_t)buf[2 + 4 * k] << 8 |
                         (uint32_t)buf[3 + 4 * k] << 16 | (uint32_t)buf[4 + 4 * k] << 24;
            if (f_bits(out[k]) != u && bad++ < 3)
                CHECK(0, "f32 row k=%lld", (long long)k);
        }
        CHECK(bad == 0, "n=%lld: %d dequantized values wrong", (long long)n, bad);
    }

    /* special scales: inf · 0 = NaN, inf · q = ±inf, NaN scale gives NaN */
    memset(buf, 0, 34);
    buf[0] = 0x00; buf[1] = 0x7c;     /* d = +inf */
    buf[2] = 0; buf[3] = 1; buf[4] = 0xff;
    fvlm_dequantize_row(FVLM_TYPE_Q8_0, buf, out, 32);
    CHECK(isnan(out[0]) && isinf(out[1]) && out[1] > 0 && isinf(out[2]) && out[2] < 0,
          "q8_0 with d=inf: %g %g %g", (double)out[0], (double)out[1], (double)out[2]);
    buf[0] = 0x01; buf[1] = 0x7e;     /* d = NaN */
    fvlm_dequantize_row(FVLM_TYPE_Q8_0, buf, out, 32);
    CHECK(isnan(out[1]), "q8_0 with d=NaN");

    /* n = 0 writes nothing; unsupported types write zeros, not garbage */
    out[0] = 7.0f;
    fvlm_dequantize_row(FVLM_TYPE_Q8_0, buf, out, 0);
    CHECK(out[0] == 7.0f, "n=0 must not write");
    for (int i = 0; i < 256; i++)
        out[i] = 7.0f;
    memset(buf, 0x55, 84);
    fvlm_dequantize_row(FVLM_TYPE_Q2_K, buf, out, 256);
    CHECK(out[0] == 0.0f && out[255] == 0.0f, "unsupported type must give zeros");

    free(out);
    free(buf);
}

int main(void)
{
    test_traits();
    test_f16_decode();
    test_f16_encode();
    test_bf16();
    test_dequant();
    return check_summary("test_tensor");
}
