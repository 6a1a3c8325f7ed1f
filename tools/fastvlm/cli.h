/*
 * cli.h — what the `fastvlm` subcommands share: the command table, option parsing
 * helpers, logging to stderr and error reporting. Each subcommand lives in cmd_<name>.c
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

/* stderr log callback honouring -v (verbosity stored by main). */
void cli_log(fastvlm_log_level level, const char *msg, void *user_data);
extern int cli_verbosity;

#endif
