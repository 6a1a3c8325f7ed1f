/*
 * test_batch.c — fastvlm_sessions_eval_batch() (engine/batch.c, fvlm_llm_forward_multi in
 * llm.c): decode steps of several sessions as one forward equal each session's own
 * one-token eval, bit for bit.
 *
 *   - n = 1, 2, 3, 5, 8 sessions, each prefilled with its own prompt of its own length (so
 *     every row sits at a different position), stepped 12 times with greedy tokens, on 1
 *     and 2 threads: after every step each session's logits are identical (memcmp) to a
 *     twin session stepped alone with fastvlm_session_eval_tokens(…, 1), n_past agrees,
 *     and one more single eval after the batch gives identical logits (the KV cache rows
 *     written by the batch are the twin's);
 *   - the f32 and the q4_0 model (the quantized matmul path), and any further model given;
 *   - the batcher: 4 threads, each with its own session attached to one batcher, asking
 *     different questions at once (greedy, 24 tokens, plain and speculative decoding,
 *     twice in a row so the second answers start from cached prefixes): every answer's
 *     tokens and text equal the same ask on a session without a batcher, and the batcher
 *     ran steps of more than one session together (its stats: rows > batches);
 *   - errors: repeated session, sessions of two models, n out of range → INVALID_ARG;
 *     a bad id → TOKEN_RANGE, a full context → CONTEXT_FULL; after each, every session's
 *     n_past is unchanged and its next eval equals the twin's.
 * It prints the time of the batched and the one-by-one steps for direction only (a
 * loaded machine); nothing is asserted on it.
 *
 * Usage: test_batch LLM-F32.gguf LLM-Q4_0.gguf [MORE.gguf...]
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "fastvlm.h"

#define MAX_N 8
#define N_STEPS 12

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static fastvlm_session *new_session(const fastvlm_model *m, int threads, int ctx)
{
    fastvlm_session_params sp = fastvlm_session_default_params();
    fastvlm_session *s = NULL;
    fastvlm_error err;
    sp.n_threads = threads;
    sp.n_ctx = ctx;
    CHECK(fastvlm_session_new(m, &sp, &s, &err) == FASTVLM_OK, "session_new: %s", err.message);
    return s;
}

static int32_t argmax(const float *l, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[best])
            best = i;
    return best;
}

/* Prompt of session i: 3 + 4i ids, different per session. */
static void prefill(fastvlm_session *s, int i, int32_t n_vocab)
{
    int32_t ids[64];
    const int32_t n = 3 + 4 * i;
    fastvlm_error err;
    for (int32_t k = 0; k < n; k++)
        ids[k] = (int32_t)((k * 131 + i * 977 + 7) % (n_vocab - 8));
    CHECK(fastvlm_session_eval_tokens(s, ids, n, NULL, &err) == FASTVLM_OK, "prefill: %s",
          err.message);
}

/* Both sessions' logits identical and positions equal. */
static int same_state(fastvlm_session *a, fastvlm_session *b, int32_t nv)
{
    const float *la = fastvlm_session_logits(a), *lb = fastvlm_session_logits(b);
    return la && lb && fastvlm_session_n_past(a) == fastvlm_session_n_past(b) &&
           memcmp(la, lb, (size_t)nv * sizeof(float)) == 0;
}

