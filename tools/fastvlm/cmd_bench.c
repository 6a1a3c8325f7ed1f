/*
 * cmd_bench.c — `fastvlm bench`: measures what a caption costs on this machine, through the
 * public API only (the numbers are what an application sees).
 *
 *   fastvlm bench -m M.gguf [--mmproj P.gguf] [-t N] [--sizes 384,512,1024] [-p 256]
 *                 [-n 32] [-r REPS] [--json]
 *
 * Phases, each run once as a warm-up and then REPS times (median, min, max and MAD over
 * the repetitions):
 *   load     fastvlm_model_load of the file(s) (mapped unless --no-mmap), then freed;
 *   vision   fastvlm_session_encode_image (tower + projector) of a deterministic synthetic
 *            planar image at each --sizes entry (needs --mmproj; skipped otherwise);
 *   prefill  fastvlm_session_eval_tokens of -p seeded random in-vocab ids as one batch
 *            into an empty KV cache -> prefill tok/s; the same run plus the first greedy
 *            fastvlm_session_sample is the time to first token (TTFT);
 *   decode   after a prefill of --decode-after ids (default 16), -n steps of
 *            eval_tokens(1 id) + greedy sample, feeding back the sampled id -> decode tok/s.
 * Peak memory at the end: VmHWM of /proc/self/status (peak_rss_mb) and getrusage's
 * ru_maxrss (ru_maxrss_mb; on Linux it also counts the launching process's image from
 * before exec, so it can exceed VmHWM for a small model).
 * -p 0 / -n 0 skip prefill / decode. Output: a table, or with --json one JSON object on
 * stdout (medians at the top level, spreads under "spread"; a skipped phase is null/{}).
 * Not here: the comparison with llama.cpp or PyTorch (bench/run_bench.sh drives that), and
 * no text is generated from a prompt (see `fastvlm generate`).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

static const char *const CMD = "bench";

#define BENCH_MAX_SIZES 16
#define BENCH_MAX_REPS 1000

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastvlm bench -m MODEL.gguf [--mmproj P.gguf] [options]\n"
            "  -m, --model FILE      language model GGUF (qwen2)\n"
            "      --mmproj FILE     vision tower + projector GGUF (enables the vision phase)\n"
            "  -t, --threads N       threads (default 2)\n"
            CLI_PRECISION_HELP
            "      --sizes LIST      vision input sizes, multiples of 64 (default: the file's)\n"
            "  -p, --n-prompt N      prefill batch length in tokens (default 256; 0 = skip)\n"
            "  -n, --n-gen N         decode steps (default 32; 0 = skip)\n"
            "      --decode-after N  tokens prefilled before the decode steps (default 16)\n"
            "  -r, --reps N          timed repetitions after one warm-up (default 3)\n"
            "      --no-mmap         read the files into memory instead of mapping them\n"
            "      --json            one JSON object on stdout instead of the table\n"
            "  -v                    more logging (repeatable)\n");
}

/* ---- time, memory, statistics ------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Peak resident set size in MiB: getrusage (kilobytes on Linux) and VmHWM (-1 if absent). */
static void peak_rss_mb(double *ru_mb, double *hwm_mb)
{
    struct rusage ru;
    char line[256];
    FILE *f;

    *ru_mb = -1.0;
    *hwm_mb = -1.0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        *ru_mb = (double)ru.ru_maxrss / 1024.0;
    f = fopen("/proc/self/status", "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        long kb;
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) {
            *hwm_mb = (double)kb / 1024.0;
            break;
        }
    }
    fclose(f);
}

