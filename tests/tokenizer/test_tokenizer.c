/*
 * test_tokenizer.c — unit tests of engine/tokenizer.c on a small synthetic vocabulary built
 * in memory (tests/gguf/gguf_writer.c), with expectations worked out by hand from the
 * definitions: GPT-2's bytes_to_unicode (re-implemented here from its published algorithm),
 * the Qwen2 split regex, BPE by merge rank with leftmost ties, added-token matching, the
 * streaming detokenizer (incl. the Unicode Standard's Table 3-8 U+FFFD example), loader
 * errors on bad metadata, and encoding from two threads at once.
 * Not the equivalence with Qwen's real tokenizer: that is run_equivalence.py (suite
 * `tokenizer`), on the real 151k vocabulary.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gguf/check.h"
#include "../gguf/gguf_writer.h"
#include "model.h"
#include "tokenizer.h"

/* ---------------------------------------------------------------- the vocabulary */

/* GPT-2 bytes_to_unicode, written from its definition: bytes '!'..'~', 0xA1..0xAC and
 * 0xAE..0xFF keep their value, the others get 256, 257, ... in byte order. */
static void gpt2_byte_char(unsigned b, char out[3])
{
    unsigned cp, n = 0;
    int keep[256] = {0};
    for (unsigned c = '!'; c <= '~'; c++) keep[c] = 1;
    for (unsigned c = 0xA1; c <= 0xAC; c++) keep[c] = 1;
    for (unsigned c = 0xAE; c <= 0xFF; c++) keep[c] = 1;
    if (keep[b]) {
        cp = b;
    } else {
        for (unsigned c = 0; c < b; c++)
            n += !keep[c];
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* Ids: 0..255 the byte tokens (id = byte), then these merged tokens, then added tokens. */
static const char *const MERGES[] = {
    "a a", "\xC4\xA0 a", "b c", "a bc", "a b", "h e", "l l", "he ll", "hell o",
    "\xC4\xA0 hello", "\xC3\x83 \xC2\xA9",
};
#define N_MERGES (sizeof MERGES / sizeof MERGES[0])
static const char *const MERGED[N_MERGES] = {
    "aa", "\xC4\xA0" "a", "bc", "abc", "ab", "he", "ll", "hell", "hello", "\xC4\xA0hello",
    "\xC3\x83\xC2\xA9",
};
enum {
    T_AA = 256, T_SPACE_A, T_BC, T_ABC, T_AB, T_HE, T_LL, T_HELL, T_HELLO, T_SPACE_HELLO,
    T_E_ACUTE, T_IM_END, T_IM_START, T_IM, T_THINK, T_PAD, N_TOKENS
};
static const struct { const char *s; int type; } ADDED[] = {
    {"<|im_end|>", 3}, {"<|im_start|>", 3}, {"<|im", 3}, {"<think>", 4}, {"[PAD271]", 5},
};

/* Variations for the loader-error tests. */
typedef struct vocab_opts {
    const char *model, *pre;        /* tokenizer.ggml.model / .pre (NULL = omit) */
    bool no_merges, no_types;
    int n_tokens;                   /* < N_TOKENS truncates the token list */
    int types_len_delta;            /* token_type array length - n_tokens */
    const char *bad_merge;          /* replaces merge 0 */
    int bad_type;                   /* if nonzero: token_type of token 260 */
    bool drop_byte_token;           /* renames the token of byte 'x' */
} vocab_opts;

static uint8_t *build_vocab(const vocab_opts *o, size_t *size)
{
    static gw w;
    int n = o->n_tokens ? o->n_tokens : N_TOKENS;
    uint8_t *buf;

    gw_init(&w, 3);
    gw_kv_str(&w, "general.architecture", "qwen2");
    if (o->model)
        gw_kv_str(&w, "tokenizer.ggml.model", o->model);
    if (o->pre)
        gw_kv_str(&w, "tokenizer.ggml.pre", o->pre);
    gw_kv_arr(&w, "tokenizer.ggml.tokens", GW_STRING, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        char bc[3];
        if (i < 256) {
            gpt2_byte_char((unsigned)i, bc);
            gw_str(&w.kv, o->drop_byte_token && i == 'x' ? "xx-renamed" : bc);
        } else if (i < T_IM_END) {
            gw_str(&w.kv, MERGED[i - 256]);
        } else {
            gw_str(&w.kv, ADDED[i - T_IM_END].s);
        }
    }
    if (!o->no_types) {
        int nt = n + o->types_len_delta;
        gw_kv_arr(&w, "tokenizer.ggml.token_type", GW_I32, (uint64_t)nt);
        for (int i = 0; i < nt; i++) {
            int t = i < T_IM_END ? 1 : i < N_TOKENS ? ADDED[i - T_IM_END].type : 1;
            if (o->bad_type && i == 260)
                t = o->bad_type;
            gw_u32(&w.kv, (uint32_t)t);
        }
    }
    if (!o->no_merges) {
        gw_kv_arr(&w, "tokenizer.ggml.merges", GW_STRING, N_MERGES);
        for (size_t i = 0; i < N_MERGES; i++)
            gw_str(&w.kv, i == 0 && o->bad_merge ? o->bad_merge : MERGES[i]);
    }
    gw_kv_u32(&w, "tokenizer.ggml.eos_token_id", T_IM_END);
    buf = gw_finish(&w, size, NULL);
    gw_free(&w);
    return buf;
}

static fastvlm_status load(const vocab_opts *o, fvlm_tokenizer **tok, fastvlm_error *err)
{
    size_t size;
    uint8_t *buf = build_vocab(o, &size);
    fvlm_gguf *g = NULL;
    fastvlm_status st = fvlm_gguf_open_memory(buf, size, "test.gguf", &g, err);
    CHECK(st == FASTVLM_OK, "open_memory: %s", err->message);
    if (st == FASTVLM_OK)
        st = fvlm_tokenizer_load(g, tok, err);
    fvlm_gguf_close(g);          /* the tokenizer keeps its own copies */
    free(buf);
    return st;
}

static const vocab_opts GOOD = {.model = "gpt2", .pre = "qwen2"};

/* ---------------------------------------------------------------- helpers */

static bool encode_is(const fvlm_tokenizer *tok, const char *s, size_t len, bool special,
                      const int32_t *want, size_t n_want)
{
    int32_t ids[64];
    size_t n = 0;
    fastvlm_error err;
    fastvlm_status st = fvlm_tokenizer_encode(tok, s, len, special, ids, 64, &n, &err);
    bool ok = st == FASTVLM_OK && n == n_want && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
    if (!ok) {
        fprintf(stderr, "  encode(\"%.*s\"): status %d, got", (int)len, s, (int)st);
        for (size_t i = 0; i < n && i < 64; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "; want");
        for (size_t i = 0; i < n_want; i++)
            fprintf(stderr, " %d", want[i]);
        fputc('\n', stderr);
    }
    return ok;
}
#define ENC(tok, str, special, ...)                                                       \
    do {                                                                                  \
        static const int32_t want_[] = {__VA_ARGS__};                                    \
        CHECK(encode_is(tok, str, sizeof(str) - 1, special, want_,                       \
                        sizeof want_ / sizeof want_[0]), "encode \"%s\"", str);           \
    } while (0)

/* Pre-tokenizer: words as a '|'-joined string for readable expectations. */
static bool split_is(const char *s, size_t len, const char *want)
{
    size_t ends[64], n = fvlm_qwen2_pretokenize(s, len, ends, 64), start = 0;
    char got[512];
    size_t g = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        if (i)
            got[g++] = '|';
        memcpy(got + g, s + start, ends[i] - start);
        g += ends[i] - start;
        start = ends[i];
    }
    got[g] = 0;
    if (strcmp(got, want) != 0 || (n > 0 && ends[n - 1] != len)) {
        fprintf(stderr, "  split(\"%.*s\") = \"%s\", want \"%s\"\n", (int)len, s, got, want);
        return false;
    }
    return true;
}
#define SPLIT(str, want) CHECK(split_is(str, sizeof(str) - 1, want), "split \"%s\"", str)

/* ---------------------------------------------------------------- tests */

static void test_pretokenizer(void)
{
    SPLIT("", "");
    SPLIT("Hello world", "Hello| world");
    SPLIT("I'm", "I|'m");
    SPLIT("I'M", "I|'M");
    SPLIT("it's'S", "it|'s|'S");
    SPLIT("don't", "don|'t");
    SPLIT("we'LL they'Re", "we|'LL| they|'Re");
    SPLIT("x'y", "x|'y");
    SPLIT("'sa", "'s|a");
    SPLIT(" 's", " '|s");
    SPLIT("123", "1|2|3");
    SPLIT("$10", "$|1|0");
    SPLIT("a  b", "a| | b");
    SPLIT("a   ", "a|   ");
    SPLIT("a\n\nb", "a|\n\n|b");
    SPLIT("a \n b", "a| \n| b");
    SPLIT("a\n \n  b", "a|\n \n| | b");
    SPLIT("a\t\tb", "a|\t|\tb");
    SPLIT("hi!!!\n\nx", "hi|!!!\n\n|x");
    SPLIT(" !?", " !?");
    SPLIT("  !?", " | !?");
    SPLIT("\n!", "\n|!");
    SPLIT("x \r\n", "x| \r\n");
    SPLIT("\xE4\xB8\xAD\xE6\x96\x87 \xE5\xAD\x97", "\xE4\xB8\xAD\xE6\x96\x87| \xE5\xAD\x97");
    SPLIT("\xC2\xA0word", "\xC2\xA0word");                       /* NBSP + letters */
    SPLIT("a\xE3\x80\x80\xE3\x80\x80" "b", "a|\xE3\x80\x80|\xE3\x80\x80" "b"); /* U+3000 */
    SPLIT("a\xEF\xBB\xBF" "b", "a|\xEF\xBB\xBF" "b");            /* U+FEFF is \s in JS */
    SPLIT("a\xC2\x85" "b", "a|\xC2\x85" "b");                    /* U+0085 is not */
    SPLIT("\xFF\xFE" "ab", "\xFF\xFE|ab");                       /* invalid bytes: "other" */
    SPLIT("e\xCC\x81t\xC3\xA9", "e|\xCC\x81t\xC3\xA9");          /* Mn is "other" */
}

static void test_encode(const fvlm_tokenizer *tok)
{
    int32_t ids[4];
    size_t n = 99;
    fastvlm_error err;

    CHECK(fvlm_tokenizer_n_vocab(tok) == N_TOKENS, "n_vocab %d", fvlm_tokenizer_n_vocab(tok));
    ENC(tok, "a", true, 'a');
    ENC(tok, "aaa", true, T_AA, 'a');                 /* equal ranks: leftmost first */
    ENC(tok, "aaaa", true, T_AA, T_AA);
    ENC(tok, "abc", true, T_ABC);                     /* "b c" (rank 2) before "a b" (4) */
    ENC(tok, "ab", true, T_AB);
    ENC(tok, " hello", true, T_SPACE_HELLO);
    ENC(tok, "hello world", true, T_HELLO, ' ', 'w', 'o', 'r', 'l', 'd');
    ENC(tok, "\xC3\xA9", true, T_E_ACUTE);            /* é */
    ENC(tok, "e\xCC\x81", true, T_E_ACUTE);           /* e + U+0301: NFC first */
    ENC(tok, "\xFF\xFE", true, 0xFF, 0xFE);           /* invalid UTF-8: byte by byte */
    ENC(tok, " a", true, T_SPACE_A);
    /* added tokens */
    ENC(tok, "a<|im_end|>b", true, 'a', T_IM_END, 'b');
    ENC(tok, "a<|im_end|>b", false, 'a', '<', '|', 'i', 'm', '_', 'e', 'n', 'd', '|', '>', 'b');
    ENC(tok, "<|im_end|", true, T_IM, '_', 'e', 'n', 'd', '|');   /* longest that matches */
    ENC(tok, "<|im_start|><|im_end|>", true, T_IM_START, T_IM_END);
    ENC(tok, "<think>", false, T_THINK);              /* user-defined: always */
    ENC(tok, "<think>", true, T_THINK);
    ENC(tok, "[PAD271]", true, '[', 'P', 'A', 'D', '2', '7', '1', ']');  /* unused: never */
    CHECK(encode_is(tok, "", 0, true, NULL, 0), "empty string");

    /* Buffer too small: NOMEM with the full count, the first ids written. */
    CHECK(fvlm_tokenizer_encode(tok, "aaaaa", 5, true, ids, 1, &n, &err) == FASTVLM_ERR_NOMEM &&
          n == 3 && ids[0] == T_AA, "short buffer: n %zu", n);
    CHECK(fvlm_tokenizer_encode(tok, NULL, 3, true, ids, 4, &n, &err) == FASTVLM_ERR_INVALID_ARG,
          "NULL text");
    CHECK(fvlm_tokenizer_find(tok, "<|im_end|>") == T_IM_END && fvlm_tokenizer_find(tok, "hello") == T_HELLO &&
          fvlm_tokenizer_find(tok, "nope") == -1, "find");

    /* A long word: BPE stays exact (and fast) far beyond the cases above. */
    {
        size_t len = 10001;
        char *s = malloc(len);
        int32_t *out = malloc(len * sizeof *out);
        bool ok = s && out;
        memset(s, 'a', len);
        ok = ok && fvlm_tokenizer_encode(tok, s, len, true, out, len, &n, &err) == FASTVLM_OK &&
             n == 5001;
        for (size_t i = 0; ok && i + 1 < n; i++)
            ok = out[i] == T_AA;
        CHECK(ok && out[n - 1] == 'a', "10001 'a' -> 5000 'aa' + 'a'");
        free(s);
        free(out);
    }
}

static void test_token_bytes(fastvlm_model *m)
{
    size_t len;
    const char *p = fastvlm_token_bytes(m, 0xC3, &len);
    CHECK(p && len == 1 && (unsigned char)p[0] == 0xC3, "byte token 0xC3");
    {
        int bad = 0;        /* every byte token decodes to its byte (ids 0..255 = bytes) */
        for (int b = 0; b < 256; b++) {
            p = fastvlm_token_bytes(m, b, &len);
            bad += !(p && len == 1 && (unsigned char)p[0] == b);
        }
        CHECK(bad == 0, "%d byte tokens decode wrongly", bad);
    }
    p = fastvlm_token_bytes(m, ' ', &len);
    CHECK(p && len == 1 && p[0] == ' ', "byte token ' ' (stored as U+0120)");
    p = fastvlm_token_bytes(m, T_SPACE_HELLO, &len);
    CHECK(p && len == 6 && !memcmp(p, " hello", 6), "' hello'");
    p = fastvlm_token_bytes(m, T_E_ACUTE, &len);
    CHECK(p && len == 2 && !memcmp(p, "\xC3\xA9", 2), "e-acute");
    p = fastvlm_token_bytes(m, T_IM_END, &len);
    CHECK(p && len == 10 && !memcmp(p, "<|im_end|>", 10), "special text");
    CHECK(fastvlm_token_bytes(m, N_TOKENS, &len) == NULL && len == 0, "out of range");
    CHECK(fastvlm_token_bytes(m, -1, &len) == NULL, "negative id");
    CHECK(fastvlm_token_is_special(m, T_IM_END) && fastvlm_token_is_special(m, T_PAD) &&
          !fastvlm_token_is_special(m, T_THINK) && !fastvlm_token_is_special(m, 'a') &&
          !fastvlm_token_is_special(m, -5), "is_special");
    {
        int32_t ids[8];
        size_t n;
        fastvlm_error err;
        CHECK(fastvlm_tokenize(m, "ab", 2, true, ids, 8, &n, &err) == FASTVLM_OK && n == 1 &&
              ids[0] == T_AB, "fastvlm_tokenize");
        CHECK(fastvlm_tokenize(NULL, "ab", 2, true, ids, 8, &n, &err) == FASTVLM_ERR_INVALID_ARG,
              "fastvlm_tokenize(NULL model)");
    }
}

/* Feeds ids one at a time; returns everything emitted (push + flush). */
static size_t detok_all(fastvlm_model *m, const int32_t *ids, size_t n, bool skip, char *out,
                        size_t cap)
{
    fastvlm_detok d = {{0}, 0};
    char piece[64];
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = fastvlm_detok_push(&d, m, ids[i], skip, piece, sizeof piece);
        CHECK(strlen(piece) == k, "push output NUL-terminated");
        memcpy(out + w, piece, k);
        w += k;
    }
    w += fastvlm_detok_flush(&d, out + w, cap - w);
    return w;
}

