/*
 * test_reuse.c — reuse across frames (session.c, session_kv.c, session_features.c,
 * speculative.c) on a tiny random VLM built at configure time (make_model.py): whatever is
 * reused, the answer must be the one computed afresh.
 *
 * "Fresh" is a session that prefills the whole prompt from position 0 and decodes token
 * by token (reuse_kv = false, speculative = false) — checked once against a brand-new
 * session. Equality is strict: same tokens, stop reason, text, and the logits of the last
 * position compared with memcmp (the decoder computes a row the same way in any batch).
 *
 *   - prefix KV: new image with the same system prompt (reuses exactly the text before
 *     the image), same image and prompt (all but the last position), max_new_tokens 0
 *     (prompt logits), text-only asks, reuse_kv = false, thread counts that differ;
 *   - question-only change on one image (reuses at least system + image);
 *   - fork: ask_many == fresh per prompt (prompt_index), and a snapshot at
 *     n_prefix_positions restored into another session (other threads, other n_ctx);
 *   - speculative == plain over 6 images x 5 prompts with the previous answers as drafts,
 *     n_draft_max 1/2/8/64, repetition penalty, temperature sampling; explicit drafts that
 *     are entirely wrong, entirely right, longer, shorter, shifted, cut by a stop token,
 *     one token, random; a correct draft under max_new_tokens 1/2/5; out-of-range ids;
 *   - n_ctx edges: context full during decoding (STOP_CONTEXT as plain), a prompt filling
 *     the context exactly, snapshots of 0 / all positions, restore into a too small
 *     context (CONTEXT_FULL, cache unchanged), bad n_pos;
 *   - abort at every poll of an ask with a correct draft (inside verification batches
 *     too): ABORTED, a prefix of the fresh answer, and the next ask equals fresh;
 *   - image features: get/set across sessions and image sizes, image_reused and zero
 *     vision timings, refcounts outliving sessions, another model's features refused, a
 *     re-encoded image gets a new id, opaque eval_embeddings rows are never reused.
 *
 * Usage: test_reuse LLM.gguf MMPROJ.gguf (run for f32 and q4_0 files)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../llm/check.h"
#include "fastvlm.h"

#define N_NEW 40
#define N_IMAGES 6
#define N_PROMPTS 5

static const char *const PROMPTS[N_PROMPTS] = {
    "Describe the image.", "What is in the image?", "Describe the image in detail.",
    "Is there a dog in the picture?", "What colour is the car?"};

static fastvlm_model *g_model;
static fastvlm_model_info g_info;
static fastvlm_image_features *g_img[N_IMAGES];   /* encoded once, shared by every session */

typedef struct answer {
    fastvlm_result r;
    float *logits;         /* [n_vocab] fastvlm_session_logits() after the ask, or NULL */
    int32_t n_past;        /* fastvlm_session_n_past() after the ask */
} answer;

static void answer_clear(answer *a)
{
    fastvlm_result_clear(&a->r);
    free(a->logits);
    a->logits = NULL;
}

static fastvlm_session *new_session(int threads, int ctx)
{
    fastvlm_session_params sp = fastvlm_session_default_params();
    fastvlm_session *s = NULL;
    fastvlm_error err;
    sp.n_threads = threads;
    sp.n_ctx = ctx;
    CHECK(fastvlm_session_new(g_model, &sp, &s, &err) == FASTVLM_OK, "session_new: %s",
          err.message);
    return s;
}

static fastvlm_generate_params params(const char *prompt, int n_new)
{
    fastvlm_generate_params gp = fastvlm_generate_default_params();
    gp.prompt = prompt;
    gp.max_new_tokens = n_new;
    return gp;
}

static fastvlm_status ask(fastvlm_session *s, const fastvlm_generate_params *gp, answer *a)
{
    fastvlm_error err;
    const float *l;
    fastvlm_status st = fastvlm_session_ask(s, gp, &a->r, &err);
    CHECK(st == FASTVLM_OK, "ask '%s': %s", gp->prompt, err.message);
    a->logits = NULL;
    a->n_past = fastvlm_session_n_past(s);
    l = fastvlm_session_logits(s);
    if (l) {
        a->logits = malloc((size_t)g_info.n_vocab * sizeof(float));
        memcpy(a->logits, l, (size_t)g_info.n_vocab * sizeof(float));
    }
    return st;
}

/* The reference: image `img` (or none), whole prompt prefilled, plain decoding. */
static fastvlm_session *g_fresh;

static void fresh(int img, fastvlm_generate_params gp, answer *a)
{
    fastvlm_error err;
    if (img >= 0)
        CHECK(fastvlm_session_set_image_features(g_fresh, g_img[img], &err) == FASTVLM_OK, "%s",
              err.message);
    else
        fastvlm_session_clear_image(g_fresh);
    gp.reuse_kv = false;
    gp.speculative = false;
    ask(g_fresh, &gp, a);
    CHECK(a->r.n_reused_positions == 0 && a->r.n_draft == 0, "fresh reused %d / drafted %d",
          a->r.n_reused_positions, a->r.n_draft);
}

