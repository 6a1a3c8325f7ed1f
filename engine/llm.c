/*
 * llm.c — the Qwen2 decoder (llm.h): loading from llama.cpp's `qwen2` GGUF layout, the
 * per-session KV cache, and the batched forward pass.
 *
 * Architecture (Qwen2, as in Hugging Face's Qwen2ForCausalLM), for each input row x:
 *   for each layer:
 *     h  = RMSNorm(x) · attn_norm
 *     q  = h·Wqᵀ + bq,  k = h·Wkᵀ + bk,  v = h·Wvᵀ + bv        (q: n_head heads, k/v: n_head_kv)
 *     q, k ← RoPE rotate-half at the row's position, θ = rope.freq_base
 *     a_h = softmax(q_h·Kᵀ / √head_dim, causal) · V           (head h reads kv head h / (n_head/n_head_kv))
 *     x  = x + concat(a)·Woᵀ
 *     h  = RMSNorm(x) · ffn_norm
 *     x  = x + (silu(h·Wgateᵀ) ⊙ h·Wupᵀ)·Wdownᵀ
 *   logits = (RMSNorm(x) · output_norm)·Woutᵀ                  (Wout = token_embd when tied)
 *
 * Tensor shapes in GGUF order (ne[0] innermost, i.e. PyTorch's [out, in] reversed):
 *   token_embd.weight [n_embd, n_vocab], blk.N.attn_q.weight [n_embd, n_embd],
 *   blk.N.attn_{k,v}.weight [n_embd, kv_dim] (kv_dim = n_head_kv·head_dim), biases [out],
 *   blk.N.attn_output.weight [n_embd, n_embd], blk.N.ffn_{gate,up}.weight [n_embd, n_ff],
 *   blk.N.ffn_down.weight [n_ff, n_embd], norms [n_embd], output.weight [n_embd, n_vocab].
 * Big matrices stay in the mapped file (any supported type); norm weights and biases are
 * copied to float32 at load.
 *
 * Not here: tokenization, sampling, templates, images (session.c), the kernels (kernels.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels.h"
#include "kernels_q8.h"
#include "llm.h"

typedef struct fvlm_llm_layer {
    float *attn_norm;          /* [n_embd] */
    fvlm_tensor wq, wk, wv;    /* [n_embd → n_embd], [n_embd → kv_dim] ×2 */
    float *bq, *bk, *bv;       /* [n_embd], [kv_dim], [kv_dim]; NULL when absent */
    fvlm_tensor wo;            /* [n_embd → n_embd] */
    float *ffn_norm;           /* [n_embd] */
    fvlm_tensor w_gate, w_up;  /* [n_embd → n_ff] */
    fvlm_tensor w_down;        /* [n_ff → n_embd] */
} fvlm_llm_layer;

struct fvlm_llm {
    fvlm_llm_hparams hp;
    fvlm_tensor tok_embd;      /* [n_embd, n_vocab] */
    size_t tok_embd_row_bytes;
    float *output_norm;        /* [n_embd] */
    fvlm_tensor output;        /* [n_embd, n_vocab]; a copy of tok_embd when tied */
    fvlm_llm_layer *layers;    /* [n_layer] */
    size_t weight_bytes;
};

struct fvlm_llm_state {
    int32_t n_ctx;             /* positions in the cache */
    int32_t n_batch;           /* rows per forward chunk */
    int32_t n_threads;         /* attention buffers */
    int32_t n_layer;           /* layers in the cache */
    int32_t kv_dim;
    float *k_cache;            /* [n_layer][n_ctx][kv_dim], keys after RoPE */
    float *v_cache;            /* [n_layer][n_ctx][kv_dim] */
    float *x;                  /* [n_batch][n_embd] residual stream */
    float *xb;                 /* [n_batch][n_embd] normed input / projection output */
    float *xb2;                /* [n_batch][n_embd] attention output (heads concatenated) */
    float *q;                  /* [n_batch][n_embd] */
    float *hb, *hb2;           /* [n_batch][n_ff] gate, up */
    float *rope;               /* [n_batch][head_dim] cos | sin per row */
    float *att;                /* [n_threads][n_ctx] attention scores per worker */
    fastvlm_precision precision; /* EXACT: float activations; FAST: kernels_q8.h */
    const fvlm_q8_kernels *q8; /* the fast path's table */
    fvlm_q8_act qa;            /* [n_batch][≤ n_ff] the current matmul input, quantized */
};

/* ---- loading -------------------------------------------------------------------------- */

static fastvlm_status load_matrix(const fvlm_gguf *g, const char *name, int64_t ne0,
                                  int64_t ne1, fvlm_tensor *t, size_t *total,
                                  fastvlm_error *err)
{
    const int64_t ne[2] = {ne0, ne1};
    fastvlm_status st = fvlm_gguf_req_tensor(g, name, 2, ne, t, err);
    if (st != FASTVLM_OK)
        return st;
    /* The matmul walks whole blocks: a row must be a whole number of blocks. */
    if (fvlm_row_size(t->type, ne0) == 0) {
        const fvlm_type_traits *tt = fvlm_type_get_traits((uint32_t)t->type);
        return fvlm_set_error(err, FASTVLM_ERR_SHAPE,
                              "%s: tensor '%s' rows of %lld elements are not a multiple of "
                              "the %s block size",
                              fvlm_gguf_path(g), name, (long long)ne0, tt ? tt->name : "?");
    }
    *total += t->nbytes;
    return FASTVLM_OK;
}

