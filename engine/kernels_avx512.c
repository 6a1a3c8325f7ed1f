/*
 * kernels_avx512.c — the AVX-512 table (kernels_arch.h): 16-lane dot tiles (4×4 for
 * batches, 1×8 for a single row), row conversion of f16 / bf16 / q8_0 / q4_0 / q4_1 /
 * q5_0 / q5_1 / q4_K / q5_K / q6_K weights to float32, and the element-wise kernels of kernels_vmath.h.
 *
 * Compiled alone with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c and
 * reached only through the table when cpu.c found those features. Every function is
 * checked against its scalar twin (tests/kernels). Not here: threading and the choice of
 * path (kernels.c).
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels_arch.h"

/* ---- dot tiles --------------------------------------------------------------------------- */

static inline __m512 ld_tail(const float *p, int64_t rem)
{
    return _mm512_maskz_loadu_ps((__mmask16)((1u << rem) - 1u), p);
}

static void tile_4x4(int64_t kc, const float *const *A, const float *const *B, float *acc,
                     int init)
{
    __m512 c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
    const float *a0 = A[0], *a1 = A[1], *a2 = A[2], *a3 = A[3];
    const float *b0 = B[0], *b1 = B[1], *b2 = B[2], *b3 = B[3];
    int64_t i = 0;

    if (init) {
        c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = _mm512_setzero_ps();
        c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = _mm512_setzero_ps();
    } else {
        c00 = _mm512_load_ps(acc + 0 * 16); c01 = _mm512_load_ps(acc + 1 * 16);
        c02 = _mm512_load_ps(acc + 2 * 16); c03 = _mm512_load_ps(acc + 3 * 16);
        c10 = _mm512_load_ps(acc + 4 * 16); c11 = _mm512_load_ps(acc + 5 * 16);
        c12 = _mm512_load_ps(acc + 6 * 16); c13 = _mm512_load_ps(acc + 7 * 16);
        c20 = _mm512_load_ps(acc + 8 * 16); c21 = _mm512_load_ps(acc + 9 * 16);
        c22 = _mm512_load_ps(acc + 10 * 16); c23 = _mm512_load_ps(acc + 11 * 16);
        c30 = _mm512_load_ps(acc + 12 * 16); c31 = _mm512_load_ps(acc + 13 * 16);
        c32 = _mm512_load_ps(acc + 14 * 16); c33 = _mm512_load_ps(acc + 15 * 16);
    }
#define STEP(LOAD_A, LOAD_B)                                                              \
    do {                                                                                  \
        const __m512 x0 = LOAD_A(a0), x1 = LOAD_A(a1), x2 = LOAD_A(a2), x3 = LOAD_A(a3);  \
        __m512 y = LOAD_B(b0);                                                            \
        c00 = _mm512_fmadd_ps(x0, y, c00); c10 = _mm512_fmadd_ps(x1, y, c10);             \
        c20 = _mm512_fmadd_ps(x2, y, c20); c30 = _mm512_fmadd_ps(x3, y, c30);             \
        y = LOAD_B(b1);                                                                   \
        c01 = _mm512_fmadd_ps(x0, y, c01); c11 = _mm512_fmadd_ps(x1, y, c11);             \
        c21 = _mm512_fmadd_ps(x2, y, c21); c31 = _mm512_fmadd_ps(x3, y, c31);             \
        y = LOAD_B(b2);                                                                   \
        c02 = _mm512_fmadd_ps(x0, y, c02); c12 = _mm512_fmadd_ps(x1, y, c12);             \
        c22 = _mm512_fmadd_ps(x2, y, c22); c32 = _mm512_fmadd_ps(x3, y, c32);             \
        y = LOAD_B(b3);                                                                   \
        c03 = _mm512_fmadd_ps(x0, y, c03); c13 = _mm512_fmadd_ps(x1, y, c13);             \
        c23 = _mm512_fmadd_ps(x2, y, c23); c33 = _mm512_fmadd_ps(x3, y, c33);             \
    } while (0)
#define LDF(p) _mm512_loadu_ps((p) + i)
#define LDT(p) ld_tail((p) + i, kc - i)
    for (; i + 16 <= kc; i += 16)
        STEP(LDF, LDF);
    if (i < kc)
        STEP(LDT, LDT);
    _mm512_store_ps(acc + 0 * 16, c00); _mm512_store_ps(acc + 1 * 16, c01);
    _mm512_store_ps(acc + 2 * 16, c02); _mm512_store_ps(acc + 3 * 16, c03);
    _mm512_store_ps(acc + 4 * 16, c10); _mm512_store_ps(acc + 5 * 16, c11);
    _mm512_store_ps(acc + 6 * 16, c12); _mm512_store_ps(acc + 7 * 16, c13);
    _mm512_store_ps(acc + 8 * 16, c20); _mm512_store_ps(acc + 9 * 16, c21);
    _mm512_store_ps(acc + 10 * 16, c22); _mm512_store_ps(acc + 11 * 16, c23);
    _mm512_store_ps(acc + 12 * 16, c30); _mm512_store_ps(acc + 13 * 16, c31);
    _mm512_store_ps(acc + 14 * 16, c32); _mm512_store_ps(acc + 15 * 16, c33);
#undef STEP
}