static void test_detok(fastvlm_model *m)
{
    fastvlm_detok d = {{0}, 0};
    char out[256];
    size_t k;

    /* é split across two byte tokens: nothing, then the whole character. */
    k = fastvlm_detok_push(&d, m, 0xC3, false, out, sizeof out);
    CHECK(k == 0 && out[0] == 0 && d.n_pending == 1, "first half held back");
    k = fastvlm_detok_push(&d, m, 0xA9, false, out, sizeof out);
    CHECK(k == 2 && !memcmp(out, "\xC3\xA9", 3), "second half completes it");

    /* A 4-byte emoji in four tokens. */
    {
        static const int32_t ids[] = {0xF0, 0x9F, 0x98, 0x80};
        size_t got[4];
        for (int i = 0; i < 4; i++)
            got[i] = fastvlm_detok_push(&d, m, ids[i], false, out, sizeof out);
        CHECK(got[0] == 0 && got[1] == 0 && got[2] == 0 && got[3] == 4 &&
              !memcmp(out, "\xF0\x9F\x98\x80", 4), "emoji across 4 tokens");
    }
    /* An incomplete character then ASCII: U+FFFD then the ASCII. */
    fastvlm_detok_push(&d, m, 0xC3, false, out, sizeof out);
    k = fastvlm_detok_push(&d, m, 'a', false, out, sizeof out);
    CHECK(k == 4 && !memcmp(out, "\xEF\xBF\xBD" "a", 5), "C3 'a'");
    /* Flush with a pending prefix: one U+FFFD. */
    fastvlm_detok_push(&d, m, 0xE2, false, out, sizeof out);
    fastvlm_detok_push(&d, m, 0x82, false, out, sizeof out);
    k = fastvlm_detok_flush(&d, out, sizeof out);
    CHECK(k == 3 && !memcmp(out, "\xEF\xBF\xBD", 4) && d.n_pending == 0, "flush E2 82");
    CHECK(fastvlm_detok_flush(&d, out, sizeof out) == 0 && out[0] == 0, "flush empty");

    /* The Unicode Standard, Table 3-8: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 ->
     * a FFFD FFFD FFFD b FFFD c FFFD FFFD d (maximal subparts). */
    {
        static const int32_t ids[] = {0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80,
                                      0x63, 0x80, 0xBF, 0x64};
        static const char want[] = "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD"
                                   "c\xEF\xBF\xBD\xEF\xBF\xBD" "d";
        k = detok_all(m, ids, sizeof ids / sizeof ids[0], false, out, sizeof out);
        CHECK(k == sizeof want - 1 && !memcmp(out, want, k), "Table 3-8 (%zu bytes)", k);
    }
    /* Special tokens: text, or nothing when skipped; a pending prefix is not lost to a
     * skipped special token. */
    {
        static const int32_t ids[] = {T_HELLO, T_IM_END, 0xC3, T_IM_END, 0xA9};
        k = detok_all(m, ids, 5, false, out, sizeof out);
        CHECK(k == 5 + 10 + 3 + 10 + 3 &&
              !memcmp(out, "hello<|im_end|>\xEF\xBF\xBD<|im_end|>\xEF\xBF\xBD", k), "specials kept");
        k = detok_all(m, ids, 5, true, out, sizeof out);
        CHECK(k == 7 && !memcmp(out, "hello\xC3\xA9", 7), "specials skipped");
    }
    /* Out of range ids add nothing; a too-small buffer drops whole characters only. */
    CHECK(fastvlm_detok_push(&d, m, -3, false, out, sizeof out) == 0, "bad id");
    k = fastvlm_detok_push(&d, m, T_E_ACUTE, false, out, 2);
    CHECK(k == 0 && out[0] == 0, "cap 2 cannot hold e-acute + NUL");
    k = fastvlm_detok_push(&d, m, T_E_ACUTE, false, out, 3);
    CHECK(k == 2, "cap 3 holds it");
}

