/*
 * session_kv.c — what a session's KV cache holds, position by position, and the two uses
 * of knowing it (fastvlm.h, "Reuse across frames"):
 *   - prefix matching: ask() keeps the longest prefix of its prompt that the cache already
 *     holds (fvlm_session_kv_match) and prefills only the rest;
 *   - snapshots: a copy of positions [0, n) — keys, values and items — restorable into any
 *     session of the same model, to fork one prefix into several continuations.
 *
 * Why reuse is exact: the key/value rows at position p depend only on the items at
 * positions 0..p (causal attention), and the decoder computes a row the same way, bit for
 * bit, whatever batch it is part of (kernels_arch.h: a tile's shape never changes a
 * result; test_session checks batch == token by token). So a cache whose items agree
 * with a prompt on [0, p) holds exactly the rows a fresh prefill would write there.
 * Not here: the KV arrays themselves (llm.c), the prompt layout (session.c).
 */
#include <stdlib.h>
#include <string.h>

#include "session_impl.h"

struct fastvlm_kv_snapshot {
    const fastvlm_model *model;
    int32_t n_pos;
    fvlm_kv_item *items;   /* [n_pos] */
    float *kv;             /* fvlm_llm_kv_floats(n_pos): [2][n_layer][n_pos][kv_dim] */
};

int32_t fvlm_session_kv_match(const fastvlm_session *s, const fvlm_kv_item *items, int32_t n)
{
    const int32_t lim = n < s->n_past ? n : s->n_past;
    int32_t i = 0;
    while (i < lim && fvlm_kv_item_eq(s->kv_items[i], items[i]))
        i++;
    return i;
}

fastvlm_status fastvlm_session_kv_snapshot(fastvlm_session *s, int32_t n_pos,
                                           fastvlm_kv_snapshot **out, fastvlm_error *err)
{
    fastvlm_kv_snapshot *snap;
    size_t n_floats;

    fvlm_clear_error(err);
    if (out)
        *out = NULL;
    if (!s || !out)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_kv_snapshot: NULL session/out");
    if (n_pos == -1)
        n_pos = s->n_past;
    if (n_pos < 0 || n_pos > s->n_past)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_kv_snapshot: n_pos %d is outside [0, %d] "
                              "(positions in the cache)", n_pos, s->n_past);
    n_floats = fvlm_llm_kv_floats(s->st, n_pos);
    snap = calloc(1, sizeof *snap);
    if (!snap)
        goto nomem;
    snap->model = s->model;
    snap->n_pos = n_pos;
    /* +1: a valid pointer for n_pos = 0 too */
    snap->items = malloc(((size_t)n_pos + 1) * sizeof *snap->items);
    snap->kv = malloc((n_floats + 1) * sizeof(float));
    if (!snap->items || !snap->kv)
        goto nomem;
    memcpy(snap->items, s->kv_items, (size_t)n_pos * sizeof *snap->items);
    fvlm_llm_kv_save(s->st, n_pos, snap->kv);
    *out = snap;
    return FASTVLM_OK;

nomem:
    fastvlm_kv_snapshot_free(snap);
    return fvlm_set_error(err, FASTVLM_ERR_NOMEM,
                          "fastvlm_session_kv_snapshot: cannot allocate %zu floats for %d "
                          "positions", n_floats, n_pos);
}

fastvlm_status fastvlm_session_kv_restore(fastvlm_session *s, const fastvlm_kv_snapshot *snap,
                                          fastvlm_error *err)
{
    fvlm_clear_error(err);
    if (!s || !snap)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_kv_restore: NULL session/snapshot");
    if (snap->model != s->model)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fastvlm_session_kv_restore: the snapshot was taken with another "
                              "model");
    if (snap->n_pos > s->n_ctx)
        return fvlm_set_error(err, FASTVLM_ERR_CONTEXT_FULL,
                              "fastvlm_session_kv_restore: the snapshot holds %d positions but "
                              "the context holds %d", snap->n_pos, s->n_ctx);
    fvlm_llm_kv_load(s->st, snap->n_pos, snap->kv);
    memcpy(s->kv_items, snap->items, (size_t)snap->n_pos * sizeof *snap->items);
    s->n_past = snap->n_pos;
    s->have_logits = false;
    return FASTVLM_OK;
}

int32_t fastvlm_kv_snapshot_n_pos(const fastvlm_kv_snapshot *snap)
{
    return snap ? snap->n_pos : 0;
}

void fastvlm_kv_snapshot_free(fastvlm_kv_snapshot *snap)
{
    if (!snap)
        return;
    free(snap->items);
    free(snap->kv);
    free(snap);
}