static void test_equal(const fastvlm_model *m, const char *label, int n, int threads)
{
    fastvlm_model_info info;
    fastvlm_session *bat[MAX_N] = {0}, *one[MAX_N] = {0};
    int32_t ids[MAX_N];
    fastvlm_error err;
    double t_bat = 0.0, t_one = 0.0;
    int mismatches = 0;

    fastvlm_model_get_info(m, &info);
    for (int i = 0; i < n; i++) {
        bat[i] = new_session(m, threads, 128);
        one[i] = new_session(m, threads, 128);
        if (!bat[i] || !one[i])
            goto out;
        prefill(bat[i], i, info.n_vocab);
        prefill(one[i], i, info.n_vocab);
    }
    for (int step = 0; step < N_STEPS; step++) {
        double t0;
        for (int i = 0; i < n; i++)
            ids[i] = argmax(fastvlm_session_logits(one[i]), info.n_vocab);
        t0 = now_ms();
        CHECK(fastvlm_sessions_eval_batch(bat, ids, n, &err) == FASTVLM_OK, "%s: batch: %s",
              label, err.message);
        t_bat += now_ms() - t0;
        t0 = now_ms();
        for (int i = 0; i < n; i++)
            CHECK(fastvlm_session_eval_tokens(one[i], &ids[i], 1, NULL, &err) == FASTVLM_OK,
                  "%s: eval: %s", label, err.message);
        t_one += now_ms() - t0;
        for (int i = 0; i < n; i++)
            mismatches += !same_state(bat[i], one[i], info.n_vocab);
    }
    CHECK(mismatches == 0, "%s n=%d threads=%d: %d (session, step) logits differ", label, n,
          threads, mismatches);
    /* the caches: one more single eval on both */
    for (int i = 0; i < n; i++) {
        int32_t id = (int32_t)((i * 37 + 5) % info.n_vocab);
        CHECK(fastvlm_session_eval_tokens(bat[i], &id, 1, NULL, &err) == FASTVLM_OK, "eval");
        CHECK(fastvlm_session_eval_tokens(one[i], &id, 1, NULL, &err) == FASTVLM_OK, "eval");
        CHECK(same_state(bat[i], one[i], info.n_vocab),
              "%s n=%d threads=%d: session %d differs after the batch", label, n, threads, i);
    }
    printf("%s: %d sessions, %d threads: %d steps batched %.2f ms, one by one %.2f ms "
           "(%.2fx; loaded machine, direction only)\n", label, n, threads, N_STEPS, t_bat, t_one,
           t_bat > 0 ? t_one / t_bat : 0.0);
out:
    for (int i = 0; i < n; i++) {
        fastvlm_session_free(bat[i]);
        fastvlm_session_free(one[i]);
    }
}

static void test_errors(const fastvlm_model *m, const fastvlm_model *other)
{
    fastvlm_model_info info;
    fastvlm_session *s[3], *twin[3], *foreign, *pair[2];
    int32_t ids[3] = {1, 2, 3};
    fastvlm_error err;

    fastvlm_model_get_info(m, &info);
    for (int i = 0; i < 3; i++) {
        s[i] = new_session(m, 1, 64);
        twin[i] = new_session(m, 1, 64);
        if (!s[i] || !twin[i])
            return;
        prefill(s[i], i, info.n_vocab);
        prefill(twin[i], i, info.n_vocab);
    }
    foreign = new_session(other, 1, 64);

    pair[0] = s[0];
    pair[1] = s[0];
    CHECK(fastvlm_sessions_eval_batch(pair, ids, 2, &err) == FASTVLM_ERR_INVALID_ARG,
          "repeated session");
    pair[1] = foreign;
    CHECK(fastvlm_sessions_eval_batch(pair, ids, 2, &err) == FASTVLM_ERR_INVALID_ARG,
          "another model");
    CHECK(fastvlm_sessions_eval_batch(s, ids, 0, &err) == FASTVLM_ERR_INVALID_ARG, "n = 0");
    CHECK(fastvlm_sessions_eval_batch(s, ids, FASTVLM_BATCH_MAX_SESSIONS + 1, &err) ==
              FASTVLM_ERR_INVALID_ARG, "n too large");
    ids[2] = info.n_vocab;
    CHECK(fastvlm_sessions_eval_batch(s, ids, 3, &err) == FASTVLM_ERR_TOKEN_RANGE &&
              strstr(err.message, "index 2") != NULL, "token range: %s", err.message);
    ids[2] = 3;
    for (int i = 0; i < 3; i++)
        CHECK(fastvlm_session_n_past(s[i]) == fastvlm_session_n_past(twin[i]),
              "n_past moved after an error");

    /* session 1 full: nothing moves */
    {
        int32_t fill[64];
        const int32_t left = 64 - fastvlm_session_n_past(s[1]);
        for (int32_t k = 0; k < left; k++)
            fill[k] = k % 100;
        CHECK(fastvlm_session_eval_tokens(s[1], fill, left, NULL, &err) == FASTVLM_OK, "fill");
        CHECK(fastvlm_sessions_eval_batch(s, ids, 3, &err) == FASTVLM_ERR_CONTEXT_FULL &&
                  strstr(err.message, "session 1") != NULL, "context full: %s", err.message);
        CHECK(fastvlm_session_n_past(s[0]) == fastvlm_session_n_past(twin[0]), "n_past moved");
    }
    /* the others still continue exactly as their twins */
    pair[0] = s[0];
    pair[1] = s[2];
    {
        int32_t two[2] = {ids[0], ids[2]};
        CHECK(fastvlm_sessions_eval_batch(pair, two, 2, &err) == FASTVLM_OK, "batch: %s",
              err.message);
        CHECK(fastvlm_session_eval_tokens(twin[0], &two[0], 1, NULL, &err) == FASTVLM_OK, "e");
        CHECK(fastvlm_session_eval_tokens(twin[2], &two[1], 1, NULL, &err) == FASTVLM_OK, "e");
        CHECK(same_state(s[0], twin[0], info.n_vocab) && same_state(s[2], twin[2], info.n_vocab),
              "after the errors, the batch differs from the twins");
    }
    for (int i = 0; i < 3; i++) {
        fastvlm_session_free(s[i]);
        fastvlm_session_free(twin[i]);
    }
    fastvlm_session_free(foreign);
}

