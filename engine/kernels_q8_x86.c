/*
 * kernels_q8_x86.c — the x86-64 tiles of the fast (8-bit activation) matrix product
 * (kernels_q8.h): activation quantization and the RW × RA dot tiles for Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q4_K, Q5_K and Q6_K weights.
 *
 * Compiled twice by engine/meson.build: plainly with AVX2 + FMA + F16C (table
 * fvlm_q8_kernels_avx2: u8×s8 products by vpmaddubsw + vpmaddwd), and with
 * -DFVLM_Q8_VNNI plus AVX-512 F/BW/VL + AVX512_VNNI (table fvlm_q8_kernels_avx512vnni:
 * vpdpbusd). Both work on 256-bit vectors of one 32-element chunk — 8 int32 lanes of 4
 * products, exactly kernels_q8.h's lanes (on Zen 4 a 512-bit op costs two 256-bit ones
 * anyway) — the VNNI build gains the instruction and 32 registers for wider tiles.
 * Signed weights go through the sign trick (|w| × sign(a, w)), whose products never
 * saturate vpmaddubsw (|w| ≤ 128, |a| ≤ 127), except the VNNI build's 32-element types,
 * which use an offset instead (tile32). K-quant chunks are multiplied by their int16
 * sub-block scales in vpmaddwd (Q4_K/Q5_K q ≤ 31, Q6_K |q − 32| ≤ 32: no saturation).
 * Decode (one activation row) of the 32-element types has its own tile, gemv32: the
 * weight scales of 4 rows gathered in a general register and converted at once, the
 * per-row broadcast by a lane permute (no store/reload), VNNI Q5_0/Q5_1 high bits by a
 * mask register, and software prefetch PF_DIST bytes ahead of every row stream into L2
 * (the short interleaved row streams of a tile otherwise leave DRAM bandwidth unused);
 * the K-quant tiles prefetch the same way when RA = 1. Every result equals the scalar
 * twin's bits (tests/kernels/test_q8.c). Not here: threading and tiling (kernels_q8.c).
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels_q8.h"

#ifdef FVLM_Q8_VNNI
#  define Q8_TABLE fvlm_q8_kernels_avx512vnni
#  define Q8_NAME "avx512vnni"
#  define GEMM_RW 4
#  define GEMM_RA 4
static inline __m256i dot_us(__m256i u, __m256i s)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}
/* K-quants: vpmaddubsw + vpmaddwd by the int16 scales beats vpdpbusd + vpmulld */
static inline __m256i dot_us_scaled(__m256i u, __m256i s, __m256i sc16, __m256i sc32)
{
    (void)sc32;
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc16);
}
#else
#  define Q8_TABLE fvlm_q8_kernels_avx2
#  define Q8_NAME "avx2"
#  define GEMM_RW 2
#  define GEMM_RA 4
static inline __m256i dot_us(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
/* sc16: the scale of each int16 pair (the two halves of a lane carry the same) */
static inline __m256i dot_us_scaled(__m256i u, __m256i s, __m256i sc16, __m256i sc32)
{
    (void)sc32;
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc16);
}
#endif
#ifndef GEMV_RW
#  define GEMV_RW 4
#endif

#define INLINE static inline __attribute__((always_inline))

static inline float ld_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* The exact int32 sums of 4 vectors of 8 lanes, as the 4 lanes of the result (one block's
 * P of 4 outputs; int32 sums in any order are the same integer). */
static inline __m128i hsum4x8(__m256i v0, __m256i v1, __m256i v2, __m256i v3)
{
    const __m256i s01 = _mm256_add_epi32(_mm256_unpacklo_epi32(v0, v1), _mm256_unpackhi_epi32(v0, v1));
    const __m256i s23 = _mm256_add_epi32(_mm256_unpacklo_epi32(v2, v3), _mm256_unpackhi_epi32(v2, v3));
    const __m256i u = _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
    return _mm_add_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1));
}

/* ---- activation quantization ------------------------------------------------------------- */

