/*
 * kernels_q8.c — the fast (8-bit activation) matrix product of kernels_q8.h: the scalar
 * twins that define its numerics, the quantized-activation buffers, the choice of table
 * and the driver that threads the tiles over the weight rows.
 *
 * Driver: threads split the n weight rows in ranges of whole tiles. A single activation
 * row (decode) runs the table's rw1 × 1 tile along the range; more rows (prefill, verify)
 * run its RW × RA tile over panels of weight rows small enough to stay in L2 while every
 * activation row passes over them, or, from the table's mp rows on, its packed GEMM: each
 * panel of np weight rows packed into a per-thread buffer once, then all activation rows.
 * A tile that would run past the end repeats its last row (the extra outputs are dropped). Every output is one row-by-row dot product in the
 * order kernels_q8.h defines, so none of these choices shows in the results.
 *
 * Not here: the SIMD tiles (kernels_q8_x86.c, kernels_q8_neon.c), the float path
 * (kernels.c), when to use which (llm.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_q8.h"

#define PANEL_BYTES (192 * 1024)   /* weight bytes per panel (m > 1) */

int fvlm_q8_form(fvlm_type type)
{
    switch (type) {
    case FVLM_TYPE_Q8_0:
    case FVLM_TYPE_Q4_0:
    case FVLM_TYPE_Q4_1:
    case FVLM_TYPE_Q5_0:
    case FVLM_TYPE_Q5_1:
        return FVLM_Q8_B32;
    case FVLM_TYPE_Q4_K:
    case FVLM_TYPE_Q5_K:
    case FVLM_TYPE_Q6_K:
        return FVLM_Q8_B256;
    default:
        return -1;
    }
}

/* ---- scalar twins ------------------------------------------------------------------------ */

void fvlm_q8_quantize_scalar(const float *x, int64_t k, int form, int8_t *qs, float *d,
                             int16_t *bsum)
{
    const int B = form == FVLM_Q8_B256 ? 256 : 32;
    for (int64_t b = 0; b < k / B; b++) {
        const float *xb = x + b * B;
        float amax = 0.0f;
        for (int i = 0; i < B; i++)
            amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;
        const float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        d[b] = db;
        for (int i = 0; i < B; i++) {
            float v = xb[i] * id;
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            qs[b * B + i] = (int8_t)lrintf(v);   /* default rounding: to nearest, ties even */
        }
    }
    for (int64_t j = 0; j < k / 32; j++) {
        int s = 0;
        for (int i = 0; i < 32; i++)
            s += qs[32 * j + i];
        bsum[j] = (int16_t)s;
    }
}

static float ld_f16(const uint8_t *p)
{
    return fvlm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* The 32 integer weights of 32-block b of a row, natural element order; *dw, *mw. */
static void w32_values(fvlm_type type, const uint8_t *p, int *w, float *dw, float *mw)
{
    *dw = ld_f16(p);
    *mw = 0.0f;
    switch (type) {
    case FVLM_TYPE_Q8_0:
        for (int i = 0; i < 32; i++)
            w[i] = (int8_t)p[2 + i];
        break;
    case FVLM_TYPE_Q4_0:
        for (int i = 0; i < 16; i++) {
            w[i] = (p[2 + i] & 15) - 8;
            w[i + 16] = (p[2 + i] >> 4) - 8;
        }
        break;
    case FVLM_TYPE_Q4_1:
        *mw = ld_f16(p + 2);
        for (int i = 0; i < 16; i++) {
            w[i] = p[4 + i] & 15;
            w[i + 16] = p[4 + i] >> 4;
        }
        break;
    default: {   /* Q5_0, Q5_1 */
        const bool aff = type == FVLM_TYPE_Q5_1;
        const uint8_t *qh = p + (aff ? 4 : 2), *qs = qh + 4;
        const uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
                           (uint32_t)qh[3] << 24;
        if (aff)
            *mw = ld_f16(p + 2);
        for (int i = 0; i < 16; i++) {
            w[i] = ((qs[i] & 15) | (int)((h >> i) & 1) << 4) - (aff ? 0 : 16);
            w[i + 16] = ((qs[i] >> 4) | (int)((h >> (i + 16)) & 1) << 4) - (aff ? 0 : 16);
        }
        break;
    }
    }
}

/* The 256 integer weights of a K super-block (natural order), the scale of each 32-element
 * chunk's lanes (sc[c][l]) and, Q4_K/Q5_K, the 8 mins. */
static void wk_values(fvlm_type type, const uint8_t *p, int *w, int sc[8][8], int *mn,
                      float *d, float *dmin)
{
    if (type == FVLM_TYPE_Q6_K) {
        const int8_t *s = (const int8_t *)(p + 192);
        *d = ld_f16(p + 208);
        *dmin = 0.0f;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = p + 64 * h, *qh = p + 128 + 32 * h;
            for (int i = 0; i < 32; i++) {
                int *o = w + 128 * h;
                o[i] = ((ql[i] & 15) | (qh[i] & 3) << 4) - 32;
                o[i + 32] = ((ql[i + 32] & 15) | ((qh[i] >> 2) & 3) << 4) - 32;
                o[i + 64] = ((ql[i] >> 4) | ((qh[i] >> 4) & 3) << 4) - 32;
                o[i + 96] = ((ql[i + 32] >> 4) | ((qh[i] >> 6) & 3) << 4) - 32;
            }
        }
        for (int c = 0; c < 8; c++)
            for (int l = 0; l < 8; l++)
                sc[c][l] = s[2 * c + l / 4];
        for (int j = 0; j < 8; j++)
            mn[j] = 0;
        return;
    }
    const bool five = type == FVLM_TYPE_Q5_K;
    const uint8_t *qh = p + 16, *qs = p + (five ? 48 : 16);
    *d = ld_f16(p);
    *dmin = ld_f16(p + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        fvlm_k_scale_min(p + 4, j, &s, &m);
        for (int l = 0; l < 8; l++)
            sc[j][l] = s;
        mn[j] = m;
    }
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 32; i++) {
            int q0 = qs[32 * c + i] & 15, q1 = qs[32 * c + i] >> 4;
            if (five) {
                q0 |= ((qh[i] >> (2 * c)) & 1) << 4;
                q1 |= ((qh[i] >> (2 * c + 1)) & 1) << 4;
            }
            w[64 * c + i] = q0;
            w[64 * c + 32 + i] = q1;
        }
}

