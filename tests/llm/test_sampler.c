/*
 * test_sampler.c — sampler.c against its definition: greedy = argmax (lowest id on ties),
 * top-k = 1 and a tiny top-p both reduce to greedy, the same seed gives the same draws,
 * temperature / top-k / top-p change the distribution exactly as the formulas say
 * (frequencies over many draws with a fixed seed, within 5 standard deviations), and the
 * repetition penalty divides positive / multiplies negative logits once per distinct id of
 * the window.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sampler.h"

static fastvlm_sampler_params params(float temp, int32_t top_k, float top_p)
{
    fastvlm_sampler_params p = fastvlm_sampler_default_params();
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    return p;
}

static void test_rng(void)
{
    fvlm_rng a, b, c;
    int same = 0;
    double mean = 0.0;
    fvlm_rng_seed(&a, 42);
    fvlm_rng_seed(&b, 42);
    fvlm_rng_seed(&c, 43);
    for (int i = 0; i < 1000; i++) {
        const uint64_t x = fvlm_rng_next(&a), y = fvlm_rng_next(&b), z = fvlm_rng_next(&c);
        CHECK(x == y, "same seed, different value at draw %d", i);
        same += x == z;
    }
    CHECK(same == 0, "seeds 42 and 43 gave %d equal values", same);
    fvlm_rng_seed(&a, 0);
    for (int i = 0; i < 100000; i++) {
        const double u = fvlm_rng_uniform(&a);
        CHECK(u >= 0.0 && u < 1.0, "uniform out of [0,1): %g", u);
        mean += u;
    }
    mean /= 100000;
    CHECK(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / 100000), "uniform mean %g", mean);
}

static void test_greedy_equivalents(fvlm_sampler *s, int32_t nv)
{
    float *logits = malloc((size_t)nv * sizeof *logits);
    fvlm_rng rng;
    fvlm_rng_seed(&rng, 7);
    for (int trial = 0; trial < 200; trial++) {
        int32_t best = 0;
        for (int32_t i = 0; i < nv; i++)
            logits[i] = (float)(fvlm_rng_uniform(&rng) * 10.0 - 5.0);
        if (trial % 10 == 0) /* a tie: the lowest id wins */
            logits[nv - 1] = logits[nv / 2] = 6.0f;
        for (int32_t i = 1; i < nv; i++)
            if (logits[i] > logits[best])
                best = i;
        fastvlm_sampler_params g = params(0.0f, 0, 1.0f);
        fastvlm_sampler_params k1 = params(0.8f, 1, 1.0f);
        fastvlm_sampler_params p0 = params(1.3f, 0, 1e-6f);
        fastvlm_sampler_params kp = params(2.0f, 40, 1e-6f);
        CHECK(fvlm_sampler_sample(s, logits, &g, NULL, 0, &rng) == best, "greedy != argmax");
        CHECK(fvlm_sampler_sample(s, logits, &k1, NULL, 0, &rng) == best, "top_k=1 != greedy");
        CHECK(fvlm_sampler_sample(s, logits, &p0, NULL, 0, &rng) == best, "tiny top_p != greedy");
        CHECK(fvlm_sampler_sample(s, logits, &kp, NULL, 0, &rng) == best,
              "top_k=40 + tiny top_p != greedy");
    }
    free(logits);
}

static void test_determinism(fvlm_sampler *s, int32_t nv)
{
    float *logits = malloc((size_t)nv * sizeof *logits);
    int32_t seq[3][64];
    fvlm_rng rng;
    fastvlm_sampler_params p = params(1.0f, 50, 0.9f);
    for (int32_t i = 0; i < nv; i++)
        logits[i] = (float)sin(i * 0.37) * 3.0f;
    for (int r = 0; r < 3; r++) {
        fvlm_rng_seed(&rng, r < 2 ? 1234 : 999);
        for (int i = 0; i < 64; i++)
            seq[r][i] = fvlm_sampler_sample(s, logits, &p, NULL, 0, &rng);
    }
    CHECK(memcmp(seq[0], seq[1], sizeof seq[0]) == 0, "same seed, different samples");
    CHECK(memcmp(seq[0], seq[2], sizeof seq[0]) != 0, "different seeds, same 64 samples");
    free(logits);
}

