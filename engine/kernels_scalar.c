/*
 * kernels_scalar.c — the portable scalar twins of the matrix products and the
 * element-wise / normalisation kernels declared in kernels.h.
 *
 * These are the reference every SIMD variant is checked against, so they favour clarity:
 * plain C loops over float32, written so that the compiler can vectorise the inner dot
 * products (eight independent partial sums), and threaded over output rows with the
 * session's pool. Every output element is computed by the same sequence of operations
 * whatever the thread count or the number of input rows, so results do not depend on
 * either (the tests check threads 1 == threads 2 and batch == token-by-token).
 *
 * The functions carry a _scalar suffix: kernels.c dispatches kernels.h's names to them or to
 * the SIMD table of the running CPU (kernels_arch.h, cpu.h).
 *
 * Not here: convolutions (kernels_conv.c), SIMD (kernels_avx2.c, kernels_avx512.c,
 * kernels_neon.c), threading policy (callers choose the pool).
 */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "kernels_arch.h"

/* ---- dot products ------------------------------------------------------------------- */

/* Σ a[i]·b[i] with eight partial sums (vectorisable without -ffast-math; the summation
 * order is fixed, so the result is reproducible). */
static inline float dot_f32(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Four dot products of one input row x with four weight rows: x is loaded once for four
 * multiply-adds. Each out[r] equals dot_f32(x, w_r, n) bit for bit (same partial sums in
 * the same order), so a tile of 4 and a tail row of 1 give identical numbers. */
static inline void dot4_f32(const float *x, const float *w0, const float *w1,
                            const float *w2, const float *w3, int64_t n, float out[4])
{
    float a0[8] = {0}, a1[8] = {0}, a2[8] = {0}, a3[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int l = 0; l < 8; l++) {
            const float xv = x[i + l];
            a0[l] += xv * w0[i + l];
            a1[l] += xv * w1[i + l];
            a2[l] += xv * w2[i + l];
            a3[l] += xv * w3[i + l];
        }
    }
    float s0 = ((a0[0] + a0[4]) + (a0[1] + a0[5])) + ((a0[2] + a0[6]) + (a0[3] + a0[7]));
    float s1 = ((a1[0] + a1[4]) + (a1[1] + a1[5])) + ((a1[2] + a1[6]) + (a1[3] + a1[7]));
    float s2 = ((a2[0] + a2[4]) + (a2[1] + a2[5])) + ((a2[2] + a2[6]) + (a2[3] + a2[7]));
    float s3 = ((a3[0] + a3[4]) + (a3[1] + a3[5])) + ((a3[2] + a3[6]) + (a3[3] + a3[7]));
    for (; i < n; i++) {
        s0 += x[i] * w0[i];
        s1 += x[i] * w1[i];
        s2 += x[i] * w2[i];
        s3 += x[i] * w3[i];
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

/* ---- Y = X·Wᵀ for any supported weight type ------------------------------------------
 *
 * Work unit: a tile of MM_RB weight rows × MM_KB columns. A quantized/half tile is
 * dequantized once into a stack buffer and then dotted with every one of the m input
 * rows, so a prefill of m rows reads (and decodes) each weight byte once, not m times.
 * Columns are tiled so the buffer stays small (32 KiB) whatever k is; partial sums of the
 * column tiles are added to Y in a fixed order. MM_KB is a multiple of every block size.
 */
#define MM_RB 4
#define MM_KB 2048

typedef struct matmul_job {
    const fvlm_tensor *W;
    const float *X;      /* [m][k] */
    float *Y;            /* [m][n] */
    const float *bias;   /* [n] or NULL */
    int64_t m, n, k;
    size_t row_bytes;    /* bytes of one weight row */
    uint32_t block_size; /* elements per block of W's type */
    uint32_t type_size;  /* bytes per block */
} matmul_job;

static void matmul_worker(void *arg, int ith, int nth)
{
    const matmul_job *J = arg;
    const int64_t m = J->m, n = J->n, k = J->k;
    const int64_t n_tiles = (n + MM_RB - 1) / MM_RB;
    const int64_t t0 = n_tiles * ith / nth, t1 = n_tiles * (ith + 1) / nth;
    const unsigned char *base = J->W->data;
    const bool is_f32 = J->W->type == FVLM_TYPE_F32;
    float buf[MM_RB * MM_KB];

    for (int64_t t = t0; t < t1; t++) {
        const int64_t j0 = t * MM_RB;
        const int nr = (int)(n - j0 < MM_RB ? n - j0 : MM_RB);

        for (int64_t i = 0; i < m; i++)
            for (int r = 0; r < nr; r++)
                J->Y[i * n + j0 + r] = J->bias ? J->bias[j0 + r] : 0.0f;

        for (int64_t c0 = 0; c0 < k; c0 += MM_KB) {
            const int64_t kb = k - c0 < MM_KB ? k - c0 : MM_KB;
            const float *w[MM_RB];
            for (int r = 0; r < nr; r++) {
                const unsigned char *row = base + (size_t)(j0 + r) * J->row_bytes;
                if (is_f32) {
                    w[r] = (const float *)row + c0;
                } else {
                    const size_t off = (size_t)(c0 / J->block_size) * J->type_size;
                    fvlm_dequantize_row(J->W->type, row + off, buf + r * MM_KB, kb);
                    w[r] = buf + r * MM_KB;
                }
            }
            for (int64_t i = 0; i < m; i++) {
                const float *x = J->X + i * k + c0;
                float *y = J->Y + i * n + j0;
                if (nr == MM_RB) {
                    float s[4];
                    dot4_f32(x, w[0], w[1], w[2], w[3], kb, s);
                    y[0] += s[0];
                    y[1] += s[1];
                    y[2] += s[2];
                    y[3] += s[3];
                } else {
                    for (int r = 0; r < nr; r++)
                        y[r] += dot_f32(x, w[r], kb);
                }
            }
        }
    }
}

void fvlm_matmul_scalar(fvlm_pool *pool, const fvlm_tensor *W, const float *X, int64_t m,
                 float *Y, const float *bias)
{
    const fvlm_type_traits *tt = fvlm_type_get_traits((uint32_t)W->type);
    matmul_job job;

    if (m <= 0 || !tt)
        return;
    job.W = W;
    job.X = X;
    job.Y = Y;
    job.bias = bias;
    job.m = m;
    job.k = W->ne[0];
    job.n = W->ne[1];
    job.row_bytes = fvlm_row_size(W->type, W->ne[0]);
    job.block_size = tt->block_size;
    job.type_size = tt->type_size;
    fvlm_pool_run(pool, matmul_worker, &job);
}

/* ---- C = A·Bᵀ on plain floats ---------------------------------------------------------- */

typedef struct sgemm_job {
    int64_t m, n, k;
    const float *A;
    int64_t lda;
    const float *B;
    int64_t ldb;
    float *C;
    int64_t ldc;
    const float *bias;
} sgemm_job;

static void sgemm_worker(void *arg, int ith, int nth)
{
    const sgemm_job *J = arg;
    const int64_t n_tiles = (J->n + MM_RB - 1) / MM_RB;
    const int64_t t0 = n_tiles * ith / nth, t1 = n_tiles * (ith + 1) / nth;

    for (int64_t t = t0; t < t1; t++) {
        const int64_t j0 = t * MM_RB;
        const int nr = (int)(J->n - j0 < MM_RB ? J->n - j0 : MM_RB);
        const float *b = J->B + j0 * J->ldb;
        for (int64_t i = 0; i < J->m; i++) {
            const float *a = J->A + i * J->lda;
            float *c = J->C + i * J->ldc + j0;
            if (nr == MM_RB) {
                float s[4];
                dot4_f32(a, b, b + J->ldb, b + 2 * J->ldb, b + 3 * J->ldb, J->k, s);
                for (int r = 0; r < 4; r++)
                    c[r] = s[r] + (J->bias ? J->bias[j0 + r] : 0.0f);
            } else {
                for (int r = 0; r < nr; r++)
                    c[r] = dot_f32(a, b + r * J->ldb, J->k) + (J->bias ? J->bias[j0 + r] : 0.0f);
            }
        }
    }
}

void fvlm_sgemm_nt_scalar(fvlm_pool *pool, int64_t m, int64_t n, int64_t k,
                   const float *A, int64_t lda, const float *B, int64_t ldb,
                   float *C, int64_t ldc, const float *bias)
{
    sgemm_job job = {m, n, k, A, lda, B, ldb, C, ldc, bias};
    if (m <= 0 || n <= 0)
        return;
    fvlm_pool_run(pool, sgemm_worker, &job);
}

/* ---- element-wise and normalisation ------------------------------------------------- */

void fvlm_rmsnorm_scalar(float *out, const float *x, const float *w, int64_t n, float eps)
{
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    const float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

void fvlm_layernorm_scalar(float *out, const float *x, const float *w, const float *b,
                    int64_t n, float eps)
{
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < n; i++)
        mean += x[i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        const double d = x[i] - mean;
        var += d * d;
    }
    var /= (double)n;
    const double inv = 1.0 / sqrt(var + (double)eps);
    for (int64_t i = 0; i < n; i++)
        out[i] = (float)((x[i] - mean) * inv) * w[i] + (b ? b[i] : 0.0f);
}

void fvlm_softmax_scalar(float *x, int64_t n)
{
    float mx;
    double sum = 0.0;

    if (n <= 0)
        return;
    mx = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
}

void fvlm_silu_scalar(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = x[i] / (1.0f + expf(-x[i]));
}

void fvlm_gelu_erf_scalar(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* ---- RoPE, rotate-half form -------------------------------------------------------------
 * Angles in double: at position 30000 a float32 angle is off by ~2e-3 rad. */

void fvlm_rope_sincos(float *cs, int32_t head_dim, int32_t pos, float theta)
{
    const int32_t half = head_dim / 2;
    for (int32_t i = 0; i < half; i++) {
        const double inv_freq = pow((double)theta, -2.0 * (double)i / (double)head_dim);
        const double ang = (double)pos * inv_freq;
        cs[i] = (float)cos(ang);
        cs[half + i] = (float)sin(ang);
    }
}

void fvlm_rope_apply_scalar(float *x, const float *cs, int32_t head_dim)
{
    const int32_t half = head_dim / 2;
    for (int32_t i = 0; i < half; i++) {
        const float c = cs[i], s = cs[half + i];
        const float x0 = x[i], x1 = x[half + i];
        x[i] = x0 * c - x1 * s;
        x[half + i] = x1 * c + x0 * s;
    }
}

void fvlm_rope_rotate_half(float *x, int32_t head_dim, int32_t pos, float theta)
{
    /* Same angles and float rounding as fvlm_rope_sincos + fvlm_rope_apply, pair by pair
     * (no table, so any head_dim works). */
    const int32_t half = head_dim / 2;
    for (int32_t i = 0; i < half; i++) {
        const double ang = (double)pos * pow((double)theta, -2.0 * (double)i / (double)head_dim);
        const float c = (float)cos(ang), s = (float)sin(ang);
        const float x0 = x[i], x1 = x[half + i];
        x[i] = x0 * c - x1 * s;
        x[half + i] = x1 * c + x0 * s;
    }
}
