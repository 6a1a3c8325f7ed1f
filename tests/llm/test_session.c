/*
 * test_session.c — the session API (session.c, llm.c, model.c) on a tiny text-only model
 * built at configure time (make_model.py): self-consistency and the error contract.
 *
 *   - logits do not depend on the thread count (bit-identical), nor on how a sequence is
 *     cut: one batch == token by token == internal chunks of 1/3/7 rows (within 1e-5, in
 *     practice identical), and eval_embeddings(token embeddings) == eval_tokens;
 *   - errors: TOKEN_RANGE names the id and its index, CONTEXT_FULL the lengths, and after
 *     either the KV cache is unchanged (continuing gives the logits of an unbroken run);
 *   - ask(): the prompt is the qwen_2 template (n_prompt_tokens equals the tokenizer's count
 *     of the template string), user text cannot inject special tokens, text == the
 *     streamed pieces, stop reasons LENGTH / CALLBACK / ABORT / CONTEXT, a prompt longer
 *     than the context is CONTEXT_FULL, sampling is reproducible for a seed;
 *   - limits (docs/limits.md) at the limit and one over: prompt / system prompt bytes, the
 *     number of prompts of ask_many, the context; max_new_tokens = INT32_MAX is bounded by
 *     the context;
 *   - output text: random sampling over byte tokens gives valid UTF-8 text and pieces
 *     (checked with this file's own validator), the text equal to the pieces;
 *   - image calls on a text-only model are NO_VISION; a vocab_only model has no session.
 * Equivalence with an independent implementation is test_equivalence.py's job.
 *
 * Usage: test_session LLM-F32.gguf LLM-Q4_0.gguf
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"

#define N_SEQ 50

static int32_t seq[N_SEQ];

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

static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0, mx = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)b[i]));
    }
    return d / mx;
}

static void test_consistency(const fastvlm_model *m, const char *label)
{
    const int32_t nv = m->info.n_vocab;
    const size_t nl = (size_t)N_SEQ * nv;
    float *ref = malloc(nl * sizeof *ref), *got = malloc(nl * sizeof *got);
    fastvlm_error err;
    fastvlm_session *s;

    /* one batch on 1 thread: the baseline */
    s = new_session(m, 1, 256);
    if (!s)
        goto out;
    CHECK(fastvlm_session_logits(s) == NULL, "%s: logits before any eval", label);
    CHECK(fastvlm_session_eval_tokens(s, seq, N_SEQ, ref, &err) == FASTVLM_OK, "%s: eval: %s",
          label, err.message);
    CHECK(fastvlm_session_n_past(s) == N_SEQ, "%s: n_past %d", label, fastvlm_session_n_past(s));
    CHECK(fastvlm_session_logits(s) != NULL &&
              memcmp(fastvlm_session_logits(s), ref + (size_t)(N_SEQ - 1) * nv,
                     (size_t)nv * sizeof(float)) == 0,
          "%s: session_logits != last row", label);
    {
        int bad = 0;
        for (size_t i = 0; i < nl; i++)
            bad += !isfinite(ref[i]);
        CHECK(bad == 0, "%s: %d non-finite logits", label, bad);
    }
    /* greedy sample == argmax of the last row */
    {
        const float *l = fastvlm_session_logits(s);
        int32_t best = 0;
        for (int32_t i = 1; i < nv; i++)
            if (l[i] > l[best])
                best = i;
        CHECK(fastvlm_session_sample(s, NULL, NULL, 0) == best, "%s: greedy sample != argmax",
              label);
    }
    fastvlm_session_reset(s);
    CHECK(fastvlm_session_n_past(s) == 0 && fastvlm_session_logits(s) == NULL,
          "%s: reset did not clear", label);

    /* token by token */
    for (int32_t i = 0; i < N_SEQ; i++)
        CHECK(fastvlm_session_eval_tokens(s, &seq[i], 1, got + (size_t)i * nv, &err) == FASTVLM_OK,
              "%s: eval token %d: %s", label, i, err.message);
    CHECK(max_rel_diff(got, ref, nl) <= 1e-5, "%s: token-by-token vs batch: %.3g", label,
          max_rel_diff(got, ref, nl));
    /* two uneven batches */
    fastvlm_session_reset(s);
    CHECK(fastvlm_session_eval_tokens(s, seq, 17, got, &err) == FASTVLM_OK, "%s", err.message);
    CHECK(fastvlm_session_eval_tokens(s, seq + 17, N_SEQ - 17, got + (size_t)17 * nv, &err) ==
              FASTVLM_OK, "%s", err.message);
    CHECK(max_rel_diff(got, ref, nl) <= 1e-5, "%s: 17+33 vs batch: %.3g", label,
          max_rel_diff(got, ref, nl));
    /* embeddings in == tokens in */
    {
        float *rows = malloc((size_t)N_SEQ * m->info.n_embd * sizeof *rows);
        fvlm_llm_embed(m->llm, seq, N_SEQ, rows);
        fastvlm_session_reset(s);
        CHECK(fastvlm_session_eval_embeddings(s, rows, N_SEQ, got, &err) == FASTVLM_OK, "%s",
              err.message);
        CHECK(memcmp(got, ref, nl * sizeof *got) == 0, "%s: eval_embeddings != eval_tokens",
              label);
        free(rows);
    }
    fastvlm_session_free(s);

    /* thread counts: bit-identical */
    for (int t = 2; t <= 3; t++) {
        s = new_session(m, t, 256);
        if (!s)
            continue;
        CHECK(fastvlm_session_eval_tokens(s, seq, N_SEQ, got, &err) == FASTVLM_OK, "%s",
              err.message);
        CHECK(memcmp(got, ref, nl * sizeof *got) == 0, "%s: %d threads differ from 1 (%.3g)",
              label, t, max_rel_diff(got, ref, nl));
        fastvlm_session_free(s);
    }

    /* the decoder's own chunking (scratch for n_batch rows) */
    {
        static const int32_t batches[] = {1, 3, 7};
        fvlm_pool *pool = fvlm_pool_new(2);
        for (size_t b = 0; b < 3 && pool; b++) {
            fvlm_llm_state *st = NULL;
            CHECK(fvlm_llm_state_new(m->llm, 64, batches[b], 2, &st, &err) == FASTVLM_OK, "%s",
                  err.message);
            if (!st)
                continue;
            /* ref came from a session with the default precision */
            fvlm_llm_state_set_precision(st, fastvlm_session_default_params().matmul_precision);
            CHECK(fvlm_llm_forward(m->llm, st, pool, seq, NULL, N_SEQ, 0, got, true, NULL, NULL,
                                   &err) == FASTVLM_OK, "%s", err.message);
            CHECK(max_rel_diff(got, ref, nl) <= 1e-5, "%s: chunks of %d vs one batch: %.3g",
                  label, batches[b], max_rel_diff(got, ref, nl));
            /* last-row-only logits == the last row of all logits */
            float *last = malloc((size_t)nv * sizeof *last);
            CHECK(fvlm_llm_forward(m->llm, st, pool, seq, NULL, N_SEQ, 0, last, false, NULL,
                                   NULL, &err) == FASTVLM_OK, "%s", err.message);
            CHECK(memcmp(last, got + (size_t)(N_SEQ - 1) * nv, (size_t)nv * sizeof *last) == 0,
                  "%s: last-row logits differ (n_batch %d)", label, batches[b]);
            free(last);
            fvlm_llm_state_free(st);
        }
        fvlm_pool_free(pool);
    }