/* A 1-D tensor (norm weight, bias) of n elements copied to float32; absent -> *out NULL
 * when optional. */
static fastvlm_status load_vector(const fvlm_gguf *g, const char *name, int64_t n,
                                  bool optional, float **out, size_t *total,
                                  fastvlm_error *err)
{
    fvlm_tensor t;
    const int64_t ne[1] = {n};
    fastvlm_status st = optional ? fvlm_gguf_opt_tensor(g, name, 1, ne, &t, err)
                                 : fvlm_gguf_req_tensor(g, name, 1, ne, &t, err);
    *out = NULL;
    if (st != FASTVLM_OK)
        return st;
    if (!t.data)
        return FASTVLM_OK;
    if (fvlm_row_size(t.type, n) == 0)
        return fvlm_set_error(err, FASTVLM_ERR_SHAPE,
                              "%s: tensor '%s' of %lld elements is not a whole number of blocks",
                              fvlm_gguf_path(g), name, (long long)n);
    *out = malloc((size_t)n * sizeof(float));
    if (!*out)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: out of memory for tensor '%s'",
                              fvlm_gguf_path(g), name);
    fvlm_dequantize_row(t.type, t.data, *out, n);
    *total += t.nbytes;
    return FASTVLM_OK;
}

static fastvlm_status req_dim(const fvlm_gguf *g, const char *key, uint32_t max,
                              int32_t *out, fastvlm_error *err)
{
    uint32_t v = 0;
    fastvlm_status st = fvlm_gguf_req_u32(g, key, &v, err);
    if (st != FASTVLM_OK)
        return st;
    if (v == 0 || v > max)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                              "%s: metadata key '%s' = %u is out of range [1, %u]",
                              fvlm_gguf_path(g), key, v, max);
    *out = (int32_t)v;
    return FASTVLM_OK;
}

static fastvlm_status load_hparams(const fvlm_gguf *g, fvlm_llm_hparams *hp, fastvlm_error *err)
{
    const char *path = fvlm_gguf_path(g);
    fvlm_gguf_str arch;
    fastvlm_status st;
    uint32_t n_head_kv = 0;

    st = fvlm_gguf_req_str(g, "general.architecture", &arch, err);
    if (st != FASTVLM_OK)
        return st;
    if (!fvlm_gguf_str_eq(arch, "qwen2")) {
        const int len = arch.len > 64 ? 64 : (int)arch.len;
        return fvlm_set_error(err, FASTVLM_ERR_UNSUPPORTED,
                              "%s: architecture '%.*s' is not supported (general.architecture "
                              "must be 'qwen2')", path, len, arch.ptr);
    }
    if ((st = req_dim(g, "qwen2.context_length", 1u << 24, &hp->n_ctx_train, err)) ||
        (st = req_dim(g, "qwen2.embedding_length", 1u << 16, &hp->n_embd, err)) ||
        (st = req_dim(g, "qwen2.block_count", 1024, &hp->n_layer, err)) ||
        (st = req_dim(g, "qwen2.feed_forward_length", 1u << 18, &hp->n_ff, err)) ||
        (st = req_dim(g, "qwen2.attention.head_count", 1024, &hp->n_head, err)))
        return st;
    n_head_kv = (uint32_t)hp->n_head;
    st = fvlm_gguf_opt_u32(g, "qwen2.attention.head_count_kv", &n_head_kv, err);
    if (st != FASTVLM_OK)
        return st;
    hp->n_head_kv = (int32_t)n_head_kv;
    if ((st = fvlm_gguf_req_f32(g, "qwen2.rope.freq_base", &hp->rope_theta, err)) ||
        (st = fvlm_gguf_req_f32(g, "qwen2.attention.layer_norm_rms_epsilon", &hp->rms_eps, err)))
        return st;

    if (hp->n_embd % hp->n_head != 0)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                              "%s: embedding_length %d is not a multiple of head_count %d",
                              path, hp->n_embd, hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->head_dim % 2 != 0)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                              "%s: head dimension %d is odd (RoPE rotate-half needs it even)",
                              path, hp->head_dim);
    if (hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv != 0)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                              "%s: head_count_kv %d does not divide head_count %d",
                              path, hp->n_head_kv, hp->n_head);
    if (!(hp->rope_theta > 1.0f) || !isfinite(hp->rope_theta))
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: qwen2.rope.freq_base = %g is invalid",
                              path, (double)hp->rope_theta);
    if (!(hp->rms_eps > 0.0f) || !(hp->rms_eps < 1.0f))
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                              "%s: qwen2.attention.layer_norm_rms_epsilon = %g is invalid",
                              path, (double)hp->rms_eps);
    return FASTVLM_OK;
}

