/*
 * cmd_generate.c — `fastvlm generate`: text generation with the language model alone,
 * streamed to stdout as it is produced.
 *
 *   fastvlm generate -m M.gguf -p TEXT [--chat] [--system S] [-n N] [--temp T] [--top-k K]
 *                    [--top-p P] [--repeat-penalty R] [--repeat-last-n N] [--seed S]
 *                    [-t THREADS] [-c CTX] [--ids]
 *   fastvlm generate -m M.gguf --tokens 1,2,3 [...]     (prompt given as token ids)
 *
 * -p goes through fastvlm_session_ask(): with --chat the qwen_2 template, otherwise the raw
 * text tokenized with parse_special = false. --tokens drives the low-level API (eval +
 * sample) so the decoder can be tested independently of the tokenizer. --ids prints the
 * generated ids (one line, space-separated) instead of text. Stop: <|im_end|>, the eos id,
 * <|endoftext|>, -n, or a full context.
 *
 * Not an image tool: that is `fastvlm run`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const CMD = "generate";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastvlm generate -m MODEL.gguf (-p TEXT | --tokens ID,ID,...) [options]\n"
            "  -m, --model FILE      language model GGUF (qwen2)\n"
            "  -p, --prompt TEXT     prompt text\n"
            "      --tokens LIST     prompt as token ids, comma-separated\n"
            "      --chat            wrap -p in the qwen_2 chat template\n"
            "      --system TEXT     system prompt for --chat (default: You are a helpful assistant.)\n"
            "  -n, --n-predict N     tokens to generate (default 128)\n"
            "      --temp T          temperature, 0 = greedy (default 0)\n"
            "      --top-k K         top-k (default 0 = off)\n"
            "      --top-p P         top-p (default 1 = off)\n"
            "      --repeat-penalty R  repetition penalty (default 1 = off)\n"
            "      --repeat-last-n N window of the penalty (default 64)\n"
            "      --seed S          sampling seed (default 0)\n"
            "  -v                    more logging (repeatable)\n"
            "  -t, --threads N       threads (default 2)\n"
            CLI_PRECISION_HELP
            "  -c, --ctx N           context length (default 4096)\n"
            "      --ids             print generated token ids instead of text\n");
}

typedef struct gen_out {
    bool ids;
    int32_t n;
} gen_out;

static bool on_token(int32_t token, const char *piece, void *ud)
{
    gen_out *o = ud;
    if (o->ids) {
        printf(o->n ? " %d" : "%d", (int)token);
    } else {
        fputs(piece, stdout);
    }
    fflush(stdout);
    o->n++;
    return true;
}

/* The id of a special token's text, or -1. */
static int32_t special_id(const fastvlm_model *m, const char *text)
{
    int32_t id[2];
    size_t n = 0;
    if (fastvlm_tokenize(m, text, strlen(text), true, id, 2, &n, NULL) != FASTVLM_OK || n != 1 ||
        !fastvlm_token_is_special(m, id[0]))
        return -1;
    return id[0];
}

/* --tokens: eval the prompt, then sample/eval until a stop condition, like ask(). */
static fastvlm_status generate_from_ids(fastvlm_session *s, const fastvlm_model *m,
                                        const int32_t *prompt, int32_t n_prompt, int32_t n_predict,
                                        const fastvlm_sampler_params *sp, gen_out *o,
                                        fastvlm_error *err)
{
    fastvlm_model_info info;
    fastvlm_detok detok;
    const int32_t eot = special_id(m, "<|endoftext|>");
    int32_t *hist;
    int32_t n_hist = n_prompt;
    char piece[1024];
    fastvlm_status st;

    fastvlm_model_get_info(m, &info);
    memset(&detok, 0, sizeof detok);
    hist = malloc(((size_t)n_prompt + (size_t)n_predict + 1) * sizeof *hist);
    if (!hist) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return err->status = FASTVLM_ERR_NOMEM;
    }
    memcpy(hist, prompt, (size_t)n_prompt * sizeof *hist);
    fastvlm_session_set_seed(s, sp->seed);
    st = fastvlm_session_eval_tokens(s, prompt, n_prompt, NULL, err);
    for (int32_t i = 0; st == FASTVLM_OK && i < n_predict; i++) {
        const int32_t tok = fastvlm_session_sample(s, sp, hist, n_hist);
        if (tok < 0 || tok == info.token_im_end || tok == info.token_eos || tok == eot)
            break;
        hist[n_hist++] = tok;
        fastvlm_detok_push(&detok, m, tok, true, piece, sizeof piece);
        on_token(tok, piece, o);
        if (i + 1 == n_predict)
            break;
        st = fastvlm_session_eval_tokens(s, &tok, 1, NULL, err);
        if (st == FASTVLM_ERR_CONTEXT_FULL) {
            st = FASTVLM_OK; /* a full context ends generation, as in ask() */
            break;
        }
    }
    if (!o->ids && fastvlm_detok_flush(&detok, piece, sizeof piece))
        fputs(piece, stdout);
    free(hist);
    return st;
}

