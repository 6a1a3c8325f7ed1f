/*
 * kernels_neon.c — the aarch64 Advanced SIMD table (kernels_arch.h): 4-lane dot tiles (4×4
 * for batches, 1×8 for a single row), row conversion of f16 / bf16 / q8_0 / q4_0 weights to
 * float32, and the element-wise kernels of kernels_vmath.h.
 *
 * Built only for aarch64 (NEON is part of the base architecture, no extra flags); checked
 * against the scalar twins by tests/kernels, natively or under qemu-aarch64
 * (tests/cross/run_arm64.sh). Not here: threading and the choice of path (kernels.c).
 */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels_arch.h"

/* ---- dot tiles --------------------------------------------------------------------------- */

static inline float32x4_t ld_tail(const float *p, int64_t rem)
{
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(t, p, (size_t)rem * sizeof(float));
    return vld1q_f32(t);
}

static void tile_4x4(int64_t kc, const float *const *A, const float *const *B, float *acc,
                     int init)
{
    float32x4_t c[4][4];
    int64_t i = 0;
    #pragma GCC unroll 16
    for (int r = 0; r < 4; r++)
        #pragma GCC unroll 16
        for (int j = 0; j < 4; j++)
            c[r][j] = init ? vdupq_n_f32(0.0f) : vld1q_f32(acc + 4 * (4 * r + j));
    for (; i + 4 <= kc; i += 4) {
        const float32x4_t x0 = vld1q_f32(A[0] + i), x1 = vld1q_f32(A[1] + i);
        const float32x4_t x2 = vld1q_f32(A[2] + i), x3 = vld1q_f32(A[3] + i);
        #pragma GCC unroll 16
        for (int j = 0; j < 4; j++) {
            const float32x4_t y = vld1q_f32(B[j] + i);
            c[0][j] = vfmaq_f32(c[0][j], x0, y);
            c[1][j] = vfmaq_f32(c[1][j], x1, y);
            c[2][j] = vfmaq_f32(c[2][j], x2, y);
            c[3][j] = vfmaq_f32(c[3][j], x3, y);
        }
    }
    if (i < kc) {
        const float32x4_t x0 = ld_tail(A[0] + i, kc - i), x1 = ld_tail(A[1] + i, kc - i);
        const float32x4_t x2 = ld_tail(A[2] + i, kc - i), x3 = ld_tail(A[3] + i, kc - i);
        #pragma GCC unroll 16
        for (int j = 0; j < 4; j++) {
            const float32x4_t y = ld_tail(B[j] + i, kc - i);
            c[0][j] = vfmaq_f32(c[0][j], x0, y);
            c[1][j] = vfmaq_f32(c[1][j], x1, y);
            c[2][j] = vfmaq_f32(c[2][j], x2, y);
            c[3][j] = vfmaq_f32(c[3][j], x3, y);
        }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < 4; r++)
        #pragma GCC unroll 16
        for (int j = 0; j < 4; j++)
            vst1q_f32(acc + 4 * (4 * r + j), c[r][j]);
}

static void tile_1x8(int64_t kc, const float *const *A, const float *const *B, float *acc,
                     int init)
{
    float32x4_t c[8];
    int64_t i = 0;
    #pragma GCC unroll 16
    for (int j = 0; j < 8; j++)
        c[j] = init ? vdupq_n_f32(0.0f) : vld1q_f32(acc + 4 * j);
    for (; i + 4 <= kc; i += 4) {
        const float32x4_t x = vld1q_f32(A[0] + i);
        #pragma GCC unroll 16
        for (int j = 0; j < 8; j++)
            c[j] = vfmaq_f32(c[j], x, vld1q_f32(B[j] + i));
    }
    if (i < kc) {
        const float32x4_t x = ld_tail(A[0] + i, kc - i);
        #pragma GCC unroll 16
        for (int j = 0; j < 8; j++)
            c[j] = vfmaq_f32(c[j], x, ld_tail(B[j] + i, kc - i));
    }
    #pragma GCC unroll 16
    for (int j = 0; j < 8; j++)
        vst1q_f32(acc + 4 * j, c[j]);
}

/* lane i += lane i+2, then +1 */
static void reduce4(const float *acc, int n, float *out)
{
    for (int j = 0; j < n; j++) {
        const float32x4_t v = vld1q_f32(acc + 4 * j);
        const float32x4_t s = vaddq_f32(v, vextq_f32(v, v, 2));
        out[j] = vgetq_lane_f32(s, 0) + vgetq_lane_f32(s, 1);
    }
}

/* ---- row conversion ---------------------------------------------------------------------- */

static inline float ld_half(const unsigned char *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return fvlm_f16_to_f32(h);
}

static void f16_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p + 2 * i))));
    if (i < n)
        fvlm_dequantize_row(FVLM_TYPE_F16, p + 2 * i, dst + i, n - i);
}