typedef struct stat_s {
    bool valid;
    double median, min, max, mad;   /* mad: median absolute deviation from the median */
} stat_s;

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_sorted(const double *v, int n)
{
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Statistics of v[0..n) (v is reordered). */
static stat_s stats_of(double *v, int n)
{
    stat_s s = {0};
    double dev[BENCH_MAX_REPS];

    if (n <= 0)
        return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    s.valid = true;
    s.min = v[0];
    s.max = v[n - 1];
    s.median = median_sorted(v, n);
    for (int i = 0; i < n; i++)
        dev[i] = fabs(v[i] - s.median);
    qsort(dev, (size_t)n, sizeof *dev, cmp_double);
    s.mad = median_sorted(dev, n);
    return s;
}

/* ---- inputs --------------------------------------------------------------------------- */

/* xorshift64*: a fixed sequence, so every run (and every engine) sees the same ids. */
static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1DULL;
}

static void random_ids(int32_t *ids, int32_t n, int32_t n_vocab, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (int32_t i = 0; i < n; i++)
        ids[i] = (int32_t)(rng_next(&x) % (uint64_t)n_vocab);
}

/* A smooth, deterministic planar image [3][size][size] with values in [0, 1] (what the
 * released models see after rescale with mean 0 / std 1): gradients plus a ripple, so no
 * activation is degenerate. Speed does not depend on the values. */
static void synthetic_image(float *p, int32_t size)
{
    for (int c = 0; c < 3; c++)
        for (int32_t y = 0; y < size; y++)
            for (int32_t x = 0; x < size; x++) {
                const float u = (float)x / (float)size, v = (float)y / (float)size;
                const float r = 0.5f + 0.5f * sinf(6.2831853f * (3.0f * u + 2.0f * v + (float)c / 3.0f));
                p[((size_t)c * (size_t)size + (size_t)y) * (size_t)size + (size_t)x] =
                    (c == 0 ? u : c == 1 ? v : 1.0f - u) * 0.5f + 0.5f * r;
            }
}

static bool parse_sizes(const char *s, int32_t *sizes, int *n)
{
    const char *p = s;
    *n = 0;
    while (*p) {
        char buf[16];
        size_t len = strcspn(p, ",");
        long v;
        if (len == 0 || len >= sizeof buf || *n == BENCH_MAX_SIZES)
            return false;
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (!cli_parse_int(buf, 64, 4096, &v) || v % 64 != 0)
            return false;
        sizes[(*n)++] = (int32_t)v;
        p += len;
        if (*p == ',' && *++p == '\0')
            return false;   /* trailing comma */
    }
    return *n > 0;
}

static long long file_bytes(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* ---- output --------------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, const stat_s *s)
{
    if (s->valid)
        fprintf(f, "%.6g", s->median);
    else
        fprintf(f, "null");
}

static void json_spread(FILE *f, const stat_s *s)
{
    if (s->valid)
        fprintf(f, "{\"min\": %.6g, \"max\": %.6g, \"mad\": %.6g}", s->min, s->max, s->mad);
    else
        fprintf(f, "null");
}

static void table_row(const char *what, const char *unit, const stat_s *s, const char *note)
{
    if (!s->valid) {
        printf("%-22s %-6s %12s   %s\n", what, unit, "-", note ? note : "skipped");
        return;
    }
    printf("%-22s %-6s %12.2f   [%.2f .. %.2f]  mad %.2f\n", what, unit, s->median, s->min,
           s->max, s->mad);
}

/* ---- the benchmark ---------------------------------------------------------------------- */

typedef struct bench_opts {
    const char *model_path, *mmproj_path;
    long threads, n_prompt, n_gen, decode_after, reps;
    int32_t sizes[BENCH_MAX_SIZES];
    int n_sizes;
    bool use_mmap, json;
    fastvlm_precision precision;
} bench_opts;

typedef struct bench_result {
    stat_s load_ms;
    stat_s vision_ms[BENCH_MAX_SIZES];
    stat_s prefill_tok_s, ttft_ms, decode_tok_s;
    double ru_maxrss_mb, vm_hwm_mb;
    fastvlm_model_info info;
} bench_result;

