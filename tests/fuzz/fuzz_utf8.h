/*
 * fuzz_utf8.h — the fuzz targets' own UTF-8 rules, written from RFC 3629 / Unicode §3.9
 * (decode, then check the range) rather than engine/unicode.c's lead-byte table, so that
 * the targets can check the engine against something that is not the engine.
 * Header-only (static inline functions): included by fuzz_tokenizer.c and fuzz_tokenizer_load.c.
 */
#ifndef FUZZ_UTF8_H
#define FUZZ_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed sequence at s[0..n) with its code point in *cp, or 0. */
static inline size_t ref_utf8_seq(const uint8_t *s, size_t n, uint32_t *cp)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len;
    uint32_t c;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0)
        len = 2;
    else if ((s[0] & 0xF0) == 0xE0)
        len = 3;
    else if ((s[0] & 0xF8) == 0xF0)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    c = s[0] & (0x7Fu >> len);
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (s[k] & 0x3Fu);
    }
    if (c < min_cp[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

static inline bool ref_utf8_valid(const uint8_t *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = ref_utf8_seq(s + i, n - i, &cp)))
            return false;
    return true;
}

/* True when s[0..k) (k >= 1) is the start of some well-formed sequence longer than k: the
 * missing bytes are filled with the smallest and the largest continuation byte, and the
 * code points in between must include a valid one for that length. */
static inline bool ref_utf8_proper_prefix(const uint8_t *s, size_t k)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len;
    uint32_t lo, hi;

    if ((s[0] & 0xE0) == 0xC0)
        len = 2;
    else if ((s[0] & 0xF0) == 0xE0)
        len = 3;
    else if ((s[0] & 0xF8) == 0xF0)
        len = 4;
    else
        return false;
    if (k >= len)
        return false;
    lo = hi = s[0] & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if (i < k && (s[i] & 0xC0) != 0x80)
            return false;
        lo = lo << 6 | (i < k ? (s[i] & 0x3Fu) : 0x00);
        hi = hi << 6 | (i < k ? (s[i] & 0x3Fu) : 0x3F);
    }
    if (lo < min_cp[len])
        lo = min_cp[len];
    if (hi > 0x10FFFF)
        hi = 0x10FFFF;
    if (lo > hi)
        return false;
    /* [lo, hi] minus the surrogates is empty only when it lies inside them */
    return !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* What fvlm_utf8_incomplete_tail() must return: the k in 1..3 for which the last k bytes
 * are such a proper prefix (there is at most one), else 0. */
static inline size_t ref_utf8_incomplete_tail(const uint8_t *s, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++)
        if (ref_utf8_proper_prefix(s + n - k, k))
            return k;
    return 0;
}

#endif
