/*
 * tokenizer.c — Qwen2's byte-level BPE, equal to HF `tokenizers` running Qwen's
 * tokenizer.json, built from a GGUF's llama.cpp-style tokenizer.ggml.* metadata.
 *
 * Encoding, in the order tokenizer.json applies it:
 *   1. added tokens: the text is cut at every occurrence of a CONTROL (type 3) or
 *      USER_DEFINED (type 4) token, leftmost-longest, on the raw bytes. CONTROL tokens only
 *      with parse_special; USER_DEFINED ones always, as HF does for non-special added
 *      tokens and llama.cpp does for user-defined ones.
 *   2. each piece between them: NFC (skipped when the quick check says it is NFC already),
 *   3. the Qwen2 pre-tokenizer regex, hand-written in split_next() below:
 *        (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}
 *        | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 *      (matches partition the text: every code point is L, N, \s or "other"),
 *   4. byte-level: every UTF-8 byte of a word becomes its GPT-2 bytes_to_unicode token,
 *   5. BPE: repeatedly merge the adjacent pair of lowest merge rank, leftmost first, with a
 *      heap of candidate pairs (O(n log n) per word, so 10k-byte words are cheap).
 * Decoding undoes the byte-level map; added tokens decode to their own text.
 *
 * No cache and no mutable state after load: encode allocates its scratch per call, so the
 * tokenizer is safe to share between threads. Invalid UTF-8 is never rejected: each bad byte
 * is an "other" character and becomes its byte token.
 * Not here: chat templates (session.c), special-token policy of the chat (session.c).
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "tokenizer.h"
#include "unicode.h"

/* llama.cpp's token types (tokenizer.ggml.token_type). */
enum {
    TOKTYPE_UNDEFINED = 0, TOKTYPE_NORMAL = 1, TOKTYPE_UNKNOWN = 2, TOKTYPE_CONTROL = 3,
    TOKTYPE_USER_DEFINED = 4, TOKTYPE_UNUSED = 5, TOKTYPE_BYTE = 6
};

/* One merge, keyed by the ids of its two halves. key == EMPTY_KEY marks a free slot
 * (ids are < 2^31, so (a << 32 | b) never has all bits set). */
#define EMPTY_KEY UINT64_MAX
typedef struct merge_slot {
    uint64_t key;      /* (uint64)left_id << 32 | right_id */
    int32_t rank;      /* index in tokenizer.ggml.merges: lower merges first */
    int32_t merged;    /* id of left+right */
} merge_slot;

struct fvlm_tokenizer {
    int32_t n_vocab;
    char *text;            /* vocabulary strings as in the file, each NUL-terminated */
    uint32_t *text_off;    /* [n_vocab] offsets into text */
    uint32_t *text_len;    /* [n_vocab] */
    char *bytes;           /* decoded bytes of each token, each NUL-terminated */
    uint32_t *bytes_off;   /* [n_vocab] */
    uint32_t *bytes_len;   /* [n_vocab] */
    uint8_t *type;         /* [n_vocab] TOKTYPE_* */

    int32_t *vocab_hash;   /* open addressing on text: token id or -1; size mask+1 */
    size_t vocab_mask;
    merge_slot *merges;    /* open addressing on (left, right) */
    size_t merge_mask;
    int32_t n_merges;

    int32_t byte_token[256];     /* id of the token of each byte's bytes_to_unicode char */

    /* Added tokens (CONTROL / USER_DEFINED) grouped by first byte, longest first within a
     * group: special[special_first[b] .. special_first[b + 1]). */
    int32_t *special;
    uint32_t special_first[257];
};

/* ---------------------------------------------------------------- byte-level map */

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes
 * to U+0100.. in byte order (so ' ' is U+0120 'Ġ', '\n' is U+010A 'Ċ'). Those 68 are
 * 0x00..0x20 (33), 0x7F..0xA0 (34) and 0xAD (1), which gives the closed forms below. */
static uint32_t byte_to_unicode(unsigned b)
{
    if (b <= 0x20)
        return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x100 + 33 + (b - 0x7F);
    if (b == 0xAD)
        return 0x100 + 67;
    return b;
}

/* Inverse: the byte a byte-level code point stands for, or -1. */
static int unicode_to_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 0x100 && cp < 0x100 + 33)
        return (int)(cp - 0x100);
    if (cp >= 0x100 + 33 && cp < 0x100 + 67)
        return (int)(cp - 0x100 - 33 + 0x7F);
    if (cp == 0x100 + 67)
        return 0xAD;
    return -1;
}