static int run_bench(bench_opts *o, bench_result *res)
{
    const int n_runs = (int)o->reps + 1;   /* run 0 is the warm-up */
    fastvlm_model_params mp = fastvlm_model_default_params();
    fastvlm_session_params sep = fastvlm_session_default_params();
    fastvlm_sampler_params greedy = fastvlm_sampler_default_params();
    fastvlm_model *model = NULL;
    fastvlm_session *s = NULL;
    fastvlm_error err;
    fastvlm_status st;
    double v[BENCH_MAX_REPS], v2[BENCH_MAX_REPS];
    int32_t *ids = NULL, max_size = 0;
    float *planar = NULL, *feat = NULL;
    long n_ctx;
    int rc = 1;

    greedy.temperature = 0.0f;
    mp.mmproj_path = o->mmproj_path;
    mp.use_mmap = o->use_mmap;
    mp.log = cli_log;
    mp.log_level = FASTVLM_LOG_DEBUG;

    /* load: free every model but the last, which the other phases use */
    for (int r = 0; r < n_runs; r++) {
        const double t0 = now_ms();
        st = fastvlm_model_load(o->model_path, &mp, &model, &err);
        const double t = now_ms() - t0;
        if (st != FASTVLM_OK)
            return cli_fail(CMD, &err);
        if (r > 0)
            v[r - 1] = t;
        if (r + 1 < n_runs) {
            fastvlm_model_free(model);
            model = NULL;
        }
    }
    res->load_ms = stats_of(v, (int)o->reps);
    fastvlm_model_get_info(model, &res->info);
    if (o->mmproj_path && !res->info.has_vision) {
        fprintf(stderr, "fastvlm bench: %s gave no vision model\n", o->mmproj_path);
        goto out;
    }
    if (res->info.has_vision && o->n_sizes == 0) {   /* no --sizes: the file's own size */
        o->sizes[0] = res->info.image_size;
        o->n_sizes = 1;
    }

    n_ctx = o->n_prompt + 1;
    if (o->decode_after + o->n_gen + 1 > n_ctx)
        n_ctx = o->decode_after + o->n_gen + 1;
    if (n_ctx > res->info.n_ctx_train) {
        fprintf(stderr, "fastvlm bench: -p %ld / --decode-after %ld + -n %ld need %ld positions; "
                "the model's context is %d\n", o->n_prompt, o->decode_after, o->n_gen, n_ctx,
                res->info.n_ctx_train);
        rc = 2;
        goto out;
    }
    sep.n_threads = (int32_t)o->threads;
    sep.matmul_precision = o->precision;
    sep.n_ctx = (int32_t)n_ctx;
    st = fastvlm_session_new(model, &sep, &s, &err);
    if (st != FASTVLM_OK) {
        rc = cli_fail(CMD, &err);
        goto out;
    }

    /* vision */
    if (res->info.has_vision) {
        for (int k = 0; k < o->n_sizes; k++)
            if (o->sizes[k] > max_size)
                max_size = o->sizes[k];
        const int32_t per_side = max_size / res->info.patch_stride;
        planar = malloc((size_t)3 * (size_t)max_size * (size_t)max_size * sizeof *planar);
        feat = malloc((size_t)per_side * (size_t)per_side * (size_t)res->info.n_embd * sizeof *feat);
        if (!planar || !feat) {
            fprintf(stderr, "fastvlm bench: out of memory for a %d x %d image\n", max_size, max_size);
            goto out;
        }
        for (int k = 0; k < o->n_sizes; k++) {
            int32_t n_tok = 0;
            synthetic_image(planar, o->sizes[k]);
            for (int r = 0; r < n_runs; r++) {
                const double t0 = now_ms();
                st = fastvlm_session_encode_image(s, planar, o->sizes[k], false, feat, &n_tok,
                                                  &err);
                const double t = now_ms() - t0;
                if (st != FASTVLM_OK) {
                    rc = cli_fail(CMD, &err);
                    goto out;
                }
                if (r > 0)
                    v[r - 1] = t;
            }
            res->vision_ms[k] = stats_of(v, (int)o->reps);
        }
    }

    ids = malloc(((size_t)(o->n_prompt > o->decode_after ? o->n_prompt : o->decode_after) + 1) *
                 sizeof *ids);
    if (!ids) {
        fprintf(stderr, "fastvlm bench: out of memory\n");
        goto out;
    }

    /* prefill + time to first token */
    if (o->n_prompt > 0) {
        random_ids(ids, (int32_t)o->n_prompt, res->info.n_vocab, 0x5eed0001);
        for (int r = 0; r < n_runs; r++) {
            fastvlm_session_reset(s);
            const double t0 = now_ms();
            st = fastvlm_session_eval_tokens(s, ids, (int32_t)o->n_prompt, NULL, &err);
            const double t1 = now_ms();
            if (st != FASTVLM_OK) {
                rc = cli_fail(CMD, &err);
                goto out;
            }
            (void)fastvlm_session_sample(s, &greedy, NULL, 0);
            const double t2 = now_ms();
            if (r > 0) {
                v[r - 1] = (double)o->n_prompt / ((t1 - t0) * 1e-3);
                v2[r - 1] = t2 - t0;
            }
        }
        res->prefill_tok_s = stats_of(v, (int)o->reps);
        res->ttft_ms = stats_of(v2, (int)o->reps);
    }

    /* decode */
    if (o->n_gen > 0) {
        random_ids(ids, (int32_t)o->decode_after, res->info.n_vocab, 0x5eed0002);
        for (int r = 0; r < n_runs; r++) {
            int32_t tok;
            fastvlm_session_reset(s);
            if (o->decode_after > 0) {
                st = fastvlm_session_eval_tokens(s, ids, (int32_t)o->decode_after, NULL, &err);
                if (st != FASTVLM_OK) {
                    rc = cli_fail(CMD, &err);
                    goto out;
                }
                tok = fastvlm_session_sample(s, &greedy, NULL, 0);
            } else {
                random_ids(&tok, 1, res->info.n_vocab, 0x5eed0003);
            }
            const double t0 = now_ms();
            for (long i = 0; i < o->n_gen; i++) {
                st = fastvlm_session_eval_tokens(s, &tok, 1, NULL, &err);
                if (st != FASTVLM_OK) {
                    rc = cli_fail(CMD, &err);
                    goto out;
                }
                tok = fastvlm_session_sample(s, &greedy, NULL, 0);
            }
            const double t = now_ms() - t0;
            if (r > 0)
                v[r - 1] = (double)o->n_gen / (t * 1e-3);
        }
        res->decode_tok_s = stats_of(v, (int)o->reps);
    }
    peak_rss_mb(&res->ru_maxrss_mb, &res->vm_hwm_mb);
    rc = 0;
out:
    free(ids);
    free(planar);
    free(feat);
    fastvlm_session_free(s);
    fastvlm_model_free(model);
    return rc;
}