static bool same_answer(const answer *a, const answer *b, const char *what)
{
    bool ok = a->r.n_tokens == b->r.n_tokens && a->r.stop == b->r.stop &&
              a->r.n_prompt_tokens == b->r.n_prompt_tokens &&
              (a->r.n_tokens == 0 ||
               memcmp(a->r.tokens, b->r.tokens, (size_t)a->r.n_tokens * sizeof(int32_t)) == 0) &&
              strcmp(a->r.text, b->r.text) == 0 && a->n_past == b->n_past;
    CHECK(ok, "%s: %d tokens (stop %d, n_past %d) vs fresh %d tokens (stop %d, n_past %d)",
          what, a->r.n_tokens, a->r.stop, a->n_past, b->r.n_tokens, b->r.stop, b->n_past);
    if (ok) {
        const bool lok = a->logits && b->logits &&
                         memcmp(a->logits, b->logits, (size_t)g_info.n_vocab * sizeof(float)) == 0;
        CHECK(lok, "%s: same tokens but the last logits differ", what);
        ok = lok;
    }
    return ok;
}

/* A smooth planar test pattern, different for every k. */
static float *pattern(int k, int size)
{
    float *p = malloc((size_t)3 * size * size * sizeof *p);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                p[((size_t)c * size + y) * size + x] =
                    0.9f * sinf(0.05f * (float)(k + 1) * (float)x * (float)(c + 1) +
                                0.07f * (float)y * (float)(k % 3 + 1) + (float)k);
    return p;
}

static void encode_images(void)
{
    fastvlm_session *s = new_session(2, 512);
    fastvlm_error err;
    for (int k = 0; s && k < N_IMAGES; k++) {
        const int size = k == 4 ? 192 : 128;   /* one image with 9 rows instead of 4 */
        float *p = pattern(k, size);
        CHECK(fastvlm_session_set_image_planar(s, p, size, &err) == FASTVLM_OK, "%s",
              err.message);
        CHECK(fastvlm_session_get_image_features(s, &g_img[k], &err) == FASTVLM_OK, "%s",
              err.message);
        free(p);
    }
    fastvlm_session_free(s);   /* the features outlive the session that made them */
    for (int k = 1; k < N_IMAGES; k++)
        CHECK(fastvlm_image_features_id(g_img[k]) > fastvlm_image_features_id(g_img[k - 1]),
              "feature ids must be unique and increasing");
    CHECK(fastvlm_image_features_n_rows(g_img[4]) == 9 &&
              fastvlm_image_features_n_rows(g_img[0]) == 4 &&
              fastvlm_image_features_n_embd(g_img[0]) == g_info.n_embd,
          "feature shapes %d / %d", fastvlm_image_features_n_rows(g_img[4]),
          fastvlm_image_features_n_rows(g_img[0]));
}

/* ---- prefix KV reuse ------------------------------------------------------------------ */

static void test_prefix(void)
{
    fastvlm_session *s = new_session(2, 512), *nb = new_session(1, 512);
    fastvlm_error err;
    answer a = {0}, f = {0}, b = {0};
    const int order[] = {0, 1, 1, 2, 4, 2};
    int n_pre = -1;

    if (!s || !nb)
        goto out;
    /* the reference itself: reuse_kv = false on a used session == a brand-new session */
    fresh(3, params(PROMPTS[0], N_NEW), &f);
    fastvlm_session_set_image_features(nb, g_img[3], &err);
    {
        fastvlm_generate_params gp = params(PROMPTS[0], N_NEW);
        gp.speculative = false;
        ask(nb, &gp, &b);
    }
    same_answer(&b, &f, "brand-new session vs reuse_kv=false");
    answer_clear(&b);
    answer_clear(&f);

    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const int img = order[i];
        fastvlm_generate_params gp = params(PROMPTS[0], N_NEW);
        char what[64];
        gp.speculative = false;
        fastvlm_session_set_image_features(s, g_img[img], &err);
        ask(s, &gp, &a);
        fresh(img, params(PROMPTS[0], N_NEW), &f);
        snprintf(what, sizeof what, "frame %zu (image %d)", i, img);
        same_answer(&a, &f, what);
        const int n_img = fastvlm_image_features_n_rows(g_img[img]);
        if (i == 0) {
            CHECK(a.r.n_reused_positions == 0, "first ask reused %d", a.r.n_reused_positions);
            n_pre = a.r.n_prefix_positions - n_img;
        } else if (order[i] == order[i - 1]) {
            CHECK(a.r.n_reused_positions == a.r.n_prompt_tokens - 1,
                  "%s: same image + prompt reused %d of %d", what, a.r.n_reused_positions,
                  a.r.n_prompt_tokens);
        } else {
            /* a new image: exactly the text before it */
            CHECK(a.r.n_reused_positions == n_pre, "%s: reused %d, want %d", what,
                  a.r.n_reused_positions, n_pre);
        }
        CHECK(a.r.n_prefix_positions == n_pre + n_img, "%s: n_prefix_positions %d", what,
              a.r.n_prefix_positions);
        answer_clear(&a);
        answer_clear(&f);
    }

    /* max_new_tokens 0: the prompt's own last logits */
    for (int img = 0; img < 3; img++) {
        fastvlm_generate_params gp = params(PROMPTS[1], 0);
        fastvlm_session_set_image_features(s, g_img[img], &err);
        ask(s, &gp, &a);
        fresh(img, params(PROMPTS[1], 0), &f);
        CHECK(a.r.n_reused_positions > 0, "prompt logits: nothing reused");
        same_answer(&a, &f, "prompt logits");
        answer_clear(&a);
        answer_clear(&f);
    }

    /* text only: the prompt change keeps the system prompt */
    fastvlm_session_clear_image(s);
    for (int p = 0; p < 3; p++) {
        fastvlm_generate_params gp = params(PROMPTS[4], N_NEW);
        ask(s, &gp, &a);    /* the cache holds another prompt */
        answer_clear(&a);
        gp = params(PROMPTS[p], N_NEW);
        ask(s, &gp, &a);
        fresh(-1, params(PROMPTS[p], N_NEW), &f);
        CHECK(a.r.n_reused_positions >= a.r.n_prefix_positions && !a.r.image_reused,
              "text only: reused %d, prefix %d", a.r.n_reused_positions, a.r.n_prefix_positions);
        same_answer(&a, &f, "text only");
        answer_clear(&a);
        answer_clear(&f);
    }

    /* reuse_kv = false, and a reset, reuse nothing */
    {
        fastvlm_generate_params gp = params(PROMPTS[2], N_NEW);
        fastvlm_session_set_image_features(s, g_img[0], &err);
        ask(s, &gp, &a);
        answer_clear(&a);
        gp.reuse_kv = false;
        ask(s, &gp, &a);
        CHECK(a.r.n_reused_positions == 0, "reuse_kv=false reused %d", a.r.n_reused_positions);
        answer_clear(&a);
        gp.reuse_kv = true;
        fastvlm_session_reset(s);
        ask(s, &gp, &a);
        CHECK(a.r.n_reused_positions == 0, "after reset reused %d", a.r.n_reused_positions);
        fresh(0, params(PROMPTS[2], N_NEW), &f);
        same_answer(&a, &f, "after reset");
        answer_clear(&a);
        answer_clear(&f);
    }
