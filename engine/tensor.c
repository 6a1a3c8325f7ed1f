/*
 * tensor.c — the per-type traits table (ggml's type ids, block sizes and bytes per block),
 * fp16/bf16 <-> fp32 conversion and row dequantization for the supported types.
 *
 * Not here: matrix arithmetic on quantized blocks (kernels_*.c) and file parsing (gguf.c).
 * Conversions work on bit patterns only (no FP environment dependence) and read blocks
 * byte by byte, so `src` may be unaligned (a GGUF opened from an arbitrary buffer).
 */
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tensor.h"

/* The block layouts must match ggml's byte for byte: files are used in place. */
static_assert(sizeof(fvlm_block_q4_0) == 2 + FVLM_QK4_0 / 2, "q4_0 block is 18 bytes");
static_assert(sizeof(fvlm_block_q8_0) == 2 + FVLM_QK8_0, "q8_0 block is 34 bytes");
static_assert(sizeof(fvlm_block_q4_1) == 4 + 16, "q4_1 block is 20 bytes");
static_assert(sizeof(fvlm_block_q5_0) == 2 + 4 + 16, "q5_0 block is 22 bytes");
static_assert(sizeof(fvlm_block_q5_1) == 4 + 4 + 16, "q5_1 block is 24 bytes");
static_assert(sizeof(fvlm_block_q4_K) == 4 + 12 + 128, "q4_K block is 144 bytes");
static_assert(sizeof(fvlm_block_q5_K) == 4 + 12 + 32 + 128, "q5_K block is 176 bytes");
static_assert(sizeof(fvlm_block_q6_K) == 128 + 64 + 16 + 2, "q6_K block is 210 bytes");
static_assert(sizeof(fvlm_block_q8_K) == 4 + 256 + 32, "q8_K block is 292 bytes");
static_assert(offsetof(fvlm_block_q5_0, qs) == 6 && offsetof(fvlm_block_q5_K, qs) == 48 &&
                  offsetof(fvlm_block_q6_K, d) == 208 && offsetof(fvlm_block_q8_K, bsums) == 260,
              "block field offsets are ggml's");

/* Sizes are ggml's (ggml-common.h); every id ggml defines below FVLM_TYPE_COUNT is listed
 * so that `fastvlm info` can describe any llama.cpp file, but only the types the kernels
 * handle are `supported`. Ids 4, 5, 31..33 and 36..38 were removed from ggml and stay NULL. */
#define QK_K 256
static const fvlm_type_traits type_traits[FVLM_TYPE_COUNT] = {
    [FVLM_TYPE_F32]  = {"f32",  1, 4, true},
    [FVLM_TYPE_F16]  = {"f16",  1, 2, true},
    [FVLM_TYPE_Q4_0] = {"q4_0", 32, 18, true},      /* fp16 d + 16 bytes of nibbles */
    [FVLM_TYPE_Q4_1] = {"q4_1", 32, 20, true},     /* fp16 d, m + 16 bytes */
    [FVLM_TYPE_Q5_0] = {"q5_0", 32, 22, true},     /* fp16 d + 4 bytes qh + 16 bytes */
    [FVLM_TYPE_Q5_1] = {"q5_1", 32, 24, true},     /* fp16 d, m + 4 + 16 */
    [FVLM_TYPE_Q8_0] = {"q8_0", 32, 34, true},      /* fp16 d + 32 int8 */
    [FVLM_TYPE_Q8_1] = {"q8_1", 32, 36, false},     /* fp16 d, s + 32 int8 */
    [FVLM_TYPE_Q2_K] = {"q2_K", QK_K, 84, false},   /* 16 scales + 64 qs + d, dmin */
    [FVLM_TYPE_Q3_K] = {"q3_K", QK_K, 110, false},  /* 32 hmask + 64 qs + 12 scales + d */
    [FVLM_TYPE_Q4_K] = {"q4_K", QK_K, 144, true},  /* d, dmin + 12 scales + 128 qs */
    [FVLM_TYPE_Q5_K] = {"q5_K", QK_K, 176, true},  /* d, dmin + 12 + 32 qh + 128 qs */
    [FVLM_TYPE_Q6_K] = {"q6_K", QK_K, 210, true},  /* 128 ql + 64 qh + 16 scales + d */
    [FVLM_TYPE_Q8_K] = {"q8_K", QK_K, 292, true},  /* f32 d + 256 int8 + 16 int16 sums */
    [16] = {"iq2_xxs", QK_K, 66, false},
    [17] = {"iq2_xs", QK_K, 74, false},
    [18] = {"iq3_xxs", QK_K, 98, false},
    [19] = {"iq1_s", QK_K, 50, false},
    [20] = {"iq4_nl", 32, 18, false},
    [21] = {"iq3_s", QK_K, 110, false},
    [22] = {"iq2_s", QK_K, 82, false},
    [23] = {"iq4_xs", QK_K, 136, false},
    [24] = {"i8", 1, 1, false},
    [25] = {"i16", 1, 2, false},
    [26] = {"i32", 1, 4, false},
    [27] = {"i64", 1, 8, false},
    [28] = {"f64", 1, 8, false},
    [29] = {"iq1_m", QK_K, 56, false},
    [FVLM_TYPE_BF16] = {"bf16", 1, 2, true},
    [34] = {"tq1_0", QK_K, 54, false},
    [35] = {"tq2_0", QK_K, 66, false},
    [39] = {"mxfp4", 32, 17, false},
};

