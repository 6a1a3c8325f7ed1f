/*
 * fuzz_tokenizer.c — libFuzzer target for text going into the tokenizer, and for the
 * Unicode functions under it. The input is the text: any bytes (invalid UTF-8, NULs, long
 * whitespace runs, storms of combining marks for NFC).
 *
 * Loaded once (on the first input, so the plain driver fuzz_main.c needs no init hook):
 * corpus/tokenizer_load/qwen2_mini.gguf, a real byte-level BPE (300 trained merges, Qwen2's
 * byte order, the Qwen2.5 added tokens; written by make_tok_corpus.py). Its path is compiled
 * in as FUZZ_VOCAB; the environment variable FUZZ_VOCAB overrides it. From the same file the
 * target builds its own view of the vocabulary (strings, types, merges by rank) with no
 * engine code but the GGUF reader, and per input checks:
 *   - the UTF-8 decoder, the incomplete-tail finder and the character classes against the
 *     rules in fuzz_utf8.h; NFC's bound, idempotence, canonical order, canonical
 *     equivalence (the same NFD as the input, by a decomposition written here), and that
 *     text the quick check calls NFC is left unchanged; the pre-tokenizer's word ends;
 *   - fvlm_tokenizer_encode (parse_special off and on): every id in range; a short buffer
 *     gives NOMEM, the full count and the same first ids; the tokens' bytes put together
 *     equal the input cut at the added tokens (leftmost-longest, found here by brute force)
 *     with each piece in NFC; and, for inputs whose words are short, the ids equal those of
 *     a naive BPE (merge the lowest-ranked adjacent pair, leftmost first, until none);
 *   - the streaming detokenizer on those ids and on ids taken from the input bytes: it never
 *     writes past `cap` (exactly-sized buffers, so ASan sees one byte more), always leaves
 *     valid UTF-8 and a NUL, and with room enough gives the tokens' bytes back with each
 *     maximal ill-formed subpart replaced by one U+FFFD (Unicode §3.9), wherever the token
 *     boundaries fall.
 * A broken invariant aborts, which the fuzzer reports like a crash.
 *
 * Built by tests/fuzz/run_fuzz.sh (clang -fsanitize=fuzzer,address,undefined) and, with
 * fuzz_main.c as the driver, by tests/fuzz/meson.build to replay corpus/tokenizer/.
 * Not the equivalence with Qwen's tokenizer (tests/tokenizer/run_equivalence.py).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_utf8.h"
#include "gguf.h"
#include "model.h"       /* struct fastvlm_model: the detokenizer takes a model */
#include "tokenizer.h"
#include "unicode.h"

#ifndef FUZZ_VOCAB
#define FUZZ_VOCAB "tests/fuzz/corpus/tokenizer_load/qwen2_mini.gguf"
#endif
#define REF_BPE_MAX_WORD 128     /* the naive BPE is quadratic: longer words skip the id check */
#define REF_BPE_MAX_TEXT 2048
#define MAX_ADDED 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz_tokenizer: invariant broken: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        fail("out of memory (%zu bytes)", n);
    return p;
}

/* memcmp that accepts NULL for empty ranges (UBSan checks memcmp's nonnull arguments). */
static bool same(const void *a, const void *b, size_t n)
{
    return n == 0 || !memcmp(a, b, n);
}

/* ---------------------------------------------------------------- the target's own vocab */

typedef struct { char *s; size_t len; int type; } ref_token;
typedef struct { int32_t a, b, rank, merged; } ref_merge;

static struct {
    fvlm_tokenizer *tok;
    struct fastvlm_model model;        /* only .tok is set */
    int32_t n_vocab;
    ref_token *tokens;                 /* [n_vocab] as in the file */
    int32_t *vocab_hash;               /* string -> first id, open addressing; -1 free */
    size_t vocab_mask;
    ref_merge *merges;                 /* (a, b) -> lowest rank, open addressing; a = -1 free */
    size_t merge_mask;
    int32_t byte_token[256];
    int32_t added[MAX_ADDED];          /* CONTROL (3) and USER_DEFINED (4) ids */
    size_t detok_cap;                  /* room for any one push: 3 bytes (U+FFFD) per byte */
    int n_added;
} V;

