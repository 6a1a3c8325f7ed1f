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
 * Not here: the decoder (llm.c), sampling rules (sampler.c), the tower (vision.c).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "sampler.h"

#define SESSION_MAX_BATCH 512      /* rows per forward chunk (bounds the scratch memory) */
#define SESSION_MAX_THREADS 256

struct fastvlm_session {
    const fastvlm_model *model;
    const fvlm_llm_hparams *hp;
    fvlm_pool *pool;
    fvlm_llm_state *st;
    fvlm_sampler *sampler;
    fvlm_rng rng;
    int32_t n_ctx;
    int32_t n_past;                /* positions in the KV cache */
    int32_t token_endoftext;       /* <|endoftext|>, a stop token besides im_end/eos; -1 if absent */
    float *logits;                 /* [n_vocab] of the last evaluated position */
    bool have_logits;
    atomic_bool abort_flag;        /* set by request_abort() from any thread */

    int32_t image_size;            /* vision input size (pixels per side) */
    float *planar;                 /* [3][image_size][image_size] preprocessing scratch */
    float *image_rows;             /* [n_image_rows][n_embd] projected image features */
    int32_t n_image_rows;
    bool image_timings_pending;    /* report t_pre/t_vis with the next answer only */
    double t_pre_ms, t_vis_ms;
};

/* The abort poll handed to the decoder and the tower: the session flag or the caller's
 * callback. */
typedef struct abort_ctx {
    fastvlm_session *s;
    fastvlm_abort_fn fn;
    void *ud;
} abort_ctx;