const fvlm_type_traits *fvlm_type_get_traits(uint32_t type)
{
    if (type >= FVLM_TYPE_COUNT || !type_traits[type].name)
        return NULL;
    return &type_traits[type];
}

size_t fvlm_row_size(fvlm_type type, int64_t n)
{
    const fvlm_type_traits *tt = fvlm_type_get_traits((uint32_t)type);
    uint64_t blocks;

    if (!tt || n < 0 || n % tt->block_size)
        return 0;
    blocks = (uint64_t)n / tt->block_size;
    if (blocks > SIZE_MAX / tt->type_size)   /* does not fit in memory: report "invalid" */
        return 0;
    return (size_t)(blocks * tt->type_size);
}

/* ---- fp16 / bf16 ------------------------------------------------------------------- */

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Exact: every half is a
 * float. Subnormals (exponent 0) are renormalised; inf/NaN keep sign and payload. */
float fvlm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;

    if (exp == 0x1f)                                   /* inf or NaN */
        return bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        int e = 1;
        if (man == 0)
            return bits_to_f32(sign);                  /* ±0 */
        /* subnormal: man · 2^-24; shift the leading 1 up to bit 10 */
        while (!(man & 0x400u)) {
            man <<= 1;
            e--;
        }
        man &= 0x3ffu;
        return bits_to_f32(sign | ((uint32_t)(e + 112) << 23) | (man << 13));
    }
    return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t fvlm_f32_to_f16(float f)
{
    uint32_t x = f32_to_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    uint32_t q, rem, half;

    if (ax >= 0x7f800000u) {
        if (ax > 0x7f800000u)                          /* NaN: quiet, keep top payload bits */
            return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
        return (uint16_t)(sign | 0x7c00u);             /* inf */
    }
    if (ax >= 0x477ff000u)                             /* >= 65520 rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {                            /* below 2^-14: half subnormal or 0 */
        uint32_t e = ax >> 23, shift;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        if (ax < 0x33000000u)                          /* < 2^-25 (2^-25 itself ties to 0) */
            return sign;
        /* value = m · 2^(e-150) = m · 2^(e-126) units of 2^-24; e in [102, 112] */
        shift = 126u - e;                              /* 14..24 */
        q = m >> shift;
        rem = m & ((1u << shift) - 1u);
        half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u)))
            q++;                                       /* may carry into the smallest normal */
        return (uint16_t)(sign | q);
    }
    /* normal: rebias exponent 127 -> 15 (subtract 112 << 23), drop 13 mantissa bits */
    ax -= 0x38000000u;
    q = ax >> 13;
    rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
        q++;                                           /* carry may bump the exponent: fine */
    return (uint16_t)(sign | q);
}