float fvlm_q8_dot_scalar(fvlm_type type, int64_t k, const uint8_t *w, const fvlm_q8_row *a)
{
    const fvlm_type_traits *tt = fvlm_type_get_traits((uint32_t)type);
    float acc = 0.0f, m = 0.0f;

    if (fvlm_q8_form(type) == FVLM_Q8_B32) {
        for (int64_t b = 0; b < k / 32; b++) {
            int v[32];
            float dw, mw;
            w32_values(type, w + (size_t)b * tt->type_size, v, &dw, &mw);
            const int8_t *q = a->qs + 32 * b;
            int32_t p = 0;
            for (int e = 0; e < 32; e++)
                p += v[e] * q[e];
            acc = fmaf(dw * a->d[b], (float)p, acc);
            if (type == FVLM_TYPE_Q4_1 || type == FVLM_TYPE_Q5_1)
                m = fmaf(mw, a->d[b] * (float)a->bsum[b], m);
        }
    } else {
        for (int64_t b = 0; b < k / 256; b++) {
            int v[256], sc[8][8], mn[8];
            float dw, dmin;
            int32_t p = 0;
            wk_values(type, w + (size_t)b * tt->type_size, v, sc, mn, &dw, &dmin);
            const int8_t *q = a->qs + 256 * b;
            for (int e = 0; e < 256; e++)
                p += sc[e / 32][(e % 32) / 4] * v[e] * q[e];
            acc = fmaf(dw * a->d[b], (float)p, acc);
            if (type != FVLM_TYPE_Q6_K) {
                int32_t sm = 0;
                for (int j = 0; j < 8; j++)
                    sm += mn[j] * a->bsum[8 * b + j];
                m = fmaf(-(dmin * a->d[b]), (float)sm, m);
            }
        }
    }
    return acc + m;
}

/* ---- tables ------------------------------------------------------------------------------ */

static const fvlm_q8_kernels q8_scalar_table = {
    .name = "scalar",
    .quantize = fvlm_q8_quantize_scalar,
    .rw = 1, .ra = 1, .rw1 = 1,
};

int fvlm_q8_kernels_all(const fvlm_q8_kernels **out, int max)
{
    const fvlm_cpu_info *ci = fvlm_cpu_info_get();
    int n = 0;
    (void)ci;
    if (n < max)
        out[n++] = &q8_scalar_table;
#ifdef FVLM_HAVE_AVX2
    if (n < max && fvlm_cpu_level_supported(FVLM_CPU_AVX2))
        out[n++] = &fvlm_q8_kernels_avx2;
#endif
#ifdef FVLM_HAVE_AVX512
    if (n < max && fvlm_cpu_level_supported(FVLM_CPU_AVX512) && ci->avx512vnni)
        out[n++] = &fvlm_q8_kernels_avx512vnni;
#endif
#ifdef FVLM_HAVE_NEON
    if (n < max && fvlm_cpu_level_supported(FVLM_CPU_NEON))
        out[n++] = &fvlm_q8_kernels_neon;
    if (n < max && fvlm_cpu_level_supported(FVLM_CPU_NEON) && ci->dotprod)
        out[n++] = &fvlm_q8_kernels_neondot;
#endif
    return n;
}