out:
    fastvlm_session_free(s);
    fastvlm_session_free(nb);
}

/* ---- question-only change and forks ------------------------------------------------------ */

static void test_questions_and_forks(void)
{
    fastvlm_session *s = new_session(3, 512), *t = new_session(1, 300);
    fastvlm_result res[N_PROMPTS];
    fastvlm_kv_snapshot *snap = NULL;
    fastvlm_error err;
    answer a = {0}, f = {0};

    if (!s || !t)
        goto out;
    /* one image, the questions one after another */
    fastvlm_session_set_image_features(s, g_img[2], &err);
    for (int p = 0; p < N_PROMPTS; p++) {
        fastvlm_generate_params gp = params(PROMPTS[p], N_NEW);
        gp.speculative = false;
        ask(s, &gp, &a);
        fresh(2, params(PROMPTS[p], N_NEW), &f);
        if (p > 0)
            CHECK(a.r.n_reused_positions >= a.r.n_prefix_positions && a.r.image_reused,
                  "question %d: reused %d < prefix %d", p, a.r.n_reused_positions,
                  a.r.n_prefix_positions);
        same_answer(&a, &f, "question-only change");
        answer_clear(&a);
        answer_clear(&f);
    }

    /* ask_many on another image */
    {
        fastvlm_generate_params gp = params("ignored", N_NEW);
        fastvlm_session_set_image_features(s, g_img[5], &err);
        CHECK(fastvlm_session_ask_many(s, &gp, PROMPTS, N_PROMPTS, res, &err) == FASTVLM_OK,
              "ask_many: %s", err.message);
        for (int p = 0; p < N_PROMPTS; p++) {
            answer got = {res[p], NULL, 0};
            char what[48];
            fresh(5, params(PROMPTS[p], N_NEW), &f);
            snprintf(what, sizeof what, "ask_many prompt %d", p);
            CHECK(res[p].prompt_index == p, "prompt_index %d != %d", res[p].prompt_index, p);
            if (p > 0)
                CHECK(res[p].n_reused_positions >= res[p].n_prefix_positions,
                      "ask_many %d reused %d", p, res[p].n_reused_positions);
            /* logits only exist for the last answer: compare tokens and text */
            got.logits = f.logits;
            got.n_past = f.n_past;
            same_answer(&got, &f, what);
            fastvlm_result_clear(&res[p]);
            answer_clear(&f);
        }
    }

    /* fork: snapshot system + image, restore into another session for every question */
    {
        fastvlm_generate_params gp = params(PROMPTS[0], N_NEW);
        int32_t n_prefix;
        fastvlm_session_set_image_features(s, g_img[1], &err);
        ask(s, &gp, &a);
        n_prefix = a.r.n_prefix_positions;
        answer_clear(&a);
        CHECK(fastvlm_session_kv_snapshot(s, n_prefix, &snap, &err) == FASTVLM_OK, "%s",
              err.message);
        CHECK(fastvlm_kv_snapshot_n_pos(snap) == n_prefix, "snapshot n_pos");
        fastvlm_session_set_image_features(t, g_img[1], &err);
        for (int p = N_PROMPTS - 1; snap && p >= 0; p--) {
            gp = params(PROMPTS[p], N_NEW);
            gp.speculative = false;
            CHECK(fastvlm_session_kv_restore(t, snap, &err) == FASTVLM_OK, "%s", err.message);
            CHECK(fastvlm_session_n_past(t) == n_prefix && fastvlm_session_logits(t) == NULL,
                  "restore: n_past %d", fastvlm_session_n_past(t));
            ask(t, &gp, &a);
            fresh(1, params(PROMPTS[p], N_NEW), &f);
            CHECK(a.r.n_reused_positions >= n_prefix, "fork %d reused %d < %d", p,
                  a.r.n_reused_positions, n_prefix);
            same_answer(&a, &f, "fork from a snapshot");
            answer_clear(&a);
            answer_clear(&f);
        }
    }
    /* errors */
    {
        fastvlm_kv_snapshot *bad = (fastvlm_kv_snapshot *)1;
        CHECK(fastvlm_session_kv_snapshot(s, fastvlm_session_n_past(s) + 1, &bad, &err) ==
                  FASTVLM_ERR_INVALID_ARG && bad == NULL, "n_pos > n_past: %d", err.status);
        CHECK(fastvlm_session_kv_snapshot(s, -2, &bad, &err) == FASTVLM_ERR_INVALID_ARG,
              "n_pos -2");
        CHECK(fastvlm_session_kv_restore(s, NULL, &err) == FASTVLM_ERR_INVALID_ARG,
              "restore NULL");
        CHECK(fastvlm_session_ask_many(s, NULL, PROMPTS, 0, res, &err) ==
                  FASTVLM_ERR_INVALID_ARG, "ask_many with no prompts");
    }
out:
    fastvlm_kv_snapshot_free(snap);
    fastvlm_session_free(s);
    fastvlm_session_free(t);
}