/* bfloat16 is the top half of a float32. */
float fvlm_bf16_to_f32(uint16_t h)
{
    return bits_to_f32((uint32_t)h << 16);
}

uint16_t fvlm_f32_to_bf16(float f)
{
    uint32_t x = f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)               /* NaN: keep it a (quiet) NaN */
        return (uint16_t)((x >> 16) | 0x40u);
    /* round to nearest even; overflow rounds to inf as it should */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* ---- dequantization ----------------------------------------------------------------- */

static uint16_t load_u16le(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block from its 12 bytes:
 * sub-blocks 0-3 keep theirs in the low 6 bits of bytes j and j+4; 4-7 in the nibbles of
 * byte j+4 with the top two bits in bytes j-4 (scale) and j (min). */
void fvlm_k_scale_min(const uint8_t *q, int j, uint8_t *sc, uint8_t *mn)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

void fvlm_dequantize_row(fvlm_type type, const void *src, float *out, int64_t n)
{
    const uint8_t *p = src;
    int64_t i, b, nb;

    if (n <= 0)
        return;
    switch (type) {
    case FVLM_TYPE_F32:
        memcpy(out, src, (size_t)n * sizeof(float));
        return;
    case FVLM_TYPE_F16:
        for (i = 0; i < n; i++)
            out[i] = fvlm_f16_to_f32(load_u16le(p + 2 * i));
        return;
    case FVLM_TYPE_BF16:
        for (i = 0; i < n; i++)
            out[i] = fvlm_bf16_to_f32(load_u16le(p + 2 * i));
        return;
    case FVLM_TYPE_Q8_0:
        /* block: fp16 d, int8 q[32]; x = d · q */
        nb = n / FVLM_QK8_0;
        for (b = 0; b < nb; b++, p += sizeof(fvlm_block_q8_0)) {
            float d = fvlm_f16_to_f32(load_u16le(p));
            for (i = 0; i < FVLM_QK8_0; i++)
                out[b * FVLM_QK8_0 + i] = d * (float)(int8_t)p[2 + i];
        }
        return;
    case FVLM_TYPE_Q4_0:
        /* block: fp16 d, 16 bytes; byte j holds element j (low nibble) and j+16 (high);
         * x = d · (q - 8) */
        nb = n / FVLM_QK4_0;
        for (b = 0; b < nb; b++, p += sizeof(fvlm_block_q4_0)) {
            float d = fvlm_f16_to_f32(load_u16le(p));
            float *o = out + b * FVLM_QK4_0;
            for (i = 0; i < FVLM_QK4_0 / 2; i++) {
                o[i] = d * (float)((p[2 + i] & 0x0f) - 8);
                o[i + FVLM_QK4_0 / 2] = d * (float)((p[2 + i] >> 4) - 8);
            }
        }
        return;
    case FVLM_TYPE_Q4_1:
        /* block: fp16 d, fp16 m, 16 bytes as q4_0; x = d · q + m */
        nb = n / 32;
        for (b = 0; b < nb; b++, p += sizeof(fvlm_block_q4_1)) {
            const float d = fvlm_f16_to_f32(load_u16le(p)), m = fvlm_f16_to_f32(load_u16le(p + 2));
            float *o = out + b * 32;
            for (i = 0; i < 16; i++) {
                o[i] = d * (float)(p[4 + i] & 0x0f) + m;
                o[i + 16] = d * (float)(p[4 + i] >> 4) + m;
            }
        }
        return;
    case FVLM_TYPE_Q5_0:
    case FVLM_TYPE_Q5_1: {
        /* block: fp16 d, [fp16 m,] uint32 qh, 16 bytes; the fifth bit of element j is bit j
         * of qh; q5_0: x = d · (q − 16), q5_1: x = d · q + m */
        const bool has_m = type == FVLM_TYPE_Q5_1;
        const size_t bs = has_m ? sizeof(fvlm_block_q5_1) : sizeof(fvlm_block_q5_0);
        const uint8_t *qh_p, *qs;
        nb = n / 32;
        for (b = 0; b < nb; b++, p += bs) {
            const float d = fvlm_f16_to_f32(load_u16le(p));
            const float m = has_m ? fvlm_f16_to_f32(load_u16le(p + 2)) : 0.0f;
            uint32_t qh;
            float *o = out + b * 32;
            qh_p = p + (has_m ? 4 : 2);
            qs = qh_p + 4;
            qh = (uint32_t)qh_p[0] | (uint32_t)qh_p[1] << 8 | (uint32_t)qh_p[2] << 16 |
                 (uint32_t)qh_p[3] << 24;
            for (i = 0; i < 16; i++) {
                const int q0 = (qs[i] & 0x0f) | (int)((qh >> i) & 1u) << 4;
                const int q1 = (qs[i] >> 4) | (int)((qh >> (i + 16)) & 1u) << 4;
                if (has_m) {
                    o[i] = d * (float)q0 + m;
                    o[i + 16] = d * (float)q1 + m;
                } else {
                    o[i] = d * (float)(q0 - 16);
                    o[i + 16] = d * (float)(q1 - 16);
                }
            }
        }
        return;
    }
    case FVLM_TYPE_Q4_K:
    case FVLM_TYPE_Q5_K: {
        const bool five = type == FVLM_TYPE_Q5_K;
        const size_t bs = five ? sizeof(fvlm_block_q5_K) : sizeof(fvlm_block_q4_K);
        nb = n / FVLM_QK_K;
        for (b = 0; b < nb; b++, p += bs) {
            const float d = fvlm_f16_to_f32(load_u16le(p));
            const float dmin = fvlm_f16_to_f32(load_u16le(p + 2));
            const uint8_t *sc = p + 4;
            const uint8_t *qh = p + 16;                 /* q5_K only */
            const uint8_t *qs = p + (five ? 48 : 16);
            float *o = out + b * FVLM_QK_K;
            for (int c = 0; c < 4; c++, qs += 32, o += 64) {
                uint8_t s0, m0, s1, m1;
                fvlm_k_scale_min(sc, 2 * c, &s0, &m0);
                fvlm_k_scale_min(sc, 2 * c + 1, &s1, &m1);
                const float d0 = d * (float)s0, d1 = d * (float)s1;
                const float n0 = dmin * (float)m0, n1 = dmin * (float)m1;
                for (i = 0; i < 32; i++) {
                    int q0 = qs[i] & 0x0f, q1 = qs[i] >> 4;
                    if (five) {
                        q0 |= ((qh[i] >> (2 * c)) & 1) << 4;
                        q1 |= ((qh[i] >> (2 * c + 1)) & 1) << 4;
                    }
                    o[i] = d0 * (float)q0 - n0;
                    o[i + 32] = d1 * (float)q1 - n1;
                }
            }
        }
        return;
    }
    case FVLM_TYPE_Q6_K:
        /* per 128 elements: ql 64 bytes, qh 32 bytes, 8 scales; element l (< 32) of the
         * four quarters takes ql[l] low, ql[l+32] low, ql[l] high, ql[l+32] high nibble and
         * bits 0-1, 2-3, 4-5, 6-7 of qh[l]; x = (d · sc[l/16 + 2·quarter]) · (q − 32),
         * rounded in that order as ggml does */
        nb = n / FVLM_QK_K;
        for (b = 0; b < nb; b++, p += sizeof(fvlm_block_q6_K)) {
            const float d = fvlm_f16_to_f32(load_u16le(p + 208));
            const uint8_t *ql = p, *qh = p + 128;
            const int8_t *sc = (const int8_t *)(p + 192);
            float *o = out + b * FVLM_QK_K;
            for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, o += 128) {
                for (i = 0; i < 32; i++) {
                    const int is = (int)i / 16;
                    const int q0 = ((ql[i] & 0x0f) | ((qh[i] >> 0) & 3) << 4) - 32;
                    const int q1 = ((ql[i + 32] & 0x0f) | ((qh[i] >> 2) & 3) << 4) - 32;
                    const int q2 = ((ql[i] >> 4) | ((qh[i] >> 4) & 3) << 4) - 32;
                    const int q3 = ((ql[i + 32] >> 4) | ((qh[i] >> 6) & 3) << 4) - 32;
                    o[i] = d * (float)sc[is] * (float)q0;
                    o[i + 32] = d * (float)sc[is + 2] * (float)q1;
                    o[i + 64] = d * (float)sc[is + 4] * (float)q2;
                    o[i + 96] = d * (float)sc[is + 6] * (float)q3;
                }
            }
        }
        return;
    case FVLM_TYPE_Q8_K:
        /* block: float d, int8 q[256], int16 sums; x = d · q */
        nb = n / FVLM_QK_K;
        for (b = 0; b < nb; b++, p += sizeof(fvlm_block_q8_K)) {
            float d;
            memcpy(&d, p, sizeof d);
            for (i = 0; i < FVLM_QK_K; i++)
                out[b * FVLM_QK_K + i] = d * (float)(int8_t)p[4 + i];
        }
        return;
    default:
        /* Not a supported type: callers check traits->supported first. Zeros rather than
         * uninitialised memory if one does not. */
        memset(out, 0, (size_t)n * sizeof(float));
        return;
    }
}

