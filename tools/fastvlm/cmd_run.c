/*
 * cmd_run.c — `fastvlm run`: answer a question about one image with the whole VLM, the
 * answer streamed to stdout as it is generated (what predict.py does).
 *
 *   fastvlm run -m M.gguf --mmproj P.gguf --image FILE [-p QUESTION] [-n N] [--temp T]
 *               [--seed S] [--size S] [--system TEXT] [-t THREADS] [-c CTX] [--timings] [--ids]
 *
 * The image (PNG/JPEG, tools/fastvlm/imageio.c) goes through fastvlm_session_set_image_rgb8
 * (pad to square, bicubic resize, tower, projector) and the question through
 * fastvlm_session_ask (qwen_2 template, image rows spliced at the image position, greedy
 * by default). --timings prints preprocess / vision / prefill / decode milliseconds to
 * stderr; --ids prints the generated token ids (one line, space-separated) instead of text.
 * Uses only the public API (fastvlm.h). Not a text-only tool: that is `fastvlm generate`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            "      --image FILE      PNG or JPEG image\n"
            "  -p, --prompt TEXT     the question (default: Describe the image.)\n"
            "      --system TEXT     system prompt (default: You are a helpful assistant.)\n"
            "  -n, --n-predict N     maximum tokens to generate (default 256)\n"
            "      --temp T          temperature, 0 = greedy (default 0)\n"
            "      --seed S          sampling seed (default 0)\n"
            "      --size S          vision input size, a multiple of 64 (default: the mmproj's)\n"
            "  -t, --threads N       threads (default 2)\n"
            "  -c, --ctx N           context length (default 4096)\n"
            "      --timings         per-stage times on stderr\n"
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

int cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *mmproj = NULL, *image = NULL, *prompt = NULL;
    const char *system = NULL;
    long n_predict = 256, threads = 2, ctx = 4096, size = 0;
    bool timings = false;
    run_out o = {false, 0};
    fastvlm_generate_params gp = fastvlm_generate_default_params();
    fastvlm_model_params mp = fastvlm_model_default_params();
    fastvlm_session_params sep = fastvlm_session_default_params();
    fastvlm_model *model = NULL;
    fastvlm_session *s = NULL;
    fastvlm_result res;
    fastvlm_error err;
    uint8_t *rgb = NULL;
    int32_t w = 0, h = 0;
    int rc = 1;

    memset(&res, 0, sizeof res);
    memset(&err, 0, sizeof err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
#define NEED_VAL()                                                     \
    do {                                                               \
        if (!val)                                                      \
            return cli_usage_error(CMD, "option %s needs a value", a); \
        i++;                                                           \
    } while (0)
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
            image = val;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            NEED_VAL();
            prompt = val;
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
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, 256, &threads))
                return cli_usage_error(CMD, "bad --threads '%s'", val);
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, INT32_MAX, &ctx))
                return cli_usage_error(CMD, "bad --ctx '%s'", val);
        } else if (!strcmp(a, "--timings")) {
            timings = true;
        } else if (!strcmp(a, "--ids")) {
            o.ids = true;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
#undef NEED_VAL
    }
    if (!model_path || !mmproj || !image)
        return cli_usage_error(CMD, "need -m MODEL, --mmproj MMPROJ and --image FILE");

    /* the image first: a bad file fails before the (slower) model load */
    if (fvlm_image_load(image, &rgb, &w, &h, err.message, sizeof err.message))
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
    if (fastvlm_session_set_image_rgb8(s, rgb, w, h, (size_t)w * 3, &err) != FASTVLM_OK)
        goto fail;

    if (prompt)
        gp.prompt = prompt;
    if (system)
        gp.system_prompt = system;
    gp.max_new_tokens = (int32_t)n_predict;
    gp.on_token = on_token;
    gp.user_data = &o;
    if (fastvlm_session_ask(s, &gp, &res, &err) != FASTVLM_OK)
        goto fail;
    fputc('\n', stdout);
    fflush(stdout);
    if (timings)
        fprintf(stderr,
                "fastvlm run: image %dx%d, %d prompt positions, %d tokens generated\n"
                "  preprocess %9.1f ms\n  vision     %9.1f ms\n  prefill    %9.1f ms\n"
                "  decode     %9.1f ms (%.2f ms/token)\n  total      %9.1f ms\n",
                w, h, res.n_prompt_tokens, res.n_tokens, res.t_preprocess_ms, res.t_vision_ms,
                res.t_prefill_ms, res.t_decode_ms,
                res.n_tokens ? res.t_decode_ms / res.n_tokens : 0.0, res.t_total_ms);
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
    free(rgb);
    return rc;
}