/* ---------------------------------------------------------------- hashing */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001B3ull;
    }
    return h;
}
#define FNV_SEED 0xCBF29CE484222325ull

static size_t mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDull;
    k ^= k >> 33;
    return (size_t)k;
}

/* Id of the token whose file string is a[0..na) followed by b[0..nb), or -1. */
static int32_t vocab_find2(const fvlm_tokenizer *t, const char *a, size_t na, const char *b,
                           size_t nb)
{
    size_t i = (size_t)fnv1a(fnv1a(FNV_SEED, a, na), b, nb) & t->vocab_mask;
    for (;; i = (i + 1) & t->vocab_mask) {
        int32_t id = t->vocab_hash[i];
        if (id < 0)
            return -1;
        if (t->text_len[id] == na + nb && !memcmp(t->text + t->text_off[id], a, na) &&
            !memcmp(t->text + t->text_off[id] + na, b, nb))
            return id;
    }
}

static const merge_slot *merge_find(const fvlm_tokenizer *t, int32_t left, int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = mix64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        if (t->merges[i].key == key)
            return &t->merges[i];
        if (t->merges[i].key == EMPTY_KEY)
            return NULL;
    }
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

/* ---------------------------------------------------------------- load */

void fvlm_tokenizer_free(fvlm_tokenizer *t)
{
    if (!t)
        return;
    free(t->text);
    free(t->text_off);
    free(t->text_len);
    free(t->bytes);
    free(t->bytes_off);
    free(t->bytes_len);
    free(t->type);
    free(t->vocab_hash);
    free(t->merges);
    free(t->special);
    free(t);
}

/* Byte-level decoding of a vocabulary string into dst (room for n bytes; a byte-level
 * string never decodes longer than itself). Returns the length, or (size_t)-1 when some
 * character is not a byte-level character (the caller then keeps the string as is, like
 * HF's ByteLevel decoder). */
static size_t byte_level_decode(const char *s, size_t n, char *dst)
{
    size_t i = 0, m = 0;
    while (i < n) {
        uint32_t cp;
        int b;
        i += fvlm_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        b = unicode_to_byte(cp);
        if (b < 0)
            return (size_t)-1;
        dst[m++] = (char)b;
    }
    return m;
}

static int cmp_special_len_desc(const void *pa, const void *pb, const fvlm_tokenizer *t)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    unsigned char fa = (unsigned char)t->text[t->text_off[a]];
    unsigned char fb = (unsigned char)t->text[t->text_off[b]];
    if (fa != fb)
        return fa < fb ? -1 : 1;
    if (t->text_len[a] != t->text_len[b])
        return t->text_len[a] > t->text_len[b] ? -1 : 1;
    return a < b ? -1 : (a > b);
}

/* Insertion sort (a few dozen added tokens) so the comparator can see the tokenizer
 * without a global. */