static void quantize(const float *x, int64_t k, int form, int8_t *qs, float *d, int16_t *bsum)
{
    const int B = form == FVLM_Q8_B256 ? 256 : 32;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < k / B; b++) {
        const float *xb = x + b * B;
        __m256 mx = _mm256_setzero_ps();
        for (int i = 0; i < B; i += 8)
            mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(xb + i), absmask));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        const float amax = _mm_cvtss_f32(m4);
        const float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        const __m256 vid = _mm256_set1_ps(id), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
        d[b] = db;
        for (int i = 0; i < B; i += 32) {
            __m256i q[4];
            for (int g = 0; g < 4; g++) {
                __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xb + i + 8 * g), vid);
                v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
                q[g] = _mm256_cvtps_epi32(v);
            }
            const __m256i w01 = _mm256_packs_epi32(q[0], q[1]), w23 = _mm256_packs_epi32(q[2], q[3]);
            __m256i bytes = _mm256_packs_epi16(w01, w23);
            bytes = _mm256_permutevar8x32_epi32(bytes, perm);
            _mm256_storeu_si256((__m256i *)(qs + b * B + i), bytes);
        }
    }
    const __m256i ones8 = _mm256_set1_epi8(1);
    for (int64_t j = 0; j < k / 32; j++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
        const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v), _mm256_set1_epi16(1));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 1));
        bsum[j] = (int16_t)_mm_cvtsi128_si32(t);
    }
}

/* ---- weight decoding: 32 values of one chunk, natural order ---------------------------------- */

static inline __m256i nib32(const uint8_t *q)
{
    /* the 16 bytes in both halves (a load), the upper half shifted by 4 */
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q));
    return _mm256_and_si256(_mm256_srlv_epi64(b, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(15));
}

/* 0x10 in byte e where bit e of h is set */
static inline __m256i bit5(uint32_t h)
{
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), shuf);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(16));
}

static inline uint32_t ld_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* type's 32-block: bytes per block, signed values?, affine? */
#define BS32(T) ((T) == FVLM_TYPE_Q8_0 ? 34 : (T) == FVLM_TYPE_Q4_0 ? 18 : (T) == FVLM_TYPE_Q4_1 ? 20 \
                 : (T) == FVLM_TYPE_Q5_0 ? 22 : 24)
#define SIGNED32(T) ((T) == FVLM_TYPE_Q8_0 || (T) == FVLM_TYPE_Q4_0 || (T) == FVLM_TYPE_Q5_0)
#define AFFINE32(T) ((T) == FVLM_TYPE_Q4_1 || (T) == FVLM_TYPE_Q5_1)

INLINE __m256i decode32(fvlm_type T, const uint8_t *p)
{
    switch (T) {
    case FVLM_TYPE_Q8_0:
        return _mm256_loadu_si256((const __m256i *)(p + 2));
    case FVLM_TYPE_Q4_0:
        return _mm256_sub_epi8(nib32(p + 2), _mm256_set1_epi8(8));
    case FVLM_TYPE_Q4_1:
        return nib32(p + 4);
    case FVLM_TYPE_Q5_0:
        return _mm256_sub_epi8(_mm256_or_si256(nib32(p + 6), bit5(ld_u32(p + 2))), _mm256_set1_epi8(16));
    default: /* Q5_1 */
        return _mm256_or_si256(nib32(p + 8), bit5(ld_u32(p + 4)));
    }
}

/* VNNI: weights as unsigned bytes u = w + off (Q8_0: w ^ 0x80, off 128; Q4_0: the nibble,
 * off 8; Q5_0: off 16) and Σ u·a − off·Σa, the second term started from the activation's
 * 4-element sums (one vpdpbusd per activation chunk, shared by the tile's weight rows):
 * the same exact integers as the sign trick with one instruction per pair. AVX2 keeps the
 * sign trick (u up to 255 would saturate vpmaddubsw). */
