/*
 * cmd_info.c — `fastvlm info [--full] [--no-mmap] FILE.gguf`: prints a GGUF file's header,
 * every metadata key (type and value) and the tensor table with totals.
 *
 * Not a model check: it describes any GGUF the reader accepts (llama.cpp's files too) and
 * does not interpret keys. Uses the engine's internal gguf.h (the CLI links it statically).
 * Output is for people, not a stable machine format.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"

#define SHORT_STR_BYTES 80   /* a string value is cut here unless --full */
#define SHORT_ARR_ELEMS 8    /* array elements shown unless --full */
#define SHORT_NAME_BYTES 200 /* key/tensor names are cut here (hostile files) unless --full */

static const char *value_type_name(fvlm_gguf_type t)
{
    static const char *const names[FVLM_GGUF_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool",
        "string", "array", "uint64", "int64", "float64",
    };
    return (unsigned)t < FVLM_GGUF_TYPE_COUNT ? names[t] : "?";
}

/* Writes s escaped (\" \\ \n \t \r, other control bytes and DEL as \xHH; bytes >= 0x80 as
 * they are, so UTF-8 shows), at most `max` bytes (0 = all) without splitting a UTF-8
 * sequence, then "..." if cut. */
static void put_escaped(FILE *f, fvlm_gguf_str s, uint64_t max)
{
    uint64_t n = s.len;
    const unsigned char *p = (const unsigned char *)s.ptr;
    if (max && n > max) {
        n = max;
        while (n > 0 && (p[n] & 0xc0) == 0x80)   /* back off to a character start */
            n--;
    }
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\x%02x", c);
            else
                fputc(c, f);
        }
    }
    if (n < s.len)
        fputs("...", f);
}

static void put_quoted(FILE *f, fvlm_gguf_str s, bool full)
{
    fputc('"', f);
    put_escaped(f, s, full ? 0 : SHORT_STR_BYTES);
    fputc('"', f);
}

static void put_number(FILE *f, fvlm_gguf_type t, const fvlm_gguf *g, int64_t i, bool arr,
                       uint64_t j)
{
    int64_t v;
    uint64_t u;
    double d;
    bool b;

    switch (t) {
    case FVLM_GGUF_BOOL:
        if (arr) {
            /* arrays hand out numbers: a bool element reads as 0/1 */
            if (fvlm_gguf_arr_get_i64(g, i, j, &v))
                fputs(v ? "true" : "false", f);
        } else if (fvlm_gguf_get_bool(g, i, &b)) {
            fputs(b ? "true" : "false", f);
        }
        return;
    case FVLM_GGUF_FLOAT32:
    case FVLM_GGUF_FLOAT64:
        if (arr ? fvlm_gguf_arr_get_f64(g, i, j, &d) : fvlm_gguf_get_f64(g, i, &d))
            fprintf(f, t == FVLM_GGUF_FLOAT32 ? "%.9g" : "%.17g", d);
        return;
    case FVLM_GGUF_UINT64:
        /* may exceed int64: the scalar path has get_u64; array elements above 2^63-1 are
         * not representable through the array API and show as such */
        if (!arr && fvlm_gguf_get_u64(g, i, &u))
            fprintf(f, "%" PRIu64, u);
        else if (arr && fvlm_gguf_arr_get_i64(g, i, j, &v))
            fprintf(f, "%" PRId64, v);
        else
            fputs(">2^63", f);
        return;
    default:
        if (arr ? fvlm_gguf_arr_get_i64(g, i, j, &v) : fvlm_gguf_get_i64(g, i, &v))
            fprintf(f, "%" PRId64, v);
        return;
    }
}

static void print_kv(FILE *f, const fvlm_gguf *g, int64_t i, bool full)
{
    fvlm_gguf_type t = fvlm_gguf_kv_type(g, i);
    fvlm_gguf_str key = fvlm_gguf_key_name(g, i);
    char tbuf[48];

    fprintf(f, "  [%3" PRId64 "] ", i);
    put_escaped(f, key, full ? 0 : SHORT_NAME_BYTES);
    fputs(key.len < 40 ? "" : " ", f);
    for (uint64_t k = key.len; k < 40; k++)
        fputc(' ', f);

    if (t == FVLM_GGUF_ARRAY) {
        fvlm_gguf_type at = fvlm_gguf_arr_type(g, i);
        uint64_t n = fvlm_gguf_arr_n(g, i);
        uint64_t shown = full || n <= SHORT_ARR_ELEMS ? n : SHORT_ARR_ELEMS;
        snprintf(tbuf, sizeof tbuf, "%s[%" PRIu64 "]", value_type_name(at), n);
        fprintf(f, " %-16s [", tbuf);
        for (uint64_t j = 0; j < shown; j++) {
            fvlm_gguf_str s;
            if (j)
                fputs(", ", f);
            if (at == FVLM_GGUF_STRING) {
                if (fvlm_gguf_arr_get_str(g, i, j, &s))
                    put_quoted(f, s, full);
            } else {
                put_number(f, at, g, i, true, j);
            }
        }
        if (shown < n)
            fprintf(f, ", ... (%" PRIu64 " more)", n - shown);
        fputs("]\n", f);
        return;
    }
    fprintf(f, " %-16s ", value_type_name(t));
    if (t == FVLM_GGUF_STRING) {
        fvlm_gguf_str s;
        if (fvlm_gguf_get_str(g, i, &s)) {
            put_quoted(f, s, full);
            if (!full && s.len > SHORT_STR_BYTES)
                fprintf(f, " (%" PRIu64 " bytes)", s.len);
        }
    } else {
        put_number(f, t, g, i, false, 0);
    }
    fputc('\n', f);
}