static void sort_specials(fvlm_tokenizer *t, int32_t *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        int32_t x = v[i];
        size_t j = i;
        while (j > 0 && cmp_special_len_desc(&v[j - 1], &x, t) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

fastvlm_status fvlm_tokenizer_load(const fvlm_gguf *g, fvlm_tokenizer **out, fastvlm_error *err)
{
    const char *path = fvlm_gguf_path(g);
    fvlm_tokenizer *t = NULL;
    fvlm_gguf_str s;
    int64_t k_tokens, k_types, k_merges;
    uint64_t n, n_merges;
    size_t total = 0, n_special = 0;
    fastvlm_status st;

    *out = NULL;
    st = fvlm_gguf_req_str(g, "tokenizer.ggml.model", &s, err);
    if (st != FASTVLM_OK)
        return st;
    if (!fvlm_gguf_str_eq(s, "gpt2"))
        return fvlm_set_error(err, FASTVLM_ERR_UNSUPPORTED,
                              "%s: tokenizer.ggml.model is '%.*s'; only 'gpt2' (byte-level BPE) "
                              "is supported", path, (int)(s.len > 64 ? 64 : s.len), s.ptr);
    st = fvlm_gguf_req_str(g, "tokenizer.ggml.pre", &s, err);
    if (st != FASTVLM_OK)
        return st;
    if (!fvlm_gguf_str_eq(s, "qwen2"))
        return fvlm_set_error(err, FASTVLM_ERR_UNSUPPORTED,
                              "%s: tokenizer.ggml.pre is '%.*s'; only the 'qwen2' pre-tokenizer "
                              "is implemented", path, (int)(s.len > 64 ? 64 : s.len), s.ptr);

    k_tokens = fvlm_gguf_find_key(g, "tokenizer.ggml.tokens");
    if (k_tokens < 0)
        return fvlm_set_error(err, FASTVLM_ERR_MISSING,
                              "%s: metadata key 'tokenizer.ggml.tokens' is missing", path);
    if (fvlm_gguf_arr_type(g, k_tokens) != FVLM_GGUF_STRING)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                              "%s: tokenizer.ggml.tokens is not an array of strings", path);
    n = fvlm_gguf_arr_n(g, k_tokens);
    if (n < 256 || n > (uint64_t)INT32_MAX / 4)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                              "%s: tokenizer.ggml.tokens has %llu entries (expected 256 .. 2^29)",
                              path, (unsigned long long)n);
    k_merges = fvlm_gguf_find_key(g, "tokenizer.ggml.merges");
    if (k_merges < 0)
        return fvlm_set_error(err, FASTVLM_ERR_MISSING,
                              "%s: metadata key 'tokenizer.ggml.merges' is missing", path);
    if (fvlm_gguf_arr_type(g, k_merges) != FVLM_GGUF_STRING)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                              "%s: tokenizer.ggml.merges is not an array of strings", path);
    n_merges = fvlm_gguf_arr_n(g, k_merges);
    if (n_merges > (uint64_t)INT32_MAX / 4)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: tokenizer.ggml.merges has %llu entries",
                              path, (unsigned long long)n_merges);
    k_types = fvlm_gguf_find_key(g, "tokenizer.ggml.token_type");
    if (k_types >= 0 && fvlm_gguf_arr_n(g, k_types) != n)
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                              "%s: tokenizer.ggml.token_type has %llu entries, tokens has %llu",
                              path, (unsigned long long)fvlm_gguf_arr_n(g, k_types),
                              (unsigned long long)n);

    /* Vocabulary strings: copy (NUL-terminated) so the tokenizer does not depend on the
     * file mapping. The file bounds every string by its own size. */
    for (uint64_t i = 0; i < n; i++) {
        if (!fvlm_gguf_arr_get_str(g, k_tokens, i, &s))
            return fvlm_set_error(err, FASTVLM_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%llu] unreadable",
                                  path, (unsigned long long)i);
        total += (size_t)s.len + 1;
        if (total >= UINT32_MAX / 2)
            return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                                  "%s: tokenizer.ggml.tokens holds more than 2 GiB of text", path);
    }

    t = calloc(1, sizeof *t);
    if (!t)
        goto nomem;
    t->n_vocab = (int32_t)n;
    t->text = malloc(total);
    t->bytes = malloc(total);
    t->text_off = malloc(n * sizeof *t->text_off);
    t->text_len = malloc(n * sizeof *t->text_len);
    t->bytes_off = malloc(n * sizeof *t->bytes_off);
    t->bytes_len = malloc(n * sizeof *t->bytes_len);
    t->type = malloc(n);
    t->vocab_mask = pow2_at_least(2 * n) - 1;
    t->vocab_hash = malloc((t->vocab_mask + 1) * sizeof *t->vocab_hash);
    if (!t->text || !t->bytes || !t->text_off || !t->text_len || !t->bytes_off ||
        !t->bytes_len || !t->type || !t->vocab_hash)
        goto nomem;
    memset(t->vocab_hash, 0xFF, (t->vocab_mask + 1) * sizeof *t->vocab_hash);

    {
        uint32_t off = 0, boff = 0;
        for (uint64_t i = 0; i < n; i++) {
            int64_t ty = TOKTYPE_NORMAL;
            size_t h, blen;
            if (!fvlm_gguf_arr_get_str(g, k_tokens, i, &s) || !s.ptr)
                s.ptr = "", s.len = 0;   /* checked readable above */
            if (k_types >= 0 && !fvlm_gguf_arr_get_i64(g, k_types, i, &ty))
                goto bad_types;
            if (ty < 0 || ty > TOKTYPE_BYTE) {
                fvlm_tokenizer_free(t);
                return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                                      "%s: tokenizer.ggml.token_type[%llu] = %lld is not a token type",
                                      path, (unsigned long long)i, (long long)ty);
            }
            t->type[i] = (uint8_t)ty;
            t->text_off[i] = off;
            t->text_len[i] = (uint32_t)s.len;
            memcpy(t->text + off, s.ptr, s.len);
            t->text[off + s.len] = '\0';
            off += (uint32_t)s.len + 1;

            /* Decoded bytes: added tokens are stored as their own text; the others are
             * byte-level strings (kept verbatim if they are not, like HF's decoder). */
            blen = (size_t)-1;
            if (ty != TOKTYPE_CONTROL && ty != TOKTYPE_USER_DEFINED && ty != TOKTYPE_UNUSED)
                blen = byte_level_decode(s.ptr, s.len, t->bytes + boff);
            if (blen == (size_t)-1) {
                memcpy(t->bytes + boff, s.ptr, s.len);
                blen = s.len;
            }
            t->bytes[boff + blen] = '\0';
            t->bytes_off[i] = boff;
            t->bytes_len[i] = (uint32_t)blen;
            boff += (uint32_t)blen + 1;

            /* First occurrence of a string wins (llama.cpp's [PAD] fillers are distinct). */
            if (vocab_find2(t, s.ptr, s.len, "", 0) < 0) {
                h = (size_t)fnv1a(fnv1a(FNV_SEED, s.ptr, s.len), "", 0) & t->vocab_mask;
                while (t->vocab_hash[h] >= 0)
                    h = (h + 1) & t->vocab_mask;
                t->vocab_hash[h] = (int32_t)i;
            }
            if ((ty == TOKTYPE_CONTROL || ty == TOKTYPE_USER_DEFINED) && s.len > 0)
                n_special++;
        }
    }

    /* The 256 byte tokens every word starts from. */
    for (unsigned b = 0; b < 256; b++) {
        unsigned char u[4];
        size_t ul = fvlm_utf8_encode(byte_to_unicode(b), u);
        t->byte_token[b] = vocab_find2(t, (const char *)u, ul, "", 0);
        if (t->byte_token[b] < 0) {
            fvlm_tokenizer_free(t);
            return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                                  "%s: tokenizer.ggml.tokens has no token for byte 0x%02X ('%.*s')",
                                  path, b, (int)ul, (const char *)u);
        }
    }

    /* Merges "left right" (rank = index) resolved to ids once, so BPE works on ids. */
    t->n_merges = (int32_t)n_merges;
    t->merge_mask = pow2_at_least(2 * (size_t)n_merges) - 1;
    t->merges = malloc((t->merge_mask + 1) * sizeof *t->merges);
    if (!t->merges)
        goto nomem;
    for (size_t i = 0; i <= t->merge_mask; i++)
        t->merges[i].key = EMPTY_KEY;
    for (uint64_t r = 0; r < n_merges; r++) {
        const char *sp;
        size_t la, lb;
        int32_t a, b, ab;
        uint64_t key;
        size_t h;
        s.ptr = NULL;
        s.len = 0;
        if (!fvlm_gguf_arr_get_str(g, k_merges, r, &s) || !s.ptr)
            goto bad_merge;
        /* Byte-level strings never hold a real space, so the first one (after position 0,
         * as llama.cpp splits) separates the halves. */
        sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp)
            goto bad_merge;
        la = (size_t)(sp - s.ptr);
        lb = s.len - la - 1;
        a = vocab_find2(t, s.ptr, la, "", 0);
        b = vocab_find2(t, sp + 1, lb, "", 0);
        ab = vocab_find2(t, s.ptr, la, sp + 1, lb);
        if (a < 0 || b < 0 || ab < 0)
            goto bad_merge;
        key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        for (h = mix64(key) & t->merge_mask; t->merges[h].key != EMPTY_KEY;
             h = (h + 1) & t->merge_mask)
            if (t->merges[h].key == key)
                break;
        if (t->merges[h].key == key)
            continue;                   /* a repeated merge keeps its first (lower) rank */
        t->merges[h].key = key;
        t->merges[h].rank = (int32_t)r;
        t->merges[h].merged = ab;
        continue;
    bad_merge:
        fvlm_tokenizer_free(t);
        return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                              "%s: tokenizer.ggml.merges[%llu] = '%.*s' is not 'left right' with "
                              "left, right and left+right in tokenizer.ggml.tokens",
                              path, (unsigned long long)r, (int)(s.len > 80 ? 80 : s.len),
                              s.ptr ? s.ptr : "");
    }

    /* Added tokens, grouped by first byte, longest first. */
    t->special = malloc((n_special ? n_special : 1) * sizeof *t->special);
    if (!t->special)
        goto nomem;
    {
        size_t j = 0;
        for (int32_t i = 0; i < t->n_vocab; i++)
            if ((t->type[i] == TOKTYPE_CONTROL || t->type[i] == TOKTYPE_USER_DEFINED) &&
                t->text_len[i] > 0)
                t->special[j++] = i;
        sort_specials(t, t->special, n_special);
        memset(t->special_first, 0, sizeof t->special_first);
        for (size_t i = 0; i < n_special; i++)
            t->special_first[(unsigned char)t->text[t->text_off[t->special[i]]] + 1]++;
        for (unsigned b = 0; b < 256; b++)
            t->special_first[b + 1] += t->special_first[b];
    }

    *out = t;
    return FASTVLM_OK;