#ifdef FVLM_Q8_VNNI
#  define OFFSET_TRICK 1
#else
#  define OFFSET_TRICK 0
#endif
#define OFF32(T) ((T) == FVLM_TYPE_Q8_0 ? 128 : (T) == FVLM_TYPE_Q4_0 ? 8 : 16)

INLINE __m256i decode32u(fvlm_type T, const uint8_t *p)
{
    switch (T) {
    case FVLM_TYPE_Q8_0:
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + 2)), _mm256_set1_epi8((char)0x80));
    case FVLM_TYPE_Q4_0:
        return nib32(p + 2);
    default: /* Q5_0 */
        return _mm256_or_si256(nib32(p + 6), bit5(ld_u32(p + 2)));
    }
}

INLINE void tile32(fvlm_type T, int RW, int RA, int64_t k, const uint8_t *const *w,
                   const fvlm_q8_row *a, float *out)
{
    const size_t bs = BS32(T);
    const bool offs = OFFSET_TRICK && SIGNED32(T);
    __m128 acc[GEMM_RW], m[GEMM_RW];   /* lane c: activation row c */
    _Static_assert(GEMM_RA == 4, "the 4 activation rows are the lanes of a 128-bit vector");
    (void)RA;

    #pragma GCC unroll 8
    for (int r = 0; r < RW; r++) {
        acc[r] = _mm_setzero_ps();
        m[r] = _mm_setzero_ps();
    }
    for (int64_t b = 0; b < k / 32; b++) {
        __m256i wv[GEMM_RW], wa[GEMM_RW], av[GEMM_RA];
        float dw[GEMM_RW], mw[GEMM_RW];
        #pragma GCC unroll 8
        for (int r = 0; r < RW; r++) {
            const uint8_t *p = w[r] + (size_t)b * bs;
            dw[r] = ld_f16(p);
            mw[r] = AFFINE32(T) ? ld_f16(p + 2) : 0.0f;
            if (offs) {
                wv[r] = decode32u(T, p);
            } else {
                wv[r] = decode32(T, p);
                if (SIGNED32(T))
                    wa[r] = _mm256_sign_epi8(wv[r], wv[r]);
            }
        }
        const __m128 da = _mm_setr_ps(a[0].d[b], a[1].d[b], a[2].d[b], a[3].d[b]);
        const __m128i bsum = _mm_setr_epi32(a[0].bsum[b], a[1].bsum[b], a[2].bsum[b], a[3].bsum[b]);
        /* offset weights: −off · Σa of the 4 activation rows, added to the reduced sums */
        const __m128i corr = offs ? _mm_mullo_epi32(bsum, _mm_set1_epi32(-OFF32(T))) : _mm_setzero_si128();
        __m128 ds = _mm_setzero_ps();
        if (AFFINE32(T))   /* da · (float)bsum of the 4 rows */
            ds = _mm_mul_ps(da, _mm_cvtepi32_ps(bsum));
        #pragma GCC unroll 8
        for (int c = 0; c < GEMM_RA; c++)
            av[c] = _mm256_loadu_si256((const __m256i *)(a[c].qs + 32 * b));
        #pragma GCC unroll 8
        for (int r = 0; r < RW; r++) {
            __m256i p[GEMM_RA];
            #pragma GCC unroll 8
            for (int c = 0; c < GEMM_RA; c++)
                p[c] = SIGNED32(T) && !offs ? dot_us(wa[r], _mm256_sign_epi8(av[c], wv[r]))
                                            : dot_us(wv[r], av[c]);
            const __m128 dd = _mm_mul_ps(_mm_set1_ps(dw[r]), da);
            const __m128i P = _mm_add_epi32(hsum4x8(p[0], p[1], p[2], p[3]), corr);
            acc[r] = _mm_fmadd_ps(_mm_cvtepi32_ps(P), dd, acc[r]);
            if (AFFINE32(T))
                m[r] = _mm_fmadd_ps(_mm_set1_ps(mw[r]), ds, m[r]);
        }
    }
    #pragma GCC unroll 8
    for (int r = 0; r < RW; r++)
        _mm_storeu_ps(out + r * GEMM_RA, _mm_add_ps(acc[r], m[r]));
}