/* ---- quantization --------------------------------------------------------------------
 * Scales come from each block's range, values are rounded to nearest. The 32-element types
 * follow llama.cpp's reference formulas exactly; the K-quants round their fp16 super-block
 * scales first and quantize against the rounded values (no error search). */

static void store_u16le(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* The element of largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n)
{
    float best = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            best = x[i];
        }
    return best;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* q in [0, 2^bits) per element: Q4_1/Q5_1 (affine) x ≈ d·q + m with d = (max − min)/qmax;
 * Q4_0/Q5_0 x ≈ d·(q − off) with the extreme element at q = 0. As llama.cpp's reference
 * quantizer: values are scaled by 1/d of the unrounded d and rounded half up, so our files
 * equal llama.cpp's byte for byte. Writes the fp16 header, returns q[32]. */
static void quant_block_32(const float *x, int bits, bool affine, uint8_t *hdr, int *q)
{
    const int qmax = (1 << bits) - 1;
    float d, id;
    if (affine) {
        float mn = x[0], mx = x[0];
        for (int i = 1; i < 32; i++) {
            mn = x[i] < mn ? x[i] : mn;
            mx = x[i] > mx ? x[i] : mx;
        }
        d = (mx - mn) / (float)qmax;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16le(hdr, fvlm_f32_to_f16(d));
        store_u16le(hdr + 2, fvlm_f32_to_f16(mn));
        for (int i = 0; i < 32; i++)
            q[i] = clampi((int)((x[i] - mn) * id + 0.5f), 0, qmax);
    } else {
        const int off = 1 << (bits - 1);
        d = signed_absmax(x, 32) / (float)-off;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16le(hdr, fvlm_f32_to_f16(d));
        for (int i = 0; i < 32; i++)
            q[i] = clampi((int)(x[i] * id + ((float)off + 0.5f)), 0, qmax);
    }
}