#define N_ASKERS 4

typedef struct {
    fastvlm_session *s;
    const char *prompt;
    bool speculative;
    fastvlm_result res[2];
    fastvlm_status st[2];
    pthread_barrier_t *start;
} asker;

static fastvlm_generate_params ask_params(const char *prompt, bool speculative)
{
    fastvlm_generate_params gp = fastvlm_generate_default_params();
    gp.prompt = prompt;
    gp.max_new_tokens = 24;
    gp.speculative = speculative;
    return gp;
}

static void *asker_main(void *p)
{
    asker *a = p;
    fastvlm_generate_params gp = ask_params(a->prompt, a->speculative);
    fastvlm_error err;

    pthread_barrier_wait(a->start);
    for (int k = 0; k < 2; k++)
        a->st[k] = fastvlm_session_ask(a->s, &gp, &a->res[k], &err);
    return NULL;
}

/* One batcher run of the askers; true when it joined steps of two sessions at least once
 * (a matter of timing: the caller retries). Every answer is checked either way. */
static bool run_batcher(const fastvlm_model *m, const char *label, bool speculative)
{
    static const char *prompts[N_ASKERS] = {
        "Describe the image.", "What colour is the car?", "Is anyone there?",
        "Count the people standing on the corner of the street."};
    fastvlm_batcher *b = NULL;
    asker a[N_ASKERS];
    pthread_t th[N_ASKERS];
    pthread_barrier_t start;
    fastvlm_error err;
    uint64_t n_batches = 0, n_rows = 0;

    CHECK(fastvlm_batcher_new(m, &b, &err) == FASTVLM_OK, "batcher_new: %s", err.message);
    if (!b)
        return true;   /* failure counted; no retry */
    pthread_barrier_init(&start, NULL, N_ASKERS);
    memset(a, 0, sizeof a);
    for (int i = 0; i < N_ASKERS; i++) {
        a[i].s = new_session(m, 1 + i % 2, 256);
        a[i].prompt = prompts[i];
        a[i].speculative = speculative;
        a[i].start = &start;
        CHECK(a[i].s && fastvlm_session_set_batcher(a[i].s, b, &err) == FASTVLM_OK, "attach");
    }
    for (int i = 0; i < N_ASKERS; i++)
        pthread_create(&th[i], NULL, asker_main, &a[i]);
    for (int i = 0; i < N_ASKERS; i++)
        pthread_join(th[i], NULL);
    fastvlm_batcher_get_stats(b, &n_batches, &n_rows);
    printf("%s: batcher%s: %llu decode forwards carried %llu steps\n", label,
           speculative ? " (speculative)" : "", (unsigned long long)n_batches,
           (unsigned long long)n_rows);

    /* the same asks, each on a fresh session without a batcher */
    for (int i = 0; i < N_ASKERS; i++) {
        fastvlm_session *ref = new_session(m, 1, 256);
        fastvlm_generate_params gp = ask_params(prompts[i], speculative);
        if (!ref)
            continue;
        for (int k = 0; k < 2; k++) {
            fastvlm_result r;
            memset(&r, 0, sizeof r);
            CHECK(fastvlm_session_ask(ref, &gp, &r, &err) == FASTVLM_OK, "ask: %s", err.message);
            CHECK(a[i].st[k] == FASTVLM_OK, "%s: batched ask %d/%d failed", label, i, k);
            CHECK(a[i].res[k].n_tokens == r.n_tokens && r.n_tokens > 0 &&
                      memcmp(a[i].res[k].tokens, r.tokens, (size_t)r.n_tokens * sizeof(int32_t)) == 0 &&
                      strcmp(a[i].res[k].text, r.text) == 0 && a[i].res[k].stop == r.stop,
                  "%s: asker %d answer %d differs: \"%s\" vs \"%s\"", label, i, k,
                  a[i].res[k].text ? a[i].res[k].text : "(null)", r.text ? r.text : "(null)");
            fastvlm_result_clear(&r);
        }
        fastvlm_session_free(ref);
    }
    for (int i = 0; i < N_ASKERS; i++) {
        fastvlm_result_clear(&a[i].res[0]);
        fastvlm_result_clear(&a[i].res[1]);
        fastvlm_session_free(a[i].s);
    }
    pthread_barrier_destroy(&start);
    fastvlm_batcher_free(b);
    return n_rows > n_batches;
}