/* ---- decode: GEMV_RW weight rows × one activation row, 32-element blocks ----------------- */

/* Bytes ahead of each weight row's read position to prefetch: the rows of a decode tile
 * are short, interleaved streams the hardware prefetcher follows late. */
#ifndef PF_DIST
#  define PF_DIST 8192
#endif
#ifndef PF_HINT
#  define PF_HINT _MM_HINT_T1
#endif

static inline uint64_t ld_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* The fp16 fields at offset `off` of block b of 4 rows, as 4 floats (the halves gathered
 * in a general register: the vector ports are the busy ones). */
INLINE __m128 f16x4(const uint8_t *const *p, size_t off)
{
    const uint64_t h = ld_u16(p[0] + off) | ld_u16(p[1] + off) << 16 | ld_u16(p[2] + off) << 32 |
                       ld_u16(p[3] + off) << 48;
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)h));
}

/* The weights of one row's 32-block as the unsigned bytes the dot product takes: VNNI,
 * signed types offset to u = w + OFF32 (the product then needs −OFF32·Σa), others and AVX2
 * the values themselves (AVX2 signed types go through the sign trick in gemv32). */
INLINE __m256i gemv_w(fvlm_type T, const uint8_t *p)
{
#ifdef FVLM_Q8_VNNI
    switch (T) {
    case FVLM_TYPE_Q5_0: {
        const __m256i nb = nib32(p + 6);
        return _mm256_mask_add_epi8(nb, (__mmask32)ld_u32(p + 2), nb, _mm256_set1_epi8(16));
    }
    case FVLM_TYPE_Q5_1: {
        const __m256i nb = nib32(p + 8);
        return _mm256_mask_add_epi8(nb, (__mmask32)ld_u32(p + 4), nb, _mm256_set1_epi8(16));
    }
    case FVLM_TYPE_Q8_0:
    case FVLM_TYPE_Q4_0:
        return decode32u(T, p);
    default:
        return decode32(T, p);
    }
#else
    return decode32(T, p);
#endif
}

INLINE void gemv32(fvlm_type T, int64_t k, const uint8_t *const *w, const fvlm_q8_row *a,
                   float *out)
{
    enum { R = GEMV_RW };
    _Static_assert(GEMV_RW % 4 == 0 && GEMV_RW <= 8, "rows in groups of 4");
    const size_t bs = BS32(T);
    const int64_t nb = k / 32;
    __m128 acc[R / 4], m[R / 4];   /* lane i: row 4g + i */
    const uint8_t *p[R];

    #pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        p[r] = w[r];
    #pragma GCC unroll 2
    for (int g = 0; g < R / 4; g++)
        acc[g] = m[g] = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m256i av = _mm256_loadu_si256((const __m256i *)(a->qs + 32 * b));
        const __m128 da = _mm_set1_ps(a->d[b]);
        /* VNNI signed types: −off · Σa, added to the 4 rows' reduced sums */
        const __m128i corr = _mm_set1_epi32(OFFSET_TRICK && SIGNED32(T) ? -OFF32(T) * a->bsum[b] : 0);
        #pragma GCC unroll 2
        for (int g = 0; g < R / 4; g++) {
            /* dw·da of the group's 4 rows, in the scalar twin's order */
            const __m128 dd = _mm_mul_ps(f16x4(p + 4 * g, 0), da);
            if (AFFINE32(T))
                m[g] = _mm_fmadd_ps(f16x4(p + 4 * g, 2), _mm_set1_ps(a->d[b] * (float)a->bsum[b]), m[g]);
            __m256i pr[4];
            #pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                const int r = 4 * g + i;
                if (PF_DIST) _mm_prefetch((const char *)p[r] + PF_DIST, PF_HINT);
                const __m256i wv = gemv_w(T, p[r]);
#ifdef FVLM_Q8_VNNI
                if (SIGNED32(T))
                    pr[i] = dot_us(wv, av);
                else
#endif
                pr[i] = SIGNED32(T) ? dot_us(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(av, wv))
                                    : dot_us(wv, av);
                p[r] += bs;
            }
            const __m128i P = _mm_add_epi32(hsum4x8(pr[0], pr[1], pr[2], pr[3]), corr);
            acc[g] = _mm_fmadd_ps(_mm_cvtepi32_ps(P), dd, acc[g]);
        }
    }
    #pragma GCC unroll 2
    for (int g = 0; g < R / 4; g++)
        _mm_storeu_ps(out + 4 * g, _mm_add_ps(acc[g], m[g]));
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

