/*
 * kernels.c — the entry points of kernels.h for matrix products and element-wise work:
 * they pick the active table (kernels_arch.h, chosen once from cpu.h) and, for the SIMD
 * levels, drive its dot tiles over the matrices: threading, weight panels, tails.
 *
 * Y = X·Wᵀ, W n rows of k (any supported type):
 *   - B rows in float32 (f32 weights, sgemm's B): tiles read them in place;
 *   - m ≤ R (decode, a few rows): each group of C weight rows is converted to float32 in
 *     chunks of KCH columns into a small stack buffer and dotted at once, so every weight
 *     byte is read from memory once and the converted floats never leave L1;
 *   - m > R (prefill, the vision tower's 1×1 convs): a panel of P weight rows (≈256 KiB of
 *     floats, fits L2) is converted once and reused by all m rows, R at a time.
 * All three produce the same bits for an output (kernels_arch.h), so the choice between
 * them, the thread count and the split are invisible in the results. Threads split the n
 * weight rows (or, when n is small and m large, the m rows).
 *
 * Also here: the scalar table, and the plain-C lane model of the tiles (the twin the SIMD
 * tiles are tested against). Not here: the kernels themselves (kernels_scalar.c,
 * kernels_<arch>.c), convolutions (kernels_conv.c).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_arch.h"

#define KCH 1024                 /* columns per chunk when streaming (multiple of 256, V) */
#define PANEL_BYTES (256 * 1024) /* converted weight panel per thread, m > R */

/* ---- tables -------------------------------------------------------------------------- */

static const fvlm_kernels kernels_scalar_table = {
    .level = FVLM_CPU_SCALAR,
    .lanes = 1,
    .rmsnorm = fvlm_rmsnorm_scalar,
    .layernorm = fvlm_layernorm_scalar,
    .softmax = fvlm_softmax_scalar,
    .silu = fvlm_silu_scalar,
    .gelu_erf = fvlm_gelu_erf_scalar,
    .rope_apply = fvlm_rope_apply_scalar,
};

const fvlm_kernels *fvlm_kernels_for_level(fvlm_cpu_level level)
{
    if (!fvlm_cpu_level_supported(level))
        return NULL;
    switch (level) {
    case FVLM_CPU_SCALAR:
        return &kernels_scalar_table;
#ifdef FVLM_HAVE_AVX2
    case FVLM_CPU_AVX2:
        return &fvlm_kernels_avx2;
#endif
#ifdef FVLM_HAVE_AVX512
    case FVLM_CPU_AVX512:
        return &fvlm_kernels_avx512;
#endif
#ifdef FVLM_HAVE_NEON
    case FVLM_CPU_NEON:
        return &fvlm_kernels_neon;
#endif
    default:
        return NULL;
    }
}

static const fvlm_kernels *active_table;
static pthread_once_t active_once = PTHREAD_ONCE_INIT;

static void active_init(void)
{
    active_table = fvlm_kernels_for_level(fvlm_cpu_level_active());
    if (!active_table)
        active_table = &kernels_scalar_table;
}

const fvlm_kernels *fvlm_kernels_get(void)
{
    pthread_once(&active_once, active_init);
    return active_table;
}

/* ---- the lane model ------------------------------------------------------------------ */

void fvlm_tile_twin(int V, int R, int C, int64_t kc, const float *const *A,
                    const float *const *B, float *acc, int init)
{
    const int64_t kv = (kc + V - 1) / V * V;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            float *v = acc + (size_t)(r * C + c) * V;
            for (int l = 0; l < V; l++) {
                float s = init ? 0.0f : v[l];
                for (int64_t i = l; i < kv; i += V) {
                    const float a = i < kc ? A[r][i] : 0.0f, b = i < kc ? B[c][i] : 0.0f;
                    s = fmaf(a, b, s);
                }
                v[l] = s;
            }
        }
}

