/*
 * batch.c — decode steps of several sessions as one forward pass: the cross-stream
 * batching of bench/multistream/README.md ("Cross-stream batching").
 *
 * A decode step reads every weight of the decoder for a single row, so it is bound by
 * memory bandwidth; n sessions stepping together as one n-row forward read the weights
 * once (fvlm_llm_forward_multi in llm.c), while attention stays per session over its own
 * KV cache. Each session ends exactly as after its own one-token eval: same cache rows,
 * same logits, same bookkeeping (tests/llm/test_batch.c compares them bit for bit).
 * The batcher (second half) makes that automatic for sessions running ask() at the same
 * time on their own threads: a rendezvous per decode step. The first session to post a
 * step while no batch runs leads: it waits until every session of the batcher that is in
 * its decode loop has posted (they are between two steps, microseconds away) or 20 ms,
 * takes all posted steps, runs them on its own pool without the lock, publishes each
 * session's outcome and wakes them. Sessions in the tower, the prefill or a speculative
 * verification batch are not in their decode loop and are not waited for.
 * What it is not: a generation loop (sampling, stop tokens and detokenizing stay with the
 * caller, e.g. fastvlm_session_sample() or ask()), nor a scheduler of which streams run.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "llm.h"
#include "model.h"
#include "session_impl.h"

fastvlm_status fastvlm_sessions_eval_batch(fastvlm_session *const *sessions, const int32_t *ids,
                                           int32_t n, fastvlm_error *err)
{
    fvlm_llm_state **sts = NULL;
    int32_t *pos = NULL;
    float **logits = NULL;
    abort_ctx ab;
    fastvlm_status status;

    fvlm_clear_error(err);
    if (!sessions || !ids || n < 1 || n > FASTVLM_BATCH_MAX_SESSIONS)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_sessions_eval_batch: NULL sessions/ids or n %d outside "
                              "[1, %d]", n, FASTVLM_BATCH_MAX_SESSIONS);
    if (!sessions[0] || n > sessions[0]->n_ctx)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_sessions_eval_batch: session 0 is NULL or its context "
                              "is shorter than the batch (%d)", n);
    for (int32_t i = 0; i < n; i++) {
        const fastvlm_session *s = sessions[i];
        if (!s || s->model != sessions[0]->model)
            return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                                  "fastvlm_sessions_eval_batch: session %d is NULL or on "
                                  "another model", (int)i);
        for (int32_t j = 0; j < i; j++)
            if (sessions[j] == s)
                return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                                      "fastvlm_sessions_eval_batch: sessions %d and %d are "
                                      "the same", (int)j, (int)i);
        if (ids[i] < 0 || ids[i] >= s->hp->n_vocab)
            return fvlm_set_error(err, FASTVLM_ERR_TOKEN_RANGE,
                                  "token id %d at index %d is out of range [0, %d)", ids[i],
                                  (int)i, s->hp->n_vocab);
        if (s->n_past + 1 > s->n_ctx)
            return fvlm_set_error(err, FASTVLM_ERR_CONTEXT_FULL,
                                  "session %d: cannot evaluate 1 position after %d: the "
                                  "context holds %d", (int)i, s->n_past, s->n_ctx);
    }
    /* every session's abort flag is cleared as eval_tokens does; the first session's
     * pool and scratch carry the batch, so its flag (request_abort) stops the step */
    for (int32_t i = 0; i < n; i++)
        atomic_store(&sessions[i]->abort_flag, false);

    sts = malloc((size_t)n * sizeof *sts);
    pos = malloc((size_t)n * sizeof *pos);
    logits = malloc((size_t)n * sizeof *logits);
    if (!sts || !pos || !logits) {
        status = fvlm_set_error(err, FASTVLM_ERR_NOMEM, "fastvlm_sessions_eval_batch: "
                                "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < n; i++) {
        sts[i] = sessions[i]->st;
        pos[i] = sessions[i]->n_past;
        logits[i] = sessions[i]->logits;
    }

    /* the first session's scratch (min(n_ctx, 512) rows >= n) carries the batch */
    ab = (abort_ctx){sessions[0], NULL, NULL};
    status = fvlm_llm_forward_multi(sessions[0]->model->llm, sts, n, sessions[0]->pool, ids,
                                    pos, logits, fvlm_session_abort_poll, &ab, err);
    for (int32_t i = 0; i < n; i++) {
        fastvlm_session *s = sessions[i];
        if (status != FASTVLM_OK) {
            /* as fvlm_session_eval: the cache is unchanged, the logits are not offered */
            s->have_logits = false;
            continue;
        }
        s->have_logits = true;
        s->kv_items[s->n_past] = (fvlm_kv_item){FVLM_KV_TOKEN, ids[i]};
        s->n_past++;
    }

done:
    free(sts);
    free(pos);
    free(logits);
    return status;
}