static void print_tensors(FILE *f, const fvlm_gguf *g, bool full)
{
    int64_t n = fvlm_gguf_n_tensors(g);
    uint64_t total_bytes = 0, total_elems = 0;
    uint64_t by_type_n[FVLM_TYPE_COUNT] = {0}, by_type_bytes[FVLM_TYPE_COUNT] = {0};
    int name_w = 4;
    fvlm_tensor t;

    for (int64_t i = 0; i < n; i++)
        if (fvlm_gguf_tensor(g, i, &t)) {
            size_t l = strlen(t.name);
            if (l > (size_t)name_w)
                name_w = l > 48 ? 48 : (int)l;
        }
    fprintf(f, "tensors     %" PRId64 "\n", n);
    if (n)
        fprintf(f, "  %5s  %-*s  %-7s  %-26s  %12s  %12s\n", "index", name_w, "name", "type",
                "shape", "offset", "bytes");
    for (int64_t i = 0; i < n; i++) {
        const fvlm_type_traits *tt;
        char shape[128];
        size_t o = 0;
        fvlm_gguf_str nm;

        if (!fvlm_gguf_tensor(g, i, &t))
            continue;
        tt = fvlm_type_get_traits(t.type);
        o += (size_t)snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < (t.n_dims ? t.n_dims : 1); d++)
            o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%" PRId64, d ? ", " : "",
                                  t.ne[d]);
        snprintf(shape + o, sizeof shape - o, "]");
        nm.ptr = t.name;
        nm.len = strlen(t.name);
        fprintf(f, "  %5" PRId64 "  ", i);
        put_escaped(f, nm, full ? 0 : SHORT_NAME_BYTES);
        for (int k = (int)nm.len; k < name_w; k++)
            fputc(' ', f);
        fprintf(f, "  %-7s  %-26s  %12zu  %12zu\n", tt ? tt->name : "?", shape,
                (size_t)((const uint8_t *)t.data - fvlm_gguf_data(g)), t.nbytes);
        total_bytes += t.nbytes;
        total_elems += (uint64_t)fvlm_tensor_nelements(&t);
        if ((unsigned)t.type < FVLM_TYPE_COUNT) {
            by_type_n[t.type]++;
            by_type_bytes[t.type] += t.nbytes;
        }
    }
    fprintf(f, "total       %" PRId64 " tensors, %" PRIu64 " elements, %" PRIu64
            " bytes (%.2f MiB)\n", n, total_elems, total_bytes, (double)total_bytes / 1048576.0);
    for (unsigned ty = 0; ty < FVLM_TYPE_COUNT; ty++)
        if (by_type_n[ty])
            fprintf(f, "  %-7s %6" PRIu64 " tensors %14" PRIu64 " bytes%s\n",
                    fvlm_type_get_traits(ty)->name, by_type_n[ty], by_type_bytes[ty],
                    fvlm_type_get_traits(ty)->supported ? "" : "  (not computable by this build)");
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastvlm info [--full] [--no-mmap] FILE.gguf\n"
            "  Prints the GGUF header, every metadata key with its type and value, and the\n"
            "  tensor table (index, name, type, shape, data offset, bytes) with totals.\n"
            "  --full     print whole strings and every array element (default: strings cut\n"
            "             at %d bytes, the first %d array elements)\n"
            "  --no-mmap  read the file into memory instead of mapping it\n",
            SHORT_STR_BYTES, SHORT_ARR_ELEMS);
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    bool full = false, use_mmap = true;
    fvlm_gguf *g = NULL;
    fastvlm_error err;

    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[a], "--full")) {
            full = true;
        } else if (!strcmp(argv[a], "--no-mmap")) {
            use_mmap = false;
        } else if (argv[a][0] == '-' && argv[a][1]) {
            return cli_usage_error("info", "unknown option '%s'", argv[a]);
        } else if (path) {
            return cli_usage_error("info", "one file at a time ('%s' and '%s')", path, argv[a]);
        } else {
            path = argv[a];
        }
    }
    if (!path)
        return cli_usage_error("info", "no GGUF file given");

    if (fvlm_gguf_open(path, use_mmap, &g, &err) != FASTVLM_OK)
        return cli_fail("info", &err);

    printf("file        %s (%zu bytes)\n", fvlm_gguf_path(g), fvlm_gguf_file_size(g));
    printf("gguf        version %" PRIu32 ", alignment %zu, data section at offset %zu\n",
           fvlm_gguf_version(g), fvlm_gguf_alignment(g), fvlm_gguf_data_offset(g));
    printf("metadata    %" PRId64 " keys\n", fvlm_gguf_n_kv(g));
    for (int64_t i = 0; i < fvlm_gguf_n_kv(g); i++)
        print_kv(stdout, g, i, full);
    print_tensors(stdout, g, full);
    fvlm_gguf_close(g);

    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "fastvlm info: error writing the output\n");
        return 1;
    }
    return 0;
}
