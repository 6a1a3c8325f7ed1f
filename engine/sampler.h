/*
 * sampler.h — choosing the next token from a row of logits: repetition penalty, greedy,
 * temperature, top-k, top-p, and the seeded random generator a session keeps.
 * Not here: logits (llm.h) or the decode loop (session.c).
 */
#ifndef FVLM_SAMPLER_H
#define FVLM_SAMPLER_H

#include <stdint.h>

#include "fastvlm.h"

/* xoshiro256** state; seeded through splitmix64 so any 64-bit seed (0 included) works. */
typedef struct fvlm_rng {
    uint64_t s[4];
} fvlm_rng;

void fvlm_rng_seed(fvlm_rng *rng, uint64_t seed);
uint64_t fvlm_rng_next(fvlm_rng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
double fvlm_rng_uniform(fvlm_rng *rng);

/* Scratch for one vocabulary (candidate list and penalty marks), allocated once per
 * session so sampling does not allocate per token. */
typedef struct fvlm_sampler fvlm_sampler;

fvlm_sampler *fvlm_sampler_new(int32_t n_vocab);   /* NULL on out of memory */
void fvlm_sampler_free(fvlm_sampler *s);

/* Picks a token from logits[0..n_vocab). Order of operations (as llama.cpp / HF):
 *   1. repetition penalty on the distinct ids among the last repeat_last_n of history
 *      (logit > 0 ? logit / p : logit · p); repeat_last_n 0 = off, < 0 = all history;
 *   2. temperature <= 0: argmax (lowest id on ties), done;
 *   3. logits / temperature; 4. top-k; 5. softmax; 6. top-p: the smallest set of most
 *      probable tokens whose mass reaches top_p, renormalised; 7. draw with `rng`.
 * History ids outside [0, n_vocab) are ignored. `logits` is not modified. */
int32_t fvlm_sampler_sample(fvlm_sampler *s, const float *logits,
                            const fastvlm_sampler_params *p, const int32_t *history,
                            int32_t n_history, fvlm_rng *rng);

#endif
