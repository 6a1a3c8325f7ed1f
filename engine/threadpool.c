/*
 * threadpool.c — the per-session fork/join pool of threadpool.h, on pthreads.
 *
 * A pool of n threads owns n-1 worker threads; the thread calling fvlm_pool_run() is
 * worker 0. A run publishes (fn, arg) and bumps a generation counter; workers that see
 * the new generation run fn(arg, ith, n) and count down `n_pending`; the caller runs its
 * own share and then waits for the count to reach zero.
 *
 * Waiting: a decode step makes ~10 short runs per layer, so both sides first poll the
 * atomic counters (pausing, later yielding the CPU) for up to FVLM_POOL_SPIN_NS — a
 * condition-variable round trip per run would cost more than the work — then fall back to
 * sleeping on a condition variable: an idle pipeline waiting for frames costs no CPU after
 * that bounded spin. A side only takes the mutex and signals when the other one has
 * announced (n_sleeping / caller_sleeping, sequentially consistent with the counter it
 * waits on) that it sleeps, so back-to-back runs make no system call.
 *
 * Not here: how work is split (callers split by ith/nth) and any process-wide pool: every
 * session owns its own.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "threadpool.h"

/* How long a waiting side polls before it sleeps. */
#define FVLM_POOL_SPIN_NS 50000
/* Polls with the pause hint before the rest of the spin yields the CPU instead. */
#define FVLM_POOL_PAUSES 512

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Polling step i: pause at first, then give the CPU to any other runnable thread (the
 * machine may have more busy threads than cores: other sessions, the pipeline). */
static void relax(int i)
{
    if (i < FVLM_POOL_PAUSES)
        cpu_relax();
    else
        sched_yield();
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Polling step i of a wait: true once the wait has spun FVLM_POOL_SPIN_NS (the clock is
 * read every 64 polls; step 0 starts the wait's clock in *t_end). */
static bool spin_time_up(int i, int64_t *t_end)
{
    if ((i & 63) != 0)
        return false;
    const int64_t t = now_ns();
    if (i == 0) {
        *t_end = t + FVLM_POOL_SPIN_NS;
        return false;
    }
    return t >= *t_end;
}

/* Polls until *v != not (true) or the spin time is up (false). */
static bool spin_uint_ne(atomic_uint *v, unsigned not)
{
    int64_t t_end = 0;
    for (int i = 0; !spin_time_up(i, &t_end); i++) {
        if (atomic_load_explicit(v, memory_order_acquire) != not)
            return true;
        relax(i);
    }
    return false;
}

/* Polls until *v == want (true) or the spin time is up (false). */
static bool spin_int_eq(atomic_int *v, int want)
{
    int64_t t_end = 0;
    for (int i = 0; !spin_time_up(i, &t_end); i++) {
        if (atomic_load_explicit(v, memory_order_acquire) == want)
            return true;
        relax(i);
    }
    return false;
}

typedef struct fvlm_pool_worker {
    fvlm_pool *pool;
    int ith;
    pthread_t thread;
} fvlm_pool_worker;

struct fvlm_pool {
    int n_threads;                 /* including the caller */
    fvlm_pool_worker *workers;     /* [n_threads - 1], workers[i] has ith = i + 1 */
    int n_started;                 /* threads actually created (for cleanup on failure) */

    pthread_mutex_t mu;
    pthread_cond_t cv_work;        /* workers sleep here for a new generation */
    pthread_cond_t cv_done;        /* the caller sleeps here for n_pending == 0 */

    /* The current job: written before `gen` is bumped (release), read after (acquire). */
    fvlm_pool_fn fn;
    void *arg;
    atomic_uint gen;               /* incremented once per run (and at shutdown) */
    atomic_int n_pending;          /* workers of the current run not yet finished */
    atomic_int n_sleeping;         /* workers (about to be) waiting on cv_work */
    atomic_bool caller_sleeping;   /* the caller (about to be) waiting on cv_done */
    atomic_bool stop;
};

static void *pool_worker_main(void *p)
{
    fvlm_pool_worker *w = p;
    fvlm_pool *pool = w->pool;
    unsigned seen = 0;

    for (;;) {
        unsigned g;
        if (!spin_uint_ne(&pool->gen, seen)) {
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while ((g = atomic_load(&pool->gen)) == seen)
                pthread_cond_wait(&pool->cv_work, &pool->mu);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->mu);
        }
        g = atomic_load_explicit(&pool->gen, memory_order_acquire);
        seen = g;
        if (atomic_load_explicit(&pool->stop, memory_order_acquire))
            return NULL;

        pool->fn(pool->arg, w->ith, pool->n_threads);

        if (atomic_fetch_sub(&pool->n_pending, 1) == 1 && atomic_load(&pool->caller_sleeping)) {
            /* Last one out wakes a sleeping caller (taking the lock so the wake-up cannot
             * fall between the caller's check and its wait). */
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->cv_done);
            pthread_mutex_unlock(&pool->mu);
        }
    }
}

