/*
 * kernels_avx2.c — the AVX2 + FMA + F16C table (kernels_arch.h): 8-lane dot tiles (4×3 for
 * batches — twelve accumulators fit the sixteen ymm registers — and 1×8 for a single row),
 * row conversion of f16 / bf16 / q8_0 / q4_0 / q4_1 / q4_K / q5_K / q6_K weights
 * to float32, and the
 * element-wise kernels of kernels_vmath.h.
 *
 * Compiled alone with -mavx2 -mfma -mf16c and reached only through the table when cpu.c
 * found those features. Every function is checked against its scalar twin (tests/kernels).
 * Not here: threading and the choice of path (kernels.c).
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels_arch.h"

/* ---- dot tiles --------------------------------------------------------------------------- */

static inline __m256i tail_mask(int64_t rem)
{
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - rem));
}

static void tile_4x3(int64_t kc, const float *const *A, const float *const *B, float *acc,
                     int init)
{
    __m256 c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32;
    const float *a0 = A[0], *a1 = A[1], *a2 = A[2], *a3 = A[3];
    const float *b0 = B[0], *b1 = B[1], *b2 = B[2];
    int64_t i = 0;

    if (init) {
        c00 = c01 = c02 = c10 = c11 = c12 = _mm256_setzero_ps();
        c20 = c21 = c22 = c30 = c31 = c32 = _mm256_setzero_ps();
    } else {
        c00 = _mm256_load_ps(acc + 0 * 8); c01 = _mm256_load_ps(acc + 1 * 8);
        c02 = _mm256_load_ps(acc + 2 * 8); c10 = _mm256_load_ps(acc + 3 * 8);
        c11 = _mm256_load_ps(acc + 4 * 8); c12 = _mm256_load_ps(acc + 5 * 8);
        c20 = _mm256_load_ps(acc + 6 * 8); c21 = _mm256_load_ps(acc + 7 * 8);
        c22 = _mm256_load_ps(acc + 8 * 8); c30 = _mm256_load_ps(acc + 9 * 8);
        c31 = _mm256_load_ps(acc + 10 * 8); c32 = _mm256_load_ps(acc + 11 * 8);
    }
#define STEP(LD)                                                                          \
    do {                                                                                  \
        const __m256 y0 = LD(b0), y1 = LD(b1), y2 = LD(b2);                               \
        __m256 x = LD(a0);                                                                \
        c00 = _mm256_fmadd_ps(x, y0, c00); c01 = _mm256_fmadd_ps(x, y1, c01);             \
        c02 = _mm256_fmadd_ps(x, y2, c02);                                                \
        x = LD(a1);                                                                       \
        c10 = _mm256_fmadd_ps(x, y0, c10); c11 = _mm256_fmadd_ps(x, y1, c11);             \
        c12 = _mm256_fmadd_ps(x, y2, c12);                                                \
        x = LD(a2);                                                                       \
        c20 = _mm256_fmadd_ps(x, y0, c20); c21 = _mm256_fmadd_ps(x, y1, c21);             \
        c22 = _mm256_fmadd_ps(x, y2, c22);                                                \
        x = LD(a3);                                                                       \
        c30 = _mm256_fmadd_ps(x, y0, c30); c31 = _mm256_fmadd_ps(x, y1, c31);             \
        c32 = _mm256_fmadd_ps(x, y2, c32);                                                \
    } while (0)
#define LDF(p) _mm256_loadu_ps((p) + i)
#define LDT(p) _mm256_maskload_ps((p) + i, mk)
    for (; i + 8 <= kc; i += 8)
        STEP(LDF);
    if (i < kc) {
        const __m256i mk = tail_mask(kc - i);
        STEP(LDT);
    }
    _mm256_store_ps(acc + 0 * 8, c00); _mm256_store_ps(acc + 1 * 8, c01);
    _mm256_store_ps(acc + 2 * 8, c02); _mm256_store_ps(acc + 3 * 8, c10);
    _mm256_store_ps(acc + 4 * 8, c11); _mm256_store_ps(acc + 5 * 8, c12);
    _mm256_store_ps(acc + 6 * 8, c20); _mm256_store_ps(acc + 7 * 8, c21);
    _mm256_store_ps(acc + 8 * 8, c22); _mm256_store_ps(acc + 9 * 8, c30);
    _mm256_store_ps(acc + 10 * 8, c31); _mm256_store_ps(acc + 11 * 8, c32);
#undef STEP
}