fastvlm_status fvlm_llm_load(const fvlm_gguf *g, fvlm_llm **out, fastvlm_error *err)
{
    const char *path = fvlm_gguf_path(g);
    fvlm_llm *llm;
    fvlm_llm_hparams *hp;
    fastvlm_status st;
    int64_t idx;
    fvlm_tensor probe;
    char name[96];

    *out = NULL;
    llm = calloc(1, sizeof *llm);
    if (!llm)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: out of memory", path);
    hp = &llm->hp;
    st = load_hparams(g, hp, err);
    if (st != FASTVLM_OK)
        goto fail;

    /* The vocabulary size is the number of rows of token_embd. */
    idx = fvlm_gguf_find_tensor(g, "token_embd.weight");
    if (idx < 0) {
        st = fvlm_set_error(err, FASTVLM_ERR_MISSING, "%s: tensor 'token_embd.weight' is missing",
                            path);
        goto fail;
    }
    if (!fvlm_gguf_tensor(g, idx, &probe) || probe.n_dims != 2 || probe.ne[1] < 1 ||
        probe.ne[1] > INT32_MAX) {
        st = fvlm_set_error(err, FASTVLM_ERR_SHAPE,
                            "%s: tensor 'token_embd.weight' must have 2 dims [n_embd, n_vocab]",
                            path);
        goto fail;
    }
    hp->n_vocab = (int32_t)probe.ne[1];
    st = load_matrix(g, "token_embd.weight", hp->n_embd, hp->n_vocab, &llm->tok_embd,
                     &llm->weight_bytes, err);
    if (st != FASTVLM_OK)
        goto fail;
    llm->tok_embd_row_bytes = fvlm_row_size(llm->tok_embd.type, hp->n_embd);

    llm->layers = calloc((size_t)hp->n_layer, sizeof *llm->layers);
    if (!llm->layers) {
        st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    const int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    for (int32_t l = 0; l < hp->n_layer; l++) {
        fvlm_llm_layer *L = &llm->layers[l];
        size_t *tot = &llm->weight_bytes;
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, (int)l), name)
        if ((st = load_vector(g, NAME("attn_norm.weight"), hp->n_embd, false, &L->attn_norm, tot, err)) ||
            (st = load_matrix(g, NAME("attn_q.weight"), hp->n_embd, hp->n_embd, &L->wq, tot, err)) ||
            (st = load_vector(g, NAME("attn_q.bias"), hp->n_embd, true, &L->bq, tot, err)) ||
            (st = load_matrix(g, NAME("attn_k.weight"), hp->n_embd, kv_dim, &L->wk, tot, err)) ||
            (st = load_vector(g, NAME("attn_k.bias"), kv_dim, true, &L->bk, tot, err)) ||
            (st = load_matrix(g, NAME("attn_v.weight"), hp->n_embd, kv_dim, &L->wv, tot, err)) ||
            (st = load_vector(g, NAME("attn_v.bias"), kv_dim, true, &L->bv, tot, err)) ||
            (st = load_matrix(g, NAME("attn_output.weight"), hp->n_embd, hp->n_embd, &L->wo, tot, err)) ||
            (st = load_vector(g, NAME("ffn_norm.weight"), hp->n_embd, false, &L->ffn_norm, tot, err)) ||
            (st = load_matrix(g, NAME("ffn_gate.weight"), hp->n_embd, hp->n_ff, &L->w_gate, tot, err)) ||
            (st = load_matrix(g, NAME("ffn_up.weight"), hp->n_embd, hp->n_ff, &L->w_up, tot, err)) ||
            (st = load_matrix(g, NAME("ffn_down.weight"), hp->n_ff, hp->n_embd, &L->w_down, tot, err)))
            goto fail;
#undef NAME
    }
    st = load_vector(g, "output_norm.weight", hp->n_embd, false, &llm->output_norm,
                     &llm->weight_bytes, err);
    if (st != FASTVLM_OK)
        goto fail;
    {
        const int64_t ne[2] = {hp->n_embd, hp->n_vocab};
        st = fvlm_gguf_opt_tensor(g, "output.weight", 2, ne, &llm->output, err);
        if (st != FASTVLM_OK)
            goto fail;
        if (llm->output.data) {
            if (fvlm_row_size(llm->output.type, hp->n_embd) == 0) {
                st = fvlm_set_error(err, FASTVLM_ERR_SHAPE,
                                    "%s: tensor 'output.weight' rows are not whole blocks", path);
                goto fail;
            }
            llm->weight_bytes += llm->output.nbytes;
            hp->tied_output = false;
        } else {
            llm->output = llm->tok_embd;
            hp->tied_output = true;
        }
    }
    *out = llm;
    return FASTVLM_OK;

fail:
    fvlm_llm_free(llm);
    return st;
}

void fvlm_llm_free(fvlm_llm *llm)
{
    if (!llm)
        return;
    if (llm->layers) {
        for (int32_t l = 0; l < llm->hp.n_layer; l++) {
            fvlm_llm_layer *L = &llm->layers[l];
            free(L->attn_norm);
            free(L->bq);
            free(L->bk);
            free(L->bv);
            free(L->ffn_norm);
        }
        free(llm->layers);
    }
    free(llm->output_norm);
    free(llm);
}

