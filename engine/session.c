/*
 * session.c — the per-stream half of the public API (fastvlm.h): session lifetime, the
 * low-level decoder calls (eval/logits/sample), the session's image, and
 * fastvlm_session_ask(), which builds the qwen_2 chat prompt, splices the image rows into
 * it, prefills, and decodes.
 *
 * Prompt layout of ask() with chat = true (FastVLM's predict.py, conv mode qwen_2):
 *   <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<image>\n{prompt}<|im_end|>\n
 *   <|im_start|>assistant\n
 * Special tokens come only from the template: the text between them, which holds the
 * user's prompt and system prompt, is tokenized with parse_special = false, so "<|im_end|>"
 * typed by a user is plain text. Text runs are tokenized whole (e.g. "\n{prompt}"), exactly
 * as a tokenizer sees the full string with the image placeholder removed, which is what
 * the reference's tokenizer_image_token() does. `<image>` is replaced by the image's
 * projected rows (tokens × n_embd) at consecutive ordinary positions; without an image the
 * user turn is "user\n{prompt}". chat = false: [image rows] then the raw prompt.
 *
 * Reuse (docs/reuse.md): ask() prefills only the part of its prompt the KV cache does not
 * already hold (session_kv.c says what it holds), and verifies a draft (the previous
 * answer to the same prompt, speculative.c) several tokens per decoder call: the decode
 * loop below stays the plain one, token by token, but a token whose row a verification
 * batch already computed is not evaluated again.
 *
 * Not here: the decoder (llm.c), sampling rules (sampler.c), the tower (vision.c), the
 * image features handle (session_features.c).
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "session_impl.h"

#define SESSION_MAX_BATCH 512      /* rows per forward chunk (bounds the scratch memory) */
#define SESSION_MAX_THREADS 256
#define SESSION_MAX_DRAFT 256      /* largest n_draft_max */

bool fvlm_session_abort_poll(void *p)
{
    abort_ctx *a = p;
    if (atomic_load_explicit(&a->s->abort_flag, memory_order_relaxed))
        return true;
    return a->fn && a->fn(a->ud);
}

/* ---- lifetime --------------------------------------------------------------------------- */

fastvlm_status fastvlm_session_new(const fastvlm_model *model,
                                   const fastvlm_session_params *params,
                                   fastvlm_session **out_session, fastvlm_error *err)
{
    fastvlm_session_params defaults = fastvlm_session_default_params();
    fastvlm_session *s;
    fastvlm_status st;
    int32_t n_ctx;

    fvlm_clear_error(err);
    if (!out_session)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fastvlm_session_new: out_session is NULL");
    *out_session = NULL;
    if (!model)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fastvlm_session_new: model is NULL");
    if (!model->llm)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_new: the model was loaded vocab_only (no decoder)");
    if (!params)
        params = &defaults;
    if (params->n_threads < 1 || params->n_threads > SESSION_MAX_THREADS)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_new: n_threads %d is outside [1, %d]",
                              params->n_threads, SESSION_MAX_THREADS);
    if (params->n_ctx < 1)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_new: n_ctx %d must be >= 1", params->n_ctx);
    if (params->matmul_precision != FASTVLM_PRECISION_EXACT &&
        params->matmul_precision != FASTVLM_PRECISION_FAST)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_new: matmul_precision %d is not EXACT (0) or FAST (1)",
                              (int)params->matmul_precision);
    n_ctx = params->n_ctx;
    if (n_ctx > model->info.n_ctx_train) {
        fvlm_log(&model->log, FASTVLM_LOG_INFO, "n_ctx %d capped at the model's %d", n_ctx,
                 model->info.n_ctx_train);
        n_ctx = model->info.n_ctx_train;
    }
    if (params->image_size != 0 && model->vision) {
        const int32_t stride = model->info.patch_stride > 0 ? model->info.patch_stride : 64;
        if (params->image_size < stride || params->image_size % stride != 0 ||
            params->image_size > FASTVLM_MAX_IMAGE_SIZE)
            return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                                  "fastvlm_session_new: image_size %d must be a multiple of %d "
                                  "in [%d, %d] (FASTVLM_MAX_IMAGE_SIZE)", params->image_size,
                                  stride, stride, FASTVLM_MAX_IMAGE_SIZE);
    }

    s = calloc(1, sizeof *s);
    if (!s)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "fastvlm_session_new: out of memory");
    s->model = model;
    s->hp = fvlm_llm_hparams_get(model->llm);
    s->n_ctx = n_ctx;
    atomic_init(&s->abort_flag, false);
    fvlm_rng_seed(&s->rng, 0);
    s->image_size = params->image_size ? params->image_size : model->info.image_size;
    s->token_endoftext = fvlm_tokenizer_find(model->tok, "<|endoftext|>");

    s->pool = fvlm_pool_new(params->n_threads);
    s->logits = malloc((size_t)s->hp->n_vocab * sizeof(float));
    s->sampler = fvlm_sampler_new(s->hp->n_vocab);
    s->kv_items = malloc((size_t)n_ctx * sizeof *s->kv_items);
    if (!s->pool || !s->logits || !s->sampler || !s->kv_items) {
        fastvlm_session_free(s);
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM,
                              "fastvlm_session_new: cannot create %d threads / logits buffers",
                              params->n_threads);
    }
    st = fvlm_llm_state_new(model->llm, n_ctx,
                            n_ctx < SESSION_MAX_BATCH ? n_ctx : SESSION_MAX_BATCH,
                            params->n_threads, &s->st, err);
    if (st != FASTVLM_OK) {
        fastvlm_session_free(s);
        return st;
    }
    fvlm_llm_state_set_precision(s->st, params->matmul_precision);
    fvlm_log(&model->log, FASTVLM_LOG_DEBUG, "session: %d threads, context %d, %s matmuls",
             params->n_threads, n_ctx,
             params->matmul_precision == FASTVLM_PRECISION_FAST ? "fast" : "exact");
    *out_session = s;
    return FASTVLM_OK;
}