/* ---- the batcher: a rendezvous of concurrent asks' decode steps ------------------------- */

#define BATCHER_WAIT_NS 20000000L  /* longest a leader waits for a decoding session, 20 ms */

struct fastvlm_batcher {
    const fastvlm_model *model;
    pthread_mutex_t lock;
    pthread_cond_t cond;           /* every change: a post, a batch done, a session leaving */
    /* under lock */
    int32_t n_decoding;            /* sessions inside their decode loop */
    bool running;                  /* a leader is running a batch */
    int32_t n_pending;
    fastvlm_session *pending[FASTVLM_BATCH_MAX_SESSIONS];
    int32_t pending_tok[FASTVLM_BATCH_MAX_SESSIONS];
    uint64_t n_batches, n_rows;    /* forwards run, rows in them */
};

fastvlm_status fastvlm_batcher_new(const fastvlm_model *model, fastvlm_batcher **out,
                                   fastvlm_error *err)
{
    fastvlm_batcher *b;
    pthread_condattr_t ca;

    fvlm_clear_error(err);
    if (!out || !model || !model->llm)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_batcher_new: NULL output or a model without a decoder");
    *out = NULL;
    b = calloc(1, sizeof *b);
    if (!b)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "fastvlm_batcher_new: out of memory");
    b->model = model;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = b;
    return FASTVLM_OK;
}

void fastvlm_batcher_free(fastvlm_batcher *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b);
}

void fastvlm_batcher_get_stats(fastvlm_batcher *b, uint64_t *n_batches, uint64_t *n_rows)
{
    pthread_mutex_lock(&b->lock);
    if (n_batches)
        *n_batches = b->n_batches;
    if (n_rows)
        *n_rows = b->n_rows;
    pthread_mutex_unlock(&b->lock);
}

fastvlm_status fastvlm_session_set_batcher(fastvlm_session *s, fastvlm_batcher *b,
                                           fastvlm_error *err)
{
    fvlm_clear_error(err);
    if (!s || (b && b->model != s->model))
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_set_batcher: NULL session or another model");
    s->batcher = b;
    s->batch_decoding = false;
    return FASTVLM_OK;
}