const fvlm_llm_hparams *fvlm_llm_hparams_get(const fvlm_llm *llm)
{
    return &llm->hp;
}

size_t fvlm_llm_weight_bytes(const fvlm_llm *llm)
{
    return llm->weight_bytes;
}

void fvlm_llm_embed(const fvlm_llm *llm, const int32_t *ids, int32_t n, float *out)
{
    const unsigned char *base = llm->tok_embd.data;
    for (int32_t i = 0; i < n; i++)
        fvlm_dequantize_row(llm->tok_embd.type, base + (size_t)ids[i] * llm->tok_embd_row_bytes,
                            out + (size_t)i * llm->hp.n_embd, llm->hp.n_embd);
}

/* ---- per-session state ---------------------------------------------------------------- */

/* a·b·c·d floats, or 0 on overflow (the caller reports it). */
static size_t floats_bytes(size_t a, size_t b, size_t c)
{
    if (a && b > SIZE_MAX / a)
        return 0;
    size_t ab = a * b;
    if (ab && c > SIZE_MAX / ab)
        return 0;
    size_t abc = ab * c;
    if (abc > SIZE_MAX / sizeof(float))
        return 0;
    return abc * sizeof(float);
}

fastvlm_status fvlm_llm_state_new(const fvlm_llm *llm, int32_t n_ctx, int32_t n_batch,
                                  int32_t n_threads, fvlm_llm_state **out,
                                  fastvlm_error *err)
{
    const fvlm_llm_hparams *hp = &llm->hp;
    fvlm_llm_state *st;
    size_t kv_bytes;

    *out = NULL;
    if (n_ctx < 1 || n_batch < 1 || n_threads < 1)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "llm state: n_ctx %d, n_batch %d, n_threads %d must be >= 1",
                              n_ctx, n_batch, n_threads);
    if (n_batch > n_ctx)
        n_batch = n_ctx;
    st = calloc(1, sizeof *st);
    if (!st)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "llm state: out of memory");
    st->n_ctx = n_ctx;
    st->n_batch = n_batch;
    st->n_threads = n_threads;
    st->n_layer = hp->n_layer;
    st->kv_dim = hp->n_head_kv * hp->head_dim;

    kv_bytes = floats_bytes((size_t)hp->n_layer, (size_t)n_ctx, (size_t)st->kv_dim);
    if (kv_bytes == 0)
        goto nomem;
    st->k_cache = malloc(kv_bytes);
    st->v_cache = malloc(kv_bytes);
    st->x = malloc(floats_bytes((size_t)n_batch, (size_t)hp->n_embd, 1));
    st->xb = malloc(floats_bytes((size_t)n_batch, (size_t)hp->n_embd, 1));
    st->xb2 = malloc(floats_bytes((size_t)n_batch, (size_t)hp->n_embd, 1));
    st->q = malloc(floats_bytes((size_t)n_batch, (size_t)hp->n_embd, 1));
    st->hb = malloc(floats_bytes((size_t)n_batch, (size_t)hp->n_ff, 1));
    st->hb2 = malloc(floats_bytes((size_t)n_batch, (size_t)hp->n_ff, 1));
    st->rope = malloc(floats_bytes((size_t)n_batch, (size_t)hp->head_dim, 1));
    st->att = malloc(floats_bytes((size_t)n_threads, (size_t)n_ctx, 1));
    if (!st->k_cache || !st->v_cache || !st->x || !st->xb || !st->xb2 || !st->q || !st->hb ||
        !st->hb2 || !st->rope || !st->att)
        goto nomem;
    st->precision = FASTVLM_PRECISION_EXACT;
    st->q8 = fvlm_q8_kernels_get();
    if (!fvlm_q8_act_reserve(&st->qa, (int64_t)n_batch *
                             (hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd)))
        goto nomem;
    *out = st;
    return FASTVLM_OK;

nomem:
    fvlm_llm_state_free(st);
    return fvlm_set_error(err, FASTVLM_ERR_NOMEM,
                          "llm state: cannot allocate a KV cache of %d positions x %d layers x "
                          "%d floats (x2) and scratch for %d rows",
                          n_ctx, hp->n_layer, hp->n_head_kv * hp->head_dim, n_batch);
}

void fvlm_llm_state_free(fvlm_llm_state *st)
{
    if (!st)
        return;
    free(st->k_cache);
    free(st->v_cache);
    free(st->x);
    free(st->xb);
    free(st->xb2);
    free(st->q);
    free(st->hb);
    free(st->hb2);
    free(st->rope);
    free(st->att);
    fvlm_q8_act_free(&st->qa);
    free(st);
}

int32_t fvlm_llm_state_n_ctx(const fvlm_llm_state *st)
{
    return st->n_ctx;
}

void fvlm_llm_state_set_precision(fvlm_llm_state *st, fastvlm_precision precision)
{
    st->precision = precision;
}