void fastvlm_session_free(fastvlm_session *s)
{
    if (!s)
        return;
    fvlm_pool_free(s->pool);
    fvlm_llm_state_free(s->st);
    fvlm_sampler_free(s->sampler);
    free(s->logits);
    free(s->kv_items);
    free(s->planar);
    fastvlm_image_features_unref(s->image);
    fvlm_drafts_clear(&s->drafts);
    free(s);
}

/* ---- low level -------------------------------------------------------------------------- */

void fastvlm_session_reset(fastvlm_session *s)
{
    if (!s)
        return;
    s->n_past = 0;
    s->have_logits = false;
}

int32_t fastvlm_session_n_past(const fastvlm_session *s)
{
    return s ? s->n_past : 0;
}

const float *fastvlm_session_logits(const fastvlm_session *s)
{
    return s && s->have_logits ? s->logits : NULL;
}

fastvlm_status fvlm_session_eval(fastvlm_session *s, const int32_t *ids, const float *embd,
                                 const fvlm_kv_item *items, int32_t n, float *all_logits,
                                 abort_ctx *ab, fastvlm_error *err)
{
    fastvlm_status st;
    const int32_t nv = s->hp->n_vocab;

    if ((int64_t)s->n_past + n > s->n_ctx)
        return fvlm_set_error(err, FASTVLM_ERR_CONTEXT_FULL,
                              "cannot evaluate %d positions after %d: the context holds %d",
                              n, s->n_past, s->n_ctx);
    st = fvlm_llm_forward(s->model->llm, s->st, s->pool, ids, embd, n, s->n_past,
                          all_logits ? all_logits : s->logits, all_logits != NULL,
                          fvlm_session_abort_poll, ab, err);
    if (st != FASTVLM_OK) {
        /* The rows written past n_past are never read: the cache is unchanged. The last
         * logits may be partly overwritten, so they are no longer offered. */
        if (!all_logits)
            s->have_logits = false;
        return st;
    }
    if (all_logits)
        memcpy(s->logits, all_logits + (size_t)(n - 1) * nv, (size_t)nv * sizeof(float));
    s->have_logits = true;
    for (int32_t i = 0; i < n; i++) {
        fvlm_kv_item *it = &s->kv_items[s->n_past + i];
        if (items)
            *it = items[i];
        else if (ids)
            *it = (fvlm_kv_item){FVLM_KV_TOKEN, ids[i]};
        else
            *it = (fvlm_kv_item){FVLM_KV_OPAQUE, i};
    }
    s->n_past += n;
    return FASTVLM_OK;
}

fastvlm_status fastvlm_session_eval_tokens(fastvlm_session *s, const int32_t *ids, int32_t n,
                                           float *logits, fastvlm_error *err)
{
    abort_ctx ab = {s, NULL, NULL};

    fvlm_clear_error(err);
    if (!s || !ids || n < 1)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_eval_tokens: NULL session/ids or n %d < 1", n);
    atomic_store(&s->abort_flag, false);
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->hp->n_vocab)
            return fvlm_set_error(err, FASTVLM_ERR_TOKEN_RANGE,
                                  "token id %d at index %d is out of range [0, %d)", ids[i], i,
                                  s->hp->n_vocab);
    return fvlm_session_eval(s, ids, NULL, NULL, n, logits, &ab, err);
}

