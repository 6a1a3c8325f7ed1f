/*
 * unicode.c — UTF-8 decoding/encoding, character classes and NFC (UAX #15) over the
 * generated tables in unicode_tables.c. Hangul syllables are decomposed and composed
 * arithmetically (Unicode §3.12), so they are not in the tables.
 * Not here: anything about tokens (tokenizer.c). No allocation, no state: every function
 * is a pure function of its arguments, so any number of threads may call them.
 */
#include "unicode.h"

/* Hangul syllable arithmetic (Unicode 15.0 §3.12). */
enum {
    HANGUL_S_BASE = 0xAC00, HANGUL_L_BASE = 0x1100, HANGUL_V_BASE = 0x1161,
    HANGUL_T_BASE = 0x11A7, HANGUL_L_COUNT = 19, HANGUL_V_COUNT = 21, HANGUL_T_COUNT = 28,
    HANGUL_N_COUNT = HANGUL_V_COUNT * HANGUL_T_COUNT,     /* 588 */
    HANGUL_S_COUNT = HANGUL_L_COUNT * HANGUL_N_COUNT      /* 11172 */
};

/* ---------------------------------------------------------------- UTF-8 */

/* For a lead byte: the sequence length (0 = not a lead byte) and the valid range of the
 * second byte, which is where overlongs, surrogates and > U+10FFFF are excluded. */
static int utf8_lead(unsigned char b, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b < 0x80) return 1;
    if (b < 0xC2) return 0;
    if (b < 0xE0) return 2;
    if (b < 0xF0) {
        if (b == 0xE0) *lo = 0xA0;
        if (b == 0xED) *hi = 0x9F;
        return 3;
    }
    if (b < 0xF5) {
        if (b == 0xF0) *lo = 0x90;
        if (b == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

size_t fvlm_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char lo, hi;
    int len = utf8_lead(s[0], &lo, &hi);
    uint32_t c;

    if (len == 1) {
        *cp = s[0];
        return 1;
    }
    if (len == 0 || (size_t)len > n || s[1] < lo || s[1] > hi)
        goto invalid;
    c = s[0] & (0xFFu >> (len + 1));
    c = (c << 6) | (s[1] & 0x3Fu);
    for (int i = 2; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            goto invalid;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    *cp = c;
    return (size_t)len;
invalid:
    *cp = FVLM_UTF8_INVALID_BASE + s[0];
    return 1;
}

size_t fvlm_utf8_encode(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp < 0x110000) {
        out[0] = (unsigned char)(0xF0 | (cp >> 18));
        out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (unsigned char)(0x80 | (cp & 0x3F));
        return 4;
    }
    out[0] = (unsigned char)(cp - FVLM_UTF8_INVALID_BASE);   /* an invalid byte, verbatim */
    return 1;
}

size_t fvlm_utf8_incomplete_tail(const unsigned char *s, size_t n)
{
    /* A valid incomplete tail is a lead byte followed by fewer continuation bytes than it
     * needs, all in range: look back at most 3 bytes for the lead. */
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char lo, hi;
        const unsigned char *p = s + n - k;
        int len = utf8_lead(p[0], &lo, &hi);
        if (len == 0 && (p[0] & 0xC0) == 0x80)
            continue;                         /* a continuation byte: keep looking back */
        if (len <= (int)k)
            return 0;                         /* ASCII, invalid, or a complete sequence */
        if (k >= 2 && (p[1] < lo || p[1] > hi))
            return 0;
        for (size_t i = 2; i < k; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        return k;
    }
    return 0;
}

/* ---------------------------------------------------------------- table lookups */

static uint32_t range_lookup(const fvlm_urange *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].first)
            hi = mid;
        else if (cp > r[mid].last)
            lo = mid + 1;
        else
            return r[mid].value;
    }
    return 0;
}

/* ASCII classes: the overwhelmingly common case skips the binary search. */
static const uint8_t ascii_class[128] = {
    ['\t'] = FVLM_UCLASS_SPACE, ['\n'] = FVLM_UCLASS_SPACE, ['\v'] = FVLM_UCLASS_SPACE,
    ['\f'] = FVLM_UCLASS_SPACE, ['\r'] = FVLM_UCLASS_SPACE, [' '] = FVLM_UCLASS_SPACE,
    ['0'] = 2, ['1'] = 2, ['2'] = 2, ['3'] = 2, ['4'] = 2,
    ['5'] = 2, ['6'] = 2, ['7'] = 2, ['8'] = 2, ['9'] = 2,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

uint32_t fvlm_unicode_class(uint32_t cp)
{
    if (cp < 128)
        return ascii_class[cp];
    return range_lookup(fvlm_uclass_ranges, fvlm_uclass_n, cp);
}

uint8_t fvlm_unicode_ccc(uint32_t cp)
{
    if (cp < 0x300)
        return 0;
    return (uint8_t)range_lookup(fvlm_ccc_ranges, fvlm_ccc_n, cp);
}

/* Full canonical decomposition of cp, or NULL (then *len = 0). */
static const uint32_t *decomp_lookup(uint32_t cp, size_t *len)
{
    size_t lo = 0, hi = fvlm_decomp_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < fvlm_decomp_index[mid].cp)
            hi = mid;
        else if (cp > fvlm_decomp_index[mid].cp)
            lo = mid + 1;
        else {
            *len = fvlm_decomp_index[mid].len;
            return fvlm_decomp_pool + fvlm_decomp_index[mid].offset;
        }
    }
    *len = 0;
    return NULL;
}