/* Y = X·Wᵀ (+ bias) in the state's precision. FAST applies to the weight types with an
 * 8-bit kernel (kernels_q8.h) and quantizes X unless `same_input` says it is the input of
 * the previous call (q/k/v, gate/up share theirs). */
static void matmul(fvlm_llm_state *st, fvlm_pool *pool, const fvlm_tensor *W, const float *X,
                   int64_t m, float *Y, const float *bias, bool same_input)
{
    const int form = fvlm_q8_form(W->type);
    if (st->precision != FASTVLM_PRECISION_FAST || form < 0) {
        fvlm_matmul(pool, W, X, m, Y, bias);
        return;
    }
    if (!same_input)
        fvlm_q8_act_reset(&st->qa);
    if (!st->qa.have[form] &&
        !fvlm_q8_act_quantize(st->q8, pool, &st->qa, X, m, W->ne[0], form)) {
        fvlm_matmul(pool, W, X, m, Y, bias);   /* cannot happen: reserved at state_new */
        return;
    }
    fvlm_matmul_q8(st->q8, pool, W, &st->qa, Y, bias);
}

/* ---- KV snapshots ---------------------------------------------------------------------- */

size_t fvlm_llm_kv_floats(const fvlm_llm_state *st, int32_t n_pos)
{
    return (size_t)2 * (size_t)st->n_layer * (size_t)n_pos * (size_t)st->kv_dim;
}

void fvlm_llm_kv_save(const fvlm_llm_state *st, int32_t n_pos, float *dst)
{
    const size_t per_layer = (size_t)n_pos * st->kv_dim;
    for (int32_t l = 0; l < st->n_layer; l++) {
        const size_t off = (size_t)l * st->n_ctx * st->kv_dim;
        memcpy(dst + (size_t)l * per_layer, st->k_cache + off, per_layer * sizeof(float));
        memcpy(dst + (size_t)(st->n_layer + l) * per_layer, st->v_cache + off,
               per_layer * sizeof(float));
    }
}

void fvlm_llm_kv_load(fvlm_llm_state *st, int32_t n_pos, const float *src)
{
    const size_t per_layer = (size_t)n_pos * st->kv_dim;
    for (int32_t l = 0; l < st->n_layer; l++) {
        const size_t off = (size_t)l * st->n_ctx * st->kv_dim;
        memcpy(st->k_cache + off, src + (size_t)l * per_layer, per_layer * sizeof(float));
        memcpy(st->v_cache + off, src + (size_t)(st->n_layer + l) * per_layer,
               per_layer * sizeof(float));
    }
}

/* ---- forward pass ---------------------------------------------------------------------- */

/* Row-wise steps between the matrix products, threaded over rows. */
typedef enum rows_op {
    ROWS_NORM,     /* xb[i] = RMSNorm(x[i]) · w */
    ROWS_ROPE,     /* RoPE on every q head of q[i] and every k head of the cache row */
    ROWS_SWIGLU,   /* hb[i] = silu(hb[i]) ⊙ hb2[i] */
    ROWS_ADD       /* x[i] += xb[i] */
} rows_op;

typedef struct rows_job {
    rows_op op;
    const fvlm_llm *llm;
    fvlm_llm_state *st;
    int32_t nb;            /* rows in this chunk */
    const float *w;        /* ROWS_NORM weight */
    float *k_rows;         /* ROWS_ROPE: the chunk's first key row in the cache */
} rows_job;

static void rows_worker(void *arg, int ith, int nth)
{
    const rows_job *J = arg;
    const fvlm_llm_hparams *hp = &J->llm->hp;
    fvlm_llm_state *st = J->st;
    const int32_t i0 = J->nb * ith / nth, i1 = J->nb * (ith + 1) / nth;
    const int64_t d = hp->n_embd;

    for (int32_t i = i0; i < i1; i++) {
        switch (J->op) {
        case ROWS_NORM:
            fvlm_rmsnorm(st->xb + i * d, st->x + i * d, J->w, d, hp->rms_eps);
            break;
        case ROWS_ROPE: {
            const float *cs = st->rope + (int64_t)i * hp->head_dim;
            for (int32_t h = 0; h < hp->n_head; h++)
                fvlm_rope_apply(st->q + i * d + (int64_t)h * hp->head_dim, cs, hp->head_dim);
            for (int32_t h = 0; h < hp->n_head_kv; h++)
                fvlm_rope_apply(J->k_rows + (int64_t)i * st->kv_dim + (int64_t)h * hp->head_dim,
                                cs, hp->head_dim);
            break;
        }
        case ROWS_SWIGLU: {
            float *g = st->hb + (int64_t)i * hp->n_ff;
            const float *u = st->hb2 + (int64_t)i * hp->n_ff;
            fvlm_silu(g, hp->n_ff);
            for (int32_t j = 0; j < hp->n_ff; j++)
                g[j] *= u[j];
            break;
        }
        case ROWS_ADD: {
            float *x = st->x + i * d;
            const float *y = st->xb + i * d;
            for (int64_t j = 0; j < d; j++)
                x[j] += y[j];
            break;
        }
        }
    }
}

