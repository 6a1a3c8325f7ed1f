/*
 * unicode.h — the little Unicode the tokenizer needs: UTF-8 decoding that never fails
 * (invalid bytes become FVLM_UTF8_INVALID_BASE + byte), the three character classes of the
 * Qwen2 pre-tokenizer regex (\p{L}, \p{N}, \s), and NFC normalisation. Tables are generated
 * from the Unicode Character Database into unicode_tables.c by tools/gen_unicode_tables.py.
 * Not here: the pre-tokenizer split rule and BPE (tokenizer.c), case mapping, NFKC, scripts.
 *
 * \s follows ECMAScript (Zs, TAB..CR, U+2028, U+2029, U+FEFF), the semantics of the JS port
 * of HF tokenizers that the equivalence test runs. The Rust/onig regex behind Python's
 * `tokenizers` uses Unicode White_Space instead, which differs on two code points only:
 * U+0085 (space in Rust, not in JS) and U+FEFF (space in JS, not in Rust).
 */
#ifndef FVLM_UNICODE_H
#define FVLM_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A byte that does not start a valid UTF-8 sequence decodes to this + byte (so 0x110080 ..
 * 0x1100FF): out of the Unicode range, class 0, combining class 0, never composes, and
 * fvlm_utf8_encode() writes the original byte back. */
#define FVLM_UTF8_INVALID_BASE 0x110000u
/* Longest full canonical decomposition of one code point (checked by the generator). */
#define FVLM_UNICODE_MAX_DECOMP 4

/* Class flags (bit set). A code point has at most one of them. */
enum {
    FVLM_UCLASS_LETTER = 1,   /* \p{L}: Lu Ll Lt Lm Lo */
    FVLM_UCLASS_NUMBER = 2,   /* \p{N}: Nd Nl No */
    FVLM_UCLASS_SPACE = 4     /* ECMAScript \s */
};

/* ---- generated tables (unicode_tables.c) ---- */
typedef struct fvlm_urange { uint32_t first, last; uint32_t value; } fvlm_urange;
typedef struct fvlm_udecomp { uint32_t cp; uint16_t offset; uint8_t len; } fvlm_udecomp;
typedef struct fvlm_ucompose { uint32_t first, second, composite; } fvlm_ucompose;

extern const char fvlm_unicode_version[];          /* e.g. "15.0.0" */
extern const fvlm_urange fvlm_uclass_ranges[];     /* value = FVLM_UCLASS_* flags */
extern const size_t fvlm_uclass_n;
extern const fvlm_urange fvlm_ccc_ranges[];        /* value = canonical combining class */
extern const size_t fvlm_ccc_n;
extern const fvlm_urange fvlm_nfcqc_ranges[];      /* value 1 = NFC_QC No, 2 = Maybe */
extern const size_t fvlm_nfcqc_n;
extern const fvlm_udecomp fvlm_decomp_index[];     /* sorted by cp */
extern const size_t fvlm_decomp_n;
extern const uint32_t fvlm_decomp_pool[];
extern const fvlm_ucompose fvlm_compose_pairs[];   /* sorted by (first, second) */
extern const size_t fvlm_compose_n;

/* ---- UTF-8 ---- */

/* Decodes one code point from s[0..n) (n >= 1) and returns the bytes consumed (1..4).
 * Strict: overlongs, surrogates, > U+10FFFF and truncated sequences are invalid, and then
 * exactly one byte is consumed and *cp = FVLM_UTF8_INVALID_BASE + s[0]. */
size_t fvlm_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Writes cp as UTF-8 into out (4 bytes room) and returns the length (1..4); an
 * FVLM_UTF8_INVALID_BASE + b value writes the single byte b. */
size_t fvlm_utf8_encode(uint32_t cp, unsigned char *out);
/* Length of the longest prefix of s[0..n) that can be the start of a valid UTF-8 sequence
 * but is still incomplete at the end of the buffer (0 when the buffer ends on a character
 * boundary or with invalid bytes). Used by the streaming detokenizer. */
size_t fvlm_utf8_incomplete_tail(const unsigned char *s, size_t n);

/* ---- classes and normalisation data ---- */

uint32_t fvlm_unicode_class(uint32_t cp);          /* FVLM_UCLASS_* flags, 0 = none */
uint8_t fvlm_unicode_ccc(uint32_t cp);             /* canonical combining class */

/* True when cps[0..n) is certainly already in NFC (quick check: no NFC_QC No/Maybe code
 * point and combining classes in canonical order). ASCII and Latin-1 cost one compare. */
bool fvlm_nfc_quick_check(const uint32_t *cps, size_t n);
/* NFC of in[0..n) into out, which must hold n * FVLM_UNICODE_MAX_DECOMP code points;
 * returns the output length (<= that bound). in and out must not overlap. */
size_t fvlm_nfc(const uint32_t *in, size_t n, uint32_t *out);

#endif