const fvlm_q8_kernels *fvlm_q8_kernels_get(void)
{
    const fvlm_cpu_info *ci = fvlm_cpu_info_get();
    (void)ci;
    switch (fvlm_cpu_level_active()) {
#ifdef FVLM_HAVE_AVX512
    case FVLM_CPU_AVX512:
        return ci->avx512vnni ? &fvlm_q8_kernels_avx512vnni : &fvlm_q8_kernels_avx2;
#endif
#ifdef FVLM_HAVE_AVX2
    case FVLM_CPU_AVX2:
        return &fvlm_q8_kernels_avx2;
#endif
#ifdef FVLM_HAVE_NEON
    case FVLM_CPU_NEON:
        return ci->dotprod ? &fvlm_q8_kernels_neondot : &fvlm_q8_kernels_neon;
#endif
    default:
        return &q8_scalar_table;
    }
}

/* ---- activations ------------------------------------------------------------------------- */

void fvlm_q8_act_reset(fvlm_q8_act *act)
{
    for (int f = 0; f < FVLM_Q8_FORMS; f++)
        act->have[f] = false;
}

void fvlm_q8_act_free(fvlm_q8_act *act)
{
    for (int f = 0; f < FVLM_Q8_FORMS; f++) {
        free(act->qs[f]);
        free(act->d[f]);
        free(act->bsum[f]);
    }
    memset(act, 0, sizeof *act);
}

fvlm_q8_row fvlm_q8_act_row(const fvlm_q8_act *act, int form, int64_t i)
{
    const int64_t B = form == FVLM_Q8_B256 ? 256 : 32;
    fvlm_q8_row r = {act->qs[form] + i * act->k, act->d[form] + i * (act->k / B),
                     act->bsum[form] + i * (act->k / 32)};
    return r;
}

typedef struct quant_job {
    const fvlm_q8_kernels *kt;
    fvlm_q8_act *act;
    const float *X;
    int form;
} quant_job;

static void quant_worker(void *arg, int ith, int nth)
{
    const quant_job *J = arg;
    const int64_t m = J->act->m, i0 = m * ith / nth, i1 = m * (ith + 1) / nth;
    for (int64_t i = i0; i < i1; i++) {
        fvlm_q8_row r = fvlm_q8_act_row(J->act, J->form, i);
        J->kt->quantize(J->X + i * J->act->k, J->act->k, J->form, (int8_t *)r.qs, (float *)r.d,
                        (int16_t *)r.bsum);
    }
}

bool fvlm_q8_act_reserve(fvlm_q8_act *act, int64_t elems)
{
    if (elems <= act->cap)
        return true;
    for (int f = 0; f < FVLM_Q8_FORMS; f++) {
        free(act->qs[f]);
        free(act->d[f]);
        free(act->bsum[f]);
        act->qs[f] = malloc((size_t)elems + 64);
        act->d[f] = malloc((size_t)(elems / 32 + 1) * sizeof(float));
        act->bsum[f] = malloc((size_t)(elems / 32 + 1) * sizeof(int16_t));
        if (!act->qs[f] || !act->d[f] || !act->bsum[f]) {
            fvlm_q8_act_free(act);
            return false;
        }
    }
    act->cap = elems;
    fvlm_q8_act_reset(act);
    return true;
}

bool fvlm_q8_act_quantize(const fvlm_q8_kernels *kt, fvlm_pool *pool, fvlm_q8_act *act,
                          const float *X, int64_t m, int64_t k, int form)
{
    if (!fvlm_q8_act_reserve(act, m * k))
        return false;
    if (act->m != m || act->k != k)
        fvlm_q8_act_reset(act);
    act->m = m;
    act->k = k;
    quant_job job = {kt, act, X, form};
    if (m == 1)
        quant_worker(&job, 0, 1);
    else
        fvlm_pool_run(pool, quant_worker, &job);
    act->have[form] = true;
    return true;
}

/* ---- the driver --------------------------------------------------------------------------- */

typedef struct q8_job {
    const fvlm_q8_kernels *kt;
    const fvlm_q8_act *act;
    int form;
    fvlm_type type;
    int64_t m, n, k;
    const uint8_t *W;
    size_t row_bytes;
    float *Y;
    const float *bias;
    int unit;                     /* weight rows per thread unit */
    bool packed;                  /* the table's packed GEMM (m ≥ mp) */
} q8_job;

#define TILE_MAX 64

static void scalar_tile(const q8_job *J, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    for (int64_t i = i0; i < i1; i++) {
        const fvlm_q8_row a = fvlm_q8_act_row(J->act, J->form, i);
        for (int64_t j = j0; j < j1; j++)
            J->Y[i * J->n + j] = fvlm_q8_dot_scalar(J->type, J->k, J->W + (size_t)j * J->row_bytes, &a) +
                                 (J->bias ? J->bias[j] : 0.0f);
    }
}