/* ---- speculative decoding ------------------------------------------------------------------ */

static long g_drafted, g_accepted, g_tokens, g_pairs;

static void test_speculative_frames(void)
{
    /* n_draft_max per run; run 3 adds a repetition penalty, run 4 samples */
    static const int kmax[] = {8, 1, 2, 64, 8};
    static answer ref[N_IMAGES][N_PROMPTS];   /* runs 0-2 share their fresh answers */
    for (int run = 0; run < 5; run++) {
        fastvlm_session *s = new_session(run % 2 ? 1 : 2, 512);
        fastvlm_error err;
        answer a = {0}, f = {0};
        long drafted = 0, accepted = 0;
        if (!s)
            continue;
        for (int img = 0; img < N_IMAGES; img++) {
            fastvlm_session_set_image_features(s, g_img[img], &err);
            for (int p = 0; p < N_PROMPTS; p++) {
                fastvlm_generate_params gp = params(PROMPTS[p], N_NEW);
                char what[96];
                if (run == 3) {
                    gp.sampler.repeat_penalty = 1.3f;
                    gp.sampler.repeat_last_n = 16;
                }
                if (run == 4) {
                    gp.sampler.temperature = 0.7f;
                    gp.sampler.top_k = 20;
                    gp.sampler.seed = (uint64_t)(img * 7 + p);
                }
                gp.n_draft_max = kmax[run];
                ask(s, &gp, &a);
                if (run > 2 || run == 0)
                    fresh(img, gp, run == 0 ? &ref[img][p] : &f);
                snprintf(what, sizeof what, "speculative run %d image %d prompt %d", run, img,
                         p);
                same_answer(&a, run <= 2 ? &ref[img][p] : &f, what);
                CHECK(a.r.n_accepted <= a.r.n_draft && a.r.n_accepted <= a.r.n_tokens,
                      "%s: accepted %d of %d drafted, %d tokens", what, a.r.n_accepted,
                      a.r.n_draft, a.r.n_tokens);
                drafted += a.r.n_draft;
                accepted += a.r.n_accepted;
                if (run == 0) {
                    g_tokens += a.r.n_tokens;
                    g_pairs++;
                }
                answer_clear(&a);
                answer_clear(&f);
            }
        }
        CHECK(drafted > 0, "run %d: nothing was drafted", run);
        printf("speculative run %d (n_draft_max %d): %ld drafted, %ld accepted\n", run,
               kmax[run], drafted, accepted);
        if (run == 0) {
            g_drafted = drafted;
            g_accepted = accepted;
        }
        fastvlm_session_free(s);
    }
    for (int img = 0; img < N_IMAGES; img++)
        for (int p = 0; p < N_PROMPTS; p++)
            answer_clear(&ref[img][p]);
}

/* Asks with an explicit draft; returns the answer (compared with `ref`). */
static void ask_with_draft(fastvlm_session *s, int img, const char *prompt, int n_new,
                           const int32_t *draft, int32_t n_draft, int kmax, const answer *ref,
                           const char *what, answer *a)
{
    fastvlm_generate_params gp = params(prompt, n_new);
    fastvlm_error err;
    gp.draft = draft;
    gp.n_draft = n_draft;
    gp.n_draft_max = kmax;
    fastvlm_session_set_image_features(s, g_img[img], &err);
    ask(s, &gp, a);
    same_answer(a, ref, what);
}

