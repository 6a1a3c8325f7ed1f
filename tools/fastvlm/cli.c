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

int32_t *cli_parse_ids(const char *s, int32_t *n_out)
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

int cli_model_option(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o)
{
    const char *a = argv[*i];
    const char *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    const bool model = !strcmp(a, "-m") || !strcmp(a, "--model");
    const bool threads = !strcmp(a, "-t") || !strcmp(a, "--threads");
    const bool ctx = !strcmp(a, "-c") || !strcmp(a, "--ctx");
    const bool precision = !strcmp(a, "--precision");

    if (!strcmp(a, "-v")) {
        cli_verbosity++;
        return 1;
    }
    if (!model && !threads && !ctx && !precision)
        return 0;
    if (!val)
        return cli_usage_error(cmd, "option %s needs a value", a);
    ++*i;
    if (model)
        o->model_path = val;
    else if (threads && !cli_parse_int(val, 1, 256, &o->threads))
        return cli_usage_error(cmd, "bad -t '%s' (1..256)", val);
    else if (ctx && !cli_parse_int(val, 1, INT32_MAX, &o->ctx))
        return cli_usage_error(cmd, "bad -c '%s'", val);
    else if (precision && !cli_parse_precision(val, &o->precision))
        return cli_usage_error(cmd, "bad --precision '%s' (exact or fast)", val);
    return 1;
}

int cli_model_open(const char *cmd, const cli_model_opts *o, int32_t n_ctx,
                   fastvlm_model **model, fastvlm_session **session)
{
    fastvlm_model_params mp = fastvlm_model_default_params();
    fastvlm_session_params sp = fastvlm_session_default_params();
    fastvlm_error err;

    *model = NULL;
    *session = NULL;
    mp.log = cli_log;
    mp.log_level = FASTVLM_LOG_DEBUG;
    if (fastvlm_model_load(o->model_path, &mp, model, &err) != FASTVLM_OK)
        return cli_fail(cmd, &err);
    sp.n_threads = (int32_t)o->threads;
    sp.n_ctx = n_ctx;
    sp.matmul_precision = o->precision;
    if (fastvlm_session_new(*model, &sp, session, &err) != FASTVLM_OK) {
        fastvlm_model_free(*model);
        *model = NULL;
        return cli_fail(cmd, &err);
    }
    return 0;
}