static void print_json(const bench_opts *o, const bench_result *r)
{
    FILE *f = stdout;
    fprintf(f, "{\"engine\": \"fastvlm\", \"version\": \"%d.%d.%d\", \"model\": ",
            FASTVLM_VERSION_MAJOR, FASTVLM_VERSION_MINOR, FASTVLM_VERSION_PATCH);
    json_str(f, o->model_path);
    fprintf(f, ", \"model_bytes\": %lld, \"mmproj\": ", file_bytes(o->model_path));
    if (o->mmproj_path) {
        json_str(f, o->mmproj_path);
        fprintf(f, ", \"mmproj_bytes\": %lld", file_bytes(o->mmproj_path));
    } else {
        fprintf(f, "null, \"mmproj_bytes\": null");
    }
    fprintf(f, ",\n \"threads\": %ld, \"reps\": %ld, \"n_prompt\": %ld, \"n_gen\": %ld, "
               "\"decode_after\": %ld, \"mmap\": %s, \"precision\": \"%s\",\n",
            o->threads, o->reps, o->n_prompt, o->n_gen, o->decode_after,
            o->use_mmap ? "true" : "false", cli_precision_name(o->precision));
    fprintf(f, " \"n_vocab\": %d, \"n_embd\": %d, \"n_layer\": %d, \"n_head\": %d, "
               "\"n_head_kv\": %d, \"n_ff\": %d,\n",
            r->info.n_vocab, r->info.n_embd, r->info.n_layer, r->info.n_head, r->info.n_head_kv,
            r->info.n_ff);
    fprintf(f, " \"load_ms\": ");
    json_num(f, &r->load_ms);
    fprintf(f, ",\n \"vision_ms\": {");
    for (int k = 0, first = 1; r->info.has_vision && k < o->n_sizes; k++, first = 0) {
        fprintf(f, "%s\"%d\": ", first ? "" : ", ", o->sizes[k]);
        json_num(f, &r->vision_ms[k]);
    }
    fprintf(f, "},\n \"prefill_tok_s\": ");
    json_num(f, &r->prefill_tok_s);
    fprintf(f, ", \"decode_tok_s\": ");
    json_num(f, &r->decode_tok_s);
    fprintf(f, ", \"ttft_ms\": ");
    json_num(f, &r->ttft_ms);
    fprintf(f, ",\n \"peak_rss_mb\": %.1f, \"vm_hwm_mb\": %.1f, \"ru_maxrss_mb\": %.1f,\n",
            r->vm_hwm_mb > 0 ? r->vm_hwm_mb : r->ru_maxrss_mb, r->vm_hwm_mb, r->ru_maxrss_mb);
    fprintf(f, " \"spread\": {\"load_ms\": ");
    json_spread(f, &r->load_ms);
    fprintf(f, ", \"vision_ms\": {");
    for (int k = 0, first = 1; r->info.has_vision && k < o->n_sizes; k++, first = 0) {
        fprintf(f, "%s\"%d\": ", first ? "" : ", ", o->sizes[k]);
        json_spread(f, &r->vision_ms[k]);
    }
    fprintf(f, "},\n   \"prefill_tok_s\": ");
    json_spread(f, &r->prefill_tok_s);
    fprintf(f, ", \"decode_tok_s\": ");
    json_spread(f, &r->decode_tok_s);
    fprintf(f, ", \"ttft_ms\": ");
    json_spread(f, &r->ttft_ms);
    fprintf(f, "}}\n");
}