static void test_adversarial_drafts(void)
{
    fastvlm_session *s = new_session(2, 512);
    const int32_t nv = g_info.n_vocab;
    int32_t *d = malloc(((size_t)N_NEW * 3 + 8) * sizeof *d);
    answer f = {0}, a = {0};
    unsigned rng = 12345;
    int n_full_accept = 0;

    if (!s)
        goto out;
    for (int img = 0; img < N_IMAGES; img++) {
        const char *prompt = PROMPTS[img % N_PROMPTS];
        fresh(img, params(prompt, N_NEW), &f);
        const int32_t *t = f.r.tokens;
        const int32_t n = f.r.n_tokens;
        int32_t nd;
        char what[96];
        if (n < 4) {
            answer_clear(&f);
            continue;
        }
        for (int kind = 0; kind < 9; kind++) {
            switch (kind) {
            case 0: /* entirely wrong */
                for (nd = 0; nd < n; nd++)
                    d[nd] = (t[nd] + 1 + nd) % nv;
                break;
            case 1: /* entirely right */
                memcpy(d, t, (size_t)n * sizeof *d);
                nd = n;
                break;
            case 2: /* longer: the answer then garbage */
                memcpy(d, t, (size_t)n * sizeof *d);
                for (nd = n; nd < 2 * n; nd++)
                    d[nd] = (int32_t)((rng = rng * 1103515245u + 12345u) % (unsigned)nv);
                break;
            case 3: /* shorter */
                memcpy(d, t, (size_t)(n / 2) * sizeof *d);
                nd = n / 2;
                break;
            case 4: /* a token inserted at n/3 */
                memcpy(d, t, (size_t)(n / 3) * sizeof *d);
                d[n / 3] = (t[n / 3] + 7) % nv;
                memcpy(d + n / 3 + 1, t + n / 3, (size_t)(n - n / 3) * sizeof *d);
                nd = n + 1;
                break;
            case 5: /* a token deleted at n/3, another substituted at 2n/3 */
                memcpy(d, t, (size_t)(n / 3) * sizeof *d);
                memcpy(d + n / 3, t + n / 3 + 1, (size_t)(n - n / 3 - 1) * sizeof *d);
                nd = n - 1;
                d[2 * n / 3 - 1] = (d[2 * n / 3 - 1] + 3) % nv;
                break;
            case 6: /* a stop token in the middle */
                memcpy(d, t, (size_t)n * sizeof *d);
                d[n / 2] = g_info.token_im_end >= 0 ? g_info.token_im_end : 0;
                nd = n;
                break;
            case 7: /* one token */
                d[0] = t[0];
                nd = 1;
                break;
            default: /* random */
                for (nd = 0; nd < n + 5; nd++)
                    d[nd] = (int32_t)((rng = rng * 1103515245u + 12345u) % (unsigned)nv);
                break;
            }
            for (int km = 0; km < 3; km++) {
                static const int kmax[] = {1, 4, 64};
                snprintf(what, sizeof what, "image %d draft kind %d n_draft_max %d", img, kind,
                         kmax[km]);
                ask_with_draft(s, img, prompt, N_NEW, d, nd, kmax[km], &f, what, &a);
                if (kind == 0)
                    CHECK(a.r.n_accepted <= 1, "%s: accepted %d of a wrong draft", what,
                          a.r.n_accepted);
                if (kind == 1) {
                    CHECK(a.r.n_accepted == a.r.n_draft, "%s: a right draft lost %d tokens",
                          what, a.r.n_draft - a.r.n_accepted);
                    n_full_accept += a.r.n_draft >= n - 2;
                }
                answer_clear(&a);
            }
        }
        /* a right draft with a tight max_new_tokens */
        for (int cap = 1; cap <= 5; cap += 2) {
            answer fc = {0};
            fresh(img, params(prompt, cap), &fc);
            snprintf(what, sizeof what, "image %d right draft, max_new_tokens %d", img, cap);
            ask_with_draft(s, img, prompt, cap, t, n, 8, &fc, what, &a);
            CHECK(a.r.n_tokens <= cap, "%s: %d tokens", what, a.r.n_tokens);
            answer_clear(&a);
            answer_clear(&fc);
        }
        answer_clear(&f);
    }
    CHECK(n_full_accept > 0, "a right draft was never accepted whole");

    /* bad drafts are refused */
    {
        fastvlm_generate_params gp = params(PROMPTS[0], 8);
        fastvlm_result r;
        fastvlm_error err;
        int32_t bad[3] = {1, nv, 2};
        gp.draft = bad;
        gp.n_draft = 3;
        CHECK(fastvlm_session_ask(s, &gp, &r, &err) == FASTVLM_ERR_TOKEN_RANGE &&
                  strstr(err.message, "draft"), "draft id n_vocab: %s", err.message);
        fastvlm_result_clear(&r);
        bad[1] = -1;
        CHECK(fastvlm_session_ask(s, &gp, &r, &err) == FASTVLM_ERR_TOKEN_RANGE, "draft id -1");
        fastvlm_result_clear(&r);
        gp.draft = NULL;
        CHECK(fastvlm_session_ask(s, &gp, &r, &err) == FASTVLM_ERR_INVALID_ARG, "NULL draft");
        fastvlm_result_clear(&r);
        gp.n_draft = 0;
        gp.n_draft_max = 0;
        CHECK(fastvlm_session_ask(s, &gp, &r, &err) == FASTVLM_ERR_INVALID_ARG,
              "n_draft_max 0");
        fastvlm_result_clear(&r);
    }
out:
    free(d);
    fastvlm_session_free(s);
}

/* ---- context edges --------------------------------------------------------------------------- */