void fvlm_reduce_twin(int V, const float *acc, int n, float *out)
{
    for (int j = 0; j < n; j++) {
        float t[FVLM_MAX_LANES];
        memcpy(t, acc + (size_t)j * V, (size_t)V * sizeof *t);
        for (int w = V / 2; w >= 1; w /= 2)
            for (int l = 0; l < w; l++)
                t[l] = t[l] + t[l + w];
        out[j] = t[0];
    }
}

/* ---- the driver ------------------------------------------------------------------------ */

typedef struct mm_job {
    const fvlm_kernels *kt;
    int64_t m, n, k;
    const float *A;            /* [m][lda] */
    int64_t lda;
    const float *Bf;           /* float32 B rows [n][ldb], or NULL */
    int64_t ldb;
    const unsigned char *Bq;   /* typed B rows (row_bytes apart) when Bf is NULL */
    size_t row_bytes;
    fvlm_type type;
    uint32_t block_size, type_size;
    float *C;                  /* [m][ldc] */
    int64_t ldc;
    const float *bias;         /* [n] or NULL */
    int split_m;               /* threads split the m rows instead of the n rows */
} mm_job;

static void convert(const mm_job *J, const unsigned char *src, float *dst, int64_t n)
{
    fvlm_to_f32_fn f = J->kt->to_f32[J->type];
    if (f)
        f(src, dst, n);
    else
        fvlm_dequantize_row(J->type, src, dst, n);
}

/* Writes the R×C tile at (i, j) (clipped to i1, j1) from its reduced sums. */
static void store_tile(const mm_job *J, const float *out, int R, int C, int64_t i, int64_t i1,
                       int64_t j, int64_t j1)
{
    for (int r = 0; r < R && i + r < i1; r++)
        for (int c = 0; c < C && j + c < j1; c++)
            J->C[(i + r) * J->ldc + j + c] = out[r * C + c] + (J->bias ? J->bias[j + c] : 0.0f);
}

/* Full-k tiles over A rows [i0, i1) × B rows [j0, j1) whose float32 rows are brow(j). */
static void run_tiles(const mm_job *J, int R, int C, fvlm_tile_fn tile, int64_t i0, int64_t i1,
                      int64_t j0, int64_t j1, const float *bbase, int64_t bstride)
{
    const fvlm_kernels *kt = J->kt;
    float acc[FVLM_TILE_MAX * FVLM_MAX_LANES] __attribute__((aligned(64)));
    float out[FVLM_TILE_MAX];
    const float *Ap[FVLM_TILE_MAX], *Bp[FVLM_TILE_MAX];

    for (int64_t i = i0; i < i1; i += R) {
        for (int r = 0; r < R; r++)   /* rows past the end repeat the last one (discarded) */
            Ap[r] = J->A + (i + r < i1 ? i + r : i1 - 1) * J->lda;
        for (int64_t j = j0; j < j1; j += C) {
            for (int c = 0; c < C; c++)
                Bp[c] = bbase + ((j + c < j1 ? j + c : j1 - 1) - j0) * bstride;
            tile(J->k, Ap, Bp, acc, 1);
            kt->reduce(acc, R * C, out);
            store_tile(J, out, R, C, i, i1, j, j1);
        }
    }
}

