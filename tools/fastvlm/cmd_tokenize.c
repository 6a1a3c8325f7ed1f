/*
 * cmd_tokenize.c — `fastvlm tokenize -m MODEL.gguf [--no-special] (TEXT | --jsonl FILE)`:
 * prints the token ids of TEXT space-separated on one line, or, with --jsonl, one line of
 * ids for each line of FILE ("-" = stdin), each line holding one JSON string (all JSON
 * escapes, \uXXXX surrogate pairs included). Loads only the tokenizer (vocab_only).
 * Special tokens written in the text (<|im_start|> ...) are parsed unless --no-special.
 * --decode prints instead the text rebuilt from those ids by the streaming detokenizer
 * (fastvlm_detok_push one token at a time, then fastvlm_detok_flush) as a JSON string.
 *
 * Not a chat formatter (no template is applied) and adds no BOS. The machine-readable
 * output is what tests/tokenizer/ compares with Qwen's tokenizer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastvlm tokenize -m MODEL.gguf [--no-special] [--decode] TEXT\n"
            "       fastvlm tokenize -m MODEL.gguf [--no-special] [--decode] --jsonl FILE\n"
            "\n"
            "Prints token ids, space-separated, one line per text.\n"
            "  -m, --model FILE   language-model GGUF (only its tokenizer is loaded)\n"
            "  --jsonl FILE       one JSON string per line (\"-\" = stdin); one output line each\n"
            "  --no-special       tokenize <|im_start|> etc. as plain text\n"
            "  --decode           print the detokenized ids as a JSON string instead of the ids\n"
            "  -v                 more logging (repeatable)\n");
}

/* A growable byte buffer. */
typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

static bool buf_put(buf_t *b, const void *src, size_t n)
{
    if (n == 0)
        return true;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *q;
        while (cap < b->n + n)
            cap *= 2;
        q = realloc(b->p, cap);
        if (!q)
            return false;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
    return true;
}

static bool put_cp(buf_t *b, unsigned long cp)
{
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | (cp >> 18));
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_put(b, u, n);
}

static int hex4(const char *s, unsigned long *out)
{
    unsigned long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned long)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Decodes the JSON string that is the whole of line[0..n) (surrounding blanks allowed) into
 * b. A lone surrogate escape becomes U+FFFD. Returns NULL or a reason. */