static void bf16_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t w = vreinterpretq_u16_u8(vld1q_u8(p + 2 * i));
        vst1q_f32(dst + i, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(w), 16)));
        vst1q_f32(dst + i + 4, vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(w), 16)));
    }
    if (i < n)
        fvlm_dequantize_row(FVLM_TYPE_BF16, p + 2 * i, dst + i, n - i);
}

static inline void store_s16x8(float *dst, int16x8_t v, float d)
{
    vst1q_f32(dst, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(v))), d));
    vst1q_f32(dst + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(v))), d));
}

static void q8_0_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    for (int64_t b = 0; b < n / 32; b++, p += 34, dst += 32) {
        const float d = ld_half(p);
        const int8x16_t q0 = vreinterpretq_s8_u8(vld1q_u8(p + 2));
        const int8x16_t q1 = vreinterpretq_s8_u8(vld1q_u8(p + 18));
        store_s16x8(dst, vmovl_s8(vget_low_s8(q0)), d);
        store_s16x8(dst + 8, vmovl_s8(vget_high_s8(q0)), d);
        store_s16x8(dst + 16, vmovl_s8(vget_low_s8(q1)), d);
        store_s16x8(dst + 24, vmovl_s8(vget_high_s8(q1)), d);
    }
}

static void q4_0_to_f32(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    for (int64_t b = 0; b < n / 32; b++, p += 18, dst += 32) {
        const float d = ld_half(p);
        const uint8x16_t w = vld1q_u8(p + 2);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(w, vdupq_n_u8(15))), vdupq_n_s8(8));
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(w, 4)), vdupq_n_s8(8));
        store_s16x8(dst, vmovl_s8(vget_low_s8(lo)), d);
        store_s16x8(dst + 8, vmovl_s8(vget_high_s8(lo)), d);
        store_s16x8(dst + 16, vmovl_s8(vget_low_s8(hi)), d);
        store_s16x8(dst + 24, vmovl_s8(vget_high_s8(hi)), d);
    }
}

/* ---- element-wise ------------------------------------------------------------------------ */

typedef float32x4_t vf;
typedef int32x4_t vi;
#define VL 4
#define VM_(name) name##_neon
static inline vf vf_set1(float x) { return vdupq_n_f32(x); }
static inline vf vf_load(const float *p) { return vld1q_f32(p); }
static inline void vf_store(float *p, vf v) { vst1q_f32(p, v); }
static inline vf vf_add(vf a, vf b) { return vaddq_f32(a, b); }
static inline vf vf_sub(vf a, vf b) { return vsubq_f32(a, b); }
static inline vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
static inline vf vf_div(vf a, vf b) { return vdivq_f32(a, b); }
static inline vf vf_fma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
static inline vf vf_max(vf a, vf b) { return vmaxq_f32(a, b); }
static inline vf vf_min(vf a, vf b) { return vminq_f32(a, b); }
static inline vf vf_abs(vf a) { return vabsq_f32(a); }
static inline vf vf_sel_lt(vf a, vf b, vf x, vf y) { return vbslq_f32(vcltq_f32(a, b), x, y); }
static inline vf vf_sel_ge0(vf a, vf x, vf y)
{
    return vbslq_f32(vcgeq_f32(a, vdupq_n_f32(0.0f)), x, y);
}
static inline float vf_hsum(vf v) { return vaddvq_f32(v); }
static inline vi vf_rint_i(vf v) { return vcvtnq_s32_f32(v); }
static inline vf vf_from_i(vi v) { return vcvtq_f32_s32(v); }
static inline vi vi_set1(int x) { return vdupq_n_s32(x); }
static inline vi vi_add(vi a, vi b) { return vaddq_s32(a, b); }
static inline vi vi_sub(vi a, vi b) { return vsubq_s32(a, b); }
static inline vi vi_srai1(vi a) { return vshrq_n_s32(a, 1); }
static inline vi vi_shl23(vi a) { return vshlq_n_s32(a, 23); }
static inline vf vf_from_bits(vi a) { return vreinterpretq_f32_s32(a); }
#include "kernels_vmath.h"

const fvlm_kernels fvlm_kernels_neon = {
    .level = FVLM_CPU_NEON,
    .lanes = 4,
    .tile_r = 4,
    .tile_c = 4,
    .tile = tile_4x4,
    .row_c = 8,
    .row_tile = tile_1x8,
    .reduce = reduce4,
    .to_f32 = {
        [FVLM_TYPE_F16] = f16_to_f32,
        [FVLM_TYPE_BF16] = bf16_to_f32,
        [FVLM_TYPE_Q8_0] = q8_0_to_f32,
        [FVLM_TYPE_Q4_0] = q4_0_to_f32,
    },
    .rmsnorm = rmsnorm_neon,
    .layernorm = layernorm_neon,
    .softmax = softmax_neon,
    .silu = silu_neon,
    .gelu_erf = gelu_erf_neon,
    .rope_apply = rope_apply_neon,
};
