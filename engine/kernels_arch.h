/*
 * kernels_arch.h — the table of per-architecture kernels behind kernels.h, and the scalar
 * twins they are checked against. Internal to the engine and its tests.
 *
 * One table per level (cpu.h): kernels_scalar.c + kernels.c give the scalar one,
 * kernels_avx2.c / kernels_avx512.c (x86-64) and kernels_neon.c (aarch64) the others, each
 * compiled with its own target flags and reached only through fvlm_kernels_get().
 *
 * The matrix products are built from "dot tiles": R rows of A against C rows of B, both
 * contiguous along k. Every output is one chain of fused multiply-adds per vector lane
 * (lane l takes k ≡ l mod V, in order of k; zeros pad the tail) followed by the same
 * halving reduction (lane i += lane i + V/2, then V/4, ... 1). A tile's shape therefore
 * never changes a result: a batch row equals the row computed alone, bit for bit, whatever
 * the thread count (the decoder's tests rely on this). The accumulators live in memory
 * between calls (acc[r·C + c][V]) so that k can be processed in chunks (a multiple of V)
 * while a weight panel is dequantized piece by piece.
 *
 * Not here: the drivers (threading, panels, dispatch: kernels.c).
 */
#ifndef FVLM_KERNELS_ARCH_H
#define FVLM_KERNELS_ARCH_H

#include <stdint.h>

#include "cpu.h"
#include "kernels.h"
#include "tensor.h"

#define FVLM_MAX_LANES 16      /* widest vector in floats (AVX-512) */
#define FVLM_TILE_MAX 16       /* largest R·C of any table */

/* Converts n elements of a row of some type to float32 (n a multiple of its block). */
typedef void (*fvlm_to_f32_fn)(const void *src, float *dst, int64_t n);

/* acc (R·C vectors of V floats) = (init ? 0 : acc) + lane-wise Σ A[r][i]·B[c][i], i < kc.
 * kc is a multiple of V except in a row's last chunk. */
typedef void (*fvlm_tile_fn)(int64_t kc, const float *const *A, const float *const *B,
                             float *acc, int init);

typedef struct fvlm_kernels {
    fvlm_cpu_level level;
    int lanes;                 /* V */
    /* dot tiles; NULL in the scalar table (its matmul is kernels_scalar.c's) */
    int tile_r, tile_c;        /* the batch tile: R rows of A × C rows of B */
    fvlm_tile_fn tile;
    int row_c;                 /* the single-row tile: 1 row of A × row_c rows of B */
    fvlm_tile_fn row_tile;
    /* out[j] = the halving reduction of acc vector j, j < n */
    void (*reduce)(const float *acc, int n, float *out);
    /* row conversion per type; NULL entries fall back to fvlm_dequantize_row */
    fvlm_to_f32_fn to_f32[FVLM_TYPE_COUNT];
    /* element-wise (same contracts as kernels.h) */
    void (*rmsnorm)(float *out, const float *x, const float *w, int64_t n, float eps);
    void (*layernorm)(float *out, const float *x, const float *w, const float *b, int64_t n,
                      float eps);
    void (*softmax)(float *x, int64_t n);
    void (*silu)(float *x, int64_t n);
    void (*gelu_erf)(float *x, int64_t n);
    void (*rope_apply)(float *x, const float *cs, int32_t head_dim);
} fvlm_kernels;

/* The table of the active level (cpu.h), chosen once. Never NULL. */
const fvlm_kernels *fvlm_kernels_get(void);
/* The table of `level`, or NULL when the CPU lacks it or the build does not contain it. */
const fvlm_kernels *fvlm_kernels_for_level(fvlm_cpu_level level);

/* The drivers with an explicit table (tests run them for every level). */
void fvlm_matmul_with(const fvlm_kernels *kt, fvlm_pool *pool, const fvlm_tensor *W,
                      const float *X, int64_t m, float *Y, const float *bias);
void fvlm_sgemm_nt_with(const fvlm_kernels *kt, fvlm_pool *pool, int64_t m, int64_t n,
                        int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float *C, int64_t ldc, const float *bias);

/* ---- the scalar twins (kernels_scalar.c): the reference of every SIMD kernel --------- */
void fvlm_matmul_scalar(fvlm_pool *pool, const fvlm_tensor *W, const float *X, int64_t m,
                        float *Y, const float *bias);
void fvlm_sgemm_nt_scalar(fvlm_pool *pool, int64_t m, int64_t n, int64_t k, const float *A,
                          int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                          const float *bias);
void fvlm_rmsnorm_scalar(float *out, const float *x, const float *w, int64_t n, float eps);
void fvlm_layernorm_scalar(float *out, const float *x, const float *w, const float *b,
                           int64_t n, float eps);
void fvlm_softmax_scalar(float *x, int64_t n);
void fvlm_silu_scalar(float *x, int64_t n);
void fvlm_gelu_erf_scalar(float *x, int64_t n);
void fvlm_rope_apply_scalar(float *x, const float *cs, int32_t head_dim);

/* The lane model of the dot tiles in plain C (kernels.c): V lanes, fmaf, zero-padded tail,
 * for an R×C tile — what every SIMD tile must equal bit for bit. */
void fvlm_tile_twin(int V, int R, int C, int64_t kc, const float *const *A,
                    const float *const *B, float *acc, int init);
void fvlm_reduce_twin(int V, const float *acc, int n, float *out);

/* Per-architecture tables (NULL-free only where compiled). */
extern const fvlm_kernels fvlm_kernels_avx2;
extern const fvlm_kernels fvlm_kernels_avx512;
extern const fvlm_kernels fvlm_kernels_neon;

#endif
