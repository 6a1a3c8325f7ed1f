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

static int32_t *parse_ids(const char *s, int32_t *n_out)
{
    size_t cap = 16, n = 0;
    int32_t *v = malloc(cap * sizeof *v);
    const char *p = s;
    if (!v)
        return NULL;
    for (;;) {
        char buf[32];
        size_t len = 0;
        long x;
        while (*p == ',' || *p == ' ')
            p++;
        if (!*p)
            break;
        while (p[len] && p[len] != ',' && p[len] != ' ')
            len++;
        if (len >= sizeof buf)
            goto bad;
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (!cli_parse_int(buf, INT32_MIN, INT32_MAX, &x))
            goto bad;
        if (n == cap) {
            int32_t *nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv)
                goto bad;
            v = nv;
            cap *= 2;
        }
        v[n++] = (int32_t)x;
        p += len;
    }
    if (n == 0)
        goto bad;
    *n_out = (int32_t)n;
    return v;
bad:
    free(v);
    return NULL;
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
    const char *model_path = NULL, *tokens = NULL, *out_path = NULL;
    long threads = 2, ctx = 0;
    bool one_by_one = false;
    fastvlm_model_params mp = fastvlm_model_default_params();
    fastvlm_session_params sep = fastvlm_session_default_params();
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
#define NEED_VAL()                                                     \
    do {                                                               \
        if (!val)                                                      \
            return cli_usage_error(CMD, "option %s needs a value", a); \
        i++;                                                           \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-v")) {
            cli_verbosity++;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEED_VAL();
            model_path = val;
        } else if (!strcmp(a, "--tokens")) {
            NEED_VAL();
            tokens = val;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            NEED_VAL();
            out_path = val;
        } else if (!strcmp(a, "--precision")) {
            NEED_VAL();
            if (!cli_parse_precision(val, &sep.matmul_precision))
                return cli_usage_error(CMD, "bad --precision '%s' (exact or fast)", val);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, 256, &threads))
                return cli_usage_error(CMD, "bad -t '%s' (1..256)", val);
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, INT32_MAX, &ctx))
                return cli_usage_error(CMD, "bad -c '%s'", val);
        } else if (!strcmp(a, "--one-by-one")) {
            one_by_one = true;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
#undef NEED_VAL
    }
    if (!model_path || !tokens || !out_path)
        return cli_usage_error(CMD, "-m MODEL.gguf, --tokens LIST and -o OUT.f32 are required");
    ids = parse_ids(tokens, &n);
    if (!ids)
        return cli_usage_error(CMD, "bad --tokens '%s' (integers separated by commas)", tokens);

    mp.log = cli_log;
    mp.log_level = FASTVLM_LOG_DEBUG;
    st = fastvlm_model_load(model_path, &mp, &model, &err);
    if (st != FASTVLM_OK) {
        rc = cli_fail(CMD, &err);
        goto out;
    }
    fastvlm_model_get_info(model, &info);
    sep.n_threads = (int32_t)threads;
    sep.n_ctx = ctx ? (int32_t)ctx : n;
    st = fastvlm_session_new(model, &sep, &s, &err);
    if (st != FASTVLM_OK) {
        rc = cli_fail(CMD, &err);
        goto out;
    }
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