bad_types:
    fvlm_tokenizer_free(t);
    return fvlm_set_error(err, FASTVLM_ERR_FORMAT,
                          "%s: tokenizer.ggml.token_type is not an integer array", path);
nomem:
    fvlm_tokenizer_free(t);
    return fvlm_set_error(err, FASTVLM_ERR_NOMEM, "%s: out of memory building the tokenizer "
                          "(%llu tokens, %llu merges)", path, (unsigned long long)n,
                          (unsigned long long)n_merges);
}

/* ---------------------------------------------------------------- accessors */

int32_t fvlm_tokenizer_n_vocab(const fvlm_tokenizer *t)
{
    return t ? t->n_vocab : 0;
}

const char *fvlm_tokenizer_token_bytes(const fvlm_tokenizer *t, int32_t id, size_t *len)
{
    if (!t || id < 0 || id >= t->n_vocab) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = t->bytes_len[id];
    return t->bytes + t->bytes_off[id];
}

/* CONTROL tokens (<|im_end|> ...) and llama.cpp's UNUSED padding: never text. */
bool fvlm_tokenizer_is_special(const fvlm_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->n_vocab)
        return false;
    return t->type[id] == TOKTYPE_CONTROL || t->type[id] == TOKTYPE_UNUSED;
}

int32_t fvlm_tokenizer_find(const fvlm_tokenizer *t, const char *s)
{
    if (!t || !s)
        return -1;
    return vocab_find2(t, s, strlen(s), "", 0);
}