fastvlm_status fastvlm_session_eval_embeddings(fastvlm_session *s, const float *rows, int32_t n,
                                               float *logits, fastvlm_error *err)
{
    abort_ctx ab = {s, NULL, NULL};

    fvlm_clear_error(err);
    if (!s || !rows || n < 1)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_eval_embeddings: NULL session/rows or n %d < 1", n);
    atomic_store(&s->abort_flag, false);
    return fvlm_session_eval(s, NULL, rows, NULL, n, logits, &ab, err);
}

int32_t fastvlm_session_sample(fastvlm_session *s, const fastvlm_sampler_params *params,
                               const int32_t *history, int32_t n_history)
{
    fastvlm_sampler_params defaults = fastvlm_sampler_default_params();
    if (!s || !s->have_logits)
        return -1;
    return fvlm_sampler_sample(s->sampler, s->logits, params ? params : &defaults, history,
                               history ? n_history : 0, &s->rng);
}

void fastvlm_session_set_seed(fastvlm_session *s, uint64_t seed)
{
    if (s)
        fvlm_rng_seed(&s->rng, seed);
}

void fastvlm_session_request_abort(fastvlm_session *s)
{
    if (s)
        atomic_store(&s->abort_flag, true);
}

/* ---- vision ----------------------------------------------------------------------------- */

void fastvlm_session_clear_image(fastvlm_session *s)
{
    if (!s)
        return;
    fastvlm_image_features_unref(s->image);
    s->image = NULL;
    s->image_timings_pending = false;
}

/* Tower + projector on planar input, stored as the session's image (new features, a new
 * id); t_pre_ms is what preparing `planar` cost. */
static fastvlm_status session_encode_rows(fastvlm_session *s, const float *planar, int32_t size,
                                          double t_pre_ms, fastvlm_error *err)
{
    const fastvlm_model *m = s->model;
    const int32_t per_side = size / m->info.patch_stride;
    const int32_t n_tok = per_side * per_side;
    const int32_t width = fvlm_vision_out_dim(m->vision, false);
    abort_ctx ab = {s, NULL, NULL};
    fastvlm_image_features *f;
    fastvlm_status st;
    double t0;

    if (width != s->hp->n_embd)
        return fvlm_set_error(err, FASTVLM_ERR_INTERNAL,
                              "image: projector width %d != decoder width %d", width,
                              s->hp->n_embd);
    f = fvlm_features_new(m, n_tok, width);
    if (!f)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "image: cannot allocate %d x %d features",
                              n_tok, width);
    t0 = fvlm_time_ms();
    st = fvlm_vision_encode(m->vision, s->pool, planar, size, false, f->rows,
                            fvlm_session_abort_poll, &ab, err);
    if (st != FASTVLM_OK) {
        fastvlm_image_features_unref(f);
        return st;
    }
    f->t_pre_ms = t_pre_ms;
    f->t_vis_ms = fvlm_time_ms() - t0;
    fastvlm_image_features_unref(s->image);
    s->image = f;
    s->image_timings_pending = true;
    fvlm_log(&m->log, FASTVLM_LOG_DEBUG, "image: %d tokens in %.1f ms (features id %llu)",
             n_tok, f->t_vis_ms, (unsigned long long)f->id);
    return FASTVLM_OK;
}

static fastvlm_status check_vision(const fastvlm_session *s, fastvlm_error *err)
{
    if (!s)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "image: session is NULL");
    if (!s->model->vision)
        return fvlm_set_error(err, FASTVLM_ERR_NO_VISION,
                              "image: the model was loaded without an mmproj file");
    return FASTVLM_OK;
}

static fastvlm_status check_size(const fastvlm_session *s, int32_t size, fastvlm_error *err)
{
    const int32_t stride = s->model->info.patch_stride;
    if (stride <= 0 || size < stride || size % stride != 0 || size > FASTVLM_MAX_IMAGE_SIZE)
        return fvlm_set_error(err, FASTVLM_ERR_IMAGE,
                              "image: size %d must be a multiple of %d in [%d, %d] "
                              "(FASTVLM_MAX_IMAGE_SIZE)", size, stride, stride,
                              FASTVLM_MAX_IMAGE_SIZE);
    return FASTVLM_OK;
}

fastvlm_status fastvlm_session_set_image_rgb8(fastvlm_session *s, const uint8_t *rgb,
                                              int32_t width, int32_t height, size_t stride,
                                              fastvlm_error *err)
{
    const fastvlm_model_info *info;
    fastvlm_status st;
    double t0;

    fvlm_clear_error(err);
    if ((st = check_vision(s, err)) != FASTVLM_OK)
        return st;
    atomic_store(&s->abort_flag, false);
    /* On any failure below the previous image is dropped: never answer about a stale one. */
    fastvlm_session_clear_image(s);
    if ((st = check_size(s, s->image_size, err)) != FASTVLM_OK)
        return st;
    info = &s->model->info;
    if (!s->planar) {
        s->planar = malloc((size_t)3 * s->image_size * s->image_size * sizeof(float));
        if (!s->planar)
            return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "image: cannot allocate 3x%dx%d floats",
                                  s->image_size, s->image_size);
    }
    t0 = fvlm_time_ms();
    st = fvlm_image_preprocess(rgb, width, height, stride, s->image_size, info->image_pad_rgb,
                               info->image_rescale, info->image_mean, info->image_std, s->planar,
                               err);
    if (st != FASTVLM_OK)
        return st;
    return session_encode_rows(s, s->planar, s->image_size, fvlm_time_ms() - t0, err);
}