static void test_context_edges(void)
{
    fastvlm_error err;
    answer a = {0}, f = {0};
    fastvlm_session *big = new_session(2, 512);
    int32_t n_prompt;

    if (!big)
        return;
    fastvlm_session_set_image_features(big, g_img[0], &err);
    {
        fastvlm_generate_params gp = params(PROMPTS[0], 0);
        ask(big, &gp, &a);
    }
    n_prompt = a.r.n_prompt_tokens;
    answer_clear(&a);

    /* the context fills during decoding: n_ctx = prompt + 1 .. prompt + 9 */
    for (int extra = 0; extra < 10; extra += 3) {
        fastvlm_session *s = new_session(2, n_prompt + extra), *p = new_session(1, n_prompt + extra);
        fastvlm_generate_params gp = params(PROMPTS[0], N_NEW);
        char what[64];
        if (!s || !p) {
            fastvlm_session_free(s);
            fastvlm_session_free(p);
            continue;
        }
        fastvlm_session_set_image_features(p, g_img[0], &err);
        gp.reuse_kv = false;
        gp.speculative = false;
        ask(p, &gp, &f);
        fastvlm_session_set_image_features(s, g_img[0], &err);
        gp = params(PROMPTS[0], N_NEW);
        ask(s, &gp, &a);           /* leaves a draft */
        answer_clear(&a);
        fastvlm_session_set_image_features(s, g_img[0], &err);
        ask(s, &gp, &a);           /* reuses the prompt, verifies the draft */
        snprintf(what, sizeof what, "n_ctx = prompt + %d", extra);
        same_answer(&a, &f, what);
        CHECK(extra == 0 || a.r.stop == FASTVLM_STOP_CONTEXT || a.r.stop == FASTVLM_STOP_EOS,
              "%s: stop %d", what, a.r.stop);
        CHECK(fastvlm_session_n_past(s) <= n_prompt + extra, "%s: n_past %d", what,
              fastvlm_session_n_past(s));

        /* a snapshot of the whole context restores into exactly that much, not less */
        {
            fastvlm_kv_snapshot *snap = NULL, *empty = NULL;
            fastvlm_session *tiny = new_session(1, fastvlm_session_n_past(s) > 1
                                                          ? fastvlm_session_n_past(s) - 1 : 1);
            const int32_t n_t = tiny ? fastvlm_session_n_past(tiny) : 0;
            CHECK(fastvlm_session_kv_snapshot(s, -1, &snap, &err) == FASTVLM_OK, "%s",
                  err.message);
            CHECK(fastvlm_kv_snapshot_n_pos(snap) == fastvlm_session_n_past(s), "n_pos -1");
            CHECK(fastvlm_session_kv_restore(p, snap, &err) == FASTVLM_OK, "%s", err.message);
            if (tiny && fastvlm_kv_snapshot_n_pos(snap) > 1) {
                CHECK(fastvlm_session_kv_restore(tiny, snap, &err) == FASTVLM_ERR_CONTEXT_FULL,
                      "restore into a smaller context: %d", err.status);
                CHECK(fastvlm_session_n_past(tiny) == n_t, "a failed restore changed n_past");
            }
            /* the restored session answers as the original would */
            answer_clear(&a);
            gp = params(PROMPTS[0], N_NEW);
            gp.speculative = false;
            ask(p, &gp, &a);
            CHECK(a.r.n_reused_positions == n_prompt - 1, "%s: restored, reused %d", what,
                  a.r.n_reused_positions);
            same_answer(&a, &f, "after restoring a full context");
            CHECK(fastvlm_session_kv_snapshot(s, 0, &empty, &err) == FASTVLM_OK &&
                      fastvlm_kv_snapshot_n_pos(empty) == 0, "empty snapshot");
            CHECK(fastvlm_session_kv_restore(s, empty, &err) == FASTVLM_OK &&
                      fastvlm_session_n_past(s) == 0, "restore empty");
            fastvlm_kv_snapshot_free(snap);
            fastvlm_kv_snapshot_free(empty);
            fastvlm_session_free(tiny);
        }
        answer_clear(&a);
        answer_clear(&f);
        fastvlm_session_free(s);
        fastvlm_session_free(p);
    }

    /* a prompt one position longer than the context is refused and keeps the cache */
    {
        fastvlm_session *s = new_session(1, n_prompt - 1);
        fastvlm_generate_params gp = params(PROMPTS[0], N_NEW);
        fastvlm_result r;
        if (s) {
            fastvlm_session_set_image_features(s, g_img[0], &err);
            fastvlm_session_clear_image(s);
            ask(s, &gp, &a);     /* text only fits */
            const int32_t n_past = fastvlm_session_n_past(s);
            answer_clear(&a);
            fastvlm_session_set_image_features(s, g_img[0], &err);
            CHECK(fastvlm_session_ask(s, &gp, &r, &err) == FASTVLM_ERR_CONTEXT_FULL,
                  "prompt over the context: %d", err.status);
            CHECK(fastvlm_session_n_past(s) == n_past, "a refused prompt changed the cache");
            fastvlm_result_clear(&r);
            fastvlm_session_free(s);
        }
    }
    fastvlm_session_free(big);
}

/* ---- abort --------------------------------------------------------------------------------- */

typedef struct abort_at {
    int polls, at;
} abort_at;

