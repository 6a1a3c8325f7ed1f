/*
 * speculative.c — drafts for previous-caption speculative decoding (fastvlm.h, "Reuse
 * across frames"): the session's previous answer per (chat, system prompt, prompt), kept
 * for the last FASTVLM_MAX_DRAFT_PROMPTS prompts, and where in a draft the answer being
 * generated continues.
 *
 * Captions of consecutive frames mostly repeat, with a word changed here and there
 * ("a red car" → "a blue car"): after a disagreement the draft is realigned on the last
 * one to three generated tokens, at the match nearest to where the old alignment points.
 * A wrong draft costs only wasted rows: ask() (session.c) verifies every draft token
 * against the model's own greedy choice and keeps a token only when they agree, so the
 * answer is the plain greedy answer whatever the draft. Not here: that verification loop
 * (session.c), the sampler (sampler.c).
 */
#include <stdlib.h>
#include <string.h>

#include "session_impl.h"

static void entry_free(fvlm_draft_entry *e)
{
    free(e->key);
    free(e->tokens);
    memset(e, 0, sizeof *e);
}

void fvlm_drafts_clear(fvlm_drafts *d)
{
    for (int i = 0; i < FASTVLM_MAX_DRAFT_PROMPTS; i++)
        entry_free(&d->e[i]);
    d->clock = 0;
}

void fastvlm_session_clear_drafts(fastvlm_session *s)
{
    if (s)
        fvlm_drafts_clear(&s->drafts);
}

static fvlm_draft_entry *lookup(fvlm_drafts *d, const char *key, size_t key_len)
{
    for (int i = 0; i < FASTVLM_MAX_DRAFT_PROMPTS; i++) {
        fvlm_draft_entry *e = &d->e[i];
        if (e->key && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return e;
    }
    return NULL;
}

const fvlm_draft_entry *fvlm_drafts_find(fvlm_drafts *d, const char *key, size_t key_len)
{
    fvlm_draft_entry *e = lookup(d, key, key_len);
    if (e)
        e->last_used = ++d->clock;
    return e;
}

bool fvlm_drafts_store(fvlm_drafts *d, const char *key, size_t key_len, const int32_t *tokens,
                       int32_t n_tokens)
{
    fvlm_draft_entry *e = lookup(d, key, key_len);
    int32_t *copy;

    if (n_tokens < 1)
        return true;
    copy = malloc((size_t)n_tokens * sizeof *copy);
    if (!copy)
        return false;
    memcpy(copy, tokens, (size_t)n_tokens * sizeof *copy);
    if (!e) {
        char *k = malloc(key_len ? key_len : 1);
        if (!k) {
            free(copy);
            return false;
        }
        memcpy(k, key, key_len);
        /* a free slot, else the least recently used */
        e = &d->e[0];
        for (int i = 0; i < FASTVLM_MAX_DRAFT_PROMPTS; i++) {
            if (!d->e[i].key) {
                e = &d->e[i];
                break;
            }
            if (d->e[i].last_used < e->last_used)
                e = &d->e[i];
        }
        entry_free(e);
        e->key = k;
        e->key_len = key_len;
    }
    free(e->tokens);
    e->tokens = copy;
    e->n_tokens = n_tokens;
    e->last_used = ++d->clock;
    return true;
}

int32_t fvlm_draft_continue(const int32_t *draft, int32_t n_draft, const int32_t *answer,
                            int32_t n_answer, int32_t expect)
{
    for (int32_t g = n_answer < 3 ? n_answer : 3; g >= 1; g--) {
        const int32_t *tail = answer + (n_answer - g);
        int32_t best = -1;
        int64_t best_dist = 0;
        for (int32_t c = g; c < n_draft; c++) {
            if (memcmp(draft + (c - g), tail, (size_t)g * sizeof *tail) != 0)
                continue;
            const int64_t dist = c > expect ? (int64_t)c - expect : (int64_t)expect - c;
            if (best < 0 || dist < best_dist) {
                best = c;
                best_dist = dist;
            }
        }
        if (best >= 0)
            return best;
    }
    return -1;
}