static void print_table(const bench_opts *o, const bench_result *r)
{
    char what[64];
    printf("model    %s (%lld bytes)\n", o->model_path, file_bytes(o->model_path));
    if (o->mmproj_path)
        printf("mmproj   %s (%lld bytes)\n", o->mmproj_path, file_bytes(o->mmproj_path));
    printf("config   %d layers, %d embd, %d heads / %d kv, ffn %d, vocab %d\n", r->info.n_layer,
           r->info.n_embd, r->info.n_head, r->info.n_head_kv, r->info.n_ff, r->info.n_vocab);
    printf("run      %ld threads, %ld reps after 1 warm-up, %s, %s matmuls\n\n", o->threads,
           o->reps, o->use_mmap ? "mmap" : "no mmap", cli_precision_name(o->precision));
    printf("%-22s %-6s %12s   %s\n", "phase", "unit", "median", "[min .. max]  mad");
    table_row("load", "ms", &r->load_ms, NULL);
    if (r->info.has_vision) {
        for (int k = 0; k < o->n_sizes; k++) {
            snprintf(what, sizeof what, "vision %dx%d", o->sizes[k], o->sizes[k]);
            table_row(what, "ms", &r->vision_ms[k], NULL);
        }
    } else {
        stat_s none = {0};
        table_row("vision", "ms", &none, "skipped (no --mmproj)");
    }
    snprintf(what, sizeof what, "prefill pp%ld", o->n_prompt);
    table_row(what, "tok/s", &r->prefill_tok_s, "skipped (-p 0)");
    snprintf(what, sizeof what, "decode tg%ld", o->n_gen);
    table_row(what, "tok/s", &r->decode_tok_s, "skipped (-n 0)");
    snprintf(what, sizeof what, "first token (pp%ld)", o->n_prompt);
    table_row(what, "ms", &r->ttft_ms, "skipped (-p 0)");
    printf("%-22s %-6s %12.1f   (VmHWM; ru_maxrss %.1f MiB)\n", "peak RSS", "MiB",
           r->vm_hwm_mb > 0 ? r->vm_hwm_mb : r->ru_maxrss_mb, r->ru_maxrss_mb);
}

