/*
 * threadpool.h — a small fork/join pool owned by one session (never process-wide).
 *
 * fvlm_pool_run() runs fn(arg, ith, nth) on nth = n_threads workers (the calling thread is
 * worker 0) and returns when all are done. Idle workers sleep on a condition variable after
 * polling for at most ~50 µs: no busy-spinning while a pipeline waits for frames. Not here:
 * work splitting (callers split by ith/nth).
 */
#ifndef FVLM_THREADPOOL_H
#define FVLM_THREADPOOL_H

typedef struct fvlm_pool fvlm_pool;
typedef void (*fvlm_pool_fn)(void *arg, int ith, int nth);

/* Returns NULL on failure (out of memory / thread creation failed). n_threads >= 1. */
fvlm_pool *fvlm_pool_new(int n_threads);
void fvlm_pool_free(fvlm_pool *pool);
int fvlm_pool_size(const fvlm_pool *pool);
/* Runs fn on every worker; pool may be NULL (then fn(arg, 0, 1) on the caller). */
void fvlm_pool_run(fvlm_pool *pool, fvlm_pool_fn fn, void *arg);

#endif