/* Draws N times and checks each id's frequency against `expect` (5 sigma). */
static void check_distribution(fvlm_sampler *s, const float *logits, int32_t nv,
                               const fastvlm_sampler_params *p, const double *expect,
                               const char *what)
{
    enum { N = 40000 };
    int counts[16] = {0};
    fvlm_rng rng;
    fvlm_rng_seed(&rng, 2024);
    for (int i = 0; i < N; i++) {
        const int32_t t = fvlm_sampler_sample(s, logits, p, NULL, 0, &rng);
        CHECK(t >= 0 && t < nv, "%s: sample %d out of range", what, t);
        if (t >= 0 && t < nv)
            counts[t]++;
    }
    for (int32_t i = 0; i < nv; i++) {
        const double f = (double)counts[i] / N;
        const double sigma = sqrt(expect[i] * (1.0 - expect[i]) / N);
        if (expect[i] == 0.0)
            CHECK(counts[i] == 0, "%s: id %d drawn %d times, expected never", what, i, counts[i]);
        else
            CHECK(fabs(f - expect[i]) <= 5.0 * sigma + 1e-12,
                  "%s: id %d frequency %.4f, expected %.4f (sigma %.4f)", what, i, f, expect[i],
                  sigma);
    }
}

static void test_distributions(void)
{
    enum { NV = 5 };
    static const double pr[NV] = {0.5, 0.25, 0.125, 0.0625, 0.0625};
    float logits[NV];
    double expect[NV];
    fvlm_sampler *s = fvlm_sampler_new(NV);
    fastvlm_sampler_params p;
    for (int i = 0; i < NV; i++)
        logits[i] = (float)log(pr[i]) + 1.5f; /* an offset must not matter */

    /* temperature T: p_i ∝ pr_i^(1/T) */
    static const float temps[] = {1.0f, 2.0f, 0.5f};
    for (int ti = 0; ti < 3; ti++) {
        double z = 0.0;
        for (int i = 0; i < NV; i++)
            z += pow(pr[i], 1.0 / temps[ti]);
        for (int i = 0; i < NV; i++)
            expect[i] = pow(pr[i], 1.0 / temps[ti]) / z;
        p = params(temps[ti], 0, 1.0f);
        char what[64];
        snprintf(what, sizeof what, "temperature %.1f", (double)temps[ti]);
        check_distribution(s, logits, NV, &p, expect, what);
    }
    /* top-k 2: the two best, renormalised */
    p = params(1.0f, 2, 1.0f);
    {
        const double e[NV] = {2.0 / 3.0, 1.0 / 3.0, 0, 0, 0};
        check_distribution(s, logits, NV, &p, e, "top-k 2");
    }
    /* top-p 0.7: 0.5 + 0.25 reaches 0.7, so ids 0 and 1, renormalised */
    p = params(1.0f, 0, 0.7f);
    {
        const double e[NV] = {2.0 / 3.0, 1.0 / 3.0, 0, 0, 0};
        check_distribution(s, logits, NV, &p, e, "top-p 0.7");
    }
    /* top-p 0.8: needs the third token too */
    p = params(1.0f, 0, 0.8f);
    {
        const double e[NV] = {0.5 / 0.875, 0.25 / 0.875, 0.125 / 0.875, 0, 0};
        check_distribution(s, logits, NV, &p, e, "top-p 0.8");
    }
    /* top-p after temperature 2: q_i ∝ sqrt(pr_i) = .343 .243 .172 .121 .121; the first
     * two hold .586 < 0.6, so three are kept */
    p = params(2.0f, 0, 0.6f);
    {
        double z = 0.0, kept = 0.0, cum = 0.0, e[NV] = {0};
        int n_keep = NV;
        for (int i = 0; i < NV; i++)
            z += sqrt(pr[i]);
        for (int i = 0; i < NV; i++) {
            cum += sqrt(pr[i]) / z;
            if (cum >= 0.6) {
                n_keep = i + 1;
                break;
            }
        }
        CHECK(n_keep == 3, "test arithmetic: %d kept", n_keep);
        for (int i = 0; i < n_keep; i++)
            kept += sqrt(pr[i]);
        for (int i = 0; i < n_keep; i++)
            e[i] = sqrt(pr[i]) / kept;
        check_distribution(s, logits, NV, &p, e, "temperature 2 then top-p 0.6");
    }
    fvlm_sampler_free(s);
}