/* chunk c (0..7) of a K super-block: values (Q6_K: q − 32, signed) and lane scales */
INLINE __m256i kdecode(fvlm_type T, const uint8_t *p, const kblock *kb, int c, __m256i *sc16,
                       __m256i *sc32)
{
    const __m256i m4 = _mm256_set1_epi8(15);
    if (T == FVLM_TYPE_Q6_K) {
        const int h = c / 4, g = c % 4;
        const int8_t *s = (const int8_t *)(p + 192) + 2 * c;
        const __m256i ql = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32 * (g & 1)));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
        const __m256i lo = g < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), _mm256_set1_epi8(3));
        *sc16 = _mm256_setr_epi16(s[0], s[0], s[0], s[0], s[0], s[0], s[0], s[0],
                                  s[1], s[1], s[1], s[1], s[1], s[1], s[1], s[1]);
        *sc32 = _mm256_setr_epi32(s[0], s[0], s[0], s[0], s[1], s[1], s[1], s[1]);
        return _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
    }
    const bool five = T == FVLM_TYPE_Q5_K;
    const __m256i qs = _mm256_loadu_si256((const __m256i *)(p + (five ? 48 : 16) + 32 * (c / 2)));
    __m256i q = c & 1 ? _mm256_and_si256(_mm256_srli_epi16(qs, 4), m4) : _mm256_and_si256(qs, m4);
    if (five) {
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 16));
        const __m256i bit = _mm256_and_si256(_mm256_srli_epi16(qh, c), _mm256_set1_epi8(1));
        q = _mm256_or_si256(q, _mm256_slli_epi16(bit, 4));
    }
    *sc16 = _mm256_set1_epi16(kb->sc[c]);
    *sc32 = _mm256_set1_epi32(kb->sc[c]);
    return q;
}