int cmd_generate(int argc, char **argv)
{
    const char *prompt = NULL, *tokens = NULL, *system = NULL;
    bool chat = false;
    gen_out o = {false, 0};
    cli_model_opts mo = {NULL, 2, 4096, fastvlm_session_default_params().matmul_precision};
    long n_predict = 128, v;
    fastvlm_sampler_params sp = fastvlm_sampler_default_params();
    fastvlm_model *model = NULL;
    fastvlm_session *s = NULL;
    fastvlm_error err;
    fastvlm_status st;
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
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            NEED_VAL();
            prompt = val;
        } else if (!strcmp(a, "--tokens")) {
            NEED_VAL();
            tokens = val;
        } else if (!strcmp(a, "--chat")) {
            chat = true;
        } else if (!strcmp(a, "--system")) {
            NEED_VAL();
            system = val;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            NEED_VAL();
            if (!cli_parse_int(val, 0, 1 << 24, &n_predict))
                return cli_usage_error(CMD, "bad -n '%s'", val);
        } else if (!strcmp(a, "--temp")) {
            NEED_VAL();
            if (!cli_parse_float(val, &sp.temperature))
                return cli_usage_error(CMD, "bad --temp '%s'", val);
        } else if (!strcmp(a, "--top-k")) {
            NEED_VAL();
            if (!cli_parse_int(val, 0, INT32_MAX, &v))
                return cli_usage_error(CMD, "bad --top-k '%s'", val);
            sp.top_k = (int32_t)v;
        } else if (!strcmp(a, "--top-p")) {
            NEED_VAL();
            if (!cli_parse_float(val, &sp.top_p) || sp.top_p < 0.0f)
                return cli_usage_error(CMD, "bad --top-p '%s'", val);
        } else if (!strcmp(a, "--repeat-penalty")) {
            NEED_VAL();
            if (!cli_parse_float(val, &sp.repeat_penalty) || sp.repeat_penalty <= 0.0f)
                return cli_usage_error(CMD, "bad --repeat-penalty '%s'", val);
        } else if (!strcmp(a, "--repeat-last-n")) {
            NEED_VAL();
            if (!cli_parse_int(val, 0, INT32_MAX, &v))
                return cli_usage_error(CMD, "bad --repeat-last-n '%s'", val);
            sp.repeat_last_n = (int32_t)v;
        } else if (!strcmp(a, "--seed")) {
            NEED_VAL();
            if (!cli_parse_u64(val, &sp.seed))
                return cli_usage_error(CMD, "bad --seed '%s'", val);
        } else if (!strcmp(a, "--ids")) {
            o.ids = true;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
#undef NEED_VAL
    }
    if (!mo.model_path)
        return cli_usage_error(CMD, "-m MODEL.gguf is required");
    if (!prompt == !tokens)
        return cli_usage_error(CMD, "give exactly one of -p TEXT and --tokens LIST");
    if (tokens && (chat || system))
        return cli_usage_error(CMD, "--chat/--system apply to -p only");

    if (cli_model_open(CMD, &mo, (int32_t)mo.ctx, &model, &s))
        return 1;

    if (tokens) {
        int32_t n_ids = 0;
        int32_t *ids = cli_parse_ids(tokens, &n_ids);
        if (!ids) {
            rc = cli_usage_error(CMD, "bad --tokens '%s' (integers separated by commas)", tokens);
            goto out;
        }
        st = generate_from_ids(s, model, ids, n_ids, (int32_t)n_predict, &sp, &o, &err);
        free(ids);
    } else {
        fastvlm_generate_params gp = fastvlm_generate_default_params();
        fastvlm_result res;
        gp.prompt = prompt;
        if (system)
            gp.system_prompt = system;
        gp.chat = chat;
        gp.max_new_tokens = (int32_t)n_predict;
        gp.sampler = sp;
        gp.on_token = on_token;
        gp.user_data = &o;
        st = fastvlm_session_ask(s, &gp, &res, &err);
        if (st == FASTVLM_OK || o.n > 0)
            fputc('\n', stdout);
        fflush(stdout);
        if (st == FASTVLM_OK && cli_verbosity >= 2)
            fprintf(stderr, "fastvlm generate: %d prompt + %d generated tokens, prefill %.1f ms, "
                            "decode %.1f ms\n",
                    res.n_prompt_tokens, res.n_tokens, res.t_prefill_ms, res.t_decode_ms);
        fastvlm_result_clear(&res);
    }
    if (tokens && (st == FASTVLM_OK || o.n > 0))
        fputc('\n', stdout);
    fflush(stdout);
    if (st != FASTVLM_OK)
        rc = cli_fail(CMD, &err);
out:
    fastvlm_session_free(s);
    fastvlm_model_free(model);
    return rc;
}
