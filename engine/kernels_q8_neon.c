/*
 * kernels_q8_neon.c — the aarch64 tiles of the fast (8-bit activation) matrix product
 * (kernels_q8.h): activation quantization and the RW × RA dot tiles for Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q4_K, Q5_K and Q6_K weights.
 *
 * Compiled twice by engine/meson.build: for plain Armv8-A (table fvlm_q8_kernels_neon:
 * int8 products by vmull_s8 and pairwise widening adds) and with -DFVLM_Q8_DOTPROD and
 * +dotprod (table fvlm_q8_kernels_neondot: sdot). A 32-element chunk is two 16-byte
 * vectors whose 4 + 4 int32 lanes are kernels_q8.h's 8 lanes; weights are decoded to signed
 * bytes (s8 × s8 needs no sign trick). The tiles keep the 4 weight rows in the lanes of
 * a float accumulator: per block, the rows' lane partials reduced to exact integers by
 * pairwise adds, then one convert and one fma. Every result equals the scalar twin's bits
 * (tests/kernels/test_q8.c, run under qemu by tests/cross/run_arm64.sh).
 * Not here: threading and tiling (kernels_q8.c).
 */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels_q8.h"

#ifdef FVLM_Q8_DOTPROD
#  define Q8_TABLE fvlm_q8_kernels_neondot
#  define Q8_NAME "neondot"
static inline int32x4_t dot16(int8x16_t a, int8x16_t b)
{
    return vdotq_s32(vdupq_n_s32(0), a, b);
}
#else
#  define Q8_TABLE fvlm_q8_kernels_neon
#  define Q8_NAME "neon"
static inline int32x4_t dot16(int8x16_t a, int8x16_t b)
{
    const int32x4_t s0 = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    const int32x4_t s1 = vpaddlq_s16(vmull_high_s8(a, b));
    return vpaddq_s32(s0, s1);
}
#endif
#define GEMM_RW 4
#define GEMM_RA 2
#define GEMV_RW 4
#define MAXR 4

#define INLINE static inline __attribute__((always_inline))

typedef struct v32 { int8x16_t lo, hi; } v32;

static inline float ld_f16(const uint8_t *p)
{
    return fvlm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* The exact int32 block sums of 4 outputs (each lo + hi: two 4-lane partials) as 4 lanes. */
static inline int32x4_t hsum4(const int32x4_t *lo, const int32x4_t *hi)
{
    const int32x4_t s0 = vaddq_s32(lo[0], hi[0]), s1 = vaddq_s32(lo[1], hi[1]);
    const int32x4_t s2 = vaddq_s32(lo[2], hi[2]), s3 = vaddq_s32(lo[3], hi[3]);
    return vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3));
}

/* ---- activation quantization ------------------------------------------------------------- */

static void quantize(const float *x, int64_t k, int form, int8_t *qs, float *d, int16_t *bsum)
{
    const int B = form == FVLM_Q8_B256 ? 256 : 32;
    for (int64_t b = 0; b < k / B; b++) {
        const float *xb = x + b * B;
        float32x4_t mx = vdupq_n_f32(0.0f);
        for (int i = 0; i < B; i += 4)
            mx = vmaxq_f32(mx, vabsq_f32(vld1q_f32(xb + i)));
        const float amax = vmaxvq_f32(mx);
        const float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        const float32x4_t hi = vdupq_n_f32(127.0f), lo = vdupq_n_f32(-127.0f);
        d[b] = db;
        for (int i = 0; i < B; i += 8) {
            float32x4_t v0 = vmulq_n_f32(vld1q_f32(xb + i), id), v1 = vmulq_n_f32(vld1q_f32(xb + i + 4), id);
            v0 = vminq_f32(vmaxq_f32(v0, lo), hi);
            v1 = vminq_f32(vmaxq_f32(v1, lo), hi);
            const int16x8_t w = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(v0)), vqmovn_s32(vcvtnq_s32_f32(v1)));
            vst1_s8(qs + b * B + i, vqmovn_s16(w));
        }
    }
    for (int64_t j = 0; j < k / 32; j++)
        bsum[j] = (int16_t)(vaddlvq_s8(vld1q_s8(qs + 32 * j)) + vaddlvq_s8(vld1q_s8(qs + 32 * j + 16)));
}

/* ---- weight decoding: 32 signed values of one chunk, natural order --------------------------- */