/* Runs the taken steps (leader = sessions[0]) and publishes their outcomes. No lock held. */
static void batcher_run(fastvlm_batcher *b, fastvlm_session **ss, const int32_t *toks,
                        int32_t n)
{
    fvlm_llm_state *sts[FASTVLM_BATCH_MAX_SESSIONS];
    int32_t pos[FASTVLM_BATCH_MAX_SESSIONS];
    float *logits[FASTVLM_BATCH_MAX_SESSIONS];
    fastvlm_error e;
    fastvlm_status st;

    for (int32_t i = 0; i < n; i++) {
        sts[i] = ss[i]->st;
        pos[i] = ss[i]->n_past;
        logits[i] = ss[i]->logits;
    }
    /* no abort poll: one step is short, and one session's abort must not fail the others'
     * rows (each ask polls its own flag between tokens) */
    st = fvlm_llm_forward_multi(b->model->llm, sts, n, ss[0]->pool, toks, pos, logits, NULL,
                                NULL, &e);
    pthread_mutex_lock(&b->lock);
    for (int32_t i = 0; i < n; i++) {
        fastvlm_session *s = ss[i];
        s->batch_status = st;
        s->have_logits = st == FASTVLM_OK;
        if (st == FASTVLM_OK) {
            s->kv_items[s->n_past] = (fvlm_kv_item){FVLM_KV_TOKEN, toks[i]};
            s->n_past++;
        }
        s->batch_done = true;
    }
    b->running = false;
    b->n_batches++;
    b->n_rows += (uint64_t)n;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

fastvlm_status fvlm_batcher_step(fastvlm_session *s, int32_t tok, fastvlm_error *err)
{
    fastvlm_batcher *b = s->batcher;
    fastvlm_session *ss[FASTVLM_BATCH_MAX_SESSIONS];
    int32_t toks[FASTVLM_BATCH_MAX_SESSIONS];
    /* rows a leader's scratch holds: min(n_ctx, 512) in session.c, so this is safe */
    const int32_t cap = s->n_ctx < FASTVLM_BATCH_MAX_SESSIONS ? s->n_ctx
                                                              : FASTVLM_BATCH_MAX_SESSIONS;
    fastvlm_status st;

    if (s->n_past + 1 > s->n_ctx)
        return fvlm_set_error(err, FASTVLM_ERR_CONTEXT_FULL,
                              "cannot evaluate 1 position after %d: the context holds %d",
                              s->n_past, s->n_ctx);
    pthread_mutex_lock(&b->lock);
    if (!s->batch_decoding) {
        s->batch_decoding = true;
        b->n_decoding++;
    }
    while (b->n_pending >= FASTVLM_BATCH_MAX_SESSIONS)
        pthread_cond_wait(&b->cond, &b->lock);
    b->pending[b->n_pending] = s;
    b->pending_tok[b->n_pending] = tok;
    b->n_pending++;
    s->batch_done = false;
    pthread_cond_broadcast(&b->cond);

    while (!s->batch_done) {
        if (!b->running && b->n_pending > 0 && b->pending[0] == s) {
            /* lead: wait for the other decoding sessions' steps, briefly */
            struct timespec until;
            int32_t n;

            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += BATCHER_WAIT_NS;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            while (b->n_pending < b->n_decoding && b->n_pending < cap)
                if (pthread_cond_timedwait(&b->cond, &b->lock, &until) == ETIMEDOUT)
                    break;
            n = b->n_pending < cap ? b->n_pending : cap;
            memcpy(ss, b->pending, (size_t)n * sizeof *ss);
            memcpy(toks, b->pending_tok, (size_t)n * sizeof *toks);
            memmove(b->pending, b->pending + n, (size_t)(b->n_pending - n) * sizeof *ss);
            memmove(b->pending_tok, b->pending_tok + n,
                    (size_t)(b->n_pending - n) * sizeof *toks);
            b->n_pending -= n;
            b->running = true;
            pthread_mutex_unlock(&b->lock);
            batcher_run(b, ss, toks, n);
            pthread_mutex_lock(&b->lock);
            continue;
        }
        pthread_cond_wait(&b->cond, &b->lock);
    }
    st = s->batch_status;
    pthread_mutex_unlock(&b->lock);
    if (st != FASTVLM_OK)
        return fvlm_set_error(err, st, "batched decode step failed (%s)", fastvlm_status_str(st));
    return FASTVLM_OK;
}

void fvlm_batcher_leave(fastvlm_session *s)
{
    fastvlm_batcher *b = s->batcher;

    pthread_mutex_lock(&b->lock);
    if (s->batch_decoding) {
        s->batch_decoding = false;
        b->n_decoding--;
        pthread_cond_broadcast(&b->cond);
    }
    pthread_mutex_unlock(&b->lock);
}