/* ---------------------------------------------------------------- encode */

/* Per-call scratch; each array grown as needed and freed at the end of encode. The NFC
 * buffers are only allocated for text that fails the quick check. */
typedef struct encode_ws {
    uint32_t *cp;       /* decoded code points of a piece of text */
    uint32_t *norm;     /* its NFC (up to FVLM_UNICODE_MAX_DECOMP per code point) */
    uint8_t *cls;       /* FVLM_UCLASS_* of each (normalised) code point */
    size_t *off;        /* byte offset of each code point in the text (+1 for the end) */
    unsigned char *utf8;/* the text re-encoded after NFC */
    size_t cap_cp, cap_norm, cap_cls, cap_off, cap_utf8;   /* elements each array holds */
    /* BPE */
    struct bpe_sym { int32_t id, prev, next; } *sym;
    struct bpe_cand { int32_t rank, pos, left, right; } *heap;
    size_t cap_sym;     /* symbols; the heap holds 3x this */
    /* output */
    int32_t *ids;
    size_t n_max, n;
} encode_ws;

/* Returns p if it holds `need` elements of `elem` bytes, else frees it and returns a new
 * block of at least `need` (contents are not kept), or NULL; *cap follows. */
static void *ws_grow(void *p, size_t *cap, size_t need, size_t elem)
{
    size_t c = need < 256 ? 256 : need;
    if (need <= *cap)
        return p;
    free(p);
    *cap = 0;
    if (c > SIZE_MAX / elem || !(p = malloc(c * elem)))
        return NULL;
    *cap = c;
    return p;
}
/* Grows the workspace array `f` (with capacity field cap_f) to `need` elements. */
#define WS_GROW(w, f, need) (((w)->f = ws_grow((w)->f, &(w)->cap_##f, (need), sizeof *(w)->f)) != NULL)

static bool ws_reserve_sym(encode_ws *w, size_t n)
{
    size_t cap;
    if (n <= w->cap_sym)
        return true;
    cap = n < 256 ? 256 : n;
    if (cap > (size_t)INT32_MAX / 4)
        return false;
    free(w->sym); free(w->heap);
    w->sym = malloc(cap * sizeof *w->sym);
    w->heap = malloc(3 * cap * sizeof *w->heap);
    w->cap_sym = (w->sym && w->heap) ? cap : 0;
    return w->cap_sym != 0;
}

static void ws_free(encode_ws *w)
{
    free(w->cp); free(w->norm); free(w->cls); free(w->off); free(w->utf8);
    free(w->sym); free(w->heap);
}

static void emit(encode_ws *w, int32_t id)
{
    if (w->n < w->n_max)
        w->ids[w->n] = id;
    w->n++;
}