INLINE void tileK(fvlm_type T, int RW, int RA, int64_t k, const uint8_t *const *w,
                  const fvlm_q8_row *a, float *out)
{
    enum { NO = (GEMM_RW > GEMV_RW ? GEMM_RW : GEMV_RW) * GEMM_RA };
    const size_t bs = T == FVLM_TYPE_Q6_K ? 210 : T == FVLM_TYPE_Q5_K ? 176 : 144;
    const int no = RW * RA;   /* outputs o = r·RA + c, in groups of 4 (lanes) */
    __m128 acc[NO / 4];
    float m[NO];

    #pragma GCC unroll 8
    for (int q = 0; q < no / 4; q++)
        acc[q] = _mm_setzero_ps();
    #pragma GCC unroll 16
    for (int o = 0; o < no; o++)
        m[o] = 0.0f;
    for (int64_t b = 0; b < k / 256; b++) {
        kblock kb[8];
        __m256i P[GEMM_RW > GEMV_RW ? GEMM_RW : GEMV_RW][GEMM_RA];
        #pragma GCC unroll 8
        for (int r = 0; r < RW; r++) {
            kparse(T, w[r] + (size_t)b * bs, &kb[r]);
            #pragma GCC unroll 8
            for (int c = 0; c < RA; c++)
                P[r][c] = _mm256_setzero_si256();
        }
        for (int ch = 0; ch < 8; ch++) {
            __m256i wv[8], wa[8], s16[8], s32[8];
            #pragma GCC unroll 8
            for (int r = 0; r < RW; r++) {
                if (RA == 1 && PF_DIST && 32 * ch < (int)bs)   /* decode: see gemv32 */
                    _mm_prefetch((const char *)w[r] + (size_t)b * bs + 32 * ch + PF_DIST, PF_HINT);
                wv[r] = kdecode(T, w[r] + (size_t)b * bs, &kb[r], ch, &s16[r], &s32[r]);
                if (T == FVLM_TYPE_Q6_K)
                    wa[r] = _mm256_sign_epi8(wv[r], wv[r]);
            }
            #pragma GCC unroll 8
            for (int c = 0; c < RA; c++) {
                const __m256i av = _mm256_loadu_si256((const __m256i *)(a[c].qs + 256 * b + 32 * ch));
                #pragma GCC unroll 8
                for (int r = 0; r < RW; r++) {
                    const __m256i p = T == FVLM_TYPE_Q6_K
                        ? dot_us_scaled(wa[r], _mm256_sign_epi8(av, wv[r]), s16[r], s32[r])
                        : dot_us_scaled(wv[r], av, s16[r], s32[r]);
                    P[r][c] = _mm256_add_epi32(P[r][c], p);
                }
            }
        }
        #pragma GCC unroll 8
        for (int q = 0; q < no / 4; q++) {
            __m256i v[4];
            float dd[4];
            #pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                const int o = 4 * q + i, r = o / RA, c = o % RA;
                v[i] = P[r][c];
                dd[i] = kb[r].d * a[c].d[b];
            }
            acc[q] = _mm_fmadd_ps(_mm_cvtepi32_ps(hsum4x8(v[0], v[1], v[2], v[3])),
                                  _mm_setr_ps(dd[0], dd[1], dd[2], dd[3]), acc[q]);
        }
        if (T != FVLM_TYPE_Q6_K) {
            #pragma GCC unroll 16
            for (int o = 0; o < no; o++) {
                const int r = o / RA, c = o % RA;
                const int16_t *bsum = a[c].bsum + 8 * b;
                int32_t sm = 0;
                for (int j = 0; j < 8; j++)
                    sm += kb[r].mn[j] * bsum[j];
                m[o] = fmaf(-(kb[r].dmin * a[c].d[b]), (float)sm, m[o]);
            }
        }
    }
    #pragma GCC unroll 8
    for (int q = 0; q < no / 4; q++)
        _mm_storeu_ps(out + 4 * q, _mm_add_ps(acc[q], _mm_loadu_ps(m + 4 * q)));
}

/* ---- prefill: the packed column-per-lane GEMM (VNNI) ------------------------------------- */

#ifdef FVLM_Q8_VNNI
/* A panel of NP = 16 weight rows is packed per 32-block into PB32 bytes: the 8 k-groups of
 * 4 elements, each as 16 rows × 4 unsigned bytes (one 64-byte vector: lane j = row j), then
 * the 16 block scales dw and (affine types) the 16 mins mw as floats. One vpdpbusd of that
 * vector with 4 activation bytes broadcast adds 4 products to each of the 16 rows' block
 * sums; 8 of them make the block's P of 16 outputs, exact in int32 (signed types: weights
 * offset to u = w + OFF32, the sum started at −OFF32 · bsum), then one cvt and one fma per
 * 16 outputs: acc = fma((float)P, dw·da, acc), kernels_q8.h's order lane by lane. PRA
 * activation rows share each weight vector. */
#  define NP 16
#  define PRA 8
#  define PB32 640
#  define MP_ROWS 16   /* from this many activation rows on (fewer: the tiles above) */