/* m ≤ R rows, typed B: convert C rows at a time in chunks of KCH columns (stack buffer). */
static void run_streamed(const mm_job *J, int R, int C, fvlm_tile_fn tile, int64_t i0,
                         int64_t i1, int64_t j0, int64_t j1)
{
    const fvlm_kernels *kt = J->kt;
    float acc[FVLM_TILE_MAX * FVLM_MAX_LANES] __attribute__((aligned(64)));
    float buf[8 * KCH] __attribute__((aligned(64)));
    float out[FVLM_TILE_MAX];
    const float *Ap[FVLM_TILE_MAX], *Bp[FVLM_TILE_MAX];

    for (int r = 0; r < R; r++)
        Ap[r] = J->A + (i0 + r < i1 ? i0 + r : i1 - 1) * J->lda;
    for (int64_t j = j0; j < j1; j += C) {
        const int nc = (int)(j1 - j < C ? j1 - j : C);
        for (int64_t c0 = 0; c0 < J->k; c0 += KCH) {
            const int64_t kc = J->k - c0 < KCH ? J->k - c0 : KCH;
            const size_t off = (size_t)(c0 / J->block_size) * J->type_size;
            const float *Ac[FVLM_TILE_MAX];
            for (int c = 0; c < nc; c++)
                convert(J, J->Bq + (size_t)(j + c) * J->row_bytes + off, buf + c * KCH, kc);
            for (int c = 0; c < C; c++)
                Bp[c] = buf + (c < nc ? c : nc - 1) * KCH;
            for (int r = 0; r < R; r++)
                Ac[r] = Ap[r] + c0;
            tile(kc, Ac, Bp, acc, c0 == 0);
        }
        kt->reduce(acc, R * C, out);
        store_tile(J, out, R, C, i0, i1, j, j1);
    }
}

static void run_range(const mm_job *J, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    const fvlm_kernels *kt = J->kt;
    const bool one = i1 - i0 == 1;
    const int R = one ? 1 : kt->tile_r, C = one ? kt->row_c : kt->tile_c;
    const fvlm_tile_fn tile = one ? kt->row_tile : kt->tile;

    if (i0 >= i1 || j0 >= j1)
        return;
    if (J->Bf) {
        /* panels of float32 rows sized for L2, so the R rows of A meet each in cache */
        int64_t P = PANEL_BYTES / (4 * (J->k > 0 ? J->k : 1));
        P = P < C ? C : P / C * C;
        for (int64_t p = j0; p < j1; p += P)
            run_tiles(J, R, C, tile, i0, i1, p, p + P < j1 ? p + P : j1, J->Bf + p * J->ldb,
                      J->ldb);
        return;
    }
    if (i1 - i0 <= R) {
        run_streamed(J, R, C, tile, i0, i1, j0, j1);
        return;
    }
    int64_t P = PANEL_BYTES / (4 * (J->k > 0 ? J->k : 1));
    P = P < C ? C : P / C * C;
    if (P > j1 - j0)
        P = j1 - j0;
    float *panel = aligned_alloc(64, ((size_t)P * (size_t)J->k * sizeof(float) + 63) / 64 * 64);
    if (!panel) {
        /* out of memory: stream R rows at a time (slower, same results) */
        for (int64_t i = i0; i < i1; i += R)
            run_streamed(J, R, C, tile, i, i + R < i1 ? i + R : i1, j0, j1);
        return;
    }
    for (int64_t p = j0; p < j1; p += P) {
        const int64_t pe = p + P < j1 ? p + P : j1;
        for (int64_t j = p; j < pe; j++)
            convert(J, J->Bq + (size_t)j * J->row_bytes, panel + (j - p) * J->k, J->k);
        run_tiles(J, R, C, tile, i0, i1, p, pe, panel, J->k);
    }
    free(panel);
}

static void mm_worker(void *arg, int ith, int nth)
{
    const mm_job *J = arg;
    if (J->split_m) {
        /* whole tiles of R rows per thread */
        const int64_t R = J->kt->tile_r, units = (J->m + R - 1) / R;
        const int64_t u0 = units * ith / nth, u1 = units * (ith + 1) / nth;
        run_range(J, u0 * R, u1 * R < J->m ? u1 * R : J->m, 0, J->n);
    } else {
        const int64_t U = 8, units = (J->n + U - 1) / U;
        const int64_t u0 = units * ith / nth, u1 = units * (ith + 1) / nth;
        run_range(J, 0, J->m, u0 * U, u1 * U < J->n ? u1 * U : J->n);
    }
}