/* Heap order: lower rank first, then the leftmost pair (HF's tie-break). */
static bool cand_less(const struct bpe_cand *a, const struct bpe_cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct bpe_cand *h, size_t *n, struct bpe_cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static struct bpe_cand heap_pop(struct bpe_cand *h, size_t *n)
{
    struct bpe_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l >= *n)
            break;
        m = (l + 1 < *n && cand_less(&h[l + 1], &h[l])) ? l + 1 : l;
        if (!cand_less(&h[m], &last))
            break;
        h[i] = h[m];
        i = m;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

static void push_pair(const fvlm_tokenizer *t, encode_ws *w, size_t *nh, int32_t pos)
{
    int32_t next = w->sym[pos].next;
    const merge_slot *m;
    if (next < 0)
        return;
    m = merge_find(t, w->sym[pos].id, w->sym[next].id);
    if (m) {
        struct bpe_cand c = {m->rank, pos, w->sym[pos].id, w->sym[next].id};
        heap_push(w->heap, nh, c);
    }
}

/* BPE of one pre-tokenized word (raw bytes). */
static bool bpe_word(const fvlm_tokenizer *t, encode_ws *w, const unsigned char *s, size_t n)
{
    size_t nh = 0;
    if (n == 1) {
        emit(w, t->byte_token[s[0]]);
        return true;
    }
    if (!ws_reserve_sym(w, n))
        return false;
    for (size_t i = 0; i < n; i++) {
        w->sym[i].id = t->byte_token[s[i]];
        w->sym[i].prev = (int32_t)i - 1;
        w->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(t, w, &nh, (int32_t)i);
    while (nh > 0) {
        struct bpe_cand c = heap_pop(w->heap, &nh);
        struct bpe_sym *l = &w->sym[c.pos], *r;
        const merge_slot *m;
        /* Stale candidates: the left symbol was merged away (id -1) or changed, or its
         * right neighbour is no longer the one this pair was made with. */
        if (l->id != c.left || l->next < 0 || w->sym[l->next].id != c.right)
            continue;
        r = &w->sym[l->next];
        m = merge_find(t, c.left, c.right);
        l->id = m->merged;
        l->next = r->next;
        if (r->next >= 0)
            w->sym[r->next].prev = c.pos;
        r->id = -1;
        if (l->prev >= 0)
            push_pair(t, w, &nh, l->prev);
        push_pair(t, w, &nh, c.pos);
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next)
        emit(w, w->sym[i].id);
    return true;
}

static bool is_crlf(uint32_t c)
{
    return c == '\r' || c == '\n';
}

static uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* End of the pre-tokenizer regex match that starts at i (< n); see the file comment. The
 * alternatives are tried in the regex's order, with its backtracking worked out by hand. */
static size_t split_next(const uint32_t *cp, const uint8_t *cls, size_t n, size_t i)
{
    enum { L = FVLM_UCLASS_LETTER, N = FVLM_UCLASS_NUMBER, S = FVLM_UCLASS_SPACE };
    uint32_t c = cp[i];
    size_t j, e;

    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) — ASCII case-insensitive, as the JS port spells it */
    if (c == '\'' && i + 1 < n) {
        uint32_t a = ascii_lower(cp[i + 1]);
        if (a == 's' || a == 't' || a == 'm' || a == 'd')
            return i + 2;
        if (i + 2 < n) {
            uint32_t b = ascii_lower(cp[i + 2]);
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
                return i + 3;
        }
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    j = i;
    if (!(cls[i] & (L | N)) && !is_crlf(c) && i + 1 < n && (cls[i + 1] & L))
        j = i + 1;
    if (cls[j] & L) {
        while (j < n && (cls[j] & L))
            j++;
        return j;
    }
    /* \p{N} */
    if (cls[i] & N)
        return i + 1;
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    j = i;
    if (c == ' ' && i + 1 < n && cls[i + 1] == 0)
        j = i + 1;
    if (cls[j] == 0) {
        while (j < n && cls[j] == 0)
            j++;
        while (j < n && is_crlf(cp[j]))
            j++;
        return j;
    }
    /* Only whitespace is left: let [i, e) be the whole whitespace run. */
    e = i;
    while (e < n && (cls[e] & S))
        e++;
    /* \s*[\r\n]+ : up to and including the run's last \r or \n */
    for (j = e; j > i; j--)
        if (is_crlf(cp[j - 1]))
            return j;
    /* \s+(?!\S) : the run, minus its last character when something follows */
    if (e == n)
        return e;
    if (e - i >= 2)
        return e - 1;
    /* \s+ */
    return e;
}

size_t fvlm_qwen2_pretokenize(const char *text, size_t len, size_t *ends, size_t max)
{
    const unsigned char *s = (const unsigned char *)text;
    uint32_t *cp = malloc((len ? len : 1) * sizeof *cp);
    uint8_t *cls = malloc(len ? len : 1);
    size_t *off = malloc((len + 1) * sizeof *off);
    size_t m = 0, n_words = 0;

    if (!cp || !cls || !off) {
        free(cp); free(cls); free(off);
        return (size_t)-1;
    }
    for (size_t i = 0; i < len; m++) {
        off[m] = i;
        i += fvlm_utf8_decode(s + i, len - i, &cp[m]);
        cls[m] = (uint8_t)fvlm_unicode_class(cp[m]);
    }
    off[m] = len;
    for (size_t i = 0; i < m; n_words++) {
        i = split_next(cp, cls, m, i);
        if (n_words < max)
            ends[n_words] = off[i];
    }
    free(cp); free(cls); free(off);
    return n_words;
}

/* Steps 2-5 for a piece of text containing no added token. */
static bool encode_text(const fvlm_tokenizer *t, encode_ws *w, const unsigned char *s, size_t n)
{
    size_t m = 0, i;
    const uint32_t *cps;
    const unsigned char *bytes;

    if (n == 0)
        return true;
    if (!WS_GROW(w, cp, n) || !WS_GROW(w, off, n + 1))
        return false;
    for (i = 0; i < n; m++) {
        w->off[m] = i;
        i += fvlm_utf8_decode(s + i, n - i, &w->cp[m]);
    }
    w->off[m] = n;
    cps = w->cp;
    bytes = s;
    if (!fvlm_nfc_quick_check(w->cp, m)) {
        size_t k = 0, room = m * FVLM_UNICODE_MAX_DECOMP;
        if (m > SIZE_MAX / (4 * FVLM_UNICODE_MAX_DECOMP) ||
            !WS_GROW(w, norm, room) || !WS_GROW(w, off, room + 1) || !WS_GROW(w, utf8, room * 4))
            return false;
        m = fvlm_nfc(w->cp, m, w->norm);
        for (i = 0; i < m; i++) {
            w->off[i] = k;
            k += fvlm_utf8_encode(w->norm[i], w->utf8 + k);
        }
        w->off[m] = k;
        cps = w->norm;
        bytes = w->utf8;
    }
    if (!WS_GROW(w, cls, m))
        return false;
    for (i = 0; i < m; i++)
        w->cls[i] = (uint8_t)fvlm_unicode_class(cps[i]);
    for (i = 0; i < m;) {
        size_t e = split_next(cps, w->cls, m, i);
        if (!bpe_word(t, w, bytes + w->off[i], w->off[e] - w->off[i]))
            return false;
        i = e;
    }
    return true;
}

/* Longest allowed added token at s[0..n), or -1. */
static int32_t match_special(const fvlm_tokenizer *t, const unsigned char *s, size_t n,
                             bool parse_special)
{
    for (uint32_t k = t->special_first[s[0]]; k < t->special_first[s[0] + 1]; k++) {
        int32_t id = t->special[k];
        size_t len = t->text_len[id];
        if (len <= n && !memcmp(s, t->text + t->text_off[id], len) &&
            (parse_special || t->type[id] == TOKTYPE_USER_DEFINED))
            return id;
    }
    return -1;
}

fastvlm_status fvlm_tokenizer_encode(const fvlm_tokenizer *t, const char *text, size_t len,
                                     bool parse_special, int32_t *ids, size_t n_max,
                                     size_t *n_out, fastvlm_error *err)
{
    const unsigned char *s = (const unsigned char *)text;
    encode_ws w;
    size_t start = 0;
    bool ok = true;

    if (n_out)
        *n_out = 0;
    if (!t || (!text && len > 0) || (!ids && n_max > 0) || !n_out)
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG,
                              "fvlm_tokenizer_encode: NULL tokenizer, text, ids or n_out");
    memset(&w, 0, sizeof w);
    w.ids = ids;
    w.n_max = n_max;

    /* 1. Cut at added tokens, then encode the text between them. */
    for (size_t i = 0; i < len && ok;) {
        int32_t id = t->special_first[s[i]] != t->special_first[s[i] + 1]
                         ? match_special(t, s + i, len - i, parse_special) : -1;
        if (id < 0) {
            i++;
            continue;
        }
        ok = encode_text(t, &w, s + start, i - start);
        emit(&w, id);
        i += t->text_len[id];
        start = i;
    }
    if (ok)
        ok = encode_text(t, &w, s + start, len - start);
    ws_free(&w);
    if (!ok)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM,
                              "fvlm_tokenizer_encode: out of memory for %zu bytes of text", len);
    *n_out = w.n;
    if (w.n > n_max)
        return fvlm_set_error(err, FASTVLM_ERR_NOMEM,
                              "fvlm_tokenizer_encode: %zu tokens do not fit in %zu", w.n, n_max);
    fvlm_clear_error(err);
    return FASTVLM_OK;
}