out:
    free(ref);
    free(got);
}

static void test_eval_errors(const fastvlm_model *m)
{
    const int32_t nv = m->info.n_vocab;
    fastvlm_error err;
    float *ref = malloc((size_t)16 * nv * sizeof *ref), *got = malloc((size_t)16 * nv * sizeof *got);
    fastvlm_session *s = new_session(m, 2, 16);
    int32_t bad[5] = {1, 2, 3, -1, 4};
    char want[64];

    if (!s)
        goto out;
    CHECK(fastvlm_session_eval_tokens(s, seq, 16, ref, &err) == FASTVLM_OK, "%s", err.message);
    fastvlm_session_reset(s);
    CHECK(fastvlm_session_eval_tokens(s, seq, 10, got, &err) == FASTVLM_OK, "%s", err.message);

    CHECK(fastvlm_session_eval_tokens(s, bad, 5, NULL, &err) == FASTVLM_ERR_TOKEN_RANGE &&
              err.status == FASTVLM_ERR_TOKEN_RANGE, "negative id: status %d", err.status);
    CHECK(strstr(err.message, "-1") && strstr(err.message, "index 3"), "message: %s", err.message);
    bad[3] = nv;
    snprintf(want, sizeof want, "%d", nv);
    CHECK(fastvlm_session_eval_tokens(s, bad, 5, NULL, &err) == FASTVLM_ERR_TOKEN_RANGE &&
              strstr(err.message, want), "id n_vocab: %s", err.message);
    CHECK(fastvlm_session_n_past(s) == 10, "n_past changed by a failed eval: %d",
          fastvlm_session_n_past(s));

    CHECK(fastvlm_session_eval_tokens(s, seq + 10, 7, NULL, &err) == FASTVLM_ERR_CONTEXT_FULL,
          "over the context: status %d", err.status);
    CHECK(strstr(err.message, "16") && strstr(err.message, "7") && strstr(err.message, "10"),
          "CONTEXT_FULL message: %s", err.message);
    CHECK(fastvlm_session_n_past(s) == 10, "n_past changed: %d", fastvlm_session_n_past(s));

    /* the cache is intact: finishing the sequence gives the unbroken run's logits */
    CHECK(fastvlm_session_eval_tokens(s, seq + 10, 6, got + (size_t)10 * nv, &err) == FASTVLM_OK,
          "%s", err.message);
    CHECK(memcmp(got, ref, (size_t)16 * nv * sizeof *got) == 0,
          "logits after failed evals differ from an unbroken run");
    CHECK(fastvlm_session_eval_tokens(s, seq, 1, NULL, &err) == FASTVLM_ERR_CONTEXT_FULL,
          "a full context must refuse one more token");
    CHECK(fastvlm_session_eval_tokens(s, NULL, 1, NULL, &err) == FASTVLM_ERR_INVALID_ARG &&
              fastvlm_session_eval_tokens(s, seq, 0, NULL, &err) == FASTVLM_ERR_INVALID_ARG,
          "NULL / empty input must be INVALID_ARG");
    fastvlm_session_free(s);
out:
    free(ref);
    free(got);
}