static void pool_shutdown(fvlm_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    atomic_store_explicit(&pool->stop, true, memory_order_release);
    atomic_fetch_add_explicit(&pool->gen, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&pool->cv_work);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->n_started; i++)
        pthread_join(pool->workers[i].thread, NULL);
}

fvlm_pool *fvlm_pool_new(int n_threads)
{
    fvlm_pool *pool;

    if (n_threads < 1)
        return NULL;
    pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->n_threads = n_threads;
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->n_pending, 0);
    atomic_init(&pool->n_sleeping, 0);
    atomic_init(&pool->caller_sleeping, false);
    atomic_init(&pool->stop, false);
    if (pthread_mutex_init(&pool->mu, NULL) != 0) {
        free(pool);
        return NULL;
    }
    if (pthread_cond_init(&pool->cv_work, NULL) != 0) {
        pthread_mutex_destroy(&pool->mu);
        free(pool);
        return NULL;
    }
    if (pthread_cond_init(&pool->cv_done, NULL) != 0) {
        pthread_cond_destroy(&pool->cv_work);
        pthread_mutex_destroy(&pool->mu);
        free(pool);
        return NULL;
    }
    if (n_threads > 1) {
        pool->workers = calloc((size_t)n_threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            fvlm_pool_free(pool);
            return NULL;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            pool->workers[i].pool = pool;
            pool->workers[i].ith = i + 1;
            if (pthread_create(&pool->workers[i].thread, NULL, pool_worker_main,
                               &pool->workers[i]) != 0) {
                fvlm_pool_free(pool);
                return NULL;
            }
            pool->n_started++;
        }
    }
    return pool;
}

void fvlm_pool_free(fvlm_pool *pool)
{
    if (!pool)
        return;
    pool_shutdown(pool);
    free(pool->workers);
    pthread_cond_destroy(&pool->cv_done);
    pthread_cond_destroy(&pool->cv_work);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}

int fvlm_pool_size(const fvlm_pool *pool)
{
    return pool ? pool->n_threads : 1;
}

void fvlm_pool_run(fvlm_pool *pool, fvlm_pool_fn fn, void *arg)
{
    if (!pool || pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }

    /* Workers of the previous run are all done (n_pending reached 0), so nobody reads fn
     * and arg now; a spinning worker picks them up with the acquire of the new gen. */
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->n_pending, pool->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add(&pool->gen, 1);
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv_work);
        pthread_mutex_unlock(&pool->mu);
    }

    fn(arg, 0, pool->n_threads);

    if (spin_int_eq(&pool->n_pending, 0))
        return;
    pthread_mutex_lock(&pool->mu);
    /* An exchange, not a store: a read-modify-write is a full barrier on every target, so
     * the load of n_pending below cannot be satisfied before the flag is visible to the
     * last worker. A seq_cst store + load pair means the same in C11, but qemu-user's
     * aarch64 emulation on x86 hosts lets a store-release pass a later load-acquire: the
     * last worker then saw no sleeper, and the caller waited forever (test_simd hung
     * about 1 run in 20 under qemu). */
    (void)atomic_exchange(&pool->caller_sleeping, true);
    while (atomic_load(&pool->n_pending) != 0)
        pthread_cond_wait(&pool->cv_done, &pool->mu);
    atomic_store(&pool->caller_sleeping, false);
    pthread_mutex_unlock(&pool->mu);
}