/* The primary composite of (a, b), or 0 when they do not compose. */
static uint32_t compose_pair(uint32_t a, uint32_t b)
{
    size_t lo = 0, hi = fvlm_compose_n;

    /* Hangul: L + V -> LV, LV + T -> LVT. */
    if (a - HANGUL_L_BASE < HANGUL_L_COUNT && b - HANGUL_V_BASE < HANGUL_V_COUNT)
        return HANGUL_S_BASE + ((a - HANGUL_L_BASE) * HANGUL_V_COUNT + (b - HANGUL_V_BASE)) *
                               HANGUL_T_COUNT;
    if (a - HANGUL_S_BASE < HANGUL_S_COUNT && (a - HANGUL_S_BASE) % HANGUL_T_COUNT == 0 &&
        b - HANGUL_T_BASE - 1 < HANGUL_T_COUNT - 1)
        return a + (b - HANGUL_T_BASE);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const fvlm_ucompose *p = &fvlm_compose_pairs[mid];
        if (a < p->first || (a == p->first && b < p->second))
            hi = mid;
        else if (a > p->first || b > p->second)
            lo = mid + 1;
        else
            return p->composite;
    }
    return 0;
}

/* ---------------------------------------------------------------- NFC */

bool fvlm_nfc_quick_check(const uint32_t *cps, size_t n)
{
    uint8_t last_ccc = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cps[i];
        uint8_t ccc;
        if (c < 0x300) {          /* every code point below U+0300 is NFC_QC=Yes, ccc 0 */
            last_ccc = 0;
            continue;
        }
        ccc = fvlm_unicode_ccc(c);
        if (ccc != 0 && last_ccc > ccc)
            return false;
        if (range_lookup(fvlm_nfcqc_ranges, fvlm_nfcqc_n, c) != 0)
            return false;         /* No, or Maybe (may compose with what precedes it) */
        last_ccc = ccc;
    }
    return true;
}

size_t fvlm_nfc(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t m = 0;

    /* 1. Full canonical decomposition. */
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        size_t len;
        const uint32_t *d;
        if (c - HANGUL_S_BASE < HANGUL_S_COUNT) {
            uint32_t s = c - HANGUL_S_BASE, t = s % HANGUL_T_COUNT;
            out[m++] = HANGUL_L_BASE + s / HANGUL_N_COUNT;
            out[m++] = HANGUL_V_BASE + (s % HANGUL_N_COUNT) / HANGUL_T_COUNT;
            if (t)
                out[m++] = HANGUL_T_BASE + t;
            continue;
        }
        d = c < 0xC0 ? NULL : decomp_lookup(c, &len);
        if (d) {
            for (size_t k = 0; k < len; k++)
                out[m++] = d[k];
        } else {
            out[m++] = c;
        }
    }

    /* 2. Canonical ordering: stable sort of each run of non-starters by ccc (runs are
     * short — insertion sort). */
    for (size_t i = 1; i < m; i++) {
        uint8_t ci = fvlm_unicode_ccc(out[i]);
        size_t j = i;
        if (ci == 0)
            continue;
        while (j > 0) {
            uint8_t cj = fvlm_unicode_ccc(out[j - 1]);
            if (cj == 0 || cj <= ci)
                break;
            uint32_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
            j--;
        }
    }

    /* 3. Canonical composition (UAX #15 §1.3): a character composes with the last starter
     * unless blocked (an intervening character of equal or higher class, or an intervening
     * starter). last_ccc = 256 marks "no usable starter yet". In place: the write index
     * never passes the read index. */
    if (m == 0)
        return 0;
    {
        size_t starter = 0, w = 1;
        int last_ccc = fvlm_unicode_ccc(out[0]) ? 256 : 0;
        for (size_t i = 1; i < m; i++) {
            uint32_t c = out[i];
            int ccc = fvlm_unicode_ccc(c);
            uint32_t comp = (last_ccc < ccc || last_ccc == 0) && last_ccc != 256
                                ? compose_pair(out[starter], c) : 0;
            if (comp) {
                out[starter] = comp;
                continue;
            }
            if (ccc == 0)
                starter = w;
            last_ccc = ccc;
            out[w++] = c;
        }
        m = w;
    }
    return m;
}