/* v[0..7] (lanes: k-groups) → v[g] lanes: rows, an 8 × 8 dword transpose */
static inline void tr8x8(__m256i *v)
{
    __m256i t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++) {   /* rows 4h .. 4h+3 */
        u[4 * h + 0] = _mm256_unpacklo_epi64(t[4 * h], t[4 * h + 2]);       /* groups 0 | 4 */
        u[4 * h + 1] = _mm256_unpackhi_epi64(t[4 * h], t[4 * h + 2]);       /* 1 | 5 */
        u[4 * h + 2] = _mm256_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);   /* 2 | 6 */
        u[4 * h + 3] = _mm256_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);   /* 3 | 7 */
    }
    for (int g = 0; g < 4; g++) {
        v[g] = _mm256_permute2x128_si256(u[g], u[4 + g], 0x20);
        v[g + 4] = _mm256_permute2x128_si256(u[g], u[4 + g], 0x31);
    }
}

INLINE void pack32(fvlm_type T, int64_t k, const uint8_t *const *w, uint8_t *buf)
{
    const size_t bs = BS32(T);
    for (int64_t b = 0; b < k / 32; b++) {
        uint8_t *o = buf + (size_t)b * PB32;
        float dw[NP], mw[NP];
        for (int h = 0; h < 2; h++) {
            __m256i v[8];
            #pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                const uint8_t *p = w[8 * h + i] + (size_t)b * bs;
                v[i] = gemv_w(T, p);   /* unsigned bytes: w + OFF32, or the affine values */
                dw[8 * h + i] = ld_f16(p);
                mw[8 * h + i] = AFFINE32(T) ? ld_f16(p + 2) : 0.0f;
            }
            tr8x8(v);
            #pragma GCC unroll 8
            for (int g = 0; g < 8; g++)
                _mm256_store_si256((__m256i *)(o + 64 * g + 32 * h), v[g]);
        }
        _mm512_store_ps(o + 512, _mm512_loadu_ps(dw));
        _mm512_store_ps(o + 576, _mm512_loadu_ps(mw));
    }
}

INLINE void gemmp32(fvlm_type T, int64_t k, const uint8_t *buf, const fvlm_q8_act *act, int64_t i0,
                    int64_t i1, float *y, int64_t ldy, int nvalid, const float *bias)
{
    const int64_t nb = k / 32;
    const __mmask16 msk = (__mmask16)((1u << nvalid) - 1u);
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(msk, bias) : _mm512_setzero_ps();
    const int8_t *qs0 = act->qs[FVLM_Q8_B32];
    const float *d0 = act->d[FVLM_Q8_B32];
    const int16_t *s0 = act->bsum[FVLM_Q8_B32];

    for (int64_t i = i0; i < i1; i += PRA) {
        const int8_t *q[PRA];
        const float *d[PRA];
        const int16_t *bsum[PRA];
        __m512 acc[PRA], mm[PRA];
        #pragma GCC unroll 8
        for (int c = 0; c < PRA; c++) {
            const int64_t row = i + c < i1 ? i + c : i1 - 1;
            q[c] = qs0 + row * k;
            d[c] = d0 + row * nb;
            bsum[c] = s0 + row * nb;
            acc[c] = mm[c] = _mm512_setzero_ps();
        }
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *pb = buf + (size_t)b * PB32;
            __m512i P[PRA];
            #pragma GCC unroll 8
            for (int c = 0; c < PRA; c++)
                P[c] = SIGNED32(T) ? _mm512_set1_epi32(-OFF32(T) * bsum[c][b]) : _mm512_setzero_si512();
            #pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                const __m512i wv = _mm512_load_si512((const void *)(pb + 64 * g));
                #pragma GCC unroll 8
                for (int c = 0; c < PRA; c++)
                    P[c] = _mm512_dpbusd_epi32(P[c], wv, _mm512_set1_epi32((int)ld_u32((const uint8_t *)q[c] + 32 * b + 4 * g)));
            }
            const __m512 dwv = _mm512_load_ps(pb + 512);
            #pragma GCC unroll 8
            for (int c = 0; c < PRA; c++)
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(P[c]), _mm512_mul_ps(dwv, _mm512_set1_ps(d[c][b])),
                                         acc[c]);
            if (AFFINE32(T)) {
                const __m512 mwv = _mm512_load_ps(pb + 576);
                #pragma GCC unroll 8
                for (int c = 0; c < PRA; c++)
                    mm[c] = _mm512_fmadd_ps(mwv, _mm512_set1_ps(d[c][b] * (float)bsum[c][b]), mm[c]);
            }
        }
        #pragma GCC unroll 8
        for (int c = 0; c < PRA; c++) {
            if (i + c >= i1)
                break;
            __m512 v = _mm512_add_ps(acc[c], mm[c]);
            if (bias)
                v = _mm512_add_ps(v, bv);
            _mm512_mask_storeu_ps(y + (i + c - i0) * ldy, msk, v);
        }
    }
}