fastvlm_status fastvlm_session_set_image_planar(fastvlm_session *s, const float *planar,
                                                int32_t size, fastvlm_error *err)
{
    fastvlm_status st;

    fvlm_clear_error(err);
    if ((st = check_vision(s, err)) != FASTVLM_OK)
        return st;
    atomic_store(&s->abort_flag, false);
    fastvlm_session_clear_image(s);
    if (!planar)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "image: planar is NULL");
    if ((st = check_size(s, size, err)) != FASTVLM_OK)
        return st;
    return session_encode_rows(s, planar, size, 0.0, err);
}

fastvlm_status fastvlm_session_encode_image(fastvlm_session *s, const float *planar, int32_t size,
                                            bool tower_only, float *out, int32_t *n_tokens_out,
                                            fastvlm_error *err)
{
    fastvlm_status st;
    abort_ctx ab = {s, NULL, NULL};

    fvlm_clear_error(err);
    if ((st = check_vision(s, err)) != FASTVLM_OK)
        return st;
    if (!planar || !out)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "encode_image: planar/out is NULL");
    if ((st = check_size(s, size, err)) != FASTVLM_OK)
        return st;
    atomic_store(&s->abort_flag, false);
    st = fvlm_vision_encode(s->model->vision, s->pool, planar, size, tower_only, out,
                            fvlm_session_abort_poll, &ab, err);
    if (st == FASTVLM_OK && n_tokens_out) {
        const int32_t per_side = size / s->model->info.patch_stride;
        *n_tokens_out = per_side * per_side;
    }
    return st;
}

/* ---- ask -------------------------------------------------------------------------------- */

typedef struct idvec {
    int32_t *v;
    size_t n, cap;
} idvec;

static fastvlm_status idvec_reserve(idvec *a, size_t need, fastvlm_error *err)
{
    if (need <= a->cap)
        return FASTVLM_OK;
    size_t cap = a->cap ? a->cap : 64;
    while (cap < need)
        cap *= 2;
    int32_t *v = realloc(a->v, cap * sizeof *v);
    if (!v)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "ask: out of memory for %zu token ids", need);
    a->v = v;
    a->cap = cap;
    return FASTVLM_OK;
}

/* Appends the tokens of `a` followed by `b` (either may be NULL) to `out`. */
static fastvlm_status tokenize_append(const fastvlm_model *m, idvec *out, const char *a,
                                      const char *b, bool parse_special, fastvlm_error *err)
{
    const size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
    char *text;
    size_t n_out = 0;
    fastvlm_status st;

    if (la + lb == 0)
        return FASTVLM_OK;
    text = malloc(la + lb + 1);
    if (!text)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "ask: out of memory for a %zu-byte prompt",
                              la + lb);
    if (la)
        memcpy(text, a, la);
    if (lb)
        memcpy(text + la, b, lb);
    text[la + lb] = '\0';

    /* A guess first (a token is at least one byte, usually ~4), then the exact size. */
    if ((st = idvec_reserve(out, out->n + (la + lb) / 2 + 16, err)) != FASTVLM_OK)
        goto done;
    st = fvlm_tokenizer_encode(m->tok, text, la + lb, parse_special, out->v + out->n,
                               out->cap - out->n, &n_out, err);
    if (st == FASTVLM_ERR_NOMEM && n_out > out->cap - out->n) {
        if ((st = idvec_reserve(out, out->n + n_out, err)) != FASTVLM_OK)
            goto done;
        st = fvlm_tokenizer_encode(m->tok, text, la + lb, parse_special, out->v + out->n,
                                   out->cap - out->n, &n_out, err);
    }
    if (st == FASTVLM_OK)
        out->n += n_out;
done:
    free(text);
    return st;
}

/* Growable result text. */
typedef struct textbuf {
    char *s;
    size_t n, cap;
} textbuf;

static bool textbuf_append(textbuf *t, const char *p, size_t len)
{
    if (t->n + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->n + len + 1)
            cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s)
            return false;
        t->s = s;
        t->cap = cap;
    }
    memcpy(t->s + t->n, p, len);
    t->n += len;
    t->s[t->n] = '\0';
    return true;
}