static void tile_1x8(int64_t kc, const float *const *A, const float *const *B, float *acc,
                     int init)
{
    __m256 c0, c1, c2, c3, c4, c5, c6, c7;
    const float *a = A[0];
    int64_t i = 0;
    if (init) {
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = _mm256_setzero_ps();
    } else {
        c0 = _mm256_load_ps(acc); c1 = _mm256_load_ps(acc + 8);
        c2 = _mm256_load_ps(acc + 16); c3 = _mm256_load_ps(acc + 24);
        c4 = _mm256_load_ps(acc + 32); c5 = _mm256_load_ps(acc + 40);
        c6 = _mm256_load_ps(acc + 48); c7 = _mm256_load_ps(acc + 56);
    }
#define STEP1(LD)                                                                         \
    do {                                                                                  \
        const __m256 x = LD(a);                                                           \
        c0 = _mm256_fmadd_ps(x, LD(B[0]), c0); c1 = _mm256_fmadd_ps(x, LD(B[1]), c1);     \
        c2 = _mm256_fmadd_ps(x, LD(B[2]), c2); c3 = _mm256_fmadd_ps(x, LD(B[3]), c3);     \
        c4 = _mm256_fmadd_ps(x, LD(B[4]), c4); c5 = _mm256_fmadd_ps(x, LD(B[5]), c5);     \
        c6 = _mm256_fmadd_ps(x, LD(B[6]), c6); c7 = _mm256_fmadd_ps(x, LD(B[7]), c7);     \
    } while (0)
    for (; i + 8 <= kc; i += 8)
        STEP1(LDF);
    if (i < kc) {
        const __m256i mk = tail_mask(kc - i);
        STEP1(LDT);
    }
    _mm256_store_ps(acc, c0); _mm256_store_ps(acc + 8, c1);
    _mm256_store_ps(acc + 16, c2); _mm256_store_ps(acc + 24, c3);
    _mm256_store_ps(acc + 32, c4); _mm256_store_ps(acc + 40, c5);
    _mm256_store_ps(acc + 48, c6); _mm256_store_ps(acc + 56, c7);
#undef STEP1
#undef LDF
#undef LDT
}

/* lane i += lane i+4, then +2, +1 */
static void reduce8(const float *acc, int n, float *out)
{
    for (int j = 0; j < n; j++) {
        const __m256 v = _mm256_load_ps(acc + 8 * j);
        __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
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
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
    if (i < n)
        fvlm_dequantize_row(FVLM_TYPE_F16, p + 2 * i, dst + i, n - i);
}

static void bf16_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    if (i < n)
        fvlm_dequantize_row(FVLM_TYPE_BF16, p + 2 * i, dst + i, n - i);
}

static void q8_0_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    for (int64_t b = 0; b < n / 32; b++, p += 34, dst += 32) {
        const __m256 d = _mm256_set1_ps(ld_half(p));
        for (int g = 0; g < 4; g++) {
            const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2 + 8 * g)));
            _mm256_storeu_ps(dst + 8 * g, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q)));
        }
    }
}

static void q4_to_f32(const unsigned char *p, float *dst, int64_t n, int affine)
{
    const size_t bs = affine ? 20 : 18;
    for (int64_t b = 0; b < n / 32; b++, p += bs, dst += 32) {
        const __m256 d = _mm256_set1_ps(ld_half(p));
        const __m256 m = _mm256_set1_ps(affine ? ld_half(p + 2) : 0.0f);
        const unsigned char *qs = p + (affine ? 4 : 2);
        for (int g = 0; g < 2; g++) {
            const __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8 * g)));
            __m256i lo = _mm256_and_si256(w, _mm256_set1_epi32(15));
            __m256i hi = _mm256_srli_epi32(w, 4);
            if (affine) {
                _mm256_storeu_ps(dst + 8 * g, _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(lo)), m));
                _mm256_storeu_ps(dst + 16 + 8 * g,
                                 _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(hi)), m));
            } else {
                lo = _mm256_sub_epi32(lo, _mm256_set1_epi32(8));
                hi = _mm256_sub_epi32(hi, _mm256_set1_epi32(8));
                _mm256_storeu_ps(dst + 8 * g, _mm256_mul_ps(d, _mm256_cvtepi32_ps(lo)));
                _mm256_storeu_ps(dst + 16 + 8 * g, _mm256_mul_ps(d, _mm256_cvtepi32_ps(hi)));
            }
        }
    }
}

static void q4_0_to_f32(const void *src, float *dst, int64_t n)
{
    q4_to_f32(src, dst, n, 0);
}

static void q4_1_to_f32(const void *src, float *dst, int64_t n)
{
    q4_to_f32(src, dst, n, 1);
}