static size_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return (size_t)(h ^ h >> 29);
}

static int32_t ref_find(const char *s, size_t n)
{
    for (size_t i = hash_str(s, n) & V.vocab_mask;; i = (i + 1) & V.vocab_mask) {
        int32_t id = V.vocab_hash[i];
        if (id < 0)
            return -1;
        if (V.tokens[id].len == n && !memcmp(V.tokens[id].s, s, n))
            return id;
    }
}

static ref_merge *ref_merge_slot(int32_t a, int32_t b)
{
    size_t i = ((size_t)a * 2654435761u + (size_t)b * 40503u) & V.merge_mask;
    for (;; i = (i + 1) & V.merge_mask)
        if (V.merges[i].a < 0 || (V.merges[i].a == a && V.merges[i].b == b))
            return &V.merges[i];
}

/* GPT-2 bytes_to_unicode from its definition: '!'..'~', 0xA1..0xAC, 0xAE..0xFF keep their
 * value; the other bytes get 256, 257, ... in byte order. Returns the UTF-8 length. */
static size_t gpt2_char(unsigned b, char out[2])
{
    unsigned cp = b, n = 0;
    bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    if (!keep) {
        for (unsigned c = 0; c < b; c++)
            n += !((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE);
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
        fail("cannot read the vocabulary %s", path);
    buf = xmalloc((size_t)n);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        fail("cannot read the vocabulary %s", path);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void init(void)
{
    const char *path = getenv("FUZZ_VOCAB") ? getenv("FUZZ_VOCAB") : FUZZ_VOCAB;
    fastvlm_error err;
    fvlm_gguf *g = NULL;
    size_t size;
    uint8_t *file = read_file(path, &size);
    int64_t kt, ky, km;
    uint64_t n_merges;

    if (fvlm_gguf_open_memory(file, size, path, &g, &err) != FASTVLM_OK ||
        fvlm_tokenizer_load(g, &V.tok, &err) != FASTVLM_OK)
        fail("the vocabulary does not load: %s", err.message);
    V.model.tok = V.tok;
    V.n_vocab = fvlm_tokenizer_n_vocab(V.tok);

    kt = fvlm_gguf_find_key(g, "tokenizer.ggml.tokens");
    ky = fvlm_gguf_find_key(g, "tokenizer.ggml.token_type");
    km = fvlm_gguf_find_key(g, "tokenizer.ggml.merges");
    if (kt < 0 || ky < 0 || km < 0 || (int64_t)fvlm_gguf_arr_n(g, kt) != V.n_vocab)
        fail("%s: not the vocabulary this target expects", path);
    V.tokens = xmalloc((size_t)V.n_vocab * sizeof *V.tokens);
    V.vocab_mask = 1;
    while (V.vocab_mask < 2 * (size_t)V.n_vocab)
        V.vocab_mask <<= 1;
    V.vocab_hash = xmalloc(V.vocab_mask * sizeof *V.vocab_hash);
    memset(V.vocab_hash, 0xFF, V.vocab_mask * sizeof *V.vocab_hash);
    V.vocab_mask--;
    for (int32_t i = 0; i < V.n_vocab; i++) {
        fvlm_gguf_str s;
        int64_t ty;
        if (!fvlm_gguf_arr_get_str(g, kt, (uint64_t)i, &s) ||
            !fvlm_gguf_arr_get_i64(g, ky, (uint64_t)i, &ty))
            fail("token %d unreadable", i);
        V.tokens[i].s = xmalloc(s.len);
        memcpy(V.tokens[i].s, s.ptr, s.len);
        V.tokens[i].len = s.len;
        V.tokens[i].type = (int)ty;
        if (ref_find(s.ptr, s.len) < 0) {
            size_t h = hash_str(s.ptr, s.len) & V.vocab_mask;
            while (V.vocab_hash[h] >= 0)
                h = (h + 1) & V.vocab_mask;
            V.vocab_hash[h] = i;
        }
        if ((ty == 3 || ty == 4) && s.len > 0) {
            if (V.n_added == MAX_ADDED)
                fail("too many added tokens");
            V.added[V.n_added++] = i;
        }
    }
    for (int32_t i = 0; i < V.n_vocab; i++) {
        size_t len;
        fvlm_tokenizer_token_bytes(V.tok, i, &len);
        if (3 * (len + 3) + 1 > V.detok_cap)
            V.detok_cap = 3 * (len + 3) + 1;   /* + the up to 3 pending bytes, + the NUL */
    }
    for (unsigned b = 0; b < 256; b++) {
        char c[2];
        V.byte_token[b] = ref_find(c, gpt2_char(b, c));
        if (V.byte_token[b] < 0)
            fail("no token for byte %u", b);
    }
    n_merges = fvlm_gguf_arr_n(g, km);
    V.merge_mask = 1;
    while (V.merge_mask < 2 * n_merges)
        V.merge_mask <<= 1;
    V.merges = xmalloc(V.merge_mask * sizeof *V.merges);
    for (size_t i = 0; i < V.merge_mask; i++)
        V.merges[i].a = -1;
    V.merge_mask--;
    for (uint64_t r = 0; r < n_merges; r++) {
        fvlm_gguf_str s;
        const char *sp;
        char both[256];
        int32_t a, b, ab;
        ref_merge *m;
        if (!fvlm_gguf_arr_get_str(g, km, r, &s) || s.len >= sizeof both ||
            !(sp = memchr(s.ptr + 1, ' ', s.len - 1)))
            fail("merge %llu unreadable", (unsigned long long)r);
        memcpy(both, s.ptr, (size_t)(sp - s.ptr));
        memcpy(both + (sp - s.ptr), sp + 1, s.len - (size_t)(sp - s.ptr) - 1);
        a = ref_find(s.ptr, (size_t)(sp - s.ptr));
        b = ref_find(sp + 1, s.len - (size_t)(sp - s.ptr) - 1);
        ab = ref_find(both, s.len - 1);
        if (a < 0 || b < 0 || ab < 0)
            fail("merge %llu names a missing token", (unsigned long long)r);
        m = ref_merge_slot(a, b);
        if (m->a < 0)
            *m = (ref_merge){a, b, (int32_t)r, ab};
    }
    fvlm_gguf_close(g);
    free(file);
}

/* ---------------------------------------------------------------- a growable byte/id list */

typedef struct { uint8_t *p; size_t n, cap; } bytes;
typedef struct { int32_t *p; size_t n, cap; } ids;

static void bytes_put(bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 16;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            fail("out of memory");
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void ids_put(ids *v, int32_t id)
{
    if (v->n == v->cap) {
        v->cap = v->cap * 2 + 16;
        v->p = realloc(v->p, v->cap * sizeof *v->p);
        if (!v->p)
            fail("out of memory");
    }
    v->p[v->n++] = id;
}

/* ---------------------------------------------------------------- Unicode */

/* Decodes with the engine (checked against the reference), so invalid bytes become the
 * engine's FVLM_UTF8_INVALID_BASE + byte code points. Returns the count. */
static size_t decode_checked(const uint8_t *s, size_t n, uint32_t *cps)
{
    size_t m = 0;
    for (size_t i = 0; i < n; m++) {
        uint32_t cp, want;
        size_t k = fvlm_utf8_decode(s + i, n - i, &cp), kr = ref_utf8_seq(s + i, n - i, &want);
        unsigned char enc[4];
        if (kr ? (k != kr || cp != want) : (k != 1 || cp != FVLM_UTF8_INVALID_BASE + s[i]))
            fail("utf8_decode at byte %zu: %zu bytes, U+%04X (want %zu, U+%04X)", i, k, cp,
                 kr ? kr : 1, kr ? want : FVLM_UTF8_INVALID_BASE + s[i]);
        if (fvlm_utf8_encode(cp, enc) != k || memcmp(enc, s + i, k))
            fail("utf8_encode(U+%04X) does not give the bytes back", cp);
        cps[m] = cp;
        i += k;
    }
    return m;
}

/* Full canonical decomposition (NFD) of cps[0..m) into out (room for m * 4), written here
 * from the definition over the engine's data tables: Hangul arithmetically, the others by
 * the decomposition table applied until nothing changes, then the non-starters of each
 * run stably sorted by combining class. Returns the length. */
static size_t ref_nfd(const uint32_t *cps, size_t m, uint32_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t stack[4 * FVLM_UNICODE_MAX_DECOMP], c;
        size_t top = 0;
        stack[top++] = cps[i];
        while (top > 0) {
            size_t lo = 0, hi = fvlm_decomp_n;
            c = stack[--top];
            if (c >= 0xAC00 && c < 0xAC00 + 11172) {
                uint32_t s = c - 0xAC00;
                out[n++] = 0x1100 + s / 588;
                out[n++] = 0x1161 + s % 588 / 28;
                if (s % 28)
                    out[n++] = 0x11A7 + s % 28;
                continue;
            }
            while (lo < hi && fvlm_decomp_index[lo + (hi - lo) / 2].cp != c) {
                if (fvlm_decomp_index[lo + (hi - lo) / 2].cp < c)
                    lo = lo + (hi - lo) / 2 + 1;
                else
                    hi = lo + (hi - lo) / 2;
            }
            if (lo < hi) {     /* push the decomposition reversed, so it comes out in order */
                const fvlm_udecomp *d = &fvlm_decomp_index[lo + (hi - lo) / 2];
                if (top + d->len > sizeof stack / sizeof stack[0])
                    fail("decomposition of U+%04X too deep", c);
                for (size_t k = d->len; k > 0; k--)
                    stack[top++] = fvlm_decomp_pool[d->offset + k - 1];
            } else {
                out[n++] = c;
            }
        }
    }
    for (size_t i = 1; i < n; i++)      /* stable: equal classes keep their order */
        for (size_t j = i; j > 0 && fvlm_unicode_ccc(out[j]) != 0 &&
                           fvlm_unicode_ccc(out[j - 1]) > fvlm_unicode_ccc(out[j]); j--) {
            uint32_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static void check_nfc(const uint32_t *cps, size_t m)
{
    uint32_t *a = xmalloc(m * FVLM_UNICODE_MAX_DECOMP * sizeof *a);
    uint32_t *b = xmalloc(m * FVLM_UNICODE_MAX_DECOMP * sizeof *b);
    size_t na = fvlm_nfc(cps, m, a), nb, inv_in = 0, inv_out = 0;

    if (na > m * FVLM_UNICODE_MAX_DECOMP)
        fail("nfc wrote %zu code points for %zu", na, m);
    if (fvlm_nfc_quick_check(cps, m) && (na != m || !same(a, cps, m * sizeof *a)))
        fail("the quick check says NFC but nfc() changes the text");
    nb = fvlm_nfc(a, na, b);
    if (nb != na || !same(a, b, na * sizeof *a))
        fail("nfc is not idempotent (%zu -> %zu code points)", na, nb);
    for (size_t i = 0; i < na; i++) {
        uint8_t c = fvlm_unicode_ccc(a[i]);
        if (i > 0 && c != 0 && fvlm_unicode_ccc(a[i - 1]) > c)
            fail("nfc output not in canonical order at %zu", i);
        if (a[i] > 0x10FFFF && (a[i] < FVLM_UTF8_INVALID_BASE + 0x80 ||
                                a[i] > FVLM_UTF8_INVALID_BASE + 0xFF))
            fail("nfc produced U+%X", a[i]);
        if ((a[i] >= 0xD800 && a[i] <= 0xDFFF))
            fail("nfc produced a surrogate");
        inv_out += a[i] > 0x10FFFF;
    }
    for (size_t i = 0; i < m; i++)
        inv_in += cps[i] > 0x10FFFF;
    if (inv_in != inv_out)
        fail("nfc changed the number of invalid bytes");
    /* canonically equivalent to the input: the same NFD */
    {
        uint32_t *d1 = xmalloc(m * FVLM_UNICODE_MAX_DECOMP * sizeof *d1);
        uint32_t *d2 = xmalloc(na * FVLM_UNICODE_MAX_DECOMP * sizeof *d2);
        size_t n1 = ref_nfd(cps, m, d1), n2 = ref_nfd(a, na, d2);
        if (n1 != n2 || !same(d1, d2, n1 * sizeof *d1))
            fail("nfc output is not canonically equivalent to the input (NFD %zu vs %zu)", n1, n2);
        free(d1);
        free(d2);
    }
    free(a);
    free(b);
}

static void check_unicode(const uint8_t *s, size_t n)
{
    uint32_t *cps = xmalloc(n * sizeof *cps);
    size_t m = decode_checked(s, n, cps), nw, nw2, *ends, small[2];

    for (size_t i = 0; i < m; i++) {
        uint32_t c = fvlm_unicode_class(cps[i]);
        if (c & (c - 1) || c > 7 || (cps[i] > 0x10FFFF && c))
            fail("class of U+%04X is %u", cps[i], c);
    }
    for (size_t k = n > 8 ? n - 8 : 0; k <= n; k++)
        if (fvlm_utf8_incomplete_tail(s, k) != ref_utf8_incomplete_tail(s, k))
            fail("utf8_incomplete_tail of %zu bytes: %zu, want %zu", k,
                 fvlm_utf8_incomplete_tail(s, k), ref_utf8_incomplete_tail(s, k));
    check_nfc(cps, m);

    /* the pre-tokenizer: strictly increasing ends, the last at n; a short array gets the
     * same count */
    ends = xmalloc((m + 1) * sizeof *ends);
    nw = fvlm_qwen2_pretokenize((const char *)s, n, ends, m + 1);
    nw2 = fvlm_qwen2_pretokenize((const char *)s, n, small, 2);
    if (nw > m || nw2 != nw || (m > 0) != (nw > 0) || (nw && ends[nw - 1] != n))
        fail("pretokenize: %zu words (%zu with a short array) for %zu code points", nw, nw2, m);
    for (size_t i = 1; i < nw; i++)
        if (ends[i] <= ends[i - 1])
            fail("pretokenize: word %zu ends at %zu, before %zu", i, ends[i], ends[i - 1]);
    free(ends);
    free(cps);
}

/* ---------------------------------------------------------------- the reference encoder */

/* NFC of s[0..n) as bytes, appended to out. */
static void nfc_bytes(const uint8_t *s, size_t n, bytes *out)
{
    uint32_t *cps = xmalloc(n * sizeof *cps);
    uint32_t *norm = xmalloc(n * FVLM_UNICODE_MAX_DECOMP * sizeof *norm);
    size_t m = 0;
    for (size_t i = 0; i < n; m++)
        i += fvlm_utf8_decode(s + i, n - i, &cps[m]);
    m = fvlm_nfc(cps, m, norm);
    for (size_t i = 0; i < m; i++) {
        unsigned char e[4];
        bytes_put(out, e, fvlm_utf8_encode(norm[i], e));
    }
    free(cps);
    free(norm);
}

/* The longest allowed added token at s[0..n), or -1 (brute force over the list). */
static int32_t ref_added_at(const uint8_t *s, size_t n, bool parse_special)
{
    int32_t best = -1;
    for (int k = 0; k < V.n_added; k++) {
        const ref_token *t = &V.tokens[V.added[k]];
        if ((t->type == 4 || parse_special) && t->len <= n && !memcmp(s, t->s, t->len) &&
            (best < 0 || t->len > V.tokens[best].len))
            best = V.added[k];
    }
    return best;
}

/* Naive BPE of one word: merge the lowest-ranked adjacent pair, leftmost on ties. */
static void ref_bpe(const uint8_t *w, size_t n, ids *out)
{
    int32_t sym[REF_BPE_MAX_WORD];
    size_t k = n;
    for (size_t i = 0; i < n; i++)
        sym[i] = V.byte_token[w[i]];
    for (;;) {
        size_t pos = 0;
        const ref_merge *best = NULL;
        for (size_t i = 0; i + 1 < k; i++) {
            const ref_merge *m = ref_merge_slot(sym[i], sym[i + 1]);
            if (m->a >= 0 && (!best || m->rank < best->rank)) {
                best = m;
                pos = i;
            }
        }
        if (!best)
            break;
        sym[pos] = best->merged;
        memmove(sym + pos + 1, sym + pos + 2, (k - pos - 2) * sizeof *sym);
        k--;
    }
    for (size_t i = 0; i < k; i++)
        ids_put(out, sym[i]);
}

/* Expected bytes of the encoding (always) and ids (when *ids_ok stays true: every word
 * short enough for the naive BPE). */
static void ref_encode(const uint8_t *s, size_t n, bool parse_special, bytes *want,
                       ids *want_ids, bool *ids_ok)
{
    size_t start = 0, i = 0;
    *ids_ok = n <= REF_BPE_MAX_TEXT;
    for (;;) {
        int32_t id = i < n ? ref_added_at(s + i, n - i, parse_special) : -1;
        if (i < n && id < 0) {
            i++;
            continue;
        }
        /* the piece s[start..i): NFC, split into words, BPE */
        if (i > start) {
            bytes piece = {0};
            size_t nw, *ends, prev = 0;
            nfc_bytes(s + start, i - start, &piece);
            bytes_put(want, piece.p, piece.n);
            ends = xmalloc((piece.n + 1) * sizeof *ends);
            nw = fvlm_qwen2_pretokenize((const char *)piece.p, piece.n, ends, piece.n + 1);
            for (size_t w = 0; w < nw && *ids_ok; prev = ends[w], w++) {
                if (ends[w] - prev > REF_BPE_MAX_WORD)
                    *ids_ok = false;
                else
                    ref_bpe(piece.p + prev, ends[w] - prev, want_ids);
            }
            free(ends);
            free(piece.p);
        }
        if (i >= n)
            break;
        bytes_put(want, V.tokens[id].s, V.tokens[id].len);
        ids_put(want_ids, id);
        i += V.tokens[id].len;
        start = i;
    }
}

/* ---------------------------------------------------------------- detokenizer */

/* What the detokenizer must make of bytes s[0..n) as a whole: well-formed sequences copied,
 * each maximal subpart of an ill-formed one (the longest prefix of some well-formed
 * sequence, else one byte; Unicode §3.9, "U+FFFD substitution of maximal subparts")
 * replaced by one U+FFFD, and U+0000 (which a C string cannot carry) by U+FFFD too. */
static void ref_detok(const uint8_t *s, size_t n, bytes *out)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = ref_utf8_seq(s + i, n - i, &cp);
        if (k && cp == 0) {
            bytes_put(out, "\xEF\xBF\xBD", 3);
            i += k;
            continue;
        }
        if (k) {
            bytes_put(out, s + i, k);
            i += k;
            continue;
        }
        for (k = 3; k > 1; k--)
            if (i + k <= n && ref_utf8_proper_prefix(s + i, k))
                break;
        bytes_put(out, "\xEF\xBF\xBD", 3);
        i += k;
    }
}

/* Pushes ids[0..n) through a fresh detokenizer with an exactly-sized output buffer of cap
 * bytes per call (cap 0 allowed) and appends what comes out to out (if not NULL). */
static void detok_run(const int32_t *v, size_t n, bool skip_special, size_t cap, bytes *out)
{
    fastvlm_detok d = {{0}, 0};
    char *buf = cap ? xmalloc(cap) : NULL;
    for (size_t i = 0; i <= n; i++) {
        size_t w = i < n ? fastvlm_detok_push(&d, &V.model, v[i], skip_special, buf, cap)
                         : fastvlm_detok_flush(&d, buf, cap);
        if (cap == 0 ? w != 0 : (w >= cap || buf[w] != '\0'))
            fail("detok wrote %zu bytes with cap %zu (or no NUL)", w, cap);
        if (!ref_utf8_valid((const uint8_t *)buf, w))
            fail("detok output is not valid UTF-8 (token %zu)", i);
        if (d.n_pending > 3 || (i == n && d.n_pending != 0))
            fail("detok holds %zu pending bytes", d.n_pending);
        if (out)
            bytes_put(out, buf, w);
    }
    free(buf);
}

/* ---------------------------------------------------------------- the target */

static void check_encode(const uint8_t *s, size_t n, bool parse_special)
{
    fastvlm_error err;
    size_t n_out = 0, n2 = 0, n_short = n / 4;
    int32_t *v, *v_short = xmalloc(n_short * sizeof *v_short);
    fastvlm_status st;
    bytes got = {0}, want = {0}, detok = {0}, want_detok = {0};
    ids want_ids = {0};
    bool ids_ok;

    /* a buffer that may be short: NOMEM with the full count */
    st = fvlm_tokenizer_encode(V.tok, (const char *)s, n, parse_special, v_short, n_short,
                               &n_out, &err);
    if (st != FASTVLM_OK && st != FASTVLM_ERR_NOMEM)
        fail("encode: status %d: %s", (int)st, err.message);
    if ((st == FASTVLM_ERR_NOMEM) != (n_out > n_short))
        fail("encode: status %d with %zu ids for room %zu", (int)st, n_out, n_short);
    v = xmalloc(n_out * sizeof *v);
    st = fastvlm_tokenize(&V.model, (const char *)s, n, parse_special, v, n_out, &n2, &err);
    if (st != FASTVLM_OK || n2 != n_out)
        fail("encode with room for %zu: status %d, %zu ids", n_out, (int)st, n2);
    if (memcmp(v, v_short, (n_out < n_short ? n_out : n_short) * sizeof *v))
        fail("the short buffer got other ids");
    for (size_t i = 0; i < n_out; i++) {
        size_t len;
        const char *b = fvlm_tokenizer_token_bytes(V.tok, v[i], &len);
        if (v[i] < 0 || v[i] >= V.n_vocab || !b)
            fail("id %d out of range", v[i]);
        bytes_put(&got, b, len);
    }

    ref_encode(s, n, parse_special, &want, &want_ids, &ids_ok);
    if (got.n != want.n || !same(got.p, want.p, got.n))
        fail("decoded tokens (%zu bytes) differ from the NFC text (%zu bytes), special %d",
             got.n, want.n, parse_special);
    if (ids_ok && (want_ids.n != n_out || !same(want_ids.p, v, n_out * sizeof *v))) {
        size_t i = 0;
        while (i < n_out && i < want_ids.n && v[i] == want_ids.p[i])
            i++;
        fail("ids differ from the naive BPE at %zu: %d vs %d (%zu vs %zu ids)", i,
             i < n_out ? v[i] : -1, i < want_ids.n ? want_ids.p[i] : -1, n_out, want_ids.n);
    }

    /* detokenized with room to spare: the text, ill-formed parts replaced by U+FFFD */
    detok_run(v, n_out, false, V.detok_cap, &detok);
    ref_detok(want.p, want.n, &want_detok);
    if (detok.n != want_detok.n || !same(detok.p, want_detok.p, detok.n))
        fail("detok gives %zu bytes, not the %zu of the text with U+FFFD substitution",
             detok.n, want_detok.n);
    /* and with tiny and skip_special buffers: only the bounds and validity */
    detok_run(v, n_out, true, n % 7, NULL);

    free(v);
    free(v_short);
    free(got.p);
    free(want.p);
    free(detok.p);
    free(want_detok.p);
    free(want_ids.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    int32_t *v;
    size_t n;

    if (!ready) {
        init();
        ready = true;
    }
    check_unicode(data, size);
    check_encode(data, size, false);
    check_encode(data, size, true);

    /* arbitrary id sequences (two bytes per id, a few out of range) through the
     * detokenizer, with a cap from the first byte */
    n = size / 2;
    v = xmalloc((n + 1) * sizeof *v);
    memset(v, 0, (n + 1) * sizeof *v); /* n may be 0: keeps GCC's -Wmaybe-uninitialized quiet */
    for (size_t i = 0; i < n; i++)
        v[i] = (int32_t)((data[2 * i] | data[2 * i + 1] << 8) % (V.n_vocab + 8)) - 4;
    detok_run(v, n, size & 1, size ? data[0] % 12 : 0, NULL);
    {
        bytes got = {0}, raw = {0}, want = {0};
        detok_run(v, n, false, V.detok_cap, &got);
        for (size_t i = 0; i < n; i++) {
            size_t len;
            const char *b = fvlm_tokenizer_token_bytes(V.tok, v[i], &len);
            if (b)
                bytes_put(&raw, b, len);
        }
        ref_detok(raw.p, raw.n, &want);
        if (got.n != want.n || !same(got.p, want.p, got.n))
            fail("detok of %zu ids gives %zu bytes, not %zu", n, got.n, want.n);
        free(got.p);
        free(raw.p);
        free(want.p);
    }
    free(v);
    return 0;
}