static bool is_stop_token(const fastvlm_session *s, int32_t id)
{
    const fastvlm_model_info *in = &s->model->info;
    return (in->token_im_end >= 0 && id == in->token_im_end) ||
           (in->token_eos >= 0 && id == in->token_eos) ||
           (s->token_endoftext >= 0 && id == s->token_endoftext);
}

void fastvlm_result_clear(fastvlm_result *r)
{
    if (!r)
        return;
    free(r->text);
    free(r->tokens);
    memset(r, 0, sizeof *r);
}

/* The key previous answers are kept under: chat flag, system prompt, NUL, prompt. */
static char *draft_key(const fastvlm_generate_params *p, size_t *len)
{
    const char *sys = p->system_prompt ? p->system_prompt : "";
    const char *prompt = p->prompt ? p->prompt : "";
    const size_t ls = strlen(sys), lp = strlen(prompt);
    char *k = malloc(ls + lp + 2);
    if (!k)
        return NULL;
    k[0] = p->chat ? 'c' : 'r';
    memcpy(k + 1, sys, ls);
    k[1 + ls] = '\0';
    memcpy(k + 2 + ls, prompt, lp);
    *len = ls + lp + 2;
    return k;
}

static int32_t min_i32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

/* FASTVLM_MAX_PROMPT_BYTES for a prompt or system prompt (`what`, in `fn`); NULL passes. */
static fastvlm_status check_prompt_bytes(const char *fn, const char *what, const char *text,
                                         fastvlm_error *err)
{
    const size_t n = text ? strlen(text) : 0;
    if (n > FASTVLM_MAX_PROMPT_BYTES)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "%s: %s is %zu bytes, over the limit of %d "
                              "(FASTVLM_MAX_PROMPT_BYTES)", fn, what, n,
                              FASTVLM_MAX_PROMPT_BYTES);
    return FASTVLM_OK;
}