static const char *json_string(const char *line, size_t n, buf_t *b)
{
    size_t i = 0;
    b->n = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    if (i >= n || line[i] != '"')
        return "expected a JSON string";
    for (i++;; i++) {
        unsigned char c;
        if (i >= n)
            return "unterminated string";
        c = (unsigned char)line[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return "raw control character in string";
        if (c != '\\') {
            if (!buf_put(b, &c, 1))
                return "out of memory";
            continue;
        }
        if (++i >= n)
            return "unterminated escape";
        switch (line[i]) {
        case '"': c = '"'; break;
        case '\\': c = '\\'; break;
        case '/': c = '/'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': {
            unsigned long cp, lo;
            if (i + 4 >= n || !hex4(line + i + 1, &cp))
                return "bad \\u escape";
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < n && line[i + 1] == '\\' &&
                line[i + 2] == 'u' && hex4(line + i + 3, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            if (!put_cp(b, cp))
                return "out of memory";
            continue;
        }
        default:
            return "bad escape";
        }
        if (!buf_put(b, &c, 1))
            return "out of memory";
    }
    for (i++; i < n; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            return "text after the string";
    return NULL;
}

/* Writes s[0..n) as a JSON string (UTF-8 kept as is, control characters escaped). */
static void put_json(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20 || c == 0x7F)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* The ids through the streaming detokenizer, printed as one JSON string line. */
static bool print_decoded(const fastvlm_model *model, const int32_t *ids, size_t n)
{
    fastvlm_detok d = {{0}, 0};
    buf_t b = {0};
    char piece[4096];
    size_t len;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        len = fastvlm_detok_push(&d, model, ids[i], false, piece, sizeof piece);
        ok = buf_put(&b, piece, len);
    }
    len = fastvlm_detok_flush(&d, piece, sizeof piece);
    ok = ok && buf_put(&b, piece, len);
    if (ok) {
        put_json(b.p ? b.p : "", b.n);
        putchar('\n');
    }
    free(b.p);
    return ok;
}

/* Tokenizes and prints one line of ids (or, with `decode`, their text); returns false
 * (with err filled) on failure. */
static bool print_ids(const fastvlm_model *model, const char *text, size_t len, bool special,
                      bool decode, int32_t **ids, size_t *cap, fastvlm_error *err)
{
    size_t n = 0;
    fastvlm_status st = fastvlm_tokenize(model, text, len, special, *ids, *cap, &n, err);
    if (st == FASTVLM_ERR_NOMEM && n > *cap) {
        int32_t *p = realloc(*ids, n * sizeof *p);
        if (!p)
            return false;
        *ids = p;
        *cap = n;
        st = fastvlm_tokenize(model, text, len, special, *ids, *cap, &n, err);
    }
    if (st != FASTVLM_OK)
        return false;
    if (decode)
        return print_decoded(model, *ids, n);
    for (size_t i = 0; i < n; i++)
        printf(i ? " %d" : "%d", (int)(*ids)[i]);
    putchar('\n');
    return true;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model_path = NULL, *jsonl = NULL, *text = NULL;
    bool special = true, decode = false;
    fastvlm_model_params mp = fastvlm_model_default_params();
    fastvlm_model *model = NULL;
    fastvlm_error err = {0};
    int32_t *ids = NULL;
    size_t cap = 0;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (++i >= argc)
                return cli_usage_error(argv[0], "%s needs a file", a);
            model_path = argv[i];
        } else if (!strcmp(a, "--jsonl")) {
            if (++i >= argc)
                return cli_usage_error(argv[0], "--jsonl needs a file");
            jsonl = argv[i];
        } else if (!strcmp(a, "--no-special")) {
            special = false;
        } else if (!strcmp(a, "--decode")) {
            decode = true;
        } else if (!strcmp(a, "-v")) {
            cli_verbosity++;
        } else if (!strcmp(a, "--")) {
            if (i + 1 < argc && !text && i + 2 == argc)
                text = argv[++i];
            else
                return cli_usage_error(argv[0], "give exactly one TEXT");
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error(argv[0], "unknown option '%s'", a);
        } else if (!text) {
            text = a;
        } else {
            return cli_usage_error(argv[0], "give exactly one TEXT (quote it)");
        }
    }
    if (!model_path)
        return cli_usage_error(argv[0], "no model (-m MODEL.gguf)");
    if (!text == !jsonl)
        return cli_usage_error(argv[0], "give either TEXT or --jsonl FILE");

    mp.vocab_only = true;
    mp.log = cli_log;
    if (fastvlm_model_load(model_path, &mp, &model, &err) != FASTVLM_OK)
        return cli_fail(argv[0], &err);

    if (text) {
        if (!print_ids(model, text, strlen(text), special, decode, &ids, &cap, &err))
            rc = cli_fail(argv[0], &err);
    } else {
        FILE *f = strcmp(jsonl, "-") ? fopen(jsonl, "rb") : stdin;
        char *line = NULL;
        size_t line_cap = 0;
        ssize_t got;
        long lineno = 0;
        buf_t b = {0};
        if (!f) {
            fprintf(stderr, "fastvlm %s: cannot open '%s'\n", argv[0], jsonl);
            fastvlm_model_free(model);
            return 1;
        }
        while ((got = getline(&line, &line_cap, f)) >= 0) {
            const char *why;
            size_t len = (size_t)got;
            lineno++;
            if (len > 0 && line[len - 1] == '\n')
                len--;
            why = json_string(line, len, &b);
            if (why) {
                fprintf(stderr, "fastvlm %s: %s:%ld: %s\n", argv[0], jsonl, lineno, why);
                rc = 1;
                break;
            }
            if (!print_ids(model, b.p ? b.p : "", b.n, special, decode, &ids, &cap, &err)) {
                fprintf(stderr, "fastvlm %s: %s:%ld: %s\n", argv[0], jsonl, lineno,
                        err.message[0] ? err.message : "tokenization failed");
                rc = 1;
                break;
            }
        }
        if (f != stdin)
            fclose(f);
        free(line);
        free(b.p);
    }
    if (fflush(stdout) != 0)
        rc = 1;
    free(ids);
    fastvlm_model_free(model);
    return rc;
}
