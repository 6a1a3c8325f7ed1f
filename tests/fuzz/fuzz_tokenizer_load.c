/*
 * fuzz_tokenizer_load.c — libFuzzer target for building a tokenizer from hostile GGUF
 * metadata: the input is a GGUF file (seeds: corpus/tokenizer_load/, from
 * make_tok_corpus.py — a real small Qwen2 vocabulary and variants of a 256-token one) whose
 * tokenizer.ggml.* keys the mutator corrupts: merges naming missing tokens, token_type
 * arrays of the wrong length or element type, repeated and empty strings, huge counts.
 *
 * If fvlm_gguf_open_memory() accepts the input, fvlm_tokenizer_load() must either fail
 * cleanly (no tokenizer, a status, a message naming the file; LeakSanitizer checks that the
 * error paths free everything) or give a tokenizer whose accessors agree with the file:
 * n_vocab is the token count, every id has bytes (NUL-terminated), ids out of range have
 * none, find() of a token's string gives that token or an earlier one spelled the same. It is
 * then made to encode probe texts and the vocabulary's own strings (parse_special off and
 * on): every id in range, the same count with a short buffer, and the detokenizer, fed those
 * ids with an exactly-sized buffer, stays inside it and writes valid UTF-8. Round trips are
 * not checked: a hostile vocabulary may legitimately decode to other bytes (fuzz_tokenizer.c
 * checks them on a sound one).
 *
 * Built by tests/fuzz/run_fuzz.sh and, with fuzz_main.c, by tests/fuzz/meson.build.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_utf8.h"
#include "gguf.h"
#include "model.h"       /* struct fastvlm_model: the detokenizer takes a model */
#include "tokenizer.h"

#define FUZZ_NAME "fuzz_vocab.gguf"
#define MAX_IDS 4096
#define MAX_TOKENS_ENCODED 64   /* vocabulary strings encoded per input (first and last) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz_tokenizer_load: invariant broken: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static const char *const PROBES[] = {
    "Hello world! It's   the <|im_start|>user\nhi<|im_end|>\n",
    "<tool_call>x</tool_call><|endoftext|><|im",
    "caf\xC3\xA9 cafe\xCC\x81 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 \xC3\xA9\xCC\xA3",
    "\xFF\xC0\x80\xED\xA0\x80\xE2\x82 \r\n\r\n\t\t  x",
    "aaaaaaaaaaaaaaaaaaaa abcabc thethe  12345",
};

/* Encodes s[0..n) with room for MAX_IDS ids and checks the ids and the detokenizer. */
static void probe(const fvlm_tokenizer *tok, const struct fastvlm_model *model, const char *s,
                  size_t n, bool parse_special)
{
    static int32_t ids[MAX_IDS];
    fastvlm_error err;
    size_t n_ids = 0, n_short = 0, cap = 1 + n % 40;
    fastvlm_status st = fvlm_tokenizer_encode(tok, s, n, parse_special, ids, MAX_IDS, &n_ids, &err);
    fastvlm_detok d = {{0}, 0};
    char *out;

    if (st != FASTVLM_OK)
        fail("encode of %zu bytes: status %d: %s", n, (int)st, err.message);
    if (n > 0 && n_ids == 0)
        fail("encode of %zu bytes gave no ids", n);
    if (fvlm_tokenizer_encode(tok, s, n, parse_special, ids, n_ids / 2, &n_short, &err) !=
            (n_ids / 2 < n_ids ? FASTVLM_ERR_NOMEM : FASTVLM_OK) || n_short != n_ids)
        fail("encode with a short buffer: %zu ids, not %zu", n_short, n_ids);
    out = malloc(cap);
    for (size_t i = 0; i <= n_ids; i++) {
        size_t w;
        if (i < n_ids && (ids[i] < 0 || ids[i] >= fvlm_tokenizer_n_vocab(tok)))
            fail("id %d out of range", ids[i]);
        w = i < n_ids ? fastvlm_detok_push(&d, model, ids[i], i & 1, out, cap)
                      : fastvlm_detok_flush(&d, out, cap);
        if (w >= cap || out[w] != '\0' || !ref_utf8_valid((const uint8_t *)out, w))
            fail("detok wrote %zu bytes with cap %zu, or invalid UTF-8", w, cap);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fvlm_gguf *g = NULL;
    fvlm_tokenizer *tok = NULL;
    struct fastvlm_model model;
    fastvlm_error err;
    fastvlm_status st;
    int64_t kt;
    int32_t n_vocab;

    if (fvlm_gguf_open_memory(data, size, FUZZ_NAME, &g, &err) != FASTVLM_OK)
        return 0;
    st = fvlm_tokenizer_load(g, &tok, &err);
    if (st != FASTVLM_OK) {
        if (tok || err.status != st || !strstr(err.message, FUZZ_NAME))
            fail("a failed load must leave no tokenizer and name the file: %s", err.message);
        fvlm_gguf_close(g);
        return 0;
    }
    if (!tok)
        fail("load succeeded without a tokenizer");

    kt = fvlm_gguf_find_key(g, "tokenizer.ggml.tokens");
    n_vocab = fvlm_tokenizer_n_vocab(tok);
    if (kt < 0 || n_vocab < 256 || (uint64_t)n_vocab != fvlm_gguf_arr_n(g, kt))
        fail("n_vocab %d for %llu tokens", n_vocab,
             kt < 0 ? 0ull : (unsigned long long)fvlm_gguf_arr_n(g, kt));
    if (fvlm_tokenizer_token_bytes(tok, -1, NULL) || fvlm_tokenizer_token_bytes(tok, n_vocab, NULL))
        fail("bytes for an id out of range");
    for (int32_t i = 0; i < n_vocab; i++) {
        size_t len = (size_t)-1;
        const char *b = fvlm_tokenizer_token_bytes(tok, i, &len);
        fvlm_gguf_str s;
        if (!b || len == (size_t)-1 || b[len] != '\0')
            fail("token %d: no bytes or no NUL", i);
        if (!fvlm_gguf_arr_get_str(g, kt, (uint64_t)i, &s))
            fail("token %d unreadable after a successful load", i);
        if (s.len < 256 && !memchr(s.ptr, 0, s.len)) {
            char z[256];
            int32_t f;
            memcpy(z, s.ptr, s.len);
            z[s.len] = '\0';
            f = fvlm_tokenizer_find(tok, z);
            if (f < 0 || f > i)
                fail("find(token %d) = %d", i, f);
        }
    }

    memset(&model, 0, sizeof model);
    model.tok = tok;
    for (size_t p = 0; p < sizeof PROBES / sizeof PROBES[0]; p++) {
        probe(tok, &model, PROBES[p], strlen(PROBES[p]), false);
        probe(tok, &model, PROBES[p], strlen(PROBES[p]), true);
    }
    /* the vocabulary's own strings as text, each a path through the merges: the first
     * tokens after the 256 byte ones and the last (added) ones. NFC may expand a string
     * 16-fold in bytes, hence the length limit. */
    for (int32_t i = 256; i < n_vocab; i++) {
        fvlm_gguf_str s;
        if (i == 256 + MAX_TOKENS_ENCODED / 2 && n_vocab - i > MAX_TOKENS_ENCODED / 2)
            i = n_vocab - MAX_TOKENS_ENCODED / 2;
        if (fvlm_gguf_arr_get_str(g, kt, (uint64_t)i, &s) && s.len < MAX_IDS / 16)
            probe(tok, &model, s.ptr, (size_t)s.len, i & 1);
    }
    fvlm_tokenizer_free(tok);
    fvlm_gguf_close(g);
    return 0;
}