/* 8 bytes → 8 int32 */
static inline __m256i u8x8(const unsigned char *p)
{
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
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
                const __m256 d1 = _mm256_set1_ps(d * (float)sc), m1 = _mm256_set1_ps(dmin * (float)mn);
                for (int g = 0; g < 4; g++) {
                    const __m256i w = u8x8(qs + 8 * g);
                    __m256i q = h ? _mm256_srli_epi32(w, 4) : _mm256_and_si256(w, _mm256_set1_epi32(15));
                    if (five) {
                        const __m256i bit = _mm256_and_si256(_mm256_srli_epi32(u8x8(qh + 8 * g), 2 * c + h),
                                                             _mm256_set1_epi32(1));
                        q = _mm256_or_si256(q, _mm256_slli_epi32(bit, 4));
                    }
                    _mm256_storeu_ps(dst + 32 * h + 8 * g,
                                     _mm256_sub_ps(_mm256_mul_ps(d1, _mm256_cvtepi32_ps(q)), m1));
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
            for (int l0 = 0; l0 < 32; l0 += 8) {
                const __m256i a = u8x8(ql + l0), bq = u8x8(ql + l0 + 32), hb = u8x8(qh + l0);
                const __m256i f = _mm256_set1_epi32(15), t = _mm256_set1_epi32(3), o = _mm256_set1_epi32(32);
                const __m256i lo4[4] = {_mm256_and_si256(a, f), _mm256_and_si256(bq, f),
                                        _mm256_srli_epi32(a, 4), _mm256_srli_epi32(bq, 4)};
                for (int g = 0; g < 4; g++) {
                    const __m256i hi2 = _mm256_and_si256(_mm256_srli_epi32(hb, 2 * g), t);
                    const __m256i q = _mm256_sub_epi32(_mm256_or_si256(lo4[g], _mm256_slli_epi32(hi2, 4)), o);
                    const __m256 ds = _mm256_set1_ps(d * (float)sc[8 * hf + 2 * g + l0 / 16]);
                    _mm256_storeu_ps(dst + 32 * g + l0, _mm256_mul_ps(ds, _mm256_cvtepi32_ps(q)));
                }
            }
        }
    }
}

/* ---- element-wise ------------------------------------------------------------------------ */

typedef __m256 vf;
typedef __m256i vi;
#define VL 8
#define VM_(name) name##_avx2
static inline vf vf_set1(float x) { return _mm256_set1_ps(x); }
static inline vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void vf_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline vf vf_abs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline vf vf_sel_lt(vf a, vf b, vf x, vf y)
{
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
}
static inline vf vf_sel_ge0(vf a, vf x, vf y)
{
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_GE_OQ));
}
static inline float vf_hsum(vf v)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    return _mm_cvtss_f32(q);
}
static inline vi vf_rint_i(vf v) { return _mm256_cvtps_epi32(v); }   /* MXCSR: nearest */
static inline vf vf_from_i(vi v) { return _mm256_cvtepi32_ps(v); }
static inline vi vi_set1(int x) { return _mm256_set1_epi32(x); }
static inline vi vi_add(vi a, vi b) { return _mm256_add_epi32(a, b); }
static inline vi vi_sub(vi a, vi b) { return _mm256_sub_epi32(a, b); }
static inline vi vi_srai1(vi a) { return _mm256_srai_epi32(a, 1); }
static inline vi vi_shl23(vi a) { return _mm256_slli_epi32(a, 23); }
static inline vf vf_from_bits(vi a) { return _mm256_castsi256_ps(a); }
#include "kernels_vmath.h"

const fvlm_kernels fvlm_kernels_avx2 = {
    .level = FVLM_CPU_AVX2,
    .lanes = 8,
    .tile_r = 4,
    .tile_c = 3,
    .tile = tile_4x3,
    .row_c = 8,
    .row_tile = tile_1x8,
    .reduce = reduce8,
    .to_f32 = {
        [FVLM_TYPE_F16] = f16_to_f32,
        [FVLM_TYPE_BF16] = bf16_to_f32,
        [FVLM_TYPE_Q8_0] = q8_0_to_f32,
        [FVLM_TYPE_Q4_0] = q4_0_to_f32,
        [FVLM_TYPE_Q4_1] = q4_1_to_f32,
        [FVLM_TYPE_Q4_K] = q4_K_to_f32,
        [FVLM_TYPE_Q5_K] = q5_K_to_f32,
        [FVLM_TYPE_Q6_K] = q6_K_to_f32,
    },
    .rmsnorm = rmsnorm_avx2,
    .layernorm = layernorm_avx2,
    .softmax = softmax_avx2,
    .silu = silu_avx2,
    .gelu_erf = gelu_erf_avx2,
    .rope_apply = rope_apply_avx2,
};