/* Q4_K / Q5_K super-block: 8 sub-blocks of 32, x ≈ d·sc·q − dmin·mn. */
static void quant_block_k45(const float *x, bool five, uint8_t *blk)
{
    const int qmax = five ? 31 : 15;
    float scale[8], offs[8], smax = 0.0f, omax = 0.0f;
    uint8_t sc[8], mn[8];
    uint8_t *scales = blk + 4, *qh = blk + 16, *qs = blk + (five ? 48 : 16);

    for (int j = 0; j < 8; j++) {
        float lo = 0.0f, hi = x[32 * j];
        for (int i = 0; i < 32; i++) {
            lo = x[32 * j + i] < lo ? x[32 * j + i] : lo;   /* the min is stored negated: <= 0 */
            hi = x[32 * j + i] > hi ? x[32 * j + i] : hi;
        }
        scale[j] = (hi - lo) / (float)qmax;
        offs[j] = -lo;
        smax = scale[j] > smax ? scale[j] : smax;
        omax = offs[j] > omax ? offs[j] : omax;
    }
    const float d = fvlm_f16_to_f32(fvlm_f32_to_f16(smax / 63.0f));
    const float dmin = fvlm_f16_to_f32(fvlm_f32_to_f16(omax / 63.0f));
    store_u16le(blk, fvlm_f32_to_f16(d));
    store_u16le(blk + 2, fvlm_f32_to_f16(dmin));
    memset(scales, 0, FVLM_K_SCALE_SIZE);
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(d > 0.0f ? clampi((int)lrintf(scale[j] / d), 0, 63) : 0);
        mn[j] = (uint8_t)(dmin > 0.0f ? clampi((int)lrintf(offs[j] / dmin), 0, 63) : 0);
        if (j < 4) {
            scales[j] |= sc[j];
            scales[j + 4] |= mn[j];
        } else {
            scales[j + 4] = (uint8_t)((sc[j] & 0x0f) | (mn[j] & 0x0f) << 4);
            scales[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            scales[j] |= (uint8_t)((mn[j] >> 4) << 6);
        }
    }
    if (five)
        memset(qh, 0, 32);
    for (int c = 0; c < 4; c++) {
        int q[2][32];
        for (int h = 0; h < 2; h++) {
            const int j = 2 * c + h;
            const float ds = d * (float)sc[j], m = dmin * (float)mn[j];
            const float id = ds != 0.0f ? 1.0f / ds : 0.0f;
            for (int i = 0; i < 32; i++)
                q[h][i] = clampi((int)lrintf((x[32 * j + i] + m) * id), 0, qmax);
        }
        for (int i = 0; i < 32; i++) {
            qs[32 * c + i] = (uint8_t)((q[0][i] & 0x0f) | (q[1][i] & 0x0f) << 4);
            if (five)
                qh[i] |= (uint8_t)(((q[0][i] >> 4) << (2 * c)) | ((q[1][i] >> 4) << (2 * c + 1)));
        }
    }
}

