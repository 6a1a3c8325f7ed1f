/*
 * kernels_q8.h — the "fast" matrix product (FASTVLM_PRECISION_FAST): quantized weights times
 * activations quantized on the fly to 8 bits, with integer dot products, as llama.cpp
 * computes. Internal to the engine and its tests; the exact float path is kernels.h's.
 *
 * The numerics, defined once so that every implementation (the scalar twins in
 * kernels_q8.c, kernels_q8_x86.c for AVX2 and AVX-512 VNNI, kernels_q8_neon.c with and
 * without dotprod) gives the same bits (tests/kernels/test_q8.c; the numpy model in
 * tests/llm/test_fast.py follows the definition in float64):
 *
 * Activations, per row of k floats, in blocks of B = 32 (form FVLM_Q8_B32, for Q8_0, Q4_0,
 * Q4_1, Q5_0, Q5_1 weights) or B = 256 (FVLM_Q8_B256, for Q4_K, Q5_K, Q6_K):
 *   amax = max |x| over the block;  d = amax / 127 (float);  id = d ? 1/d : 0;
 *   q = round-half-to-even(x · id) as int8 in [-127, 127];  bsum[j] = Σ q over each 32.
 * (Non-finite activations give unspecified q.) d stays a float (not fp16 as in ggml's q8_0).
 *
 * A dot product of one weight row with one activation row keeps ONE float accumulator.
 * For each block b in order (a 32-block, or a 256 super-block) the integer
 *   P_b = Σ over the whole block of s_e · w_e · q_e
 * is exact in int32 (w_e the weight's integer value: q for Q8_0, nib−8 for Q4_0, q−16 for
 * Q5_0, q for Q4_1/Q5_1/Q4_K/Q5_K, q−32 for Q6_K; s_e the scale of e's sub-block for
 * K-quants — 32 elements, Q6_K 16 — and 1 otherwise; any summation order gives the same
 * integer, so an implementation may keep lanes of partial sums or use offset weights with
 * a correction, as long as the integer is P_b), and then
 *   acc = fmaf(dw_b · da_b, (float)P_b, acc)          (dw_b the weight's block scale,
 *                                                      dw_b · da_b rounded to float first)
 * A scalar term m collects what is not per element, in block order:
 *   Q4_1/Q5_1: m = fmaf(mw_b, da_b · (float)bsum_b, m)
 *   Q4_K/Q5_K: m = fmaf(−(dminw_b · da_b), (float)Σ_j mn_j · bsum_j, m)   (j: the 8 sub-blocks)
 * (m = 0 for the other types) and the result is acc + m (+ bias, added last). One float
 * per output is what lets a tile put outputs in the lanes of a vector (the column-per-lane
 * VNNI GEMM of kernels_q8_x86.c) instead of the elements of a dot product.
 * The order is the row's own: a row's result does not depend on how many rows are
 * computed together, on the tile shapes or on the threads (batch == token by token).
 *
 * Not here: the float path (kernels.h, kernels_arch.h) and the choice between the two
 * (llm.c, per session).
 */
#ifndef FVLM_KERNELS_Q8_H
#define FVLM_KERNELS_Q8_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu.h"
#include "tensor.h"
#include "threadpool.h"

enum { FVLM_Q8_B32 = 0, FVLM_Q8_B256 = 1, FVLM_Q8_FORMS = 2 };

/* The activation form a weight type needs, or -1 when the type has no fast kernel
 * (float types, unknown ids). */
int fvlm_q8_form(fvlm_type type);

/* One quantized activation row as the kernels read it. */
typedef struct fvlm_q8_row {
    const int8_t *qs;       /* [k] */
    const float *d;         /* [k / B] block scales */
    const int16_t *bsum;    /* [k / 32] Σ q per 32 elements */
} fvlm_q8_row;

/* m rows of k activations in the forms quantized so far. Owned by whoever computes (a
 * session's decoder state); the buffers grow on demand. */
typedef struct fvlm_q8_act {
    int64_t m, k;
    int64_t cap;            /* elements the buffers hold (m·k at most) */
    bool have[FVLM_Q8_FORMS];
    int8_t *qs[FVLM_Q8_FORMS];
    float *d[FVLM_Q8_FORMS];
    int16_t *bsum[FVLM_Q8_FORMS];
} fvlm_q8_act;

/* A tile of the product: out[r·RA + c] = dot(weight row w[r], activation row a[c]) for
 * the table's RW × RA (every pointer valid; the driver repeats rows to fill a tile). */
typedef void (*fvlm_q8_tile_fn)(int64_t k, const uint8_t *const *w, const fvlm_q8_row *a,
                                float *out);