static bool abort_poll(void *p)
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
    n_ctx = params->n_ctx;
    if (n_ctx > model->info.n_ctx_train) {
        fvlm_log(&model->log, FASTVLM_LOG_INFO, "n_ctx %d capped at the model's %d", n_ctx,
                 model->info.n_ctx_train);
        n_ctx = model->info.n_ctx_train;
    }
    if (params->image_size != 0 && model->vision) {
        const int32_t stride = model->info.patch_stride > 0 ? model->info.patch_stride : 64;
        if (params->image_size < stride || params->image_size % stride != 0 ||
            params->image_size > 4096)
            return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                                  "fastvlm_session_new: image_size %d must be a multiple of %d "
                                  "in [%d, 4096]", params->image_size, stride, stride);
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
    if (!s->pool || !s->logits || !s->sampler) {
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
    fvlm_log(&model->log, FASTVLM_LOG_DEBUG, "session: %d threads, context %d", params->n_threads,
             n_ctx);
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
    free(s->planar);
    free(s->image_rows);
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

/* Runs n rows (ids or embeddings) at n_past, advancing n_past only on success. */
static fastvlm_status session_eval(fastvlm_session *s, const int32_t *ids, const float *embd,
                                   int32_t n, float *all_logits, abort_ctx *ab,
                                   fastvlm_error *err)
{
    fastvlm_status st;
    const int32_t nv = s->hp->n_vocab;

    if ((int64_t)s->n_past + n > s->n_ctx)
        return fvlm_set_error(err, FASTVLM_ERR_CONTEXT_FULL,
                              "cannot evaluate %d positions after %d: the context holds %d",
                              n, s->n_past, s->n_ctx);
    st = fvlm_llm_forward(s->model->llm, s->st, s->pool, ids, embd, n, s->n_past,
                          all_logits ? all_logits : s->logits, all_logits != NULL,
                          abort_poll, ab, err);
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
    return session_eval(s, ids, NULL, n, logits, &ab, err);
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
    return session_eval(s, NULL, rows, n, logits, &ab, err);
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
    free(s->image_rows);
    s->image_rows = NULL;
    s->n_image_rows = 0;
    s->image_timings_pending = false;
}

/* Tower + projector on s->planar-like input, stored as the session's image. */
static fastvlm_status session_encode_rows(fastvlm_session *s, const float *planar, int32_t size,
                                          fastvlm_error *err)
{
    const fastvlm_model *m = s->model;
    const int32_t per_side = size / m->info.patch_stride;
    const int32_t n_tok = per_side * per_side;
    const int32_t width = fvlm_vision_out_dim(m->vision, false);
    abort_ctx ab = {s, NULL, NULL};
    float *rows;
    fastvlm_status st;
    double t0;

    rows = malloc((size_t)n_tok * (size_t)width * sizeof(float));
    if (!rows)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "image: cannot allocate %d x %d features",
                              n_tok, width);
    t0 = fvlm_time_ms();
    st = fvlm_vision_encode(m->vision, s->pool, planar, size, false, rows, abort_poll, &ab, err);
    if (st != FASTVLM_OK) {
        free(rows);
        return st;
    }
    free(s->image_rows);
    s->image_rows = rows;
    s->n_image_rows = n_tok;
    s->t_vis_ms = fvlm_time_ms() - t0;
    s->image_timings_pending = true;
    fvlm_log(&m->log, FASTVLM_LOG_DEBUG, "image: %d tokens in %.1f ms", n_tok, s->t_vis_ms);
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
    if (stride <= 0 || size < stride || size % stride != 0 || size > 4096)
        return fvlm_set_error(err, FASTVLM_ERR_IMAGE,
                              "image: size %d must be a multiple of %d in [%d, 4096]", size,
                              stride, stride);
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
    const double t_pre = fvlm_time_ms() - t0;
    st = session_encode_rows(s, s->planar, s->image_size, err);
    if (st == FASTVLM_OK)
        s->t_pre_ms = t_pre;
    return st;
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
    st = session_encode_rows(s, planar, size, err);
    if (st == FASTVLM_OK)
        s->t_pre_ms = 0.0;
    return st;
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
    st = fvlm_vision_encode(s->model->vision, s->pool, planar, size, tower_only, out, abort_poll,
                            &ab, err);
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

fastvlm_status fastvlm_session_ask(fastvlm_session *s, const fastvlm_generate_params *params,
                                   fastvlm_result *out, fastvlm_error *err)
{
    fastvlm_generate_params defaults = fastvlm_generate_default_params();
    const fastvlm_model *m;
    const double t_start = fvlm_time_ms();
    idvec pre = {0}, post = {0}, hist = {0};
    textbuf text = {0};
    float *rows = NULL;
    fastvlm_detok detok;
    fastvlm_status st = FASTVLM_OK;
    abort_ctx ab;
    int32_t n_img, n_prompt, n_gen_cap;
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
    m = s->model;
    atomic_store(&s->abort_flag, false);
    ab.s = s;
    ab.fn = params->should_abort;
    ab.ud = params->user_data;
    memset(&detok, 0, sizeof detok);
    fastvlm_session_reset(s);
    fvlm_rng_seed(&s->rng, params->sampler.seed);
    n_img = s->image_rows ? s->n_image_rows : 0;
    if (s->image_timings_pending) {
        out->t_preprocess_ms = s->t_pre_ms;
        out->t_vision_ms = s->t_vis_ms;
        s->image_timings_pending = false;
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

    /* 2. prefill as one batch: embeddings of pre, image rows, embeddings of post */
    {
        const size_t d = (size_t)s->hp->n_embd;
        rows = malloc((size_t)n_prompt * d * sizeof(float));
        if (!rows) {
            st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "ask: out of memory for %d prompt rows",
                                n_prompt);
            goto done;
        }
        fvlm_llm_embed(m->llm, pre.v, (int32_t)pre.n, rows);
        if (n_img)
            memcpy(rows + pre.n * d, s->image_rows, (size_t)n_img * d * sizeof(float));
        fvlm_llm_embed(m->llm, post.v, (int32_t)post.n, rows + (pre.n + (size_t)n_img) * d);
    }
    t0 = fvlm_time_ms();
    st = session_eval(s, NULL, rows, n_prompt, NULL, &ab, err);
    out->t_prefill_ms = fvlm_time_ms() - t0;
    free(rows);
    rows = NULL;
    if (st != FASTVLM_OK) {
        if (st == FASTVLM_ERR_ABORTED) {
            out->stop = FASTVLM_STOP_ABORT;
            out->truncated = true;
        }
        goto done;
    }

    /* The repetition penalty looks at the prompt's text tokens and the answer so far. */
    n_gen_cap = params->max_new_tokens;
    if ((st = idvec_reserve(&hist, pre.n + post.n + (size_t)n_gen_cap + 1, err)) != FASTVLM_OK)
        goto done;
    if (pre.n)
        memcpy(hist.v, pre.v, pre.n * sizeof *hist.v);
    if (post.n)
        memcpy(hist.v + pre.n, post.v, post.n * sizeof *hist.v);
    hist.n = pre.n + post.n;
    out->tokens = malloc(((size_t)n_gen_cap + 1) * sizeof *out->tokens);
    if (!out->tokens) {
        st = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "ask: out of memory");
        goto done;
    }

    /* 3. decode */
    t0 = fvlm_time_ms();
    out->stop = FASTVLM_STOP_LENGTH;
    for (;;) {
        int32_t tok;
        size_t len;

        if (out->n_tokens >= n_gen_cap) {
            out->stop = FASTVLM_STOP_LENGTH;
            break;
        }
        if (abort_poll(&ab)) {
            out->stop = FASTVLM_STOP_ABORT;
            st = fvlm_set_error(err, FASTVLM_ERR_ABORTED, "ask: aborted after %d tokens",
                                out->n_tokens);
            break;
        }
        tok = fvlm_sampler_sample(s->sampler, s->logits, &params->sampler, hist.v,
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
        st = session_eval(s, &tok, NULL, 1, NULL, &ab, err);
        if (st != FASTVLM_OK) {
            if (st == FASTVLM_ERR_ABORTED)
                out->stop = FASTVLM_STOP_ABORT;
            break;
        }
    }
    out->t_decode_ms = fvlm_time_ms() - t0;
    {
        const size_t len = fastvlm_detok_flush(&detok, piece, sizeof piece);
        if (len)
            textbuf_append(&text, piece, len);
    }
    out->truncated = out->stop != FASTVLM_STOP_EOS;

done:
    if (text.s) {
        free(out->text);
        out->text = text.s;
    }
    out->t_total_ms = fvlm_time_ms() - t_start;
    free(rows);
    free(pre.v);
    free(post.v);
    free(hist.v);
    return st;
}