int cmd_bench(int argc, char **argv)
{
    bench_opts o = {0};
    bench_result res;
    const char *sizes_arg = NULL;
    int rc;

    o.threads = 2;
    o.precision = FASTVLM_PRECISION_FAST;
    o.n_prompt = 256;
    o.n_gen = 32;
    o.decode_after = 16;
    o.reps = 3;
    o.use_mmap = true;
    memset(&res, 0, sizeof res);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL() CLI_NEED_VAL(CMD, a, val, i)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-v")) {
            cli_verbosity++;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEED_VAL();
            o.model_path = val;
        } else if (!strcmp(a, "--mmproj")) {
            NEED_VAL();
            o.mmproj_path = val;
        } else if (!strcmp(a, "--precision")) {
            NEED_VAL();
            if (!cli_parse_precision(val, &o.precision))
                return cli_usage_error(CMD, "bad --precision '%s' (exact or fast)", val);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, 256, &o.threads))
                return cli_usage_error(CMD, "bad -t '%s' (1..256)", val);
        } else if (!strcmp(a, "--sizes")) {
            NEED_VAL();
            sizes_arg = val;
            if (!parse_sizes(val, o.sizes, &o.n_sizes))
                return cli_usage_error(CMD, "bad --sizes '%s' (up to %d multiples of 64 in "
                                       "[64, 4096], comma-separated)", val, BENCH_MAX_SIZES);
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            NEED_VAL();
            if (!cli_parse_int(val, 0, 1 << 20, &o.n_prompt))
                return cli_usage_error(CMD, "bad -p '%s' (0..%d)", val, 1 << 20);
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            NEED_VAL();
            if (!cli_parse_int(val, 0, 1 << 20, &o.n_gen))
                return cli_usage_error(CMD, "bad -n '%s' (0..%d)", val, 1 << 20);
        } else if (!strcmp(a, "--decode-after")) {
            NEED_VAL();
            if (!cli_parse_int(val, 0, 1 << 20, &o.decode_after))
                return cli_usage_error(CMD, "bad --decode-after '%s' (0..%d)", val, 1 << 20);
        } else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) {
            NEED_VAL();
            if (!cli_parse_int(val, 1, BENCH_MAX_REPS, &o.reps))
                return cli_usage_error(CMD, "bad -r '%s' (1..%d)", val, BENCH_MAX_REPS);
        } else if (!strcmp(a, "--no-mmap")) {
            o.use_mmap = false;
        } else if (!strcmp(a, "--json")) {
            o.json = true;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
#undef NEED_VAL
    }
    if (!o.model_path)
        return cli_usage_error(CMD, "-m MODEL.gguf is required");
    if (sizes_arg && !o.mmproj_path)
        return cli_usage_error(CMD, "--sizes needs --mmproj");

    rc = run_bench(&o, &res);
    if (rc != 0)
        return rc;
    if (o.json)
        print_json(&o, &res);
    else
        print_table(&o, &res);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "fastvlm bench: error writing the output\n");
        return 1;
    }
    return 0;
}