/* Whether steps join depends on how the askers' threads interleave (speculative askers are
 * rarely all in their decode loops at once), so up to 8 runs may be needed to see one. */
static void test_batcher(const fastvlm_model *m, const char *label, bool speculative)
{
    bool joined = false;
    for (int attempt = 0; attempt < 8 && !joined; attempt++)
        joined = run_batcher(m, label, speculative);
    CHECK(joined, "%s: the batcher never joined two steps in 8 runs", label);
}

int main(int argc, char **argv)
{
    static const int ns[] = {1, 2, 3, 5, 8};
    fastvlm_model *models[8] = {0};
    fastvlm_error err;
    int n_models = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: test_batch LLM-F32.gguf LLM-Q4_0.gguf [MORE.gguf...]\n");
        return 2;
    }
    for (int a = 1; a < argc && n_models < 8; a++) {
        CHECK(fastvlm_model_load(argv[a], NULL, &models[n_models], &err) == FASTVLM_OK,
              "load %s: %s", argv[a], err.message);
        if (!models[n_models])
            return check_summary("test_batch");
        n_models++;
    }
    for (int k = 0; k < n_models; k++) {
        const char *label = strrchr(argv[k + 1], '/') ? strrchr(argv[k + 1], '/') + 1 : argv[k + 1];
        for (int t = 1; t <= 2; t++)
            for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++)
                test_equal(models[k], label, ns[j], t);
    }
    test_batcher(models[0], "f32", false);
    test_batcher(models[0], "f32", true);
    test_batcher(models[1], "q4_0", false);
    test_errors(models[0], models[1]);
    for (int k = 0; k < n_models; k++)
        fastvlm_model_free(models[k]);
    return check_summary("test_batch");
}