/* Quantizes one row of k (a multiple of the form's block) into qs, d, bsum. */
typedef void (*fvlm_q8_quant_fn)(const float *x, int64_t k, int form, int8_t *qs, float *d,
                                 int16_t *bsum);

/* The packed GEMM (prefill): a panel of the table's np weight rows is packed once into
 * `buf` (pack_block bytes per 32 elements of k, 64-byte aligned), then multiplied with
 * activation rows [i0, i1) of `act` (in the type's form): y[(i − i0)·ldy + j] for the
 * panel's first `nvalid` rows j (+ bias[j] when bias is not NULL). Rows of the panel past
 * nvalid repeat a valid row. */
typedef void (*fvlm_q8_pack_fn)(int64_t k, const uint8_t *const *w, uint8_t *buf);
typedef void (*fvlm_q8_gemmp_fn)(int64_t k, const uint8_t *buf, const fvlm_q8_act *act, int64_t i0,
                                 int64_t i1, float *y, int64_t ldy, int nvalid, const float *bias);

typedef struct fvlm_q8_kernels {
    const char *name;                     /* "scalar", "avx2", "avx512vnni", "neon", "neondot" */
    fvlm_q8_quant_fn quantize;
    int rw, ra;                           /* batch tile: RW weight rows × RA activation rows */
    int rw1;                              /* single-row tile: rw1 weight rows × 1 */
    fvlm_q8_tile_fn gemm[FVLM_TYPE_COUNT];   /* NULL: this type uses the scalar twin */
    fvlm_q8_tile_fn gemv[FVLM_TYPE_COUNT];
    int np;                               /* packed GEMM: weight rows per panel (0: none) */
    int mp;                               /* ... used from this many activation rows */
    int pack_block;                       /* ... packed bytes per 32 elements of k */
    fvlm_q8_pack_fn pack[FVLM_TYPE_COUNT];   /* NULL: this type uses the tiles */
    fvlm_q8_gemmp_fn gemmp[FVLM_TYPE_COUNT];
} fvlm_q8_kernels;

/* The table for the active kernel level (cpu.h; AVX-512 without VNNI uses the AVX2 one,
 * NEON with dotprod the dotprod one). Never NULL. */
const fvlm_q8_kernels *fvlm_q8_kernels_get(void);
/* Every table this CPU can run (scalar first); returns how many, at most `max`. */
int fvlm_q8_kernels_all(const fvlm_q8_kernels **out, int max);

/* (Re)quantizes X [m][k] into `act` in `form` (threaded over rows). Returns false when the
 * buffers cannot grow (out of memory); `act` is then empty. */
bool fvlm_q8_act_quantize(const fvlm_q8_kernels *kt, fvlm_pool *pool, fvlm_q8_act *act,
                          const float *X, int64_t m, int64_t k, int form);
/* Grows the buffers to hold `elems` (rows × columns) in every form; false when out of
 * memory. Quantizing within the reserve then never allocates. */
bool fvlm_q8_act_reserve(fvlm_q8_act *act, int64_t elems);
/* Forgets the quantized forms (the float rows changed). */
void fvlm_q8_act_reset(fvlm_q8_act *act);
void fvlm_q8_act_free(fvlm_q8_act *act);
/* The view of row i in `form`. */
fvlm_q8_row fvlm_q8_act_row(const fvlm_q8_act *act, int form, int64_t i);

/* Y[m][n] = act · Wᵀ (+ bias) with W's type in fvlm_q8_form(W->type) and act holding that
 * form (m = act->m rows). Threaded over n. */
void fvlm_matmul_q8(const fvlm_q8_kernels *kt, fvlm_pool *pool, const fvlm_tensor *W,
                    const fvlm_q8_act *act, float *Y, const float *bias);

/* ---- the scalar twins (kernels_q8.c) ---------------------------------------------------- */
void fvlm_q8_quantize_scalar(const float *x, int64_t k, int form, int8_t *qs, float *d,
                             int16_t *bsum);
/* One dot product by the definition above (weight row of `type`, k elements). */
float fvlm_q8_dot_scalar(fvlm_type type, int64_t k, const uint8_t *w, const fvlm_q8_row *a);

/* Per-architecture tables (defined only where compiled). */
extern const fvlm_q8_kernels fvlm_q8_kernels_avx2;
extern const fvlm_q8_kernels fvlm_q8_kernels_avx512vnni;
extern const fvlm_q8_kernels fvlm_q8_kernels_neon;
extern const fvlm_q8_kernels fvlm_q8_kernels_neondot;

#endif