/* RW × RA tiles over activation rows [i0, i1) × weight rows [j0, j1). */
static void run_tiles(const q8_job *J, fvlm_q8_tile_fn tile, int RW, int RA, int64_t i0,
                      int64_t i1, int64_t j0, int64_t j1)
{
    const uint8_t *wp[TILE_MAX];
    fvlm_q8_row ar[TILE_MAX];
    float out[TILE_MAX * TILE_MAX];

    for (int64_t i = i0; i < i1; i += RA) {
        for (int c = 0; c < RA; c++)
            ar[c] = fvlm_q8_act_row(J->act, J->form, i + c < i1 ? i + c : i1 - 1);
        for (int64_t j = j0; j < j1; j += RW) {
            for (int r = 0; r < RW; r++)
                wp[r] = J->W + (size_t)(j + r < j1 ? j + r : j1 - 1) * J->row_bytes;
            tile(J->k, wp, ar, out);
            for (int c = 0; c < RA && i + c < i1; c++)
                for (int r = 0; r < RW && j + r < j1; r++)
                    J->Y[(i + c) * J->n + j + r] = out[r * RA + c] + (J->bias ? J->bias[j + r] : 0.0f);
        }
    }
}

static void q8_worker(void *arg, int ith, int nth)
{
    const q8_job *J = arg;
    const fvlm_q8_kernels *kt = J->kt;
    const int64_t U = J->unit, units = (J->n + U - 1) / U;
    const int64_t j0 = units * ith / nth * U, j1e = units * (ith + 1) / nth * U;
    const int64_t j1 = j1e < J->n ? j1e : J->n;

    if (j0 >= j1)
        return;
    if (J->packed) {
        /* packed GEMM: each panel of np weight rows packed once, then every activation row */
        const size_t bytes = (size_t)(J->k / 32) * (size_t)kt->pack_block;
        uint8_t *buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (buf) {
            const uint8_t *wp[TILE_MAX];
            for (int64_t p = j0; p < j1; p += kt->np) {
                const int nv = (int)(j1 - p < kt->np ? j1 - p : kt->np);
                for (int r = 0; r < kt->np; r++)
                    wp[r] = J->W + (size_t)(p + (r < nv ? r : nv - 1)) * J->row_bytes;
                kt->pack[J->type](J->k, wp, buf);
                kt->gemmp[J->type](J->k, buf, J->act, 0, J->m, J->Y + p, J->n, nv,
                                   J->bias ? J->bias + p : NULL);
            }
            free(buf);
            return;
        }   /* out of memory: the tiles below need none */
    }
    if (J->m == 1 || J->m < kt->ra) {
        fvlm_q8_tile_fn f = kt->gemv[J->type];
        if (!f) {
            scalar_tile(J, 0, J->m, j0, j1);
            return;
        }
        run_tiles(J, f, kt->rw1, 1, 0, J->m, j0, j1);
        return;
    }
    fvlm_q8_tile_fn f = kt->gemm[J->type];
    if (!f) {
        scalar_tile(J, 0, J->m, j0, j1);
        return;
    }
    int64_t P = PANEL_BYTES / (int64_t)(J->row_bytes ? J->row_bytes : 1);
    P = P < kt->rw ? kt->rw : P / kt->rw * kt->rw;
    for (int64_t p = j0; p < j1; p += P)
        run_tiles(J, f, kt->rw, kt->ra, 0, J->m, p, p + P < j1 ? p + P : j1);
}

void fvlm_matmul_q8(const fvlm_q8_kernels *kt, fvlm_pool *pool, const fvlm_tensor *W,
                    const fvlm_q8_act *act, float *Y, const float *bias)
{
    q8_job J;
    memset(&J, 0, sizeof J);
    J.kt = kt;
    J.act = act;
    J.form = fvlm_q8_form(W->type);
    J.type = W->type;
    J.m = act->m;
    J.n = W->ne[1];
    J.k = W->ne[0];
    J.W = W->data;
    J.row_bytes = fvlm_row_size(W->type, J.k);
    J.Y = Y;
    J.bias = bias;
    if (J.form < 0 || !act->have[J.form] || act->k != J.k || J.m <= 0 || J.n <= 0)
        return;
    J.unit = (J.m == 1 || J.m < kt->ra ? kt->rw1 : kt->rw) * 4;
    if (J.m == 1 && J.n < 4096)
        J.unit = kt->rw1;
    J.packed = kt->np > 0 && kt->np <= TILE_MAX && J.m >= kt->mp && kt->pack[J.type] && kt->gemmp[J.type];
    if (J.packed)
        J.unit = kt->np;
    fvlm_pool_run(pool, q8_worker, &J);
}
