/*
 * fuzz_main.c — a plain driver for fuzz_gguf.c without libFuzzer: runs
 * LLVMFuzzerTestOneInput on every file named (directories are walked one level), so the
 * test suite replays the seed corpus and any committed regression inputs under the normal
 * and the ASan builds. With --expect-open, every input must also open (the seeds are valid
 * files written by tests/fuzz/make_corpus.py, an independent writer).
 *
 * Not the fuzzer: no mutation (tests/fuzz/run_fuzz.sh does that).
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n_run, n_bad;
static int expect_open;

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fprintf(stderr, "fuzz_main: cannot read %s\n", path);
        if (f)
            fclose(f);
        n_bad++;
        return;
    }
    buf = malloc(n ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "fuzz_main: cannot read %s\n", path);
        n_bad++;
    } else {
        /* an exactly-sized copy, so that ASan sees any read past the end */
        uint8_t *exact = malloc(n ? (size_t)n : 1);
        memcpy(exact, buf, (size_t)n);
        LLVMFuzzerTestOneInput(exact, (size_t)n);
        if (expect_open) {
            fvlm_gguf *g = NULL;
            fastvlm_error err;
            if (fvlm_gguf_open_memory(exact, (size_t)n, path, &g, &err) != FASTVLM_OK) {
                fprintf(stderr, "fuzz_main: seed does not open: %s\n", err.message);
                n_bad++;
            }
            fvlm_gguf_close(g);
        }
        free(exact);
        n_run++;
    }
    free(buf);
    fclose(f);
}

int main(int argc, char **argv)
{
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (!strcmp(argv[a], "--expect-open")) {
            expect_open = 1;
            continue;
        }
        if (stat(argv[a], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[a]);
            struct dirent *e;
            while (d && (e = readdir(d))) {
                char p[4096];
                if (e->d_name[0] == '.')
                    continue;
                snprintf(p, sizeof p, "%s/%s", argv[a], e->d_name);
                if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
                    run_file(p);
            }
            if (d)
                closedir(d);
        } else {
            run_file(argv[a]);
        }
    }
    printf("fuzz_main: %d inputs replayed, %d problems\n", n_run, n_bad);
    return n_bad || n_run == 0 ? 1 : 0;
}