static inline v32 nib32(const uint8_t *q)
{
    const uint8x16_t b = vld1q_u8(q);
    v32 r = {vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(15))), vreinterpretq_s8_u8(vshrq_n_u8(b, 4))};
    return r;
}

/* 0x10 in byte e (0..31) where bit e of the 4 bytes qh is set */
static inline v32 bit5(const uint8_t *qh)
{
    static const uint8_t bits[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t m = vld1q_u8(bits), s = vdupq_n_u8(16);
    const uint8x16_t a = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
    const uint8x16_t c = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
    v32 r = {vreinterpretq_s8_u8(vandq_u8(vtstq_u8(a, m), s)), vreinterpretq_s8_u8(vandq_u8(vtstq_u8(c, m), s))};
    return r;
}

static inline v32 v_or(v32 a, v32 b)
{
    v32 r = {vorrq_s8(a.lo, b.lo), vorrq_s8(a.hi, b.hi)};
    return r;
}

static inline v32 v_subc(v32 a, int c)
{
    v32 r = {vsubq_s8(a.lo, vdupq_n_s8((int8_t)c)), vsubq_s8(a.hi, vdupq_n_s8((int8_t)c))};
    return r;
}

#define BS32(T) ((T) == FVLM_TYPE_Q8_0 ? 34 : (T) == FVLM_TYPE_Q4_0 ? 18 : (T) == FVLM_TYPE_Q4_1 ? 20 \
                 : (T) == FVLM_TYPE_Q5_0 ? 22 : 24)
#define AFFINE32(T) ((T) == FVLM_TYPE_Q4_1 || (T) == FVLM_TYPE_Q5_1)

INLINE v32 decode32(fvlm_type T, const uint8_t *p)
{
    switch (T) {
    case FVLM_TYPE_Q8_0: {
        v32 r = {vld1q_s8((const int8_t *)(p + 2)), vld1q_s8((const int8_t *)(p + 18))};
        return r;
    }
    case FVLM_TYPE_Q4_0:
        return v_subc(nib32(p + 2), 8);
    case FVLM_TYPE_Q4_1:
        return nib32(p + 4);
    case FVLM_TYPE_Q5_0:
        return v_subc(v_or(nib32(p + 6), bit5(p + 2)), 16);
    default: /* Q5_1 */
        return v_or(nib32(p + 8), bit5(p + 4));
    }
}

/* RW = 4 weight rows (the lanes) × RA activation rows; out[r·RA + c]. */
INLINE void tile32(fvlm_type T, int RW, int RA, int64_t k, const uint8_t *const *w,
                   const fvlm_q8_row *a, float *out)
{
    const size_t bs = BS32(T);
    _Static_assert(GEMM_RW == 4 && GEMV_RW == 4, "the 4 weight rows are the lanes of a vector");
    float32x4_t acc[GEMM_RA], m[GEMM_RA];   /* lane r: weight row r, per activation row c */
    (void)RW;

    for (int c = 0; c < RA; c++)
        acc[c] = m[c] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < k / 32; b++) {
        v32 wv[MAXR];
        float dw[MAXR], mw[MAXR];
        for (int r = 0; r < 4; r++) {
            const uint8_t *p = w[r] + (size_t)b * bs;
            dw[r] = ld_f16(p);
            mw[r] = AFFINE32(T) ? ld_f16(p + 2) : 0.0f;
            wv[r] = decode32(T, p);
        }
        const float32x4_t dwv = vld1q_f32(dw), mwv = vld1q_f32(mw);
        for (int c = 0; c < RA; c++) {
            const int8x16_t alo = vld1q_s8(a[c].qs + 32 * b), ahi = vld1q_s8(a[c].qs + 32 * b + 16);
            const float da = a[c].d[b];
            int32x4_t lo[4], hi[4];
            for (int r = 0; r < 4; r++) {
                lo[r] = dot16(wv[r].lo, alo);
                hi[r] = dot16(wv[r].hi, ahi);
            }
            acc[c] = vfmaq_f32(acc[c], vcvtq_f32_s32(hsum4(lo, hi)), vmulq_n_f32(dwv, da));
            if (AFFINE32(T))
                m[c] = vfmaq_f32(m[c], mwv, vdupq_n_f32(da * (float)a[c].bsum[b]));
        }
    }
    for (int c = 0; c < RA; c++) {
        float v[4];
        vst1q_f32(v, vaddq_f32(acc[c], m[c]));
        for (int r = 0; r < 4; r++)
            out[r * RA + c] = v[r];
    }
}

