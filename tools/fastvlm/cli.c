/*
 * cli.c — helpers shared by the `fastvlm` subcommands (see cli.h).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_verbosity = 1; /* 0 errors, 1 warnings, 2 info, 3 debug */

int cli_fail(const char *cmd, const fastvlm_error *err)
{
    fprintf(stderr, "fastvlm %s: %s\n", cmd,
            err && err->message[0] ? err->message
                                   : fastvlm_status_str(err ? err->status : FASTVLM_ERR_INTERNAL));
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fastvlm %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'fastvlm %s --help')\n", cmd);
    return 2;
}

bool cli_parse_precision(const char *s, fastvlm_precision *out)
{
    if (!strcmp(s, "exact"))
        *out = FASTVLM_PRECISION_EXACT;
    else if (!strcmp(s, "fast"))
        *out = FASTVLM_PRECISION_FAST;
    else
        return false;
    return true;
}

const char *cli_precision_name(fastvlm_precision p)
{
    return p == FASTVLM_PRECISION_EXACT ? "exact" : "fast";
}

bool cli_parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v;
    if (!s || !*s)
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool cli_parse_float(const char *s, float *out)
{
    char *end;
    float v;
    if (!s || !*s)
        return false;
    errno = 0;
    v = strtof(s, &end);
    if (errno || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool cli_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!s || !*s || *s == '-')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = (uint64_t)v;
    return true;
}

void cli_log(fastvlm_log_level level, const char *msg, void *user_data)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    (void)user_data;
    if ((int)level <= cli_verbosity)
        fprintf(stderr, "fastvlm: %s: %s\n", names[level], msg);
}