static void tile_1x8(int64_t kc, const float *const *A, const float *const *B, float *acc,
                     int init)
{
    __m512 c[8];
    const float *a = A[0];
    int64_t i = 0;
    #pragma GCC unroll 16
    for (int j = 0; j < 8; j++)
        c[j] = init ? _mm512_setzero_ps() : _mm512_load_ps(acc + 16 * j);
    for (; i + 16 <= kc; i += 16) {
        const __m512 x = _mm512_loadu_ps(a + i);
        #pragma GCC unroll 16
        for (int j = 0; j < 8; j++)
            c[j] = _mm512_fmadd_ps(x, _mm512_loadu_ps(B[j] + i), c[j]);
    }
    if (i < kc) {
        const __m512 x = ld_tail(a + i, kc - i);
        #pragma GCC unroll 16
        for (int j = 0; j < 8; j++)
            c[j] = _mm512_fmadd_ps(x, ld_tail(B[j] + i, kc - i), c[j]);
    }
    #pragma GCC unroll 16
    for (int j = 0; j < 8; j++)
        _mm512_store_ps(acc + 16 * j, c[j]);
#undef LDF
#undef LDT
}

/* lane i += lane i+8, then +4, +2, +1 */
static void reduce16(const float *acc, int n, float *out)
{
    for (int j = 0; j < n; j++) {
        const __m512 v = _mm512_load_ps(acc + 16 * j);
        __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
        __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
        out[j] = _mm_cvtss_f32(q);
    }
}

/* ---- row conversion ---------------------------------------------------------------------- */

static inline float ld_half(const unsigned char *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static void f16_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        /* weight rows stream from DRAM: fetch into L2 ahead of the hardware prefetcher
         * (harmless past the end: a prefetch never faults) */
        if ((i & 31) == 0)
            _mm_prefetch((const char *)p + 2 * i + 8192, _MM_HINT_T1);
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 2 * i))));
    }
    if (i < n)
        fvlm_dequantize_row(FVLM_TYPE_F16, p + 2 * i, dst + i, n - i);
}

static void bf16_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p + 2 * i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
    if (i < n)
        fvlm_dequantize_row(FVLM_TYPE_BF16, p + 2 * i, dst + i, n - i);
}

static void q8_0_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    for (int64_t b = 0; b < n / 32; b++, p += 34, dst += 32) {
        const __m512 d = _mm512_set1_ps(ld_half(p));
        const __m512i q0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 2)));
        const __m512i q1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 18)));
        _mm512_storeu_ps(dst, _mm512_mul_ps(d, _mm512_cvtepi32_ps(q0)));
        _mm512_storeu_ps(dst + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(q1)));
    }
}

/* 16 bytes of nibbles → elements 0..15 (low) and 16..31 (high) as int32 */
static inline void nibbles(const unsigned char *qs, __m512i *lo, __m512i *hi)
{
    const __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qs));
    *lo = _mm512_and_si512(w, _mm512_set1_epi32(15));
    *hi = _mm512_srli_epi32(w, 4);
}

