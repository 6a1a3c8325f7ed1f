/*
 * tensor.c — the per-type traits table (ggml's type ids, block sizes and bytes per block),
 * fp16/bf16 <-> fp32 conversion and row dequantization for the supported types.
 *
 * Not here: matrix arithmetic on quantized blocks (kernels_*.c) and file parsing (gguf.c).
 * Conversions work on bit patterns only (no FP environment dependence) and read blocks
 * byte by byte, so `src` may be unaligned (a GGUF opened from an arbitrary buffer).
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "tensor.h"

/* The block layouts must match ggml's byte for byte: files are used in place. */
static_assert(sizeof(fvlm_block_q4_0) == 2 + FVLM_QK4_0 / 2, "q4_0 block is 18 bytes");
static_assert(sizeof(fvlm_block_q8_0) == 2 + FVLM_QK8_0, "q8_0 block is 34 bytes");

/* Sizes are ggml's (ggml-common.h); every id ggml defines below FVLM_TYPE_COUNT is listed
 * so that `fastvlm info` can describe any llama.cpp file, but only the types the kernels
 * handle are `supported`. Ids 4, 5, 31..33 and 36..38 were removed from ggml and stay NULL. */
#define QK_K 256
static const fvlm_type_traits type_traits[FVLM_TYPE_COUNT] = {
    [FVLM_TYPE_F32]  = {"f32",  1, 4, true},
    [FVLM_TYPE_F16]  = {"f16",  1, 2, true},
    [FVLM_TYPE_Q4_0] = {"q4_0", 32, 18, true},      /* fp16 d + 16 bytes of nibbles */
    [FVLM_TYPE_Q4_1] = {"q4_1", 32, 20, false},     /* fp16 d, m + 16 bytes */
    [FVLM_TYPE_Q5_0] = {"q5_0", 32, 22, false},     /* fp16 d + 4 bytes qh + 16 bytes */
    [FVLM_TYPE_Q5_1] = {"q5_1", 32, 24, false},     /* fp16 d, m + 4 + 16 */
    [FVLM_TYPE_Q8_0] = {"q8_0", 32, 34, true},      /* fp16 d + 32 int8 */
    [FVLM_TYPE_Q8_1] = {"q8_1", 32, 36, false},     /* fp16 d, s + 32 int8 */
    [FVLM_TYPE_Q2_K] = {"q2_K", QK_K, 84, false},   /* 16 scales + 64 qs + d, dmin */
    [FVLM_TYPE_Q3_K] = {"q3_K", QK_K, 110, false},  /* 32 hmask + 64 qs + 12 scales + d */
    [FVLM_TYPE_Q4_K] = {"q4_K", QK_K, 144, false},  /* d, dmin + 12 scales + 128 qs */
    [FVLM_TYPE_Q5_K] = {"q5_K", QK_K, 176, false},  /* d, dmin + 12 + 32 qh + 128 qs */
    [FVLM_TYPE_Q6_K] = {"q6_K", QK_K, 210, false},  /* 128 ql + 64 qh + 16 scales + d */
    [FVLM_TYPE_Q8_K] = {"q8_K", QK_K, 292, false},  /* f32 d + 256 int8 + 16 int16 sums */
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
    default:
        /* Not a supported type: callers check traits->supported first. Zeros rather than
         * uninitialised memory if one does not. */
        memset(out, 0, (size_t)n * sizeof(float));
        return;
    }
}
