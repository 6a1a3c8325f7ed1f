/*
 * session_impl.h — the inside of a fastvlm_session, shared by the files that implement the
 * session API: session.c (lifetime, eval, image, ask), session_features.c (the image
 * features handle), session_kv.c (what each KV position holds, prefix matching, snapshots)
 * and speculative.c (previous answers as drafts).
 * Not a public header, and not the decoder (llm.h) or the tower (vision.h).
 */
#ifndef FVLM_SESSION_IMPL_H
#define FVLM_SESSION_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "model.h"
#include "sampler.h"

/* What one KV position holds. A KV row is a function of the items at its own and earlier
 * positions only, so two caches whose items agree on [0, p) agree on those rows. */
typedef struct fvlm_kv_item {
    uint64_t src;          /* FVLM_KV_TOKEN, an image features id, or FVLM_KV_OPAQUE */
    int32_t val;           /* token id, or row index within the features */
} fvlm_kv_item;

#define FVLM_KV_TOKEN 0u            /* a text token; val = its id */
#define FVLM_KV_OPAQUE UINT64_MAX   /* rows given by eval_embeddings: equal to nothing */

static inline bool fvlm_kv_item_eq(fvlm_kv_item a, fvlm_kv_item b)
{
    return a.src == b.src && a.val == b.val && a.src != FVLM_KV_OPAQUE;
}

struct fastvlm_image_features {
    atomic_int refcount;
    const fastvlm_model *model;    /* attachable only to sessions of this model */
    uint64_t id;                   /* unique within the model, >= 1 */
    int32_t n_rows, n_embd;
    double t_pre_ms, t_vis_ms;     /* what making them cost (reported once) */
    float *rows;                   /* [n_rows][n_embd] */
};

/* Allocates features with a fresh id and uninitialised rows (refcount 1); NULL on NOMEM. */
fastvlm_image_features *fvlm_features_new(const fastvlm_model *m, int32_t n_rows,
                                          int32_t n_embd);

/* One previous answer kept as a draft, keyed by (chat, system prompt, prompt). */
typedef struct fvlm_draft_entry {
    char *key;                     /* chat flag byte, system, '\0', prompt (key_len bytes) */
    size_t key_len;
    int32_t *tokens;
    int32_t n_tokens;
    uint64_t last_used;            /* for least-recently-used replacement */
} fvlm_draft_entry;

typedef struct fvlm_drafts {
    fvlm_draft_entry e[FASTVLM_MAX_DRAFT_PROMPTS];
    uint64_t clock;
} fvlm_drafts;

struct fastvlm_session {
    const fastvlm_model *model;
    const fvlm_llm_hparams *hp;
    fvlm_pool *pool;
    fvlm_llm_state *st;
    fvlm_sampler *sampler;
    fvlm_rng rng;
    int32_t n_ctx;
    int32_t n_past;                /* positions in the KV cache */
    fvlm_kv_item *kv_items;        /* [n_ctx]: what positions [0, n_past) hold */
    int32_t token_endoftext;       /* <|endoftext|>, a stop token besides im_end/eos; -1 if absent */
    float *logits;                 /* [n_vocab] of the last evaluated position */
    bool have_logits;
    atomic_bool abort_flag;        /* set by request_abort() from any thread */

    int32_t image_size;            /* vision input size (pixels per side) */
    float *planar;                 /* [3][image_size][image_size] preprocessing scratch */
    fastvlm_image_features *image; /* the image of the next ask (a reference), or NULL */
    bool image_timings_pending;    /* report t_pre/t_vis with the next answer only */

    fvlm_drafts drafts;            /* previous answers per prompt */

    /* batch.c: decode steps shared with other sessions' asks; NULL = alone */
    fastvlm_batcher *batcher;
    bool batch_decoding;           /* counted among the batcher's decoding sessions (its lock) */
    bool batch_done;               /* the posted step finished (its lock) */
    fastvlm_status batch_status;   /* and its outcome */
};

/* The abort poll handed to the decoder and the tower: the session flag or the caller's
 * callback. */
typedef struct abort_ctx {
    fastvlm_session *s;
    fastvlm_abort_fn fn;
    void *ud;
} abort_ctx;

bool fvlm_session_abort_poll(void *p);

/* batch.c: one decode step of `tok` through the session's batcher (joined with the steps
 * other sessions post meanwhile); as fvlm_session_eval(s, &tok, NULL, NULL, 1, NULL, ...).
 * fvlm_batcher_leave(): the session's decode loop ended (no more steps of this answer). */
fastvlm_status fvlm_batcher_step(fastvlm_session *s, int32_t tok, fastvlm_error *err);
void fvlm_batcher_leave(fastvlm_session *s);

/* Runs n rows (ids or embeddings) at n_past, records what the positions hold (`items`, or
 * the ids, or FVLM_KV_OPAQUE rows when both are NULL) and advances n_past, only on
 * success. all_logits: NULL, or n × n_vocab floats (the last row is also kept). */
fastvlm_status fvlm_session_eval(fastvlm_session *s, const int32_t *ids, const float *embd,
                                 const fvlm_kv_item *items, int32_t n, float *all_logits,
                                 abort_ctx *ab, fastvlm_error *err);

/* session_kv.c: the number of leading positions of items[0..n) the cache already holds. */
int32_t fvlm_session_kv_match(const fastvlm_session *s, const fvlm_kv_item *items, int32_t n);

/* speculative.c */
void fvlm_drafts_clear(fvlm_drafts *d);
/* The stored answer for `key`, or NULL (marks it used). */
const fvlm_draft_entry *fvlm_drafts_find(fvlm_drafts *d, const char *key, size_t key_len);
/* Stores (replacing the same key, else the least recently used entry). false on NOMEM
 * (then nothing changed: a draft is an optimisation, its loss is not an error). */
bool fvlm_drafts_store(fvlm_drafts *d, const char *key, size_t key_len, const int32_t *tokens,
                       int32_t n_tokens);
/* Where in draft[0..n_draft) the answer answer[0..n_answer) continues: the index c
 * (1 <= c < n_draft) after the longest (up to 3 tokens) match of the answer's last tokens,
 * the one nearest to `expect` among equals; -1 when nothing matches. */
int32_t fvlm_draft_continue(const int32_t *draft, int32_t n_draft, const int32_t *answer,
                            int32_t n_answer, int32_t expect);

#endif