static void q4_0_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    for (int64_t b = 0; b < n / 32; b++, p += 18, dst += 32) {
        const __m512 d = _mm512_set1_ps(ld_half(p));
        __m512i lo, hi;
        nibbles(p + 2, &lo, &hi);
        const __m512i eight = _mm512_set1_epi32(8);
        _mm512_storeu_ps(dst, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(lo, eight))));
        _mm512_storeu_ps(dst + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(hi, eight))));
    }
}

static void q4_1_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    for (int64_t b = 0; b < n / 32; b++, p += 20, dst += 32) {
        const __m512 d = _mm512_set1_ps(ld_half(p)), m = _mm512_set1_ps(ld_half(p + 2));
        __m512i lo, hi;
        nibbles(p + 4, &lo, &hi);
        _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(lo)), m));
        _mm512_storeu_ps(dst + 16, _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(hi)), m));
    }
}

/* q5: the fifth bits of elements 0..15 are bits 0..15 of qh, of 16..31 bits 16..31 */
static void q5_to_f32(const unsigned char *p, float *dst, int64_t n, int affine)
{
    const size_t bs = affine ? 24 : 22;
    for (int64_t b = 0; b < n / 32; b++, p += bs, dst += 32) {
        const __m512 d = _mm512_set1_ps(ld_half(p));
        const unsigned char *qh_p = p + (affine ? 4 : 2);
        uint32_t qh;
        __m512i lo, hi;
        memcpy(&qh, qh_p, 4);
        nibbles(qh_p + 4, &lo, &hi);
        lo = _mm512_mask_or_epi32(lo, (__mmask16)(qh & 0xffff), lo, _mm512_set1_epi32(16));
        hi = _mm512_mask_or_epi32(hi, (__mmask16)(qh >> 16), hi, _mm512_set1_epi32(16));
        if (affine) {
            const __m512 m = _mm512_set1_ps(ld_half(p + 2));
            _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(lo)), m));
            _mm512_storeu_ps(dst + 16, _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(hi)), m));
        } else {
            const __m512i s = _mm512_set1_epi32(16);
            _mm512_storeu_ps(dst, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(lo, s))));
            _mm512_storeu_ps(dst + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(hi, s))));
        }
    }
}

static void q5_0_to_f32(const void *src, float *dst, int64_t n)
{
    q5_to_f32(src, dst, n, 0);
}

static void q5_1_to_f32(const void *src, float *dst, int64_t n)
{
    q5_to_f32(src, dst, n, 1);
}

/* K-quants, in the scalar's order of operations: (d·sc)·q − dmin·mn, (d·sc)·(q − 32) */
static void k45_to_f32(const unsigned char *p, float *dst, int64_t n, int five)
{
    const size_t bs = five ? 176 : 144;
    for (int64_t b = 0; b < n / 256; b++, p += bs) {
        const float d = ld_half(p), dmin = ld_half(p + 2);
        const unsigned char *qh = p + 16, *qs = p + (five ? 48 : 16);
        for (int c = 0; c < 4; c++, qs += 32, dst += 64) {
            for (int h = 0; h < 2; h++) {
                uint8_t sc, mn;
                fvlm_k_scale_min(p + 4, 2 * c + h, &sc, &mn);
                const __m512 d1 = _mm512_set1_ps(d * (float)sc), m1 = _mm512_set1_ps(dmin * (float)mn);
                for (int g = 0; g < 2; g++) {
                    const __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16 * g)));
                    __m512i q = h ? _mm512_srli_epi32(w, 4) : _mm512_and_si512(w, _mm512_set1_epi32(15));
                    if (five) {
                        const __m512i hb = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qh + 16 * g)));
                        const __m512i bit = _mm512_and_si512(_mm512_srli_epi32(hb, 2 * c + h), _mm512_set1_epi32(1));
                        q = _mm512_or_si512(q, _mm512_slli_epi32(bit, 4));
                    }
                    _mm512_storeu_ps(dst + 32 * h + 16 * g,
                                     _mm512_sub_ps(_mm512_mul_ps(d1, _mm512_cvtepi32_ps(q)), m1));
                }
            }
        }
    }
}

static void q4_K_to_f32(const void *src, float *dst, int64_t n)
{
    k45_to_f32(src, dst, n, 0);
}

static void q5_K_to_f32(const void *src, float *dst, int64_t n)
{
    k45_to_f32(src, dst, n, 1);
}