static void mm_run(mm_job *J, fvlm_pool *pool)
{
    const int nth = fvlm_pool_size(pool);
    const int64_t n_units = (J->n + 7) / 8;
    if (J->k <= 0) {   /* empty dot products: the bias alone */
        for (int64_t i = 0; i < J->m; i++)
            for (int64_t j = 0; j < J->n; j++)
                J->C[i * J->ldc + j] = J->bias ? J->bias[j] : 0.0f;
        return;
    }
    J->split_m = nth > 1 && n_units < 4 * nth && J->m >= 4 * (int64_t)J->kt->tile_r * nth;
    fvlm_pool_run(pool, mm_worker, J);
}

void fvlm_matmul_with(const fvlm_kernels *kt, fvlm_pool *pool, const fvlm_tensor *W,
                      const float *X, int64_t m, float *Y, const float *bias)
{
    const fvlm_type_traits *tt = fvlm_type_get_traits((uint32_t)W->type);
    mm_job J;

    if (!kt->tile) {
        fvlm_matmul_scalar(pool, W, X, m, Y, bias);
        return;
    }
    if (m <= 0 || !tt || W->ne[1] <= 0)
        return;
    memset(&J, 0, sizeof J);
    J.kt = kt;
    J.m = m;
    J.n = W->ne[1];
    J.k = W->ne[0];
    J.A = X;
    J.lda = J.k;
    J.C = Y;
    J.ldc = J.n;
    J.bias = bias;
    if (W->type == FVLM_TYPE_F32) {
        J.Bf = W->data;
        J.ldb = J.k;
    } else {
        J.Bq = W->data;
        J.row_bytes = fvlm_row_size(W->type, J.k);
        J.type = W->type;
        J.block_size = tt->block_size;
        J.type_size = tt->type_size;
    }
    mm_run(&J, pool);
}

void fvlm_sgemm_nt_with(const fvlm_kernels *kt, fvlm_pool *pool, int64_t m, int64_t n,
                        int64_t k, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float *C, int64_t ldc, const float *bias)
{
    mm_job J;

    if (!kt->tile) {
        fvlm_sgemm_nt_scalar(pool, m, n, k, A, lda, B, ldb, C, ldc, bias);
        return;
    }
    if (m <= 0 || n <= 0)
        return;
    memset(&J, 0, sizeof J);
    J.kt = kt;
    J.m = m;
    J.n = n;
    J.k = k;
    J.A = A;
    J.lda = lda;
    J.Bf = B;
    J.ldb = ldb;
    J.C = C;
    J.ldc = ldc;
    J.bias = bias;
    mm_run(&J, pool);
}

/* ---- kernels.h entry points ------------------------------------------------------------ */

void fvlm_matmul(fvlm_pool *pool, const fvlm_tensor *W, const float *X, int64_t m, float *Y,
                 const float *bias)
{
    fvlm_matmul_with(fvlm_kernels_get(), pool, W, X, m, Y, bias);
}

void fvlm_sgemm_nt(fvlm_pool *pool, int64_t m, int64_t n, int64_t k, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                   const float *bias)
{
    fvlm_sgemm_nt_with(fvlm_kernels_get(), pool, m, n, k, A, lda, B, ldb, C, ldc, bias);
}

void fvlm_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
    fvlm_kernels_get()->rmsnorm(out, x, w, n, eps);
}

void fvlm_layernorm(float *out, const float *x, const float *w, const float *b, int64_t n,
                    float eps)
{
    fvlm_kernels_get()->layernorm(out, x, w, b, n, eps);
}

void fvlm_softmax(float *x, int64_t n)
{
    fvlm_kernels_get()->softmax(x, n);
}

void fvlm_silu(float *x, int64_t n)
{
    fvlm_kernels_get()->silu(x, n);
}

void fvlm_gelu_erf(float *x, int64_t n)
{
    fvlm_kernels_get()->gelu_erf(x, n);
}

void fvlm_rope_apply(float *x, const float *cs, int32_t head_dim)
{
    fvlm_kernels_get()->rope_apply(x, cs, head_dim);
}