static bool abort_cb(void *ud)
{
    abort_at *a = ud;
    return ++a->polls >= a->at;
}

static void test_abort(void)
{
    fastvlm_session *s = new_session(2, 512);
    fastvlm_error err;
    answer f = {0}, a = {0};
    int in_verify = 0, in_prefill = 0, completed = 0;

    if (!s)
        return;
    fresh(3, params(PROMPTS[1], N_NEW), &f);
    for (int at = 1; at < 400 && !completed; at++) {
        abort_at ab = {0, at};
        fastvlm_generate_params gp = params(PROMPTS[1], N_NEW);
        fastvlm_result r;
        fastvlm_status st;
        /* every other try starts from a cache that holds another prompt */
        fastvlm_session_set_image_features(s, g_img[at % 2 ? 3 : 2], &err);
        if (at % 3 == 0) {
            ask(s, &gp, &a);
            answer_clear(&a);
        }
        fastvlm_session_set_image_features(s, g_img[3], &err);
        gp.draft = f.r.tokens;
        gp.n_draft = f.r.n_tokens;
        gp.n_draft_max = 4;
        gp.should_abort = abort_cb;
        gp.user_data = &ab;
        st = fastvlm_session_ask(s, &gp, &r, &err);
        if (st == FASTVLM_OK) {
            completed = 1;
        } else {
            CHECK(st == FASTVLM_ERR_ABORTED && r.stop == FASTVLM_STOP_ABORT,
                  "abort at poll %d: status %d stop %d", at, st, r.stop);
            CHECK(r.n_tokens <= f.r.n_tokens &&
                      (r.n_tokens == 0 ||
                       memcmp(r.tokens, f.r.tokens, (size_t)r.n_tokens * sizeof(int32_t)) == 0),
                  "abort at poll %d: the partial answer is not a prefix of the answer", at);
            in_verify += r.n_draft > 0 && strstr(err.message, "layer") != NULL;
            in_prefill += r.n_tokens == 0 && strstr(err.message, "layer") != NULL;
        }
        fastvlm_result_clear(&r);
        CHECK(fastvlm_session_n_past(s) <= 512, "n_past %d", fastvlm_session_n_past(s));
        /* the session is consistent: the next ask is the fresh answer */
        gp = params(PROMPTS[1], N_NEW);
        ask(s, &gp, &a);
        if (!same_answer(&a, &f, "ask after an abort"))
            fprintf(stderr, "  (abort at poll %d)\n", at);
        answer_clear(&a);
    }
    CHECK(completed, "the ask never completed");
    CHECK(in_verify > 0 && in_prefill > 0,
          "aborts inside a verification batch: %d, inside the prefill: %d", in_verify, in_prefill);
    answer_clear(&f);
    fastvlm_session_free(s);
}

/* ---- image features ------------------------------------------------------------------------ */