/* ---------------------------------------------------------------- public API */

fastvlm_status fastvlm_tokenize(const fastvlm_model *model, const char *text, size_t len,
                                bool parse_special, int32_t *ids, size_t n_max, size_t *n_out,
                                fastvlm_error *err)
{
    if (!model || !model->tok) {
        if (n_out)
            *n_out = 0;
        return fvlm_set_error(err, FASTVLM_ERR_INVALID_ARG, "fastvlm_tokenize: no model");
    }
    return fvlm_tokenizer_encode(model->tok, text, len, parse_special, ids, n_max, n_out, err);
}

const char *fastvlm_token_bytes(const fastvlm_model *model, int32_t id, size_t *len)
{
    if (!model) {
        if (len)
            *len = 0;
        return NULL;
    }
    return fvlm_tokenizer_token_bytes(model->tok, id, len);
}

bool fastvlm_token_is_special(const fastvlm_model *model, int32_t id)
{
    return model && fvlm_tokenizer_is_special(model->tok, id);
}

/* Appends bytes to out[*w..cap-1) only whole: a character that does not fit is dropped
 * (the output stays valid UTF-8). */
static void put(char *out, size_t cap, size_t *w, const unsigned char *b, size_t n)
{
    if (cap > 0 && *w + n < cap) {
        memcpy(out + *w, b, n);
        *w += n;
    }
}

