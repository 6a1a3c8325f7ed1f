/*
 * cmd_run.c — `fastvlm run`: answer questions about images with the whole VLM, each answer
 * streamed to stdout as it is generated (what predict.py does), one line per answer.
 *
 *   fastvlm run -m M.gguf --mmproj P.gguf --image FILE [--image FILE ...]
 *               [-p QUESTION [-p QUESTION ...]] [-n N] [--temp T] [--seed S] [--size S]
 *               [--system TEXT] [-t THREADS] [-c CTX] [--reuse | --no-reuse]
 *               [--draft-max K] [--timings] [--ids]
 *
 * Each image (PNG/JPEG, tools/fastvlm/imageio.c) goes through fastvlm_session_set_image_rgb8
 * (pad to square, bicubic resize, tower, projector) and each question through
 * fastvlm_session_ask (qwen_2 template, image rows spliced at the image position, greedy
 * by default). Several images are answered in sequence through ONE session, like frames
 * of a stream: answers come image by image, question by question within an image.
 * --reuse (the default) lets the session reuse what it can (docs/reuse.md): the KV cache
 * of the system prompt and of the image, previous answers as speculative drafts, and the
 * image features when an image's pixels equal the previous one's; --no-reuse computes
 * everything afresh. Both give the same answers.
 * --timings prints, per answer, preprocess / vision / prefill / decode milliseconds and
 * what was reused to stderr, then a total; --ids prints the generated token ids (one line,
 * space-separated) instead of text.
 * Uses only the public API (fastvlm.h). Not a text-only tool: that is `fastvlm generate`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "imageio.h"

static const char *const CMD = "run";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastvlm run -m MODEL.gguf --mmproj MMPROJ.gguf --image FILE [-p QUESTION] "
            "[options]\n"
            "  -m, --model FILE      language model GGUF (qwen2)\n"
            "      --mmproj FILE     vision tower + projector GGUF\n"
            "      --image FILE      PNG or JPEG image; repeat for several (one session)\n"
            "  -p, --prompt TEXT     the question (default: Describe the image.); repeat for\n"
            "                        several questions per image\n"
            "      --system TEXT     system prompt (default: You are a helpful assistant.)\n"
            "  -n, --n-predict N     maximum tokens to generate (default 256)\n"
            "      --temp T          temperature, 0 = greedy (default 0)\n"
            "      --seed S          sampling seed (default 0)\n"
            "      --size S          vision input size, a multiple of 64 (default: the mmproj's)\n"
            "  -t, --threads N       threads (default 2)\n"
            CLI_PRECISION_HELP
            "  -c, --ctx N           context length (default 4096)\n"
            "      --reuse           reuse KV cache, drafts and unchanged images (default)\n"
            "      --no-reuse        compute every answer afresh (same answers, slower)\n"
            "      --draft-max K     draft tokens verified per decoder call (default 8)\n"
            "      --timings         per-stage times and reuse on stderr\n"
            "      --ids             print generated token ids instead of text\n");
}

typedef struct run_out {
    bool ids;
    int32_t n;
} run_out;

static bool on_token(int32_t token, const char *piece, void *ud)
{
    run_out *o = ud;
    if (o->ids)
        printf(o->n ? " %d" : "%d", (int)token);
    else
        fputs(piece, stdout);
    fflush(stdout);
    o->n++;
    return true;
}

/* Images of one run (docs/limits.md); questions: FASTVLM_MAX_PROMPTS, as for ask_many. */
#define RUN_MAX_IMAGES 256

/* Totals over every answer, for the --timings summary. */
typedef struct run_totals {
    int n_answers;
    long n_prompt, n_reused, n_tokens, n_draft, n_accepted;
    double t_pre, t_vis, t_prefill, t_decode, t_total;
} run_totals;

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void print_timings(const fastvlm_result *r, int img, int n_img, const char *path, int w,
                          int h, int q, int n_q)
{
    fprintf(stderr,
            "fastvlm run: image %d/%d %s (%dx%d), prompt %d/%d: %d prompt positions "
            "(%d reused), %d tokens generated\n"
            "  preprocess %9.1f ms%s\n  vision     %9.1f ms%s\n  prefill    %9.1f ms (%d positions)\n"
            "  decode     %9.1f ms (%.2f ms/token; draft %d, accepted %d)\n  total      %9.1f ms\n",
            img + 1, n_img, path, w, h, q + 1, n_q, r->n_prompt_tokens, r->n_reused_positions,
            r->n_tokens, r->t_preprocess_ms, r->image_reused ? " (image reused)" : "",
            r->t_vision_ms, r->image_reused ? " (image reused)" : "", r->t_prefill_ms,
            r->n_prompt_tokens - r->n_reused_positions, r->t_decode_ms,
            r->n_tokens ? r->t_decode_ms / r->n_tokens : 0.0, r->n_draft, r->n_accepted,
            r->t_total_ms);
}

int cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *mmproj = NULL, *system = NULL;
    const char *images[RUN_MAX_IMAGES], *prompts[FASTVLM_MAX_PROMPTS];
    int n_images = 0, n_prompts = 0, n_images_given = 0, n_prompts_given = 0;
    uint8_t *rgbs[RUN_MAX_IMAGES] = {0};
    int32_t ws[RUN_MAX_IMAGES] = {0}, hs[RUN_MAX_IMAGES] = {0};
    long n_predict = 256, threads = 2, ctx = 4096, size = 0, draft_max = 8;
    bool timings = false, reuse = true;
    run_totals tot;
    run_out o = {false, 0};
    fastvlm_generate_params gp = fastvlm_generate_default_params();
    fastvlm_model_params mp = fastvlm_model_default_params();
    fastvlm_session_params sep = fastvlm_session_default_params();
    fastvlm_model *model = NULL;
    fastvlm_session *s = NULL;
    fastvlm_result res;
    fastvlm_error err;
    int rc = 1;

    memset(&tot, 0, sizeof tot);
    memset(&res, 0, sizeof res);
    memset(&err, 0, sizeof err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
#define NEED_VAL() CLI_NEED_VAL(CMD, a, val, i)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEED_VAL();
            model_path = val;
        } else if (!strcmp(a, "--mmproj")) {
            NEED_VAL();
            mmproj = val;
        } else if (!strcmp(a, "--image")) {
            NEED_VAL();
            if (n_images_given++ < RUN_MAX_IMAGES)
                images[n_images++] = val;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            NEED_VAL();
            if (n_prompts_given++ < FASTVLM_MAX_PROMPTS)
                prompts[n_prompts++] = val;
        } else if (!strcmp(a, "--system")) {
            NEED_VAL();
            system = val;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            NEED_VAL();
            if (!cli_parse_int(val, 0, 1 << 20, &n_predict))
                return cli_usage_error(CMD, "bad -n '%s'", val);
        } else if (!strcmp(a, "--temp")) {
            NEED_VAL();
            if (!cli_parse_float(val, &gp.sampler.temperature) || gp.sampler.temperature < 0)
                return cli_usage_error(CMD, "bad --temp '%s'", val);
        } else if (!strcmp(a, "--seed")) {
            NEED_VAL();
            if (!cli_parse_u64(val, &u))
                return cli_usage_error(CMD, "bad --seed '%s'", val);
            gp.sampler.seed = u;
        } else if (!strcmp(a, "--size")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, 1 << 16, &size))
                return cli_usage_error(CMD, "bad --size '%s'", val);
        } else if (!strcmp(a, "--precision")) {
            NEED_VAL();
            if (!cli_parse_precision(val, &sep.matmul_precision))
                return cli_usage_error(CMD, "bad --precision '%s' (exact or fast)", val);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, 256, &threads))
                return cli_usage_error(CMD, "bad --threads '%s'", val);
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, INT32_MAX, &ctx))
                return cli_usage_error(CMD, "bad --ctx '%s'", val);
        } else if (!strcmp(a, "--reuse")) {
            reuse = true;
        } else if (!strcmp(a, "--no-reuse")) {
            reuse = false;
        } else if (!strcmp(a, "--draft-max")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, 256, &draft_max))
                return cli_usage_error(CMD, "bad --draft-max '%s'", val);
        } else if (!strcmp(a, "--timings")) {
            timings = true;
        } else if (!strcmp(a, "--ids")) {
            o.ids = true;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
#undef NEED_VAL
    }
    if (!model_path || !mmproj || !n_images)
        return cli_usage_error(CMD, "need -m MODEL, --mmproj MMPROJ and --image FILE");
    if (n_images_given > RUN_MAX_IMAGES) {
        fprintf(stderr, "fastvlm run: %d images (--image), over the limit of %d "
                        "(RUN_MAX_IMAGES)\n", n_images_given, RUN_MAX_IMAGES);
        return 1;
    }
    if (n_prompts_given > FASTVLM_MAX_PROMPTS) {
        fprintf(stderr, "fastvlm run: %d questions (-p), over the limit of %d "
                        "(FASTVLM_MAX_PROMPTS)\n", n_prompts_given, FASTVLM_MAX_PROMPTS);
        return 1;
    }
    if (!n_prompts)
        prompts[n_prompts++] = gp.prompt;

    /* the images first: a bad file fails before the (slower) model load */
    for (int i = 0; i < n_images; i++)
        if (fvlm_image_load(images[i], &rgbs[i], &ws[i], &hs[i], err.message,
                            sizeof err.message))
            goto fail;

    mp.mmproj_path = mmproj;
    mp.log = cli_log;
    if (fastvlm_model_load(model_path, &mp, &model, &err) != FASTVLM_OK)
        goto fail;
    sep.n_threads = (int32_t)threads;
    sep.n_ctx = (int32_t)ctx;
    sep.image_size = (int32_t)size;
    if (fastvlm_session_new(model, &sep, &s, &err) != FASTVLM_OK)
        goto fail;

    if (system)
        gp.system_prompt = system;
    gp.max_new_tokens = (int32_t)n_predict;
    gp.on_token = on_token;
    gp.user_data = &o;
    gp.reuse_kv = reuse;
    gp.speculative = reuse;
    gp.n_draft_max = (int32_t)draft_max;
    const double t_wall = wall_ms();
    for (int i = 0; i < n_images; i++) {
        /* the same pixels as the previous image: its features are still the session's */
        const bool same = reuse && i > 0 && ws[i] == ws[i - 1] && hs[i] == hs[i - 1] &&
                          memcmp(rgbs[i], rgbs[i - 1], (size_t)ws[i] * hs[i] * 3) == 0;
        for (int q = 0; q < n_prompts; q++) {
            /* --no-reuse: the tower again for every question too */
            if ((reuse ? !same && q == 0 : true) &&
                fastvlm_session_set_image_rgb8(s, rgbs[i], ws[i], hs[i], (size_t)ws[i] * 3,
                                               &err) != FASTVLM_OK)
                goto fail;
            gp.prompt = prompts[q];
            o.n = 0;
            if (fastvlm_session_ask(s, &gp, &res, &err) != FASTVLM_OK)
                goto fail;
            fputc('\n', stdout);
            fflush(stdout);
            if (timings)
                print_timings(&res, i, n_images, images[i], ws[i], hs[i], q, n_prompts);
            tot.n_answers++;
            tot.n_prompt += res.n_prompt_tokens;
            tot.n_reused += res.n_reused_positions;
            tot.n_tokens += res.n_tokens;
            tot.n_draft += res.n_draft;
            tot.n_accepted += res.n_accepted;
            tot.t_pre += res.t_preprocess_ms;
            tot.t_vis += res.t_vision_ms;
            tot.t_prefill += res.t_prefill_ms;
            tot.t_decode += res.t_decode_ms;
            tot.t_total += res.t_total_ms;
            fastvlm_result_clear(&res);
        }
    }
    if (timings && tot.n_answers > 1)
        fprintf(stderr,
                "fastvlm run: %d answers (%s): %ld prompt positions, %ld reused (%.1f%%); "
                "%ld tokens, %ld drafted, %ld accepted (%.1f%%)\n"
                "  preprocess %9.1f ms\n  vision     %9.1f ms\n  prefill    %9.1f ms\n"
                "  decode     %9.1f ms (%.2f ms/token)\n  asks       %9.1f ms\n"
                "  wall       %9.1f ms (images, asks and printing)\n",
                tot.n_answers, reuse ? "--reuse" : "--no-reuse", tot.n_prompt, tot.n_reused,
                tot.n_prompt ? 100.0 * tot.n_reused / tot.n_prompt : 0.0, tot.n_tokens,
                tot.n_draft, tot.n_accepted, tot.n_draft ? 100.0 * tot.n_accepted / tot.n_draft : 0.0,
                tot.t_pre, tot.t_vis, tot.t_prefill, tot.t_decode,
                tot.n_tokens ? tot.t_decode / tot.n_tokens : 0.0, tot.t_total,
                wall_ms() - t_wall);
    rc = 0;
    goto done;

fail:
    if (o.n)
        fputc('\n', stdout);
    rc = cli_fail(CMD, &err);
done:
    fastvlm_result_clear(&res);
    fastvlm_session_free(s);
    fastvlm_model_free(model);
    for (int i = 0; i < n_images; i++)
        free(rgbs[i]);
    return rc;
}