static void test_load_errors(void)
{
    fvlm_tokenizer *tok = NULL;
    fastvlm_error err;
    vocab_opts o;

#define EXPECT(status, what)                                                               \
    do {                                                                                   \
        fastvlm_status st_ = load(&o, &tok, &err);                                         \
        CHECK(st_ == (status) && tok == NULL, "%s: status %d (%s)", what, (int)st_, err.message); \
        if (st_ == (status))                                                               \
            printf("  %-24s -> %s\n", what, err.message);                                  \
        fvlm_tokenizer_free(tok);                                                          \
        tok = NULL;                                                                        \
    } while (0)

    o = GOOD; o.model = "llama";              EXPECT(FASTVLM_ERR_UNSUPPORTED, "model llama");
    o = GOOD; o.model = NULL;                 EXPECT(FASTVLM_ERR_MISSING, "no model key");
    o = GOOD; o.pre = "llama-bpe";            EXPECT(FASTVLM_ERR_UNSUPPORTED, "pre llama-bpe");
    o = GOOD; o.no_merges = true;             EXPECT(FASTVLM_ERR_MISSING, "no merges");
    o = GOOD; o.bad_merge = "aa";             EXPECT(FASTVLM_ERR_FORMAT, "merge without space");
    o = GOOD; o.bad_merge = "a zz";           EXPECT(FASTVLM_ERR_FORMAT, "merge of unknown token");
    o = GOOD; o.bad_merge = "b b";            EXPECT(FASTVLM_ERR_FORMAT, "merge result unknown");
    o = GOOD; o.types_len_delta = -1;         EXPECT(FASTVLM_ERR_FORMAT, "token_type too short");
    o = GOOD; o.bad_type = 9;                 EXPECT(FASTVLM_ERR_FORMAT, "token_type 9");
    o = GOOD; o.n_tokens = 200;               EXPECT(FASTVLM_ERR_FORMAT, "200 tokens");
    o = GOOD; o.drop_byte_token = true;       EXPECT(FASTVLM_ERR_FORMAT, "byte token missing");
#undef EXPECT
    o = GOOD; o.no_types = true;
    CHECK(load(&o, &tok, &err) == FASTVLM_OK, "token_type is optional: %s", err.message);
    fvlm_tokenizer_free(tok);
}