static void test_repeat_penalty(void)
{
    fvlm_sampler *s = fvlm_sampler_new(4);
    fvlm_rng rng;
    fastvlm_sampler_params p = params(0.0f, 0, 1.0f);
    fvlm_rng_seed(&rng, 1);

    {   /* positive logit divided: 2.0/2 = 1.0 < 1.9 */
        const float l[4] = {2.0f, 1.9f, -1.0f, -1.1f};
        const int32_t h[1] = {0};
        p.repeat_penalty = 2.0f;
        p.repeat_last_n = 64;
        CHECK(fvlm_sampler_sample(s, l, &p, h, 1, &rng) == 1, "positive logit not divided");
        p.repeat_penalty = 1.0f;
        CHECK(fvlm_sampler_sample(s, l, &p, h, 1, &rng) == 0, "penalty 1 changed the choice");
    }
    {   /* negative logit multiplied: -1.0·2 = -2.0 < -1.5 */
        const float l[4] = {-1.0f, -1.5f, -3.0f, -4.0f};
        const int32_t h[2] = {0, 17 /* out of range: ignored */};
        p.repeat_penalty = 2.0f;
        CHECK(fvlm_sampler_sample(s, l, &p, h, 2, &rng) == 1, "negative logit not multiplied");
    }
    {   /* once per distinct id: 3.0/1.4 = 2.14 > 2.0 (twice would be 1.53 < 2.0) */
        const float l[4] = {3.0f, -10.0f, 2.0f, -10.0f};
        const int32_t h[3] = {0, 0, 0};
        p.repeat_penalty = 1.4f;
        CHECK(fvlm_sampler_sample(s, l, &p, h, 3, &rng) == 0, "penalty applied more than once");
        CHECK(fvlm_sampler_sample(s, l, &p, h, 3, &rng) == 0, "penalty marks not cleared");
    }
    {   /* the window: only the last repeat_last_n ids count */
        const float l[4] = {2.0f, 1.9f, -1.0f, -1.1f};
        const int32_t h[3] = {0, 3, 3};
        p.repeat_penalty = 2.0f;
        p.repeat_last_n = 2;
        CHECK(fvlm_sampler_sample(s, l, &p, h, 3, &rng) == 0, "id outside the window penalised");
        p.repeat_last_n = 3;
        CHECK(fvlm_sampler_sample(s, l, &p, h, 3, &rng) == 1, "id inside the window not penalised");
        p.repeat_last_n = 0;
        CHECK(fvlm_sampler_sample(s, l, &p, h, 3, &rng) == 0, "repeat_last_n 0 must disable");
    }
    fvlm_sampler_free(s);
}

int main(void)
{
    const int32_t nv = 1000;
    fvlm_sampler *s = fvlm_sampler_new(nv);
    CHECK(s != NULL, "fvlm_sampler_new failed");
    CHECK(fvlm_sampler_new(0) == NULL, "fvlm_sampler_new(0) must fail");
    if (!s)
        return check_summary("test_sampler");
    test_rng();
    test_greedy_equivalents(s, nv);
    test_determinism(s, nv);
    test_distributions();
    test_repeat_penalty();
    fvlm_sampler_free(s);
    return check_summary("test_sampler");
}