static void run_rows(fvlm_pool *pool, rows_op op, const fvlm_llm *llm, fvlm_llm_state *st,
                     int32_t nb, const float *w, float *k_rows)
{
    rows_job job = {op, llm, st, nb, w, k_rows};
    if (nb == 1)
        rows_worker(&job, 0, 1);   /* decode: not worth waking the pool */
    else
        fvlm_pool_run(pool, rows_worker, &job);
}

/* Causal attention of one chunk of rows over the cache of one layer, threaded over
 * (row, head) pairs; each worker owns one score buffer of n_ctx floats. */
typedef struct attn_job {
    const fvlm_llm *llm;
    fvlm_llm_state *st;
    int32_t layer;
    int32_t nb;            /* rows in the chunk */
    int32_t pos0;          /* position of the chunk's first row */
} attn_job;

/* One query head over n_keys cached positions: o = softmax(q·Kᵀ·scale)·V. Shared by the
 * single-session and the cross-session forward, whose rows must agree bit for bit. */
static void attend_head(const float *q, const float *kc, const float *vc, int32_t kv_dim,
                        int32_t kvh, int32_t hd, int32_t n_keys, float scale, float *att,
                        float *o)
{
    for (int32_t t = 0; t < n_keys; t++) {
        const float *k = kc + (size_t)t * kv_dim + (size_t)kvh * hd;
        float s = 0.0f;
        for (int32_t j = 0; j < hd; j++)
            s += q[j] * k[j];
        att[t] = s * scale;
    }
    fvlm_softmax(att, n_keys);
    memset(o, 0, (size_t)hd * sizeof(float));
    for (int32_t t = 0; t < n_keys; t++) {
        const float *v = vc + (size_t)t * kv_dim + (size_t)kvh * hd;
        const float a = att[t];
        for (int32_t j = 0; j < hd; j++)
            o[j] += a * v[j];
    }
}

static void attn_worker(void *arg, int ith, int nth)
{
    const attn_job *J = arg;
    const fvlm_llm_hparams *hp = &J->llm->hp;
    fvlm_llm_state *st = J->st;
    const int32_t hd = hp->head_dim, kv_dim = st->kv_dim;
    const int32_t group = hp->n_head / hp->n_head_kv;
    const int64_t n_tasks = (int64_t)J->nb * hp->n_head;
    const int64_t t0 = n_tasks * ith / nth, t1 = n_tasks * (ith + 1) / nth;
    const size_t layer_off = (size_t)J->layer * st->n_ctx * kv_dim;
    const float *kc = st->k_cache + layer_off, *vc = st->v_cache + layer_off;
    const float scale = 1.0f / sqrtf((float)hd);
    float *att = st->att + (size_t)ith * st->n_ctx;

    for (int64_t task = t0; task < t1; task++) {
        const int32_t i = (int32_t)(task / hp->n_head), h = (int32_t)(task % hp->n_head);
        const int32_t kvh = h / group;
        const int32_t n_keys = J->pos0 + i + 1;   /* causal: positions 0..pos */
        const float *q = st->q + (int64_t)i * hp->n_embd + (int64_t)h * hd;
        float *o = st->xb2 + (int64_t)i * hp->n_embd + (int64_t)h * hd;

        attend_head(q, kc, vc, kv_dim, kvh, hd, n_keys, scale, att, o);
    }
}