fastvlm_status fastvlm_session_ask(fastvlm_session *s, const fastvlm_generate_params *params,
                                   fastvlm_result *out, fastvlm_error *err)
{
    fastvlm_generate_params defaults = fastvlm_generate_default_params();
    const fastvlm_model *m;
    const double t_start = fvlm_time_ms();
    idvec pre = {0}, post = {0}, hist = {0};
    textbuf text = {0};
    float *rows = NULL;
    float *vlogits = NULL;             /* [n_draft_max + 1][n_vocab] of a verification batch */
    int32_t *batch = NULL;             /* [n_draft_max + 1]: pending token + draft tokens */
    fvlm_kv_item *items = NULL;        /* [n_prompt] what the prompt's positions hold */
    const fastvlm_image_features *img;
    const int32_t *draft = NULL;
    int32_t n_draft = 0, n_draft_max = 0;
    char *key = NULL;
    size_t key_len = 0;
    fastvlm_detok detok;
    fastvlm_status st = FASTVLM_OK;
    abort_ctx ab;
    int32_t n_img, n_prompt, n_gen_cap, n_alloc, n_reuse;
    char piece[1024];
    double t0;

    fvlm_clear_error(err);
    if (out) {
        memset(out, 0, sizeof *out);
        out->text = calloc(1, 1);
    }
    if (!s || !out)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fastvlm_session_ask: NULL session/result");
    if (!params)
        params = &defaults;
    if (params->max_new_tokens < 0)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_ask: max_new_tokens %d < 0", params->max_new_tokens);
    if ((st = check_prompt_bytes("fastvlm_session_ask", "prompt", params->prompt, err)) ||
        (st = check_prompt_bytes("fastvlm_session_ask", "system prompt", params->system_prompt,
                                 err)))
        return st;
    if (params->n_draft < 0 || (params->n_draft > 0 && !params->draft))
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_ask: draft is NULL with n_draft %d",
                              params->n_draft);
    for (int32_t i = 0; i < params->n_draft; i++)
        if (params->draft[i] < 0 || params->draft[i] >= s->hp->n_vocab)
            return fvlm_set_error(err, FASTVLM_ERR_TOKEN_RANGE,
                                  "fastvlm_session_ask: draft token id %d at index %d is out "
                                  "of range [0, %d)", params->draft[i], i, s->hp->n_vocab);
    if (params->speculative &&
        (params->n_draft_max < 1 || params->n_draft_max > SESSION_MAX_DRAFT))
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_ask: n_draft_max %d is outside [1, %d]",
                              params->n_draft_max, SESSION_MAX_DRAFT);
    m = s->model;
    atomic_store(&s->abort_flag, false);
    ab.s = s;
    ab.fn = params->should_abort;
    ab.ud = params->user_data;
    memset(&detok, 0, sizeof detok);
    fvlm_rng_seed(&s->rng, params->sampler.seed);
    img = s->image;
    n_img = img ? img->n_rows : 0;
    if (img && s->image_timings_pending) {
        out->t_preprocess_ms = img->t_pre_ms;
        out->t_vision_ms = img->t_vis_ms;
        s->image_timings_pending = false;
    } else if (img) {
        out->image_reused = true;
    }

    /* 1. tokens before (pre) and after (post) the image position */
    {
        const char *prompt = params->prompt ? params->prompt : "";
        const char *system = params->system_prompt ? params->system_prompt : "";
        if (params->chat) {
            if ((st = tokenize_append(m, &pre, "<|im_start|>", NULL, true, err)) ||
                (st = tokenize_append(m, &pre, "system\n", system, false, err)) ||
                (st = tokenize_append(m, &pre, "<|im_end|>", NULL, true, err)) ||
                (st = tokenize_append(m, &pre, "\n", NULL, false, err)) ||
                (st = tokenize_append(m, &pre, "<|im_start|>", NULL, true, err)))
                goto done;
            if (n_img) {
                if ((st = tokenize_append(m, &pre, "user\n", NULL, false, err)) ||
                    (st = tokenize_append(m, &post, "\n", prompt, false, err)))
                    goto done;
            } else if ((st = tokenize_append(m, &post, "user\n", prompt, false, err))) {
                goto done;
            }
            if ((st = tokenize_append(m, &post, "<|im_end|>", NULL, true, err)) ||
                (st = tokenize_append(m, &post, "\n", NULL, false, err)) ||
                (st = tokenize_append(m, &post, "<|im_start|>", NULL, true, err)) ||
                (st = tokenize_append(m, &post, "assistant\n", NULL, false, err)))
                goto done;
        } else if ((st = tokenize_append(m, &post, prompt, NULL, false, err))) {
            goto done;
        }
    }
    if (pre.n + post.n + (size_t)n_img > (size_t)s->n_ctx) {
        st = fvlm_set_error(err, FASTVLM_ERR_CONTEXT_FULL,
                            "prompt needs %zu positions (%zu text tokens + %d image rows) but "
                            "the context holds %d",
                            pre.n + post.n + (size_t)n_img, pre.n + post.n, n_img, s->n_ctx);
        goto done;
    }
    n_prompt = (int32_t)(pre.n + post.n) + n_img;
    if (n_prompt < 1) {
        st = fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "ask: the prompt is empty");
        goto done;
    }
    for (size_t i = 0; i < pre.n + post.n; i++) {
        const int32_t id = i < pre.n ? pre.v[i] : post.v[i - pre.n];
        if (id < 0 || id >= s->hp->n_vocab) {
            st = fvlm_set_error(err, FASTVLM_ERR_TOKEN_RANGE,
                                "prompt token id %d at index %zu is out of range [0, %d)", id, i,
                                s->hp->n_vocab);
            goto done;
        }
    }
    out->n_prompt_tokens = n_prompt;
    out->n_prefix_positions = (int32_t)pre.n + n_img;

    /* 2. what the prompt's positions hold: pre tokens, image rows, post tokens */
    items = malloc((size_t)n_prompt * sizeof *items);
    if (!items) {
        st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "ask: out of memory for %d prompt positions",
                            n_prompt);
        goto done;
    }
    for (size_t i = 0; i < pre.n; i++)
        items[i] = (fvlm_kv_item){FVLM_KV_TOKEN, pre.v[i]};
    for (int32_t r = 0; r < n_img; r++)
        items[pre.n + (size_t)r] = (fvlm_kv_item){img->id, r};
    for (size_t i = 0; i < post.n; i++)
        items[pre.n + (size_t)n_img + i] = (fvlm_kv_item){FVLM_KV_TOKEN, post.v[i]};

    /* 3. keep what the cache already holds (never the last position: its logits are needed),
     *    prefill the rest as one batch */
    n_reuse = params->reuse_kv ? fvlm_session_kv_match(s, items, n_prompt - 1) : 0;
    s->n_past = n_reuse;
    s->have_logits = false;
    out->n_reused_positions = n_reuse;
    {
        const size_t d = (size_t)s->hp->n_embd;
        const int32_t n_new = n_prompt - n_reuse;
        rows = malloc((size_t)n_new * d * sizeof(float));
        if (!rows) {
            st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "ask: out of memory for %d prompt rows",
                                n_new);
            goto done;
        }
        for (int32_t i = 0; i < n_new; i++) {
            const fvlm_kv_item it = items[n_reuse + i];
            if (it.src == FVLM_KV_TOKEN)
                fvlm_llm_embed(m->llm, &it.val, 1, rows + (size_t)i * d);
            else
                memcpy(rows + (size_t)i * d, img->rows + (size_t)it.val * d, d * sizeof(float));
        }
        t0 = fvlm_time_ms();
        st = fvlm_session_eval(s, NULL, rows, items + n_reuse, n_new, NULL, &ab, err);
        out->t_prefill_ms = fvlm_time_ms() - t0;
    }
    free(rows);
    rows = NULL;
    if (st != FASTVLM_OK) {
        if (st == FASTVLM_ERR_ABORTED) {
            out->stop = FASTVLM_STOP_ABORT;
            out->truncated = true;
        }
        goto done;
    }

    /* The repetition penalty looks at the prompt's text tokens and the answer so far.
     * At most n_ctx - n_prompt + 1 tokens fit (every one but the last is evaluated): a
     * larger max_new_tokens ends at the context (STOP_CONTEXT) and must not size the
     * buffers below. */
    n_gen_cap = params->max_new_tokens;
    n_alloc = min_i32(n_gen_cap, s->n_ctx - n_prompt + 1);
    if ((st = idvec_reserve(&hist, pre.n + post.n + (size_t)n_alloc + 1, err)) != FASTVLM_OK)
        goto done;
    if (pre.n)
        memcpy(hist.v, pre.v, pre.n * sizeof *hist.v);
    if (post.n)
        memcpy(hist.v + pre.n, post.v, post.n * sizeof *hist.v);
    hist.n = pre.n + post.n;
    out->tokens = malloc(((size_t)n_alloc + 1) * sizeof *out->tokens);
    if (!out->tokens) {
        st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "ask: out of memory");
        goto done;
    }

    /* The draft: the explicit one, else the previous answer to this prompt. Without one
     * (or memory for its batch) decoding is plain: a draft changes nothing but speed. */
    key = draft_key(params, &key_len);
    if (params->speculative && n_gen_cap > 1) {
        if (params->draft && params->n_draft > 0) {
            draft = params->draft;
            n_draft = params->n_draft;
        } else if (key) {
            const fvlm_draft_entry *e = fvlm_drafts_find(&s->drafts, key, key_len);
            if (e) {
                draft = e->tokens;
                n_draft = e->n_tokens;
            }
        }
        n_draft_max = params->n_draft_max;
        if (draft) {
            vlogits = malloc((size_t)(n_draft_max + 1) * (size_t)s->hp->n_vocab * sizeof(float));
            batch = malloc((size_t)(n_draft_max + 1) * sizeof *batch);
            if (!vlogits || !batch)
                draft = NULL;
        }
    }

    /* 4. decode: sample from the logits L of the last position, emit, evaluate the token.
     *    With a draft, the pending token and up to k draft tokens are evaluated as one batch
     *    (all logits); while the sampled tokens agree with the draft their rows are already
     *    in the cache and evaluating them is skipped. The loop is otherwise the plain one,
     *    so answer, stop reason and RNG draws are those of plain decoding. */
    t0 = fvlm_time_ms();
    out->stop = FASTVLM_STOP_LENGTH;
    {
        const int32_t nv = s->hp->n_vocab;
        const float *L = s->logits;     /* logits of position n_past - 1 */
        int32_t vk = 0, vi = 0;         /* draft tokens in the last batch, accepted of them */
        int32_t k_cur = n_draft_max;    /* batch size: halved after a miss, doubled after a hit */
        int32_t shift = 0;              /* draft index - answer index of the last alignment */

        for (;;) {
            int32_t tok, k = 0, c = -1;
            size_t len;

            if (out->n_tokens >= n_gen_cap) {
                out->stop = FASTVLM_STOP_LENGTH;
                break;
            }
            if (fvlm_session_abort_poll(&ab)) {
                out->stop = FASTVLM_STOP_ABORT;
                st = fvlm_set_error(err, FASTVLM_ERR_ABORTED, "ask: aborted after %d tokens",
                                    out->n_tokens);
                break;
            }
            tok = fvlm_sampler_sample(s->sampler, L, &params->sampler, hist.v,
                                      (int32_t)hist.n, &s->rng);
            if (is_stop_token(s, tok)) {
                out->stop = FASTVLM_STOP_EOS;
                break;
            }
            out->tokens[out->n_tokens++] = tok;
            hist.v[hist.n++] = tok;
            len = fastvlm_detok_push(&detok, m, tok, true, piece, sizeof piece);
            if (len && !textbuf_append(&text, piece, len)) {
                st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "ask: out of memory for the answer");
                break;
            }
            if (params->on_token && !params->on_token(tok, piece, params->user_data)) {
                out->stop = FASTVLM_STOP_CALLBACK;
                break;
            }
            if (out->n_tokens >= n_gen_cap) {
                out->stop = FASTVLM_STOP_LENGTH;
                break;
            }
            if (s->n_past >= s->n_ctx) {
                out->stop = FASTVLM_STOP_CONTEXT;
                break;
            }

            /* evaluate tok: already done when it is the next token of the verified batch */
            if (vi < vk && tok == batch[1 + vi]) {
                vi++;
                s->n_past++;
                out->n_accepted++;
                L = vlogits + (size_t)vi * nv;
                continue;
            }
            if (vk) {
                k_cur = vi == 0 ? (k_cur > 1 ? k_cur / 2 : 1)
                                : vi == vk ? min_i32(2 * k_cur, n_draft_max) : k_cur;
                vk = vi = 0;
            }
            if (draft)
                c = fvlm_draft_continue(draft, n_draft, out->tokens, out->n_tokens,
                                        out->n_tokens + shift);
            if (c >= 0) {
                /* rows past what max_new_tokens or the context can use are not worth it */
                k = min_i32(min_i32(k_cur, n_draft - c),
                            min_i32(n_gen_cap - out->n_tokens - 1, s->n_ctx - s->n_past - 1));
                shift = c - out->n_tokens;
            }
            if (k > 0) {
                batch[0] = tok;
                memcpy(batch + 1, draft + c, (size_t)k * sizeof *batch);
                st = fvlm_session_eval(s, batch, NULL, NULL, k + 1, vlogits, &ab, err);
                if (st == FASTVLM_OK) {
                    s->n_past -= k;     /* the draft rows count once their tokens are sampled */
                    vk = k;
                    out->n_draft += k;
                    L = vlogits;
                }
            } else {
                st = s->batcher ? fvlm_batcher_step(s, tok, err)
                                : fvlm_session_eval(s, &tok, NULL, NULL, 1, NULL, &ab, err);
                L = s->logits;
            }
            if (st != FASTVLM_OK) {
                if (st == FASTVLM_ERR_ABORTED)
                    out->stop = FASTVLM_STOP_ABORT;
                break;
            }
        }
        if (s->batcher)
            fvlm_batcher_leave(s);
        /* fastvlm_session_logits() = the logits of the last position in the cache */
        if (L != s->logits && s->have_logits)
            memcpy(s->logits, L, (size_t)nv * sizeof(float));
    }
    out->t_decode_ms = fvlm_time_ms() - t0;
    {
        const size_t len = fastvlm_detok_flush(&detok, piece, sizeof piece);
        if (len)
            textbuf_append(&text, piece, len);
    }
    out->truncated = out->stop != FASTVLM_STOP_EOS;
    /* this answer is the next one's draft (a lost draft only costs speed) */
    if (key && out->n_tokens > 0)
        fvlm_drafts_store(&s->drafts, key, key_len, out->tokens, out->n_tokens);

