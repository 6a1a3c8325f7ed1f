/*
 * test_threadpool.c — threadpool.c: for pools of 1-4 threads, thousands of runs in a row in
 * which every worker index 0..n-1 runs exactly once per run with nth == n and the caller
 * as worker 0; work written by the workers is visible to the caller when run() returns;
 * a NULL pool runs on the caller; pools are created and freed repeatedly (shutdown while
 * idle), and two pools run concurrently from two threads.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "threadpool.h"

#define MAX_T 4

typedef struct job {
    int nth_seen[MAX_T];      /* nth reported to each worker */
    int runs[MAX_T];          /* times each ith ran in this run */
    pthread_t caller;
    int caller_was_0;
    long *data;               /* each worker fills its slice */
    long n_data;
    long round;
} job;

static void work(void *arg, int ith, int nth)
{
    job *j = arg;
    if (ith < 0 || ith >= MAX_T)
        return;
    j->runs[ith]++;
    j->nth_seen[ith] = nth;
    if (ith == 0)
        j->caller_was_0 = pthread_equal(pthread_self(), j->caller);
    const long i0 = j->n_data * ith / nth, i1 = j->n_data * (ith + 1) / nth;
    for (long i = i0; i < i1; i++)
        j->data[i] = i * 3 + j->round;
}

static void run_many(fvlm_pool *pool, int n, int rounds)
{
    job j;
    long data[1000];
    int bad = 0;
    memset(&j, 0, sizeof j);
    j.caller = pthread_self();
    j.data = data;
    j.n_data = 1000;
    for (int r = 0; r < rounds; r++) {
        memset(j.runs, 0, sizeof j.runs);
        j.round = r;
        j.caller_was_0 = 0;
        fvlm_pool_run(pool, work, &j);
        for (int t = 0; t < MAX_T; t++) {
            const int want = t < n ? 1 : 0;
            if (j.runs[t] != want || (t < n && j.nth_seen[t] != n))
                bad++;
        }
        if (!j.caller_was_0)
            bad++;
        for (long i = 0; i < j.n_data; i++)
            if (data[i] != i * 3 + r)
                bad++;
    }
    CHECK(bad == 0, "pool of %d: %d inconsistencies over %d runs", n, bad, rounds);
}

typedef struct concurrent_arg {
    int n;
} concurrent_arg;

static void *concurrent_main(void *p)
{
    concurrent_arg *a = p;
    fvlm_pool *pool = fvlm_pool_new(a->n);
    if (!pool)
        return (void *)1;
    run_many(pool, a->n, 2000);
    fvlm_pool_free(pool);
    return NULL;
}

int main(void)
{
    for (int n = 1; n <= MAX_T; n++) {
        fvlm_pool *pool = fvlm_pool_new(n);
        CHECK(pool != NULL, "fvlm_pool_new(%d) failed", n);
        if (!pool)
            continue;
        CHECK(fvlm_pool_size(pool) == n, "size %d, expected %d", fvlm_pool_size(pool), n);
        run_many(pool, n, 5000);
        fvlm_pool_free(pool);
    }
    CHECK(fvlm_pool_new(0) == NULL, "fvlm_pool_new(0) must fail");
    CHECK(fvlm_pool_size(NULL) == 1, "a NULL pool has size 1");
    run_many(NULL, 1, 10);
    fvlm_pool_free(NULL);

    /* create / run / free many times, and free right after creation */
    for (int i = 0; i < 100; i++) {
        fvlm_pool *pool = fvlm_pool_new(1 + i % MAX_T);
        CHECK(pool != NULL, "fvlm_pool_new failed at iteration %d", i);
        if (!pool)
            break;
        if (i % 2)
            run_many(pool, 1 + i % MAX_T, 3);
        fvlm_pool_free(pool);
    }

    /* two sessions' pools at the same time */
    {
        pthread_t th[2];
        concurrent_arg args[2] = {{2}, {3}};
        void *ret[2] = {NULL, NULL};
        for (int i = 0; i < 2; i++)
            CHECK(pthread_create(&th[i], NULL, concurrent_main, &args[i]) == 0, "pthread_create");
        for (int i = 0; i < 2; i++) {
            pthread_join(th[i], &ret[i]);
            CHECK(ret[i] == NULL, "concurrent pool %d failed", i);
        }
    }
    return check_summary("test_threadpool");
}