fastvlm_status fvlm_llm_forward(const fvlm_llm *llm, fvlm_llm_state *st, fvlm_pool *pool,
                                const int32_t *ids, const float *embd, int32_t n,
                                int32_t n_past, float *logits, bool all_logits,
                                fvlm_llm_abort_fn should_abort, void *abort_ud,
                                fastvlm_error *err)
{
    const fvlm_llm_hparams *hp = &llm->hp;
    const int64_t d = hp->n_embd;

    if (n < 1 || (!ids) == (!embd) || n_past < 0 || (int64_t)n_past + n > st->n_ctx)
        return fvlm_set_error(err, FASTVLM_ERR_INTERNAL,
                              "llm forward: bad call (n %d, n_past %d, n_ctx %d)", n, n_past,
                              st->n_ctx);
    if (fvlm_pool_size(pool) > st->n_threads)
        return fvlm_set_error(err, FASTVLM_ERR_INTERNAL,
                              "llm forward: pool of %d threads, state sized for %d",
                              fvlm_pool_size(pool), st->n_threads);

    for (int32_t c0 = 0; c0 < n; c0 += st->n_batch) {
        const int32_t nb = n - c0 < st->n_batch ? n - c0 : st->n_batch;
        const int32_t pos0 = n_past + c0;
        const bool last_chunk = c0 + nb == n;

        /* input rows */
        if (ids)
            fvlm_llm_embed(llm, ids + c0, nb, st->x);
        else
            memcpy(st->x, embd + (size_t)c0 * d, (size_t)nb * d * sizeof(float));
        for (int32_t i = 0; i < nb; i++)
            fvlm_rope_sincos(st->rope + (size_t)i * hp->head_dim, hp->head_dim, pos0 + i,
                             hp->rope_theta);

        for (int32_t l = 0; l < hp->n_layer; l++) {
            const fvlm_llm_layer *L = &llm->layers[l];
            const size_t cache_row = ((size_t)l * st->n_ctx + (size_t)pos0) * st->kv_dim;
            float *k_rows = st->k_cache + cache_row, *v_rows = st->v_cache + cache_row;

            if (should_abort && should_abort(abort_ud))
                return fvlm_set_error(err, FASTVLM_ERR_ABORTED, "aborted at layer %d", (int)l);

            /* attention: norm, q/k/v (k and v straight into the cache), RoPE */
            run_rows(pool, ROWS_NORM, llm, st, nb, L->attn_norm, NULL);
            matmul(st, pool, &L->wq, st->xb, nb, st->q, L->bq, false);
            matmul(st, pool, &L->wk, st->xb, nb, k_rows, L->bk, true);
            matmul(st, pool, &L->wv, st->xb, nb, v_rows, L->bv, true);
            run_rows(pool, ROWS_ROPE, llm, st, nb, NULL, k_rows);
            {
                attn_job job = {llm, st, l, nb, pos0};
                fvlm_pool_run(pool, attn_worker, &job);
            }
            matmul(st, pool, &L->wo, st->xb2, nb, st->xb, NULL, false);
            run_rows(pool, ROWS_ADD, llm, st, nb, NULL, NULL);

            /* SwiGLU feed-forward */
            run_rows(pool, ROWS_NORM, llm, st, nb, L->ffn_norm, NULL);
            matmul(st, pool, &L->w_gate, st->xb, nb, st->hb, NULL, false);
            matmul(st, pool, &L->w_up, st->xb, nb, st->hb2, NULL, true);
            run_rows(pool, ROWS_SWIGLU, llm, st, nb, NULL, NULL);
            matmul(st, pool, &L->w_down, st->hb, nb, st->xb, NULL, false);
            run_rows(pool, ROWS_ADD, llm, st, nb, NULL, NULL);
        }

        /* final norm and lm_head: every row, or only the very last one */
        if (logits && all_logits) {
            run_rows(pool, ROWS_NORM, llm, st, nb, llm->output_norm, NULL);
            matmul(st, pool, &llm->output, st->xb, nb, logits + (size_t)c0 * hp->n_vocab, NULL,
                   false);
        } else if (logits && last_chunk) {
            fvlm_rmsnorm(st->xb, st->x + (size_t)(nb - 1) * d, llm->output_norm, d, hp->rms_eps);
            matmul(st, pool, &llm->output, st->xb, 1, logits, NULL, false);
        }
    }
    return FASTVLM_OK;
}

/* ---- one decode step of several states (batch.c) --------------------------------------- */

/* Attention of the batch's rows, row i over its own state's cache up to its own position;
 * threaded over (row, head) pairs. The loops are attn_worker's, in the same order, so a
 * row's result is the one a single-row forward of its state gives. */
typedef struct attn_multi_job {
    const fvlm_llm *llm;
    fvlm_llm_state *scratch;       /* q (in), xb2 (out) */
    fvlm_llm_state *const *sts;    /* [nb] */
    const int32_t *pos;            /* [nb] position of each row */
    int32_t layer;
    int32_t nb;
    float *att;                    /* [n_threads][max_ctx] */
    int32_t max_ctx;
} attn_multi_job;

static void attn_multi_worker(void *arg, int ith, int nth)
{
    const attn_multi_job *J = arg;
    const fvlm_llm_hparams *hp = &J->llm->hp;
    const int32_t hd = hp->head_dim;
    const int32_t group = hp->n_head / hp->n_head_kv;
    const int64_t n_tasks = (int64_t)J->nb * hp->n_head;
    const int64_t t0 = n_tasks * ith / nth, t1 = n_tasks * (ith + 1) / nth;
    const float scale = 1.0f / sqrtf((float)hd);
    float *att = J->att + (size_t)ith * J->max_ctx;

    for (int64_t task = t0; task < t1; task++) {
        const int32_t i = (int32_t)(task / hp->n_head), h = (int32_t)(task % hp->n_head);
        const fvlm_llm_state *st = J->sts[i];
        const int32_t kv_dim = st->kv_dim, kvh = h / group;
        const size_t layer_off = (size_t)J->layer * st->n_ctx * kv_dim;
        const float *kc = st->k_cache + layer_off, *vc = st->v_cache + layer_off;
        const int32_t n_keys = J->pos[i] + 1;
        const float *q = J->scratch->q + (int64_t)i * hp->n_embd + (int64_t)h * hd;
        float *o = J->scratch->xb2 + (int64_t)i * hp->n_embd + (int64_t)h * hd;

        attend_head(q, kc, vc, kv_dim, kvh, hd, n_keys, scale, att, o);
    }
}