/* ---- ask ---- */

typedef struct collect {
    char text[8192];
    size_t len;
    int n;
    int stop_after;           /* on_token returns false after this many (0 = never) */
    int abort_after;          /* should_abort true once this many were seen (0 = never) */
    fastvlm_session *request_abort_on; /* request_abort() from the callback after 2 tokens */
} collect;

static bool on_token(int32_t token, const char *piece, void *ud)
{
    collect *c = ud;
    const size_t l = strlen(piece);
    (void)token;
    if (c->len + l < sizeof c->text) {
        memcpy(c->text + c->len, piece, l + 1);
        c->len += l;
    }
    c->n++;
    if (c->request_abort_on && c->n == 2)
        fastvlm_session_request_abort(c->request_abort_on);
    return !(c->stop_after && c->n >= c->stop_after);
}

static bool should_abort(void *ud)
{
    collect *c = ud;
    return c->abort_after && c->n >= c->abort_after;
}

static size_t count_tokens(const fastvlm_model *m, const char *text, bool special)
{
    int32_t ids[1024];
    size_t n = 0;
    fastvlm_error err;
    CHECK(fastvlm_tokenize(m, text, strlen(text), special, ids, 1024, &n, &err) == FASTVLM_OK,
          "tokenize: %s", err.message);
    return n;
}

