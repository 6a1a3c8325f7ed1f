/*
 * cli.h — what the `fastvlm` subcommands share: the command table, option parsing
 * helpers, model + session set-up, logging to stderr and error reporting. Each subcommand lives in cmd_<name>.c
 * and is `int cmd_<name>(int argc, char **argv)` (argv[0] is the subcommand name),
 * returning the process exit code (0 ok, 1 runtime error, 2 usage error).
 */
#ifndef FVLM_CLI_H
#define FVLM_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include "fastvlm.h"

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_vision(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

/* Prints "fastvlm <cmd>: <message>" to stderr; returns 1 (for `return cli_fail(...)`). */
int cli_fail(const char *cmd, const fastvlm_error *err);
/* Prints a usage error "fastvlm <cmd>: <fmt...>" and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...);

/* In an option loop (option `a`, its value `val` or NULL, index `i`): takes the value,
 * advancing i, or returns the usage error "option X needs a value" from the command. */
#define CLI_NEED_VAL(cmd, a, val, i)                                        \
    do {                                                                    \
        if (!(val))                                                         \
            return cli_usage_error((cmd), "option %s needs a value", (a)); \
        (i)++;                                                              \
    } while (0)

/* Strict number parsing: the whole string must be a number in range. */
bool cli_parse_int(const char *s, long min, long max, long *out);
bool cli_parse_float(const char *s, float *out);
bool cli_parse_u64(const char *s, uint64_t *out);
/* "exact" / "fast" (--precision, fastvlm.h's fastvlm_precision) and back. */
bool cli_parse_precision(const char *s, fastvlm_precision *out);
const char *cli_precision_name(fastvlm_precision p);
#define CLI_PRECISION_HELP \
    "      --precision P     decoder matmuls on quantized weights: fast (8-bit activations,\n" \
    "                        integer dots, the default) or exact (float activations)\n"

/* Token ids written "1,2,3" (commas and/or spaces) as a new array (free() it) with the
 * count in *n_out; NULL when there are none or one is not an int32 (ids are not
 * range-checked here: the engine names an out-of-range id and its index). */
int32_t *cli_parse_ids(const char *s, int32_t *n_out);

/* The options of the subcommands that run the language model on token ids or text. */
typedef struct cli_model_opts {
    const char *model_path;  /* -m, --model */
    long threads;            /* -t, --threads (1..256) */
    long ctx;                /* -c, --ctx (>= 1; 0 = not given) */
    fastvlm_precision precision; /* --precision (set it to the session default first) */
} cli_model_opts;

/* When argv[*i] is -m/--model, -t/--threads, -c/--ctx, --precision or -v: consumes it (and its value,
 * advancing *i) and returns 1. Returns 0 for any other argument, and 2 after printing a
 * usage error (missing or bad value). */
int cli_model_option(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o);

/* Loads o->model_path (text only, logging through cli_log) and opens a session of
 * o->threads threads and n_ctx positions on it. Returns 0, or 1 after printing
 * "fastvlm <cmd>: <error>" (then *model and *session are NULL). */
int cli_model_open(const char *cmd, const cli_model_opts *o, int32_t n_ctx,
                   fastvlm_model **model, fastvlm_session **session);

/* stderr log callback honouring -v (verbosity stored by main). */
void cli_log(fastvlm_log_level level, const char *msg, void *user_data);
extern int cli_verbosity;

#endif
