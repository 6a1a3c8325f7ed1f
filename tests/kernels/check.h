/*
 * check.h — assertion macros of the kernel tests (tests/kernels): each CHECK counts, a
 * failure prints file, line and a message and the test keeps going; main() returns
 * check_summary(), which prints 'name: N passed, N failed' and is non-zero on failure.
 */
#ifndef KERNELS_TEST_CHECK_H
#define KERNELS_TEST_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            check_passed++;                                                     \
        } else {                                                                \
            check_failed++;                                                     \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__,    \
                    #cond);                                                     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

static inline int check_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
