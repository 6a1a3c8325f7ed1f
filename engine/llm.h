/*
 * llm.h — the Qwen2 decoder: weights read from llama.cpp's `qwen2` GGUF layout, the KV
 * cache and the batched forward pass (token ids or embedding rows in, logits out).
 *
 * The weights (fvlm_llm) are immutable after load and shared by every session; all
 * mutable state (KV cache, scratch) lives in an fvlm_llm_state owned by one session.
 * Not here: tokenization, sampling, chat templates, image splicing (session.c).
 */
#ifndef FVLM_LLM_H
#define FVLM_LLM_H

#include <stdbool.h>
#include <stdint.h>

#include "fastvlm.h"
#include "gguf.h"
#include "threadpool.h"

typedef struct fvlm_llm fvlm_llm;
typedef struct fvlm_llm_state fvlm_llm_state;

typedef struct fvlm_llm_hparams {
    int32_t n_vocab;       /* rows of token_embd */
    int32_t n_ctx_train;   /* qwen2.context_length */
    int32_t n_embd;        /* qwen2.embedding_length (hidden size) */
    int32_t n_layer;       /* qwen2.block_count */
    int32_t n_head;        /* qwen2.attention.head_count */
    int32_t n_head_kv;     /* qwen2.attention.head_count_kv (GQA) */
    int32_t head_dim;      /* n_embd / n_head */
    int32_t n_ff;          /* qwen2.feed_forward_length */
    float rope_theta;      /* qwen2.rope.freq_base */
    float rms_eps;         /* qwen2.attention.layer_norm_rms_epsilon */
    bool tied_output;      /* no output.weight: the lm_head is token_embd */
} fvlm_llm_hparams;

/* Reads hyperparameters and every tensor (shape-checked) from `g`, which must outlive the
 * result (weights point into its mapping). general.architecture must be "qwen2"
 * (UNSUPPORTED naming the value otherwise). */
fastvlm_status fvlm_llm_load(const fvlm_gguf *g, fvlm_llm **out, fastvlm_error *err);
void fvlm_llm_free(fvlm_llm *llm);
const fvlm_llm_hparams *fvlm_llm_hparams_get(const fvlm_llm *llm);
/* Bytes of weight data referenced (for the load log). */
size_t fvlm_llm_weight_bytes(const fvlm_llm *llm);

/* Writes the token embeddings of ids[0..n) as n rows of n_embd floats. The ids must have
 * been range-checked by the caller. */
void fvlm_llm_embed(const fvlm_llm *llm, const int32_t *ids, int32_t n, float *out);

/* Per-session state: KV cache of n_ctx positions, scratch for batches of up to n_batch
 * rows (longer inputs are processed in chunks), attention buffers for n_threads workers. */
fastvlm_status fvlm_llm_state_new(const fvlm_llm *llm, int32_t n_ctx, int32_t n_batch,
                                  int32_t n_threads, fvlm_llm_state **out,
                                  fastvlm_error *err);
void fvlm_llm_state_free(fvlm_llm_state *st);
int32_t fvlm_llm_state_n_ctx(const fvlm_llm_state *st);
/* EXACT (the default of a new state) or FAST (fastvlm.h) for the quantized matrices. */
void fvlm_llm_state_set_precision(fvlm_llm_state *st, fastvlm_precision precision);

/* Returns true when the caller wants to stop; polled between layers. */
typedef bool (*fvlm_llm_abort_fn)(void *ud);

/* Runs the decoder over n input rows at positions n_past..n_past+n-1 and writes their
 * keys/values into the cache. Input is either `ids` (n token ids, already range-checked)
 * or `embd` (n rows of n_embd floats); exactly one must be non-NULL.
 * `logits`: with all_logits, n × n_vocab floats (one row per input); otherwise n_vocab
 * floats for the last row only (the lm_head is not run on the other rows); NULL = none.
 * The caller guarantees n_past + n <= n_ctx. Returns OK or ABORTED (cache rows past
 * n_past may then hold partial data; the caller simply does not advance n_past). */
fastvlm_status fvlm_llm_forward(const fvlm_llm *llm, fvlm_llm_state *st, fvlm_pool *pool,
                                const int32_t *ids, const float *embd, int32_t n,
                                int32_t n_past, float *logits, bool all_logits,
                                fvlm_llm_abort_fn should_abort, void *abort_ud,
                                fastvlm_error *err);

/* One decode step of nb states at once (batch.c): row i is token ids[i] of state sts[i]
 * (distinct states of this model) at position pos[i] (< its n_ctx); its key/value go into
 * that state's cache and its n_vocab logits to logits[i]. The matrix products run once
 * over all rows (each weight read once per step); attention stays per state. Row i's
 * results are those of fvlm_llm_forward(sts[i], ids + i, 1, pos[i]) when the matmul is
 * batch-invariant (tests/llm/test_batch.c checks). sts[0]'s scratch holds the batch:
 * nb <= its n_batch, pool size <= its n_threads. Returns OK, ABORTED or NOMEM. */
fastvlm_status fvlm_llm_forward_multi(const fvlm_llm *llm, fvlm_llm_state *const *sts,
                                      int32_t nb, fvlm_pool *pool, const int32_t *ids,
                                      const int32_t *pos, float *const *logits,
                                      fvlm_llm_abort_fn should_abort, void *abort_ud,
                                      fastvlm_error *err);

/* KV snapshots (session_kv.c): positions [0, n_pos) of every layer's keys and values,
 * n_pos <= n_ctx. fvlm_llm_kv_floats() is the size of one copy in floats (keys and values
 * together, layout [2][n_layer][n_pos][kv_dim]); save copies out of the cache, load back
 * into it (the rows at and after n_pos are left as they are). */
size_t fvlm_llm_kv_floats(const fvlm_llm_state *st, int32_t n_pos);
void fvlm_llm_kv_save(const fvlm_llm_state *st, int32_t n_pos, float *dst);
void fvlm_llm_kv_load(fvlm_llm_state *st, int32_t n_pos, const float *src);

#endif