fastvlm_status fvlm_llm_forward_multi(const fvlm_llm *llm, fvlm_llm_state *const *sts,
                                      int32_t nb, fvlm_pool *pool, const int32_t *ids,
                                      const int32_t *pos, float *const *logits,
                                      fvlm_llm_abort_fn should_abort, void *abort_ud,
                                      fastvlm_error *err)
{
    const fvlm_llm_hparams *hp = &llm->hp;
    fvlm_llm_state *sc = sts[0];   /* its scratch rows carry the whole batch */
    const int32_t kv_dim = sc->kv_dim;
    int32_t max_ctx = 0;
    float *kv = NULL, *att = NULL, *k_rows, *v_rows;
    fastvlm_status status = FASTVLM_OK;

    if (nb < 1 || nb > sc->n_batch || fvlm_pool_size(pool) > sc->n_threads)
        return fvlm_set_error(err, FASTVLM_ERR_INTERNAL,
                              "llm forward multi: bad call (%d rows, scratch for %d, pool %d)",
                              nb, sc->n_batch, fvlm_pool_size(pool));
    for (int32_t i = 0; i < nb; i++) {
        if (pos[i] < 0 || pos[i] >= sts[i]->n_ctx || sts[i]->kv_dim != kv_dim)
            return fvlm_set_error(err, FASTVLM_ERR_INTERNAL,
                                  "llm forward multi: row %d at %d, n_ctx %d", (int)i,
                                  (int)pos[i], (int)sts[i]->n_ctx);
        if (sts[i]->precision != sc->precision)
            return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                                  "llm forward multi: row %d's session has another "
                                  "matmul_precision than row 0's", (int)i);
        if (sts[i]->n_ctx > max_ctx)
            max_ctx = sts[i]->n_ctx;
    }
    /* new keys/values of the batch before they go to their caches: [2][nb][kv_dim] */
    kv = malloc(floats_bytes(2, (size_t)nb, (size_t)kv_dim));
    att = malloc(floats_bytes((size_t)fvlm_pool_size(pool), (size_t)max_ctx, 1));
    if (!kv || !att) {
        status = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "llm forward multi: out of memory");
        goto done;
    }
    k_rows = kv;
    v_rows = kv + (size_t)nb * kv_dim;

    fvlm_llm_embed(llm, ids, nb, sc->x);
    for (int32_t i = 0; i < nb; i++)
        fvlm_rope_sincos(sc->rope + (size_t)i * hp->head_dim, hp->head_dim, pos[i],
                         hp->rope_theta);

    for (int32_t l = 0; l < hp->n_layer; l++) {
        const fvlm_llm_layer *L = &llm->layers[l];

        if (should_abort && should_abort(abort_ud)) {
            status = fvlm_set_error(err, FASTVLM_ERR_ABORTED, "aborted at layer %d", (int)l);
            goto done;
        }
        /* attention: the projections read each weight once for all rows */
        run_rows(pool, ROWS_NORM, llm, sc, nb, L->attn_norm, NULL);
        matmul(sc, pool, &L->wq, sc->xb, nb, sc->q, L->bq, false);
        matmul(sc, pool, &L->wk, sc->xb, nb, k_rows, L->bk, true);
        matmul(sc, pool, &L->wv, sc->xb, nb, v_rows, L->bv, true);
        run_rows(pool, ROWS_ROPE, llm, sc, nb, NULL, k_rows);
        for (int32_t i = 0; i < nb; i++) {
            const size_t row = ((size_t)l * sts[i]->n_ctx + (size_t)pos[i]) * kv_dim;
            memcpy(sts[i]->k_cache + row, k_rows + (size_t)i * kv_dim, kv_dim * sizeof(float));
            memcpy(sts[i]->v_cache + row, v_rows + (size_t)i * kv_dim, kv_dim * sizeof(float));
        }
        {
            attn_multi_job job = {llm, sc, sts, pos, l, nb, att, max_ctx};
            fvlm_pool_run(pool, attn_multi_worker, &job);
        }
        matmul(sc, pool, &L->wo, sc->xb2, nb, sc->xb, NULL, false);
        run_rows(pool, ROWS_ADD, llm, sc, nb, NULL, NULL);

        /* SwiGLU feed-forward */
        run_rows(pool, ROWS_NORM, llm, sc, nb, L->ffn_norm, NULL);
        matmul(sc, pool, &L->w_gate, sc->xb, nb, sc->hb, NULL, false);
        matmul(sc, pool, &L->w_up, sc->xb, nb, sc->hb2, NULL, true);
        run_rows(pool, ROWS_SWIGLU, llm, sc, nb, NULL, NULL);
        matmul(sc, pool, &L->w_down, sc->hb, nb, sc->xb, NULL, false);
        run_rows(pool, ROWS_ADD, llm, sc, nb, NULL, NULL);
    }

    /* final norm and lm_head for every row, each into its own state's logits */
    run_rows(pool, ROWS_NORM, llm, sc, nb, llm->output_norm, NULL);
    {
        float *all = malloc(floats_bytes((size_t)nb, (size_t)hp->n_vocab, 1));
        if (!all) {
            status = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "llm forward multi: out of memory");
            goto done;
        }
        matmul(sc, pool, &llm->output, sc->xb, nb, all, NULL, false);
        for (int32_t i = 0; i < nb; i++)
            memcpy(logits[i], all + (size_t)i * hp->n_vocab, (size_t)hp->n_vocab * sizeof(float));
        free(all);
    }

done:
    free(kv);
    free(att);
    return status;
}