static void test_features(const char *llm_path, const char *mmproj_path)
{
    fastvlm_session *a = new_session(2, 512), *b = NULL;
    fastvlm_session_params sp = fastvlm_session_default_params();
    fastvlm_model_params mp = fastvlm_model_default_params();
    fastvlm_model *other = NULL;
    fastvlm_session *os = NULL;
    fastvlm_image_features *f = NULL, *g = NULL, *g2 = NULL;
    fastvlm_error err;
    answer x = {0}, y = {0};
    float *p = pattern(9, 128);
    uint8_t rgb[40 * 30 * 3];

    if (!a)
        goto out;
    CHECK(fastvlm_session_get_image_features(a, &f, &err) == FASTVLM_ERR_INVALID_ARG && !f,
          "features without an image");
    for (size_t i = 0; i < sizeof rgb; i++)
        rgb[i] = (uint8_t)(i * 37 % 251);
    CHECK(fastvlm_session_set_image_rgb8(a, rgb, 40, 30, 120, &err) == FASTVLM_OK, "%s",
          err.message);
    {
        fastvlm_generate_params gp = params(PROMPTS[0], N_NEW);
        ask(a, &gp, &x);
        CHECK(!x.r.image_reused && x.r.t_vision_ms > 0.0, "first answer: vision %.3f, reused %d",
              x.r.t_vision_ms, x.r.image_reused);
        answer_clear(&x);
        ask(a, &gp, &x);
        CHECK(x.r.image_reused && x.r.t_vision_ms == 0.0 && x.r.t_preprocess_ms == 0.0,
              "asked again: vision %.3f, preprocess %.3f, reused %d", x.r.t_vision_ms,
              x.r.t_preprocess_ms, x.r.image_reused);
    }
    CHECK(fastvlm_session_get_image_features(a, &f, &err) == FASTVLM_OK && f, "%s", err.message);

    /* another session (another image size) answers the same from the features */
    sp.n_threads = 1;
    sp.image_size = 256;
    CHECK(fastvlm_session_new(g_model, &sp, &b, &err) == FASTVLM_OK, "%s", err.message);
    fastvlm_session_free(a);   /* f outlives its session */
    a = NULL;
    if (b) {
        fastvlm_generate_params gp = params(PROMPTS[0], N_NEW);
        CHECK(fastvlm_session_set_image_features(b, f, &err) == FASTVLM_OK, "%s", err.message);
        ask(b, &gp, &y);
        CHECK(y.r.image_reused && y.r.t_vision_ms == 0.0, "attached features: vision %.3f",
              y.r.t_vision_ms);
        same_answer(&y, &x, "attached features vs the encoding session");
        answer_clear(&y);
        fastvlm_session_clear_image(b);   /* drops b's reference, not ours */
        CHECK(fastvlm_image_features_n_rows(f) == 4 && fastvlm_image_features_data(f),
              "features after clear_image");
    }
    answer_clear(&x);

    /* re-encoding the same pixels gives a new id: its rows are not taken from the cache */
    if (b) {
        fastvlm_generate_params gp = params(PROMPTS[1], N_NEW);
        CHECK(fastvlm_session_set_image_planar(b, p, 128, &err) == FASTVLM_OK, "%s", err.message);
        ask(b, &gp, &x);
        CHECK(fastvlm_session_set_image_planar(b, p, 128, &err) == FASTVLM_OK, "%s", err.message);
        ask(b, &gp, &y);
        CHECK(fastvlm_session_get_image_features(b, &g, &err) == FASTVLM_OK, "%s", err.message);
        CHECK(y.r.n_reused_positions == y.r.n_prefix_positions - fastvlm_image_features_n_rows(g),
              "re-encoded image: reused %d", y.r.n_reused_positions);
        CHECK(!y.r.image_reused, "re-encoded image reported as reused");
        same_answer(&y, &x, "re-encoded image");
        answer_clear(&x);
        answer_clear(&y);
        /* setting the same handle again is a no-op: everything but the last row reused */
        CHECK(fastvlm_session_set_image_features(b, g, &err) == FASTVLM_OK, "%s", err.message);
        ask(b, &gp, &x);
        CHECK(x.r.n_reused_positions == x.r.n_prompt_tokens - 1 && x.r.image_reused,
              "same handle: reused %d", x.r.n_reused_positions);
        answer_clear(&x);

        /* opaque rows (eval_embeddings) never match, even with equal content */
        {
            const int32_t d = g_info.n_embd;
            float *rows = calloc((size_t)4 * d, sizeof *rows);
            fastvlm_session_reset(b);
            CHECK(fastvlm_session_eval_embeddings(b, rows, 4, NULL, &err) == FASTVLM_OK, "%s",
                  err.message);
            ask(b, &gp, &x);
            CHECK(x.r.n_reused_positions == 0, "opaque rows reused: %d", x.r.n_reused_positions);
            answer_clear(&x);
            free(rows);
        }
    }

    /* features of another model (the same files loaded again) are refused */
    mp.mmproj_path = mmproj_path;
    CHECK(fastvlm_model_load(llm_path, &mp, &other, &err) == FASTVLM_OK, "%s", err.message);
    if (other && fastvlm_session_new(other, NULL, &os, &err) == FASTVLM_OK) {
        fastvlm_generate_params gp = params(PROMPTS[0], 4);
        CHECK(fastvlm_session_set_image_features(os, f, &err) == FASTVLM_ERR_INVALID_ARG,
              "another model's features: %d", err.status);
        CHECK(fastvlm_session_get_image_features(os, &g2, &err) == FASTVLM_ERR_INVALID_ARG,
              "a refused attach must leave no image");
        ask(os, &gp, &x);
        CHECK(!x.r.image_reused, "text-only answer reported an image");
        answer_clear(&x);
    }
    CHECK(fastvlm_session_set_image_features(b, NULL, &err) == FASTVLM_ERR_INVALID_ARG,
          "NULL features");
    CHECK(fastvlm_image_features_ref(NULL) == NULL && fastvlm_image_features_id(NULL) == 0,
          "NULL handle");
    fastvlm_image_features_unref(NULL);
out:
    fastvlm_image_features_unref(f);
    fastvlm_image_features_unref(g);
    fastvlm_session_free(a);
    fastvlm_session_free(b);
    fastvlm_session_free(os);
    fastvlm_model_free(other);
    free(p);
}

int main(int argc, char **argv)
{
    fastvlm_model_params mp = fastvlm_model_default_params();
    fastvlm_error err;

    if (argc != 3) {
        fprintf(stderr, "usage: test_reuse LLM.gguf MMPROJ.gguf\n");
        return 2;
    }
    mp.mmproj_path = argv[2];
    if (fastvlm_model_load(argv[1], &mp, &g_model, &err) != FASTVLM_OK) {
        fprintf(stderr, "test_reuse: %s\n", err.message);
        return 1;
    }
    fastvlm_model_get_info(g_model, &g_info);
    g_fresh = new_session(1, 512);
    encode_images();

    test_prefix();
    test_questions_and_forks();
    test_speculative_frames();
    test_adversarial_drafts();
    test_context_edges();
    test_abort();
    test_features(argv[1], argv[2]);
    printf("%ld (image, prompt) pairs, %ld tokens: %ld drafted from previous answers, %ld "
           "accepted (%.1f%%)\n", g_pairs, g_tokens, g_drafted, g_accepted,
           g_drafted ? 100.0 * (double)g_accepted / (double)g_drafted : 0.0);

    for (int k = 0; k < N_IMAGES; k++)
        fastvlm_image_features_unref(g_img[k]);
    fastvlm_session_free(g_fresh);
    fastvlm_model_free(g_model);
    return check_summary("test_reuse");
}
