/*
 * kernels.h — the arithmetic the models are made of. Every function here has a plain
 * scalar implementation (kernels_scalar.c, kernels_conv.c); the matrix products and the
 * element-wise kernels dispatch (kernels.c) to the SIMD table of the running CPU (AVX2,
 * AVX-512, NEON: kernels_arch.h, cpu.h; FASTVLM_CPU=scalar|avx2|avx512|neon lowers it),
 * each checked against its scalar twin (tests/kernels).
 *
 * Conventions: row-major float32 activations; a weight W is an fvlm_tensor with
 * ne = {k, n} (n rows of k elements, any supported type), i.e. PyTorch's Linear [n, k].
 * Image maps are planar CHW float32 (channel c, row y, column x at c*H*W + y*W + x).
 * Not here: threading policy (callers pass a pool; NULL = run on the caller).
 */
#ifndef FVLM_KERNELS_H
#define FVLM_KERNELS_H

#include <stdint.h>
#include <stddef.h>
#include "tensor.h"
#include "threadpool.h"

/* ---- matrix products (kernels.c → kernels_scalar.c / kernels_<arch>.c) ------------ */

/* Y[m][n] = X[m][k] · Wᵀ (+ bias[n] if bias != NULL). W: ne = {k, n}, any supported type.
 * Threaded over n (and m). X and Y must not alias. */
void fvlm_matmul(fvlm_pool *pool, const fvlm_tensor *W, const float *X, int64_t m,
                 float *Y, const float *bias);

/* Plain float GEMM: C[m][n] = A[m][k] · B[n][k]ᵀ (B row-major n×k), optionally + bias[n].
 * Used where both operands are activations (attention) or f32 weights held in memory. */
void fvlm_sgemm_nt(fvlm_pool *pool, int64_t m, int64_t n, int64_t k,
                   const float *A, int64_t lda, const float *B, int64_t ldb,
                   float *C, int64_t ldc, const float *bias);

/* ---- element-wise and normalisation (kernels.c → scalar / SIMD) --------------------- */

/* out[i] = x[i] / sqrt(mean(x²) + eps) * w[i], over n elements. out may equal x. */
void fvlm_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);
/* LayerNorm over n elements (biased variance), then ×w + b. out may equal x. */
void fvlm_layernorm(float *out, const float *x, const float *w, const float *b,
                    int64_t n, float eps);
/* In-place softmax over n elements (max-subtracted). */
void fvlm_softmax(float *x, int64_t n);
void fvlm_silu(float *x, int64_t n);               /* x·σ(x) */
void fvlm_gelu_erf(float *x, int64_t n);           /* exact: 0.5·x·(1+erf(x/√2)) */
/* Rotate-half RoPE on one head vector of head_dim at position pos:
 * for i < d/2: (x[i], x[i+d/2]) rotated by angle pos·theta^(-2i/d). */
void fvlm_rope_rotate_half(float *x, int32_t head_dim, int32_t pos, float theta);
/* The same split in two, so a forward pass computes the angles of a position once and
 * applies them to every head of every layer: cs[0..d/2) = cos, cs[d/2..d) = sin of
 * pos·theta^(-2i/d), computed in double. */
void fvlm_rope_sincos(float *cs, int32_t head_dim, int32_t pos, float theta);
void fvlm_rope_apply(float *x, const float *cs, int32_t head_dim);

/* ---- convolutions for the vision tower (kernels_conv.c) ---------------------------- */

/* Grouped 2-D convolution, zero padding, NCHW single image.
 * in [cin][h][w] → out [cout][oh][ow], oh = (h + 2·pad − k)/stride + 1.
 * groups divides cin and cout; weight f32 [cout][cin/groups][k][k]; bias [cout] or NULL.
 * Covers the stem 3×3 (groups 1), depthwise (groups = cin = cout) and the
 * 2-outputs-per-input-channel 7×7 / 3×3 convs (groups = cin, cout = 2·cin). */
void fvlm_conv2d(fvlm_pool *pool, const float *in, int32_t cin, int32_t h, int32_t w,
                 const float *weight, const float *bias, int32_t cout, int32_t k,
                 int32_t stride, int32_t pad, int32_t groups, float *out);

#endif