#  define DEF_PACKED(tn, T)                                                                  \
    static void pack_##tn(int64_t k, const uint8_t *const *w, uint8_t *buf)                   \
    {                                                                                         \
        pack32(T, k, w, buf);                                                                 \
    }                                                                                         \
    static void gemmp_##tn(int64_t k, const uint8_t *buf, const fvlm_q8_act *act, int64_t i0, \
                           int64_t i1, float *y, int64_t ldy, int nvalid, const float *bias)  \
    {                                                                                         \
        gemmp32(T, k, buf, act, i0, i1, y, ldy, nvalid, bias);                                \
    }
DEF_PACKED(q8_0, FVLM_TYPE_Q8_0)
DEF_PACKED(q4_0, FVLM_TYPE_Q4_0)
DEF_PACKED(q4_1, FVLM_TYPE_Q4_1)
DEF_PACKED(q5_0, FVLM_TYPE_Q5_0)
DEF_PACKED(q5_1, FVLM_TYPE_Q5_1)
#endif

/* ---- instances ---------------------------------------------------------------------------- */

#define DEF(name, kern, T, RW, RA)                                                          \
    static void name(int64_t k, const uint8_t *const *w, const fvlm_q8_row *a, float *out) \
    {                                                                                       \
        kern(T, RW, RA, k, w, a, out);                                                      \
    }
#define DEF_TYPE(tn, kern, T)                        \
    DEF(gemm_##tn, kern, T, GEMM_RW, GEMM_RA)        \
    DEF(gemv_##tn, kern, T, GEMV_RW, 1)
#define DEF_TYPE32(tn, T)                                                                    \
    DEF(gemm_##tn, tile32, T, GEMM_RW, GEMM_RA)                                             \
    static void gemv_##tn(int64_t k, const uint8_t *const *w, const fvlm_q8_row *a, float *out) \
    {                                                                                        \
        gemv32(T, k, w, a, out);                                                             \
    }

DEF_TYPE32(q8_0, FVLM_TYPE_Q8_0)
DEF_TYPE32(q4_0, FVLM_TYPE_Q4_0)
DEF_TYPE32(q4_1, FVLM_TYPE_Q4_1)
DEF_TYPE32(q5_0, FVLM_TYPE_Q5_0)
DEF_TYPE32(q5_1, FVLM_TYPE_Q5_1)
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
#ifdef FVLM_Q8_VNNI
    .np = NP,
    .mp = MP_ROWS,
    .pack_block = PB32,
    .pack = {
        [FVLM_TYPE_Q8_0] = pack_q8_0, [FVLM_TYPE_Q4_0] = pack_q4_0, [FVLM_TYPE_Q4_1] = pack_q4_1,
        [FVLM_TYPE_Q5_0] = pack_q5_0, [FVLM_TYPE_Q5_1] = pack_q5_1,
    },
    .gemmp = {
        [FVLM_TYPE_Q8_0] = gemmp_q8_0, [FVLM_TYPE_Q4_0] = gemmp_q4_0, [FVLM_TYPE_Q4_1] = gemmp_q4_1,
        [FVLM_TYPE_Q5_0] = gemmp_q5_0, [FVLM_TYPE_Q5_1] = gemmp_q5_1,
    },
#endif
};