/* Two threads encoding at once must get what one thread gets. */
typedef struct {
    const fvlm_tokenizer *tok;
    const char *text;
    const int32_t *want;
    size_t n_want;
    int failures;
} thread_arg;

static void *encode_thread(void *p)
{
    thread_arg *a = p;
    int32_t ids[512];
    for (int it = 0; it < 200; it++) {
        size_t n;
        if (fvlm_tokenizer_encode(a->tok, a->text, strlen(a->text), true, ids, 512, &n, NULL) !=
                FASTVLM_OK || n != a->n_want || memcmp(ids, a->want, n * sizeof *ids))
            a->failures++;
    }
    return NULL;
}

static void test_threads(const fvlm_tokenizer *tok)
{
    static const char text[] = "hello hello aaa abc e\xCC\x81 <|im_start|>ab<|im_end|> \xF0\x9F\x98\x80";
    int32_t want[512];
    size_t n = 0;
    pthread_t th[2];
    thread_arg args[2];
    CHECK(fvlm_tokenizer_encode(tok, text, strlen(text), true, want, 512, &n, NULL) == FASTVLM_OK,
          "reference encode");
    for (int i = 0; i < 2; i++) {
        args[i] = (thread_arg){tok, text, want, n, 0};
        CHECK(pthread_create(&th[i], NULL, encode_thread, &args[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].failures == 0, "thread %d: %d differing encodes", i, args[i].failures);
    }
}

int main(void)
{
    fvlm_tokenizer *tok = NULL;
    fastvlm_error err = {0};
    struct fastvlm_model model;

    test_pretokenizer();
    if (load(&GOOD, &tok, &err) != FASTVLM_OK) {
        CHECK(0, "load: %s", err.message);
        return check_summary("test_tokenizer");
    }
    memset(&model, 0, sizeof model);
    model.tok = tok;

    test_encode(tok);
    test_token_bytes(&model);
    test_detok(&model);
    test_threads(tok);
    test_load_errors();

    fvlm_tokenizer_free(tok);
    return check_summary("test_tokenizer");
}