/* Q6_K super-block: 16 sub-blocks of 16, x ≈ d·sc·(q − 32), sc int8. */
static void quant_block_q6k(const float *x, uint8_t *blk)
{
    float scale[16], smax = 0.0f;
    int8_t sc[16];
    int q[256];
    uint8_t *ql = blk, *qh = blk + 128;

    for (int j = 0; j < 16; j++) {
        scale[j] = signed_absmax(x + 16 * j, 16) / -32.0f;
        smax = fabsf(scale[j]) > smax ? fabsf(scale[j]) : smax;
    }
    const float d = fvlm_f16_to_f32(fvlm_f32_to_f16(smax / 127.0f));
    store_u16le(blk + 208, fvlm_f32_to_f16(d));
    for (int j = 0; j < 16; j++) {
        sc[j] = (int8_t)(d > 0.0f ? clampi((int)lrintf(scale[j] / d), -127, 127) : 0);
        blk[192 + j] = (uint8_t)sc[j];
        const float ds = d * (float)sc[j];
        const float id = ds != 0.0f ? 1.0f / ds : 0.0f;
        for (int i = 0; i < 16; i++)
            q[16 * j + i] = clampi((int)lrintf(x[16 * j + i] * id), -32, 31) + 32;
    }
    for (int h = 0; h < 2; h++) {
        const int *e = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[64 * h + l] = (uint8_t)((e[l] & 0x0f) | (e[l + 64] & 0x0f) << 4);
            ql[64 * h + l + 32] = (uint8_t)((e[l + 32] & 0x0f) | (e[l + 96] & 0x0f) << 4);
            qh[32 * h + l] = (uint8_t)((e[l] >> 4) | (e[l + 32] >> 4) << 2 | (e[l + 64] >> 4) << 4 |
                                       (e[l + 96] >> 4) << 6);
        }
    }
}