/* ---- K-quants ----------------------------------------------------------------------------- */

typedef struct kblock {
    float d, dmin;
    uint8_t sc[8], mn[8];
} kblock;

INLINE void kparse(fvlm_type T, const uint8_t *p, kblock *kb)
{
    if (T == FVLM_TYPE_Q6_K) {
        kb->d = ld_f16(p + 208);
        kb->dmin = 0.0f;
        return;
    }
    kb->d = ld_f16(p);
    kb->dmin = ld_f16(p + 2);
    for (int j = 0; j < 8; j++)
        fvlm_k_scale_min(p + 4, j, &kb->sc[j], &kb->mn[j]);
}

/* chunk c (0..7): signed values, scale of lanes 0-3 (*s0) and 4-7 (*s1) */
INLINE v32 kdecode(fvlm_type T, const uint8_t *p, const kblock *kb, int c, int32_t *s0, int32_t *s1)
{
    const uint8x16_t m4 = vdupq_n_u8(15);
    v32 r;
    if (T == FVLM_TYPE_Q6_K) {
        const int h = c / 4, g = c % 4;
        const int8_t *s = (const int8_t *)(p + 192) + 2 * c;
        const uint8_t *ql = p + 64 * h + 32 * (g & 1), *qh = p + 128 + 32 * h;
        const int8x16_t sh = vdupq_n_s8((int8_t)(-2 * g));
        for (int half = 0; half < 2; half++) {
            const uint8x16_t l = vld1q_u8(ql + 16 * half), hb = vld1q_u8(qh + 16 * half);
            const uint8x16_t lo = g < 2 ? vandq_u8(l, m4) : vshrq_n_u8(l, 4);
            const uint8x16_t hi = vandq_u8(vshlq_u8(hb, sh), vdupq_n_u8(3));
            const int8x16_t q = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, vshlq_n_u8(hi, 4))), vdupq_n_s8(32));
            if (half)
                r.hi = q;
            else
                r.lo = q;
        }
        *s0 = s[0];
        *s1 = s[1];
        return r;
    }
    const bool five = T == FVLM_TYPE_Q5_K;
    const uint8_t *qs = p + (five ? 48 : 16) + 32 * (c / 2);
    for (int half = 0; half < 2; half++) {
        const uint8x16_t b = vld1q_u8(qs + 16 * half);
        uint8x16_t q = c & 1 ? vshrq_n_u8(b, 4) : vandq_u8(b, m4);
        if (five) {
            const uint8x16_t hb = vld1q_u8(p + 16 + 16 * half);
            const uint8x16_t bit = vandq_u8(vshlq_u8(hb, vdupq_n_s8((int8_t)-c)), vdupq_n_u8(1));
            q = vorrq_u8(q, vshlq_n_u8(bit, 4));
        }
        if (half)
            r.hi = vreinterpretq_s8_u8(q);
        else
            r.lo = vreinterpretq_s8_u8(q);
    }
    *s0 = *s1 = kb->sc[c];
    return r;
}