static void q6_K_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    for (int64_t b = 0; b < n / 256; b++, p += 210) {
        const float d = ld_half(p + 208);
        const signed char *sc = (const signed char *)(p + 192);
        for (int hf = 0; hf < 2; hf++, dst += 128) {
            const unsigned char *ql = p + 64 * hf, *qh = p + 128 + 32 * hf;
            for (int l0 = 0; l0 < 32; l0 += 16) {
                const __m512i a = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + l0)));
                const __m512i bq = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + l0 + 32)));
                const __m512i hb = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qh + l0)));
                const __m512i f = _mm512_set1_epi32(15), t = _mm512_set1_epi32(3), o = _mm512_set1_epi32(32);
                const __m512i lo4[4] = {_mm512_and_si512(a, f), _mm512_and_si512(bq, f),
                                        _mm512_srli_epi32(a, 4), _mm512_srli_epi32(bq, 4)};
                for (int g = 0; g < 4; g++) {
                    const __m512i hi2 = _mm512_and_si512(_mm512_srli_epi32(hb, 2 * g), t);
                    const __m512i q = _mm512_sub_epi32(_mm512_or_si512(lo4[g], _mm512_slli_epi32(hi2, 4)), o);
                    const __m512 ds = _mm512_set1_ps(d * (float)sc[8 * hf + 2 * g + l0 / 16]);
                    _mm512_storeu_ps(dst + 32 * g + l0, _mm512_mul_ps(ds, _mm512_cvtepi32_ps(q)));
                }
            }
        }
    }
}

/* ---- element-wise ------------------------------------------------------------------------ */

typedef __m512 vf;
typedef __m512i vi;
#define VL 16
#define VM_(name) name##_avx512
static inline vf vf_set1(float x) { return _mm512_set1_ps(x); }
static inline vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void vf_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
static inline vf vf_abs(vf a) { return _mm512_abs_ps(a); }
static inline vf vf_sel_lt(vf a, vf b, vf x, vf y)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
}
static inline vf vf_sel_ge0(vf a, vf x, vf y)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_GE_OQ), y, x);
}
static inline float vf_hsum(vf v) { return _mm512_reduce_add_ps(v); }
static inline vi vf_rint_i(vf v) { return _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vf_from_i(vi v) { return _mm512_cvtepi32_ps(v); }
static inline vi vi_set1(int x) { return _mm512_set1_epi32(x); }
static inline vi vi_add(vi a, vi b) { return _mm512_add_epi32(a, b); }
static inline vi vi_sub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
static inline vi vi_srai1(vi a) { return _mm512_srai_epi32(a, 1); }
static inline vi vi_shl23(vi a) { return _mm512_slli_epi32(a, 23); }
static inline vf vf_from_bits(vi a) { return _mm512_castsi512_ps(a); }
#include "kernels_vmath.h"

const fvlm_kernels fvlm_kernels_avx512 = {
    .level = FVLM_CPU_AVX512,
    .lanes = 16,
    .tile_r = 4,
    .tile_c = 4,
    .tile = tile_4x4,
    .row_c = 8,
    .row_tile = tile_1x8,
    .reduce = reduce16,
    .to_f32 = {
        [FVLM_TYPE_F16] = f16_to_f32,
        [FVLM_TYPE_BF16] = bf16_to_f32,
        [FVLM_TYPE_Q8_0] = q8_0_to_f32,
        [FVLM_TYPE_Q4_0] = q4_0_to_f32,
        [FVLM_TYPE_Q4_1] = q4_1_to_f32,
        [FVLM_TYPE_Q5_0] = q5_0_to_f32,
        [FVLM_TYPE_Q5_1] = q5_1_to_f32,
        [FVLM_TYPE_Q4_K] = q4_K_to_f32,
        [FVLM_TYPE_Q5_K] = q5_K_to_f32,
        [FVLM_TYPE_Q6_K] = q6_K_to_f32,
    },
    .rmsnorm = rmsnorm_avx512,
    .layernorm = layernorm_avx512,
    .softmax = softmax_avx512,
    .silu = silu_avx512,
    .gelu_erf = gelu_erf_avx512,
    .rope_apply = rope_apply_avx512,
};
