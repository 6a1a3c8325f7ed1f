/*
 * error.c — status names, fastvlm_error filling, the log helper and the clock.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "error.h"

const char *fastvlm_status_str(fastvlm_status status)
{
    switch (status) {
    case FASTVLM_OK: return "ok";
    case FASTVLM_ERR_INVALID_ARG: return "invalid argument";
    case FASTVLM_ERR_IO: return "i/o error";
    case FASTVLM_ERR_FORMAT: return "format error";
    case FASTVLM_ERR_UNSUPPORTED: return "unsupported";
    case FASTVLM_ERR_MISSING: return "missing tensor or key";
    case FASTVLM_ERR_SHAPE: return "wrong shape";
    case FASTVLM_ERR_NOMEM: return "out of memory or over a limit";
    case FASTVLM_ERR_TOKEN_RANGE: return "token id out of range";
    case FASTVLM_ERR_CONTEXT_FULL: return "context full";
    case FASTVLM_ERR_IMAGE: return "bad image";
    case FASTVLM_ERR_NO_VISION: return "no vision model loaded";
    case FASTVLM_ERR_ABORTED: return "aborted";
    case FASTVLM_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

fastvlm_status fvlm_set_error(fastvlm_error *err, fastvlm_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->status = status;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

void fvlm_clear_error(fastvlm_error *err)
{
    if (err) {
        err->status = FASTVLM_OK;
        err->message[0] = '\0';
    }
}

void fvlm_log(const fvlm_logger *lg, fastvlm_log_level level, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (!lg || !lg->fn || level > lg->level)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    lg->fn(level, buf, lg->user_data);
}

double fvlm_time_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
