/*
 * error.h — filling fastvlm_error and logging, shared by every engine file.
 * Not here: the status names (error.c keeps them with the implementation).
 */
#ifndef FVLM_ERROR_H
#define FVLM_ERROR_H

#include "fastvlm.h"

#if defined(__GNUC__)
#  define FVLM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define FVLM_PRINTF(a, b)
#endif

/* Sets err (if not NULL) to status + formatted message and returns status, so that
 * `return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: bad magic", path);` reads well. */
fastvlm_status fvlm_set_error(fastvlm_error *err, fastvlm_status status, const char *fmt, ...)
    FVLM_PRINTF(3, 4);
void fvlm_clear_error(fastvlm_error *err);

/* A logger as the model keeps it: callback + threshold. A NULL logger or fn is silent. */
typedef struct fvlm_logger {
    fastvlm_log_fn fn;
    void *user_data;
    fastvlm_log_level level;
} fvlm_logger;

void fvlm_log(const fvlm_logger *lg, fastvlm_log_level level, const char *fmt, ...)
    FVLM_PRINTF(3, 4);

/* Monotonic milliseconds, for the per-stage timings. */
double fvlm_time_ms(void);

#endif