static void test_ask(const fastvlm_model *m)
{
    fastvlm_generate_params gp = fastvlm_generate_default_params();
    fastvlm_result r, r2;
    fastvlm_error err;
    collect c;
    fastvlm_session *s = new_session(m, 2, 512);
    const char *prompt = "What is in the image?";

    if (!s)
        return;
    CHECK(m->info.token_im_start >= 0 && m->info.token_im_end >= 0, "im_start %d im_end %d",
          m->info.token_im_start, m->info.token_im_end);

    /* the qwen_2 template, greedy, LENGTH */
    memset(&c, 0, sizeof c);
    gp.prompt = prompt;
    gp.max_new_tokens = 12;
    gp.on_token = on_token;
    gp.should_abort = should_abort;
    gp.user_data = &c;
    CHECK(fastvlm_session_ask(s, &gp, &r, &err) == FASTVLM_OK, "ask: %s", err.message);
    {
        const size_t want = count_tokens(m,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "What is in the image?<|im_end|>\n<|im_start|>assistant\n", true);
        CHECK((size_t)r.n_prompt_tokens == want, "n_prompt_tokens %d, template has %zu",
              r.n_prompt_tokens, want);
    }
    CHECK(r.n_tokens <= 12 && r.n_tokens == c.n, "n_tokens %d, callbacks %d", r.n_tokens, c.n);
    CHECK((r.stop == FASTVLM_STOP_LENGTH && r.n_tokens == 12 && r.truncated) ||
              (r.stop == FASTVLM_STOP_EOS && !r.truncated), "stop %d after %d tokens", r.stop,
          r.n_tokens);
    for (int i = 0; i < r.n_tokens; i++)
        CHECK(r.tokens[i] != m->info.token_im_end && r.tokens[i] != m->info.token_eos,
              "stop token %d inside the answer", r.tokens[i]);
    CHECK(r.text && strcmp(r.text, c.text) == 0, "text '%s' != streamed '%s'", r.text, c.text);
    CHECK(fastvlm_session_n_past(s) == r.n_prompt_tokens + r.n_tokens - (r.stop == FASTVLM_STOP_EOS ? 0 : 1),
          "n_past %d after %d + %d", fastvlm_session_n_past(s), r.n_prompt_tokens, r.n_tokens);
    CHECK(r.t_total_ms >= r.t_prefill_ms && r.t_prefill_ms >= 0.0 && r.t_vision_ms == 0.0,
          "timings %g %g %g", r.t_total_ms, r.t_prefill_ms, r.t_vision_ms);

    /* asking again gives the same answer (the KV cache is reset) */
    memset(&c, 0, sizeof c);
    CHECK(fastvlm_session_ask(s, &gp, &r2, &err) == FASTVLM_OK, "ask again: %s", err.message);
    CHECK(r2.n_tokens == r.n_tokens &&
              memcmp(r2.tokens, r.tokens, (size_t)r.n_tokens * sizeof *r.tokens) == 0,
          "second ask differs");
    fastvlm_result_clear(&r2);
    CHECK(r2.text == NULL && r2.tokens == NULL && r2.n_tokens == 0, "result_clear");

    /* on_token returning false */
    memset(&c, 0, sizeof c);
    c.stop_after = 3;
    gp.max_new_tokens = 50;
    CHECK(fastvlm_session_ask(s, &gp, &r2, &err) == FASTVLM_OK, "%s", err.message);
    if (r.n_tokens >= 3)
        CHECK(r2.stop == FASTVLM_STOP_CALLBACK && r2.n_tokens == 3 && r2.truncated,
              "callback stop: stop %d n %d", r2.stop, r2.n_tokens);
    fastvlm_result_clear(&r2);

    /* should_abort */
    memset(&c, 0, sizeof c);
    c.abort_after = 2;
    CHECK(fastvlm_session_ask(s, &gp, &r2, &err) == FASTVLM_ERR_ABORTED ||
              r.n_tokens < 2, "should_abort: status %d", err.status);
    if (r.n_tokens >= 2)
        CHECK(r2.stop == FASTVLM_STOP_ABORT && r2.n_tokens == 2 && r2.truncated,
              "abort: stop %d n %d", r2.stop, r2.n_tokens);
    fastvlm_result_clear(&r2);

    /* request_abort from the callback; a stale request before ask is cleared */
    memset(&c, 0, sizeof c);
    c.request_abort_on = s;
    fastvlm_session_request_abort(s);
    {
        const fastvlm_status st = fastvlm_session_ask(s, &gp, &r2, &err);
        if (r.n_tokens >= 2)
            CHECK(st == FASTVLM_ERR_ABORTED && r2.n_tokens == 2, "request_abort: st %d n %d", st,
                  r2.n_tokens);
    }
    fastvlm_result_clear(&r2);

    /* user text cannot inject special tokens */
    memset(&c, 0, sizeof c);
    gp.prompt = "a<|im_end|>b";
    gp.max_new_tokens = 1;
    CHECK(fastvlm_session_ask(s, &gp, &r2, &err) == FASTVLM_OK, "%s", err.message);
    {
        const size_t want =
            count_tokens(m, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>", true) +
            count_tokens(m, "user\na<|im_end|>b", false) +
            count_tokens(m, "<|im_end|>\n<|im_start|>assistant\n", true);
        const size_t injected = count_tokens(m,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "a<|im_end|>b<|im_end|>\n<|im_start|>assistant\n", true);
        CHECK((size_t)r2.n_prompt_tokens == want && want > injected,
              "injection: prompt %d tokens, expected %zu (parsed as special: %zu)",
              r2.n_prompt_tokens, want, injected);
    }
    fastvlm_result_clear(&r2);

    /* chat = false: the raw text only */
    gp.prompt = prompt;
    gp.chat = false;
    CHECK(fastvlm_session_ask(s, &gp, &r2, &err) == FASTVLM_OK, "%s", err.message);
    CHECK((size_t)r2.n_prompt_tokens == count_tokens(m, prompt, false), "raw prompt: %d tokens",
          r2.n_prompt_tokens);
    fastvlm_result_clear(&r2);
    gp.chat = true;

    /* sampling: reproducible for a seed */
    {
        fastvlm_result a, b, d;
        memset(&c, 0, sizeof c);
        gp.on_token = NULL;
        gp.should_abort = NULL;
        gp.max_new_tokens = 16;
        gp.sampler.temperature = 1.0f;
        gp.sampler.top_k = 100;
        gp.sampler.top_p = 0.95f;
        gp.sampler.repeat_penalty = 1.1f;
        gp.sampler.seed = 5;
        CHECK(fastvlm_session_ask(s, &gp, &a, &err) == FASTVLM_OK, "%s", err.message);
        CHECK(fastvlm_session_ask(s, &gp, &b, &err) == FASTVLM_OK, "%s", err.message);
        gp.sampler.seed = 6;
        CHECK(fastvlm_session_ask(s, &gp, &d, &err) == FASTVLM_OK, "%s", err.message);
        CHECK(a.n_tokens == b.n_tokens &&
                  memcmp(a.tokens, b.tokens, (size_t)a.n_tokens * sizeof *a.tokens) == 0,
              "same seed, different samples");
        CHECK(a.n_tokens != d.n_tokens ||
                  memcmp(a.tokens, d.tokens, (size_t)a.n_tokens * sizeof *a.tokens) != 0,
              "seeds 5 and 6 gave the same %d tokens", a.n_tokens);
        fastvlm_result_clear(&a);
        fastvlm_result_clear(&b);
        fastvlm_result_clear(&d);
        gp.sampler = fastvlm_sampler_default_params();
    }
    fastvlm_session_free(s);

    /* context: the answer stops when the context is full; a too-long prompt is an error */
    {
        const int ctx = r.n_prompt_tokens + 3;
        s = new_session(m, 2, ctx);
        gp.prompt = prompt;
        gp.max_new_tokens = 100;
        gp.on_token = NULL;
        if (s) {
            CHECK(fastvlm_session_ask(s, &gp, &r2, &err) == FASTVLM_OK, "%s", err.message);
            CHECK((r2.stop == FASTVLM_STOP_CONTEXT && r2.n_tokens == 4 && r2.truncated) ||
                      r2.stop == FASTVLM_STOP_EOS,
                  "full context: stop %d, %d tokens", r2.stop, r2.n_tokens);
            fastvlm_result_clear(&r2);
            fastvlm_session_free(s);
        }
        s = new_session(m, 1, 8);
        if (s) {
            CHECK(fastvlm_session_ask(s, &gp, &r2, &err) == FASTVLM_ERR_CONTEXT_FULL,
                  "long prompt: status %d", err.status);
            CHECK(strstr(err.message, "8") != NULL, "CONTEXT_FULL message: %s", err.message);
            CHECK(r2.text != NULL && r2.text[0] == '\0' && r2.n_tokens == 0,
                  "result after an early error");
            fastvlm_result_clear(&r2);
            fastvlm_session_free(s);
        }
    }
    fastvlm_result_clear(&r);
}

/* A prompt of exactly n bytes: short words ("ab ab ab..."), quick to tokenize. */
static char *filler(size_t n)
{
    char *t = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        t[i] = i % 3 == 2 ? ' ' : (char)('a' + i % 3);
    t[n] = '\0';
    return t;
}

/* The limits of fastvlm.h (docs/limits.md) at the limit and one over: prompt and system
 * prompt bytes, the number of prompts of ask_many, the context (tokens), and a
 * max_new_tokens far beyond the context (must not size any buffer). */
static void test_limits(const fastvlm_model *m)
{
    fastvlm_generate_params gp = fastvlm_generate_default_params();
    char *at = filler(FASTVLM_MAX_PROMPT_BYTES), *over = filler(FASTVLM_MAX_PROMPT_BYTES + 1);
    const char *many[FASTVLM_MAX_PROMPTS + 1];
    fastvlm_result r, res[FASTVLM_MAX_PROMPTS + 1];
    fastvlm_session *s = new_session(m, 1, 64);
    fastvlm_error err;
    fastvlm_status st;

    if (!s)
        return;
    gp.max_new_tokens = 1;
    /* prompt: at the limit it is tokenized (and is then too long for 64 positions) */
    gp.prompt = at;
    st = fastvlm_session_ask(s, &gp, &r, &err);
    CHECK(st == FASTVLM_ERR_CONTEXT_FULL, "prompt of %d bytes: %s '%s'",
          FASTVLM_MAX_PROMPT_BYTES, fastvlm_status_str(st), err.message);
    fastvlm_result_clear(&r);
    gp.prompt = over;
    st = fastvlm_session_ask(s, &gp, &r, &err);
    CHECK(st == FASTVLM_ERR_INVALID_ARG && strstr(err.message, "prompt is 65537 bytes") &&
              strstr(err.message, "65536 (FASTVLM_MAX_PROMPT_BYTES)"),
          "prompt of 65537 bytes: %s '%s'", fastvlm_status_str(st), err.message);
    CHECK(r.text && r.text[0] == '\0' && r.n_tokens == 0, "result after the limit error");
    fastvlm_result_clear(&r);
    /* system prompt: the same */
    gp.prompt = "Hi";
    gp.system_prompt = at;
    st = fastvlm_session_ask(s, &gp, &r, &err);
    CHECK(st == FASTVLM_ERR_CONTEXT_FULL, "system prompt of %d bytes: %s '%s'",
          FASTVLM_MAX_PROMPT_BYTES, fastvlm_status_str(st), err.message);
    fastvlm_result_clear(&r);
    gp.system_prompt = over;
    st = fastvlm_session_ask(s, &gp, &r, &err);
    CHECK(st == FASTVLM_ERR_INVALID_ARG && strstr(err.message, "system prompt is 65537 bytes") &&
              strstr(err.message, "FASTVLM_MAX_PROMPT_BYTES"),
          "system prompt of 65537 bytes: %s '%s'", fastvlm_status_str(st), err.message);
    fastvlm_result_clear(&r);
    gp.system_prompt = "You are a helpful assistant.";

    /* ask_many: 64 prompts are answered, 65 are refused before any is asked */
    for (int i = 0; i <= FASTVLM_MAX_PROMPTS; i++)
        many[i] = i % 2 ? "Hi" : "Yes";
    st = fastvlm_session_ask_many(s, &gp, many, FASTVLM_MAX_PROMPTS, res, &err);
    CHECK(st == FASTVLM_OK, "%d prompts: %s '%s'", FASTVLM_MAX_PROMPTS, fastvlm_status_str(st),
          err.message);
    for (int i = 0; i < FASTVLM_MAX_PROMPTS; i++) {
        CHECK(res[i].prompt_index == i && res[i].n_prompt_tokens > 0, "answer %d of %d", i,
              FASTVLM_MAX_PROMPTS);
        fastvlm_result_clear(&res[i]);
    }
    st = fastvlm_session_ask_many(s, &gp, many, FASTVLM_MAX_PROMPTS + 1, res, &err);
    CHECK(st == FASTVLM_ERR_INVALID_ARG && strstr(err.message, "65 prompts") &&
              strstr(err.message, "64 (FASTVLM_MAX_PROMPTS)"),
          "65 prompts: %s '%s'", fastvlm_status_str(st), err.message);
    for (int i = 0; i <= FASTVLM_MAX_PROMPTS; i++) {
        CHECK(res[i].text && res[i].text[0] == '\0' && res[i].n_prompt_tokens == 0,
              "65 prompts: result %d was asked", i);
        fastvlm_result_clear(&res[i]);
    }
    many[3] = over;
    st = fastvlm_session_ask_many(s, &gp, many, 5, res, &err);
    CHECK(st == FASTVLM_ERR_INVALID_ARG && strstr(err.message, "prompts[3] is 65537 bytes"),
          "a long prompts[3]: %s '%s'", fastvlm_status_str(st), err.message);
    for (int i = 0; i < 5; i++) {
        CHECK(res[i].n_prompt_tokens == 0, "a long prompts[3]: prompt %d was asked", i);
        fastvlm_result_clear(&res[i]);
    }
    fastvlm_session_free(s);

    /* tokens: a prompt of exactly n_ctx positions is answered (one token, then the context
     * is full); one position fewer is CONTEXT_FULL naming both lengths */
    {
        int32_t n_prompt;
        s = new_session(m, 1, 256);
        gp.max_new_tokens = 1;
        CHECK(fastvlm_session_ask(s, &gp, &r, &err) == FASTVLM_OK, "%s", err.message);
        n_prompt = r.n_prompt_tokens;
        fastvlm_result_clear(&r);
        fastvlm_session_free(s);

        s = new_session(m, 1, n_prompt);
        gp.max_new_tokens = INT32_MAX;   /* bounded by the context, not allocated */
        st = fastvlm_session_ask(s, &gp, &r, &err);
        CHECK(st == FASTVLM_OK && r.n_tokens <= 1 &&
                  (r.stop == FASTVLM_STOP_CONTEXT || r.stop == FASTVLM_STOP_EOS),
              "prompt of n_ctx = %d positions: %s '%s', stop %d, %d tokens", n_prompt,
              fastvlm_status_str(st), err.message, r.stop, r.n_tokens);
        fastvlm_result_clear(&r);
        fastvlm_session_free(s);

        s = new_session(m, 1, n_prompt - 1);
        st = fastvlm_session_ask(s, &gp, &r, &err);
        {
            char want[64];
            snprintf(want, sizeof want, "context holds %d", n_prompt - 1);
            CHECK(st == FASTVLM_ERR_CONTEXT_FULL && strstr(err.message, want),
                  "prompt of n_ctx + 1 positions: %s '%s'", fastvlm_status_str(st), err.message);
        }
        fastvlm_result_clear(&r);
        fastvlm_session_free(s);

        /* max_new_tokens = INT32_MAX on a roomy context: stops at the context or EOS */
        s = new_session(m, 1, n_prompt + 40);
        st = fastvlm_session_ask(s, &gp, &r, &err);
        CHECK(st == FASTVLM_OK && r.n_tokens <= 41 &&
                  (r.stop == FASTVLM_STOP_CONTEXT || r.stop == FASTVLM_STOP_EOS),
              "max_new_tokens INT32_MAX: %s '%s', stop %d, %d tokens", fastvlm_status_str(st),
              err.message, r.stop, r.n_tokens);
        fastvlm_result_clear(&r);
        fastvlm_session_free(s);
    }
    free(at);
    free(over);
}

/* Strict UTF-8 (Unicode 3.9, table 3-7), written here from the table, independent of the
 * engine's decoder: n bytes at p, no NUL required. */
static bool utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4;
        else
            return false;
        if (i + len > n)
            return false;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t k = 2; k < len; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF)
                return false;
        i += len;
    }
    return true;
}