done:
    if (text.s) {
        free(out->text);
        out->text = text.s;
    }
    out->t_total_ms = fvlm_time_ms() - t_start;
    free(rows);
    free(items);
    free(vlogits);
    free(batch);
    free(key);
    free(pre.v);
    free(post.v);
    free(hist.v);
    return st;
}

fastvlm_status fastvlm_session_ask_many(fastvlm_session *s, const fastvlm_generate_params *params,
                                        const char *const *prompts, int32_t n_prompts,
                                        fastvlm_result *results, fastvlm_error *err)
{
    fastvlm_generate_params defaults = fastvlm_generate_default_params();
    fastvlm_generate_params gp;

    fvlm_clear_error(err);
    if (results)
        for (int32_t i = 0; i < n_prompts; i++) {
            memset(&results[i], 0, sizeof results[i]);
            results[i].text = calloc(1, 1);
            results[i].prompt_index = i;
        }
    if (!s || !prompts || !results || n_prompts < 1)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_ask_many: NULL session/prompts/results or "
                              "n_prompts %d < 1", n_prompts);
    if (n_prompts > FASTVLM_MAX_PROMPTS)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_ask_many: %d prompts, over the limit of %d "
                              "(FASTVLM_MAX_PROMPTS)", n_prompts, FASTVLM_MAX_PROMPTS);
    for (int32_t i = 0; i < n_prompts; i++) {
        char what[32];
        fastvlm_status st;
        if (!prompts[i])
            return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                                  "fastvlm_session_ask_many: prompts[%d] is NULL", i);
        snprintf(what, sizeof what, "prompts[%d]", i);
        if ((st = check_prompt_bytes("fastvlm_session_ask_many", what, prompts[i], err)))
            return st;
    }
    gp = params ? *params : defaults;
    gp.draft = NULL;
    gp.n_draft = 0;
    for (int32_t i = 0; i < n_prompts; i++) {
        fastvlm_status st;
        gp.prompt = prompts[i];
        fastvlm_result_clear(&results[i]);
        st = fastvlm_session_ask(s, &gp, &results[i], err);
        results[i].prompt_index = i;
        if (st != FASTVLM_OK)
            return st;
    }
    return FASTVLM_OK;
}