/* Moves the pending bytes plus b[0..n) to out as complete UTF-8 characters; an invalid
 * sequence (its maximal valid prefix, Unicode §3.9) becomes U+FFFD, and so does a NUL byte
 * (a C string cannot carry it: a byte-0 token would silently cut the text). A valid but
 * incomplete sequence at the end stays pending, unless `final`, when it too becomes
 * U+FFFD. */
static size_t detok_run(fastvlm_detok *d, const unsigned char *b, size_t n, bool final,
                        char *out, size_t cap)
{
    static const unsigned char fffd[3] = {0xEF, 0xBF, 0xBD};
    unsigned char buf[sizeof d->pending];
    size_t np = d->n_pending <= sizeof d->pending ? d->n_pending : 0;
    size_t total = np + n, i = 0, w = 0;

    memcpy(buf, d->pending, np);
    d->n_pending = 0;
#define AT(k) ((k) < np ? buf[(k)] : b[(k) - np])
    while (i < total) {
        unsigned char c = AT(i), tmp[4];
        size_t len, k;
        if (c < 0x80) {
            if (c)
                put(out, cap, &w, &c, 1);
            else
                put(out, cap, &w, fffd, 3);
            i++;
            continue;
        }
        len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (len == 0) {
            put(out, cap, &w, fffd, 3);
            i++;
            continue;
        }
        tmp[0] = c;
        for (k = 1; k < len && i + k < total; k++) {
            unsigned char x = AT(i + k), lo = 0x80, hi = 0xBF;
            if (k == 1) {
                if (c == 0xE0) lo = 0xA0;
                if (c == 0xED) hi = 0x9F;
                if (c == 0xF0) lo = 0x90;
                if (c == 0xF4) hi = 0x8F;
            }
            if (x < lo || x > hi)
                break;
            tmp[k] = x;
        }
        if (k == len) {
            put(out, cap, &w, tmp, len);
        } else if (i + k == total && !final) {
            memcpy(d->pending, tmp, k);      /* k <= 3 */
            d->n_pending = k;
        } else {
            put(out, cap, &w, fffd, 3);
        }
        i += k;
    }
#undef AT
    if (cap > 0)
        out[w] = '\0';
    return w;
}

size_t fastvlm_detok_push(fastvlm_detok *d, const fastvlm_model *model, int32_t id,
                          bool skip_special, char *out, size_t cap)
{
    const char *bytes;
    size_t len;

    if (out && cap > 0)
        out[0] = '\0';
    if (!d || !model || (!out && cap > 0))
        return 0;
    bytes = fvlm_tokenizer_token_bytes(model->tok, id, &len);
    if (!bytes || (skip_special && fvlm_tokenizer_is_special(model->tok, id)))
        return 0;
    return detok_run(d, (const unsigned char *)bytes, len, false, out, cap);
}

size_t fastvlm_detok_flush(fastvlm_detok *d, char *out, size_t cap)
{
    if (out && cap > 0)
        out[0] = '\0';
    if (!d || (!out && cap > 0))
        return 0;
    return detok_run(d, (const unsigned char *)"", 0, true, out, cap);
}
