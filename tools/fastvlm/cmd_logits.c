/*
 * cmd_logits.c — `fastvlm logits`: runs the language model over a token sequence and
 * writes the raw logits, for comparison with a reference implementation.
 *
 *   fastvlm logits -m M.gguf --tokens 1,2,3 -o OUT.f32 [-t N] [-c CTX] [--one-by-one]
 *
 * OUT.f32 is little-endian float32, one row of n_vocab per input position (row-major).
 * By default the whole sequence is one batch (prefill); --one-by-one evaluates it a token
 * at a time through the KV cache (decode), so the two paths can be compared.
 * Not a generator: see `fastvlm generate`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const CMD = "logits";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastvlm logits -m MODEL.gguf --tokens ID,ID,... -o OUT.f32 [options]\n"
            "  -m, --model FILE    language model GGUF (qwen2)\n"
            "      --tokens LIST   token ids, comma-separated\n"
            "  -o, --output FILE   raw little-endian float32, n_tokens x n_vocab\n"
            "  -v                  more logging (repeatable)\n"
            "  -t, --threads N     threads (default 2)\n"
            CLI_PRECISION_HELP
            "  -c, --ctx N         context length (default: the number of tokens)\n"
            "      --one-by-one    evaluate token by token instead of one batch\n");
}

/* Writes n floats little-endian whatever the host order. */
static bool write_f32le(FILE *f, const float *x, size_t n)
{
    const uint32_t one = 1;
    if (*(const unsigned char *)&one == 1)
        return fwrite(x, sizeof *x, n, f) == n;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        unsigned char b[4];
        memcpy(&u, &x[i], 4);
        b[0] = (unsigned char)u;
        b[1] = (unsigned char)(u >> 8);
        b[2] = (unsigned char)(u >> 16);
        b[3] = (unsigned char)(u >> 24);
        if (fwrite(b, 1, 4, f) != 4)
            return false;
    }
    return true;
}

int cmd_logits(int argc, char **argv)
{
    const char *tokens = NULL, *out_path = NULL;
    cli_model_opts mo = {NULL, 2, 0, fastvlm_session_default_params().matmul_precision};
    bool one_by_one = false;
    fastvlm_model *model = NULL;
    fastvlm_session *s = NULL;
    fastvlm_model_info info;
    fastvlm_error err;
    fastvlm_status st = FASTVLM_OK;
    int32_t *ids = NULL, n = 0;
    float *logits = NULL;
    FILE *f;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        const int common = cli_model_option(CMD, argc, argv, &i, &mo);
#define NEED_VAL() CLI_NEED_VAL(CMD, a, val, i)
        if (common == 2)
            return 2;
        if (common)
            continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--tokens")) {
            NEED_VAL();
            tokens = val;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            NEED_VAL();
            out_path = val;
        } else if (!strcmp(a, "--one-by-one")) {
            one_by_one = true;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
#undef NEED_VAL
    }
    if (!mo.model_path || !tokens || !out_path)
        return cli_usage_error(CMD, "-m MODEL.gguf, --tokens LIST and -o OUT.f32 are required");
    ids = cli_parse_ids(tokens, &n);
    if (!ids)
        return cli_usage_error(CMD, "bad --tokens '%s' (integers separated by commas)", tokens);

    if (cli_model_open(CMD, &mo, mo.ctx ? (int32_t)mo.ctx : n, &model, &s)) {
        rc = 1;
        goto out;
    }
    fastvlm_model_get_info(model, &info);
    logits = malloc((size_t)n * (size_t)info.n_vocab * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "fastvlm logits: out of memory for %d x %d logits\n", n, info.n_vocab);
        rc = 1;
        goto out;
    }
    if (one_by_one) {
        for (int32_t i = 0; i < n && st == FASTVLM_OK; i++)
            st = fastvlm_session_eval_tokens(s, &ids[i], 1,
                                             logits + (size_t)i * (size_t)info.n_vocab, &err);
    } else {
        st = fastvlm_session_eval_tokens(s, ids, n, logits, &err);
    }
    if (st != FASTVLM_OK) {
        rc = cli_fail(CMD, &err);
        goto out;
    }
    f = fopen(out_path, "wb");
    if (f) {
        const bool ok = write_f32le(f, logits, (size_t)n * (size_t)info.n_vocab);
        if (fclose(f) != 0 || !ok)
            f = NULL;
    }
    if (!f) {
        fprintf(stderr, "fastvlm logits: cannot write '%s'\n", out_path);
        rc = 1;
        goto out;
    }
    if (cli_verbosity >= 2)
        fprintf(stderr, "fastvlm logits: %d x %d floats written to %s\n", n, info.n_vocab,
                out_path);
out:
    free(ids);
    free(logits);
    fastvlm_session_free(s);
    fastvlm_model_free(model);
    return rc;
}