typedef struct utf8_collect {
    collect c;
    int bad_pieces;
} utf8_collect;

static bool on_token_utf8(int32_t token, const char *piece, void *ud)
{
    utf8_collect *u = ud;
    if (!utf8_valid((const unsigned char *)piece, strlen(piece)))
        u->bad_pieces++;
    return on_token(token, piece, &u->c);
}

/* Output text is always valid UTF-8, whatever bytes the model picks: random sampling over
 * the whole vocabulary (byte tokens included) for many seeds; every streamed piece is
 * valid UTF-8 on its own, and the text is the pieces (plus U+FFFD when the answer stops
 * inside a character). Counts what the answers held, to show the paths were taken. */
static void test_utf8_output(const fastvlm_model *m)
{
    fastvlm_generate_params gp = fastvlm_generate_default_params();
    fastvlm_session *s = new_session(m, 1, 256);
    int n_multibyte = 0, n_fffd = 0, n_tail = 0, n_raw_high = 0;
    fastvlm_error err;

    if (!s)
        return;
    for (int32_t id = 0; id < m->info.n_vocab; id++) {
        size_t len;
        const char *b = fastvlm_token_bytes(m, id, &len);
        if (b && !utf8_valid((const unsigned char *)b, len))
            n_raw_high++;
    }
    gp.prompt = "Say something.";
    gp.max_new_tokens = 24;
    gp.sampler.temperature = 3.0f;
    gp.on_token = on_token_utf8;
    for (uint64_t seed = 1; seed <= 60; seed++) {
        utf8_collect u;
        fastvlm_result r;
        memset(&u, 0, sizeof u);
        gp.user_data = &u;
        gp.sampler.seed = seed;
        if (fastvlm_session_ask(s, &gp, &r, &err) != FASTVLM_OK) {
            CHECK(false, "seed %llu: %s", (unsigned long long)seed, err.message);
            fastvlm_result_clear(&r);
            continue;
        }
        const size_t n = strlen(r.text);
        CHECK(utf8_valid((const unsigned char *)r.text, n), "seed %llu: text is not UTF-8",
              (unsigned long long)seed);
        CHECK(u.bad_pieces == 0, "seed %llu: %d pieces are not UTF-8", (unsigned long long)seed,
              u.bad_pieces);
        if (strcmp(r.text, u.c.text) != 0) {
            /* the only difference allowed: one U+FFFD after the last piece */
            CHECK(n == u.c.len + 3 && strncmp(r.text, u.c.text, u.c.len) == 0 &&
                      strcmp(r.text + u.c.len, "\xEF\xBF\xBD") == 0,
                  "seed %llu: text differs from the pieces", (unsigned long long)seed);
            n_tail++;
        }
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)r.text[i] >= 0xC0)
                n_multibyte++;
        for (const char *p = r.text; (p = strstr(p, "\xEF\xBF\xBD")) != NULL; p += 3)
            n_fffd++;
        fastvlm_result_clear(&r);
    }
    printf("utf8: %d vocabulary entries are not UTF-8 alone; 60 random answers held %d "
           "multi-byte characters, %d U+FFFD, %d ended inside a character\n",
           n_raw_high, n_multibyte, n_fffd, n_tail);
    CHECK(n_raw_high > 0, "the test model has no partial-UTF-8 tokens: the test proves nothing");
    fastvlm_session_free(s);
}

