/*
 * sampler.c — next-token selection (sampler.h): repetition penalty, greedy, temperature,
 * top-k, top-p, and a xoshiro256** generator seeded with splitmix64.
 *
 * Everything is deterministic for a given seed: candidate order is fixed by (logit
 * descending, id ascending), sums are accumulated in double in that order, and the only
 * randomness is one fvlm_rng_uniform() draw per sampled token.
 * Not here: the logits themselves (llm.c) and the decode loop (session.c).
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

/* ---- random numbers ------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fvlm_rng_seed(fvlm_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t fvlm_rng_next(fvlm_rng *rng)
{
    uint64_t *s = rng->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double fvlm_rng_uniform(fvlm_rng *rng)
{
    return (double)(fvlm_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0); /* 2^-53 */
}

/* ---- sampler ---------------------------------------------------------------------------- */

typedef struct cand {
    float logit;
    int32_t id;
    double p;
} cand;

struct fvlm_sampler {
    int32_t n_vocab;
    float *work;      /* [n_vocab] penalised logits */
    unsigned char *mark; /* [n_vocab] "already penalised" flags, all 0 between calls */
    cand *c;          /* [n_vocab] candidates */
};

fvlm_sampler *fvlm_sampler_new(int32_t n_vocab)
{
    fvlm_sampler *s;
    if (n_vocab < 1)
        return NULL;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->n_vocab = n_vocab;
    s->work = malloc((size_t)n_vocab * sizeof *s->work);
    s->mark = calloc((size_t)n_vocab, 1);
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    if (!s->work || !s->mark || !s->c) {
        fvlm_sampler_free(s);
        return NULL;
    }
    return s;
}

void fvlm_sampler_free(fvlm_sampler *s)
{
    if (!s)
        return;
    free(s->work);
    free(s->mark);
    free(s->c);
    free(s);
}

/* The fixed candidate order: higher logit first, lower id first on ties. */
static inline bool cand_before(const cand *a, const cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (cand_before(a, b))
        return -1;
    if (cand_before(b, a))
        return 1;
    return 0;
}

/* Min-heap (by cand order: the root is the worst kept candidate) of c[0..n). */
static void heap_sift_down(cand *c, int32_t n, int32_t i)
{
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && cand_before(&c[w], &c[l]))
            w = l;
        if (r < n && cand_before(&c[w], &c[r]))
            w = r;
        if (w == i)
            return;
        cand t = c[i];
        c[i] = c[w];
        c[w] = t;
        i = w;
    }
}

/* Moves the k best of c[0..n) to c[0..k), sorted best first. O(n log k). */
static void select_top_k(cand *c, int32_t n, int32_t k)
{
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        heap_sift_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        if (cand_before(&c[i], &c[0])) {
            c[0] = c[i];
            heap_sift_down(c, k, 0);
        }
    }
    qsort(c, (size_t)k, sizeof *c, cand_cmp);
}

int32_t fvlm_sampler_sample(fvlm_sampler *s, const float *logits,
                            const fastvlm_sampler_params *p, const int32_t *history,
                            int32_t n_history, fvlm_rng *rng)
{
    const int32_t nv = s->n_vocab;
    float *w = s->work;
    int32_t n;
    bool sorted = false;

    memcpy(w, logits, (size_t)nv * sizeof *w);

    /* 1. repetition penalty, once per distinct id in the window */
    if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f && history && n_history > 0 &&
        p->repeat_last_n != 0) {
        const int32_t win = p->repeat_last_n < 0 || p->repeat_last_n > n_history
                                ? n_history : p->repeat_last_n;
        const int32_t *h = history + (n_history - win);
        for (int32_t j = 0; j < win; j++) {
            const int32_t id = h[j];
            if (id < 0 || id >= nv || s->mark[id])
                continue;
            s->mark[id] = 1;
            w[id] = w[id] > 0.0f ? w[id] / p->repeat_penalty : w[id] * p->repeat_penalty;
        }
        for (int32_t j = 0; j < win; j++)
            if (h[j] >= 0 && h[j] < nv)
                s->mark[h[j]] = 0;
    }

    /* 2. greedy */
    if (!(p->temperature > 0.0f)) {
        int32_t best = 0;
        for (int32_t i = 1; i < nv; i++)
            if (w[i] > w[best])
                best = i;
        return best;
    }

    /* 3. temperature */
    for (int32_t i = 0; i < nv; i++) {
        s->c[i].logit = w[i] / p->temperature;
        s->c[i].id = i;
    }
    n = nv;

    /* 4. top-k */
    if (p->top_k > 0 && p->top_k < n) {
        select_top_k(s->c, n, p->top_k);
        n = p->top_k;
        sorted = true;
    }

    /* 5. softmax over the candidates */
    {
        float mx = s->c[0].logit;
        double sum = 0.0;
        for (int32_t i = 1; i < n; i++)
            if (s->c[i].logit > mx)
                mx = s->c[i].logit;
        for (int32_t i = 0; i < n; i++) {
            s->c[i].p = exp((double)s->c[i].logit - (double)mx);
            sum += s->c[i].p;
        }
        for (int32_t i = 0; i < n; i++)
            s->c[i].p /= sum;
    }

    /* 6. top-p (nucleus): keep the most probable tokens until their mass reaches top_p */
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        int32_t keep = n;
        if (!sorted)
            qsort(s->c, (size_t)n, sizeof *s->c, cand_cmp);
        for (int32_t i = 0; i < n; i++) {
            cum += s->c[i].p;
            if (cum >= (double)p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }

    /* 7. draw (renormalising over the kept candidates) */
    {
        double total = 0.0, acc = 0.0, u;
        for (int32_t i = 0; i < n; i++)
            total += s->c[i].p;
        u = fvlm_rng_uniform(rng) * total;
        for (int32_t i = 0; i < n; i++) {
            acc += s->c[i].p;
            if (u < acc)
                return s->c[i].id;
        }
        return s->c[n - 1].id;
    }
}