size_t fvlm_quantize_row(fvlm_type type, const float *src, void *dst, int64_t n)
{
    const size_t bytes = fvlm_row_size(type, n);
    uint8_t *p = dst;
    int64_t b, nb, i;

    if (n <= 0 || bytes == 0)
        return 0;
    switch (type) {
    case FVLM_TYPE_F32:
        memcpy(dst, src, bytes);
        return bytes;
    case FVLM_TYPE_F16:
        for (i = 0; i < n; i++)
            store_u16le(p + 2 * i, fvlm_f32_to_f16(src[i]));
        return bytes;
    case FVLM_TYPE_BF16:
        for (i = 0; i < n; i++)
            store_u16le(p + 2 * i, fvlm_f32_to_bf16(src[i]));
        return bytes;
    case FVLM_TYPE_Q8_0:
        /* d = max|x| / 127, q = round(x / d), half away from zero */
        for (b = 0, nb = n / 32; b < nb; b++, p += sizeof(fvlm_block_q8_0)) {
            const float *x = src + b * 32;
            float amax = 0.0f;
            for (i = 0; i < 32; i++)
                amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
            const float d = amax / 127.0f;
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            store_u16le(p, fvlm_f32_to_f16(d));
            for (i = 0; i < 32; i++)
                p[2 + i] = (uint8_t)(int8_t)clampi((int)roundf(x[i] * id), -127, 127);
        }
        return bytes;
    case FVLM_TYPE_Q4_0:
    case FVLM_TYPE_Q4_1:
        for (b = 0, nb = n / 32; b < nb; b++) {
            const bool affine = type == FVLM_TYPE_Q4_1;
            uint8_t *blk = p + b * (affine ? 20 : 18);
            int q[32];
            quant_block_32(src + b * 32, 4, affine, blk, q);
            for (i = 0; i < 16; i++)
                blk[(affine ? 4 : 2) + i] = (uint8_t)(q[i] | q[i + 16] << 4);
        }
        return bytes;
    case FVLM_TYPE_Q5_0:
    case FVLM_TYPE_Q5_1:
        for (b = 0, nb = n / 32; b < nb; b++) {
            const bool affine = type == FVLM_TYPE_Q5_1;
            uint8_t *blk = p + b * (affine ? 24 : 22), *qh = blk + (affine ? 4 : 2);
            uint32_t h = 0;
            int q[32];
            quant_block_32(src + b * 32, 5, affine, blk, q);
            for (i = 0; i < 16; i++) {
                qh[4 + i] = (uint8_t)((q[i] & 0x0f) | (q[i + 16] & 0x0f) << 4);
                h |= (uint32_t)(q[i] >> 4) << i | (uint32_t)(q[i + 16] >> 4) << (i + 16);
            }
            for (i = 0; i < 4; i++)
                qh[i] = (uint8_t)(h >> (8 * i));
        }
        return bytes;
    case FVLM_TYPE_Q4_K:
    case FVLM_TYPE_Q5_K: {
        const bool five = type == FVLM_TYPE_Q5_K;
        for (b = 0, nb = n / FVLM_QK_K; b < nb; b++)
            quant_block_k45(src + b * FVLM_QK_K, five, p + b * (five ? 176 : 144));
        return bytes;
    }
    case FVLM_TYPE_Q6_K:
        for (b = 0, nb = n / FVLM_QK_K; b < nb; b++)
            quant_block_q6k(src + b * FVLM_QK_K, p + b * 210);
        return bytes;
    case FVLM_TYPE_Q8_K:
        /* float d = max|x| / 127 (not rounded to fp16), bsums = Σ of each 16 q */
        for (b = 0, nb = n / FVLM_QK_K; b < nb; b++, p += sizeof(fvlm_block_q8_K)) {
            const float *x = src + b * FVLM_QK_K;
            float amax = 0.0f;
            for (i = 0; i < FVLM_QK_K; i++)
                amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
            const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            memcpy(p, &d, sizeof d);
            for (int j = 0; j < 16; j++) {
                int sum = 0;
                for (i = 0; i < 16; i++) {
                    const int q = clampi((int)lrintf(x[16 * j + i] * id), -127, 127);
                    p[4 + 16 * j + i] = (uint8_t)(int8_t)q;
                    sum += q;
                }
                const int16_t s16 = (int16_t)sum;
                memcpy(p + 260 + 2 * j, &s16, sizeof s16);
            }
        }
        return bytes;
    default:
        return 0;
    }
}
