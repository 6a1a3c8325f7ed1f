/*
 * bench_kernels.c — times the matrix kernels of every level this CPU supports and prints a
 * table: decode-shaped matvecs (m = 1, weight bandwidth in GB/s) and prefill / vision
 * shaped products (GFLOP/s). Not a test: run it by hand on an idle machine,
 *     build/tests/kernels/bench_kernels [threads] [seconds-per-case]
 * and commit its output in bench/ with the machine and the command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu.h"
#include "kernels_arch.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct { const char *what; fvlm_type type; int64_t m, n, k; } bench_case;

int main(int argc, char **argv)
{
    const int threads = argc > 1 ? atoi(argv[1]) : 1;
    const double secs = argc > 2 ? atof(argv[2]) : 0.5;
    static const bench_case cases[] = {
        {"decode ffn_up 0.5B", FVLM_TYPE_F16, 1, 4864, 896},
        {"decode ffn_up 0.5B", FVLM_TYPE_Q8_0, 1, 4864, 896},
        {"decode ffn_up 0.5B", FVLM_TYPE_Q4_0, 1, 4864, 896},
        {"decode ffn_up 0.5B", FVLM_TYPE_Q4_K, 1, 4864, 896 / 128 * 128 + 128},
        {"decode ffn_up 0.5B", FVLM_TYPE_Q6_K, 1, 4864, 1024},
        {"prefill 64 rows", FVLM_TYPE_Q8_0, 64, 4864, 896},
        {"vision fc1 stage3", FVLM_TYPE_F32, 1024, 1536, 384},
        {"vision fc1 stage3", FVLM_TYPE_F16, 1024, 1536, 384},
    };
    fvlm_pool *pool = threads > 1 ? fvlm_pool_new(threads) : NULL;
    printf("threads %d, %.2fs per case\n%-22s %-5s %6s %6s %6s", threads, secs, "case", "type",
           "m", "n", "k");
    for (int l = 0; l < FVLM_CPU_LEVEL_COUNT; l++)
        if (fvlm_kernels_for_level((fvlm_cpu_level)l))
            printf(" %12s", fvlm_cpu_level_name((fvlm_cpu_level)l));
    printf("\n");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const bench_case *bc = &cases[c];
        const size_t rs = fvlm_row_size(bc->type, bc->k);
        unsigned char *w = malloc(rs * (size_t)bc->n);
        float *row = malloc((size_t)bc->k * sizeof *row);
        float *X = malloc((size_t)(bc->m * bc->k) * sizeof *X);
        float *Y = malloc((size_t)(bc->m * bc->n) * sizeof *Y);
        for (int64_t j = 0; j < bc->n; j++) {
            for (int64_t i = 0; i < bc->k; i++)
                row[i] = (float)rand() / (float)RAND_MAX - 0.5f;
            fvlm_quantize_row(bc->type, row, w + (size_t)j * rs, bc->k);
        }
        for (int64_t i = 0; i < bc->m * bc->k; i++)
            X[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        fvlm_tensor W = {"w", bc->type, 2, {bc->k, bc->n, 1, 1}, rs * (size_t)bc->n, w};
        printf("%-22s %-5s %6lld %6lld %6lld", bc->what, fvlm_type_get_traits(bc->type)->name,
               (long long)bc->m, (long long)bc->n, (long long)bc->k);
        for (int l = 0; l < FVLM_CPU_LEVEL_COUNT; l++) {
            const fvlm_kernels *kt = fvlm_kernels_for_level((fvlm_cpu_level)l);
            if (!kt)
                continue;
            int reps = 0;
            fvlm_matmul_with(kt, pool, &W, X, bc->m, Y, NULL);   /* warm-up */
            const double t0 = now();
            double t;
            do {
                fvlm_matmul_with(kt, pool, &W, X, bc->m, Y, NULL);
                reps++;
            } while ((t = now() - t0) < secs);
            t /= reps;
            if (bc->m == 1)
                printf(" %7.2f GB/s", (double)W.nbytes / t * 1e-9);
            else
                printf(" %5.1f GFLOPs", 2.0 * (double)bc->m * (double)bc->n * (double)bc->k / t * 1e-9);
        }
        printf("\n");
        free(w);
        free(row);
        free(X);
        free(Y);
    }
    fvlm_pool_free(pool);
    return 0;
}