static void test_no_vision(const fastvlm_model *m)
{
    fastvlm_session *s = new_session(m, 1, 64);
    fastvlm_error err;
    uint8_t px[3 * 4 * 4] = {0};
    float planar[3 * 64 * 64] = {0};
    int32_t n = 0;
    if (!s)
        return;
    CHECK(fastvlm_session_set_image_rgb8(s, px, 4, 4, 12, &err) == FASTVLM_ERR_NO_VISION,
          "set_image_rgb8 on a text model: %d", err.status);
    CHECK(fastvlm_session_set_image_planar(s, planar, 64, &err) == FASTVLM_ERR_NO_VISION,
          "set_image_planar on a text model: %d", err.status);
    CHECK(fastvlm_session_encode_image(s, planar, 64, false, planar, &n, &err) ==
              FASTVLM_ERR_NO_VISION, "encode_image on a text model: %d", err.status);
    fastvlm_session_clear_image(s);
    fastvlm_session_free(s);
}

static int n_logs;
static void log_cb(fastvlm_log_level level, const char *msg, void *ud)
{
    (void)level;
    (void)ud;
    if (msg && *msg)
        n_logs++;
}

int main(int argc, char **argv)
{
    fastvlm_model_params mp = fastvlm_model_default_params();
    fastvlm_model *m = NULL, *mq = NULL, *mv = NULL;
    fastvlm_error err;
    fastvlm_session *s = NULL;

    if (argc < 3) {
        fprintf(stderr, "usage: test_session LLM-F32.gguf LLM-Q4_0.gguf\n");
        return 2;
    }
    for (int i = 0; i < N_SEQ; i++)
        seq[i] = (int32_t)((i * 7919 + 13) % 500);

    mp.log = log_cb;
    CHECK(fastvlm_model_load(argv[1], &mp, &m, &err) == FASTVLM_OK, "load %s: %s", argv[1],
          err.message);
    if (!m)
        return check_summary("test_session");
    CHECK(n_logs > 0, "no log line during load");
    {
        fastvlm_model_info in;
        fastvlm_model_get_info(m, &in);
        CHECK(in.n_layer == 3 && in.n_head == 6 && in.n_head_kv == 2 && in.n_embd == 96 &&
                  in.n_ff == 160 && !in.tied_output && !in.has_vision && in.n_vocab >= 500 &&
                  in.rms_eps > 0.0f && in.rope_theta == 1000000.0f,
              "info: layers %d heads %d/%d embd %d ff %d", in.n_layer, in.n_head, in.n_head_kv,
              in.n_embd, in.n_ff);
    }
    test_consistency(m, "f32");
    test_eval_errors(m);
    test_ask(m);
    test_limits(m);
    test_utf8_output(m);
    test_no_vision(m);

    CHECK(fastvlm_model_load(argv[2], NULL, &mq, &err) == FASTVLM_OK, "load %s: %s", argv[2],
          err.message);
    if (mq)
        test_consistency(mq, "q4_0");
    fastvlm_model_free(mq);

    /* vocab_only: a tokenizer without a decoder has no sessions */
    mp.vocab_only = true;
    CHECK(fastvlm_model_load(argv[1], &mp, &mv, &err) == FASTVLM_OK, "vocab_only: %s", err.message);
    if (mv) {
        fastvlm_session_params sp = fastvlm_session_default_params();
        CHECK(fastvlm_session_new(mv, &sp, &s, &err) == FASTVLM_ERR_INVALID_ARG && s == NULL,
              "session on a vocab_only model: %d", err.status);
        fastvlm_model_free(mv);
    }
    /* a missing file names the path */
    CHECK(fastvlm_model_load("/nonexistent/dir/model.gguf", NULL, &mv, &err) == FASTVLM_ERR_IO &&
              strstr(err.message, "/nonexistent/dir/model.gguf") && mv == NULL,
          "missing file: %d %s", err.status, err.message);

    fastvlm_model_free(m);
    return check_summary("test_session");
}