INLINE void tileK(fvlm_type T, int RW, int RA, int64_t k, const uint8_t *const *w,
                  const fvlm_q8_row *a, float *out)
{
    const size_t bs = T == FVLM_TYPE_Q6_K ? 210 : T == FVLM_TYPE_Q5_K ? 176 : 144;
    float32x4_t acc[GEMM_RA];   /* lane r: weight row r */
    float m[MAXR][GEMM_RA];
    (void)RW;

    for (int c = 0; c < RA; c++) {
        acc[c] = vdupq_n_f32(0.0f);
        for (int r = 0; r < 4; r++)
            m[r][c] = 0.0f;
    }
    for (int64_t b = 0; b < k / 256; b++) {
        kblock kb[MAXR];
        int32x4_t P0[GEMM_RA][MAXR], P1[GEMM_RA][MAXR];
        for (int r = 0; r < 4; r++) {
            kparse(T, w[r] + (size_t)b * bs, &kb[r]);
            for (int c = 0; c < RA; c++)
                P0[c][r] = P1[c][r] = vdupq_n_s32(0);
        }
        for (int ch = 0; ch < 8; ch++) {
            v32 wv[MAXR];
            int32_t s0[MAXR], s1[MAXR];
            for (int r = 0; r < 4; r++)
                wv[r] = kdecode(T, w[r] + (size_t)b * bs, &kb[r], ch, &s0[r], &s1[r]);
            for (int c = 0; c < RA; c++) {
                const int8_t *aq = a[c].qs + 256 * b + 32 * ch;
                const int8x16_t alo = vld1q_s8(aq), ahi = vld1q_s8(aq + 16);
                for (int r = 0; r < 4; r++) {
                    P0[c][r] = vmlaq_n_s32(P0[c][r], dot16(wv[r].lo, alo), s0[r]);
                    P1[c][r] = vmlaq_n_s32(P1[c][r], dot16(wv[r].hi, ahi), s1[r]);
                }
            }
        }
        const float dwk[4] = {kb[0].d, kb[1].d, kb[2].d, kb[3].d};
        const float32x4_t dwv = vld1q_f32(dwk);
        for (int c = 0; c < RA; c++) {
            const float da = a[c].d[b];
            const int16_t *bsum = a[c].bsum + 8 * b;
            acc[c] = vfmaq_f32(acc[c], vcvtq_f32_s32(hsum4(P0[c], P1[c])), vmulq_n_f32(dwv, da));
            if (T != FVLM_TYPE_Q6_K)
                for (int r = 0; r < 4; r++) {
                    int32_t sm = 0;
                    for (int j = 0; j < 8; j++)
                        sm += kb[r].mn[j] * bsum[j];
                    m[r][c] = fmaf(-(kb[r].dmin * da), (float)sm, m[r][c]);
                }
        }
    }
    for (int c = 0; c < RA; c++) {
        float v[4];
        vst1q_f32(v, acc[c]);
        for (int r = 0; r < 4; r++)
            out[r * RA + c] = v[r] + m[r][c];
    }
}

/* ---- instances ---------------------------------------------------------------------------- */

#define DEF(name, kern, T, RW, RA)                                                          \
    static void name(int64_t k, const uint8_t *const *w, const fvlm_q8_row *a, float *out) \
    {                                                                                       \
        kern(T, RW, RA, k, w, a, out);                                                      \
    }
#define DEF_TYPE(tn, kern, T)                        \
    DEF(gemm_##tn, kern, T, GEMM_RW, GEMM_RA)        \
    DEF(gemv_##tn, kern, T, GEMV_RW, 1)

DEF_TYPE(q8_0, tile32, FVLM_TYPE_Q8_0)
DEF_TYPE(q4_0, tile32, FVLM_TYPE_Q4_0)
DEF_TYPE(q4_1, tile32, FVLM_TYPE_Q4_1)
DEF_TYPE(q5_0, tile32, FVLM_TYPE_Q5_0)
DEF_TYPE(q5_1, tile32, FVLM_TYPE_Q5_1)
DEF_TYPE(q4_K, tileK, FVLM_TYPE_Q4_K)
DEF_TYPE(q5_K, tileK, FVLM_TYPE_Q5_K)
DEF_TYPE(q6_K, tileK, FVLM_TYPE_Q6_K)

const fvlm_q8_kernels Q8_TABLE = {
    .name = Q8_NAME,
    .quantize = quantize,
    .rw = GEMM_RW,
    .ra = GEMM_RA,
    .rw1 = GEMV_RW,
    .gemm = {
        [FVLM_TYPE_Q8_0] = gemm_q8_0, [FVLM_TYPE_Q4_0] = gemm_q4_0, [FVLM_TYPE_Q4_1] = gemm_q4_1,
        [FVLM_TYPE_Q5_0] = gemm_q5_0, [FVLM_TYPE_Q5_1] = gemm_q5_1, [FVLM_TYPE_Q4_K] = gemm_q4_K,
        [FVLM_TYPE_Q5_K] = gemm_q5_K, [FVLM_TYPE_Q6_K] = gemm_q6_K,
    },
    .gemv = {
        [FVLM_TYPE_Q8_0] = gemv_q8_0, [FVLM_TYPE_Q4_0] = gemv_q4_0, [FVLM_TYPE_Q4_1] = gemv_q4_1,
        [FVLM_TYPE_Q5_0] = gemv_q5_0, [FVLM_TYPE_Q5_1] = gemv_q5_1, [FVLM_TYPE_Q4_K] = gemv_q4_K,
        [FVLM_TYPE_Q5_K] = gemv_q5_K, [FVLM_TYPE_Q6_K] = gemv_q6_K,
    },
};
