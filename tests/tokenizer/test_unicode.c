/*
 * test_unicode.c — engine/unicode.c against Unicode's own references:
 *   - UTF-8: every scalar value round-trips; the ill-formed sequences of the Unicode Standard
 *     (§3.9, Table 3-7 boundaries) are rejected one byte at a time; incomplete tails;
 *   - classes: code points whose General_Category is fixed knowledge (L, N, ECMAScript \s);
 *     the exhaustive comparison with node's regex engine is in the `tokenizer` suite;
 *   - NFC: NormalizationTest.txt (the UCD's conformance file, Debian unicode-data):
 *     c2 == NFC(c1) == NFC(c2) == NFC(c3) and c4 == NFC(c4) == NFC(c5) for every line, and
 *     NFC(X) == X for every code point X not listed in its Part 1. The quick check must never
 *     call a non-NFC string NFC.
 * The file is read from $FASTVLM_UCD_DIR (default /usr/share/unicode), plain or .bz2 (via
 * bzip2 -dc); if it is missing the test FAILS (install unicode-data), it does not skip.
 * Not a test of the tokenizer (test_tokenizer.c) or of the tables' generator as such.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gguf/check.h"
#include "unicode.h"

static void test_utf8(void)
{
    unsigned char buf[4];
    uint32_t cp;
    size_t bad = 0;

    for (uint32_t c = 0; c < 0x110000; c++) {
        size_t n, m;
        if (c >= 0xD800 && c <= 0xDFFF)
            continue;
        n = fvlm_utf8_encode(c, buf);
        m = fvlm_utf8_decode(buf, n, &cp);
        if (m != n || cp != c)
            bad++;
    }
    CHECK(bad == 0, "%zu scalar values do not round-trip", bad);

    /* Ill-formed: each must decode as one invalid byte (Table 3-7 boundaries). */
    static const struct { const char *s; size_t n; } ill[] = {
        {"\x80", 1}, {"\xBF", 1}, {"\xC0\x80", 2}, {"\xC1\xBF", 2}, {"\xE0\x80\x80", 3},
        {"\xE0\x9F\xBF", 3}, {"\xED\xA0\x80", 3}, {"\xED\xBF\xBF", 3}, {"\xF0\x80\x80\x80", 4},
        {"\xF0\x8F\xBF\xBF", 4}, {"\xF4\x90\x80\x80", 4}, {"\xF5\x80\x80\x80", 4},
        {"\xFF", 1}, {"\xFE", 1}, {"\xC3", 1}, {"\xE2\x82", 2}, {"\xF0\x9F\x98", 3},
        {"\xC3\x28", 2}, {"\xE2\x28\xA1", 3},
    };
    for (size_t i = 0; i < sizeof ill / sizeof ill[0]; i++) {
        size_t m = fvlm_utf8_decode((const unsigned char *)ill[i].s, ill[i].n, &cp);
        CHECK(m == 1 && cp == FVLM_UTF8_INVALID_BASE + (unsigned char)ill[i].s[0],
              "ill-formed case %zu decoded as %zu bytes, U+%X", i, m, cp);
        CHECK(fvlm_utf8_encode(cp, buf) == 1 && buf[0] == (unsigned char)ill[i].s[0],
              "invalid byte of case %zu not written back", i);
    }
    /* Boundaries that are well-formed. */
    CHECK(fvlm_utf8_decode((const unsigned char *)"\xE0\xA0\x80", 3, &cp) == 3 && cp == 0x800, "U+0800");
    CHECK(fvlm_utf8_decode((const unsigned char *)"\xED\x9F\xBF", 3, &cp) == 3 && cp == 0xD7FF, "U+D7FF");
    CHECK(fvlm_utf8_decode((const unsigned char *)"\xF4\x8F\xBF\xBF", 4, &cp) == 4 && cp == 0x10FFFF, "U+10FFFF");

    /* Incomplete tails: a valid prefix of a character at the end of the buffer. */
    CHECK(fvlm_utf8_incomplete_tail((const unsigned char *)"ab", 2) == 0, "ascii");
    CHECK(fvlm_utf8_incomplete_tail((const unsigned char *)"a\xC3", 2) == 1, "C3");
    CHECK(fvlm_utf8_incomplete_tail((const unsigned char *)"a\xC3\xA9", 3) == 0, "complete e-acute");
    CHECK(fvlm_utf8_incomplete_tail((const unsigned char *)"\xF0\x9F\x98", 3) == 3, "3 of 4");
    CHECK(fvlm_utf8_incomplete_tail((const unsigned char *)"\xF0\x9F", 2) == 2, "2 of 4");
    CHECK(fvlm_utf8_incomplete_tail((const unsigned char *)"\xE0\x80", 2) == 0, "E0 80 is invalid");
    CHECK(fvlm_utf8_incomplete_tail((const unsigned char *)"\xED\xA0", 2) == 0, "surrogate prefix");
    CHECK(fvlm_utf8_incomplete_tail((const unsigned char *)"\x80\x80", 2) == 0, "lone continuations");
    CHECK(fvlm_utf8_incomplete_tail((const unsigned char *)"\xF0\x9F\x98\x80", 4) == 0, "complete emoji");
}

static void test_classes(void)
{
    enum { L = FVLM_UCLASS_LETTER, N = FVLM_UCLASS_NUMBER, S = FVLM_UCLASS_SPACE };
    static const struct { uint32_t cp, cls; } k[] = {
        {'A', L}, {'z', L}, {'0', N}, {'9', N}, {' ', S}, {'\t', S}, {'\n', S}, {'\v', S},
        {'\f', S}, {'\r', S}, {'_', 0}, {'\'', 0}, {'-', 0}, {0x7F, 0}, {0x00, 0},
        {0x00A0, S}, {0x0085, 0} /* NEL: not \s in ECMAScript */, {0xFEFF, S}, {0x1680, S},
        {0x2000, S}, {0x200A, S}, {0x200B, 0}, {0x2028, S}, {0x2029, S}, {0x202F, S},
        {0x205F, S}, {0x3000, S}, {0x180E, 0},
        {0x00AA, L}, {0x00B5, L}, {0x00BA, L}, {0x00C0, L}, {0x00D7, 0}, {0x00DF, L},
        {0x01C5, L} /* Lt */, {0x02B0, L} /* Lm */, {0x0301, 0} /* Mn */, {0x0903, 0} /* Mc */,
        {0x0915, L}, {0x0966, N}, {0x0661, N}, {0x06F1, N}, {0x0E51, N}, {0x00B2, N},
        {0x00BD, N}, {0x2167, N} /* Nl */, {0x3007, N}, {0x2460, N}, {0xFF11, N},
        {0x4E00, L}, {0x9FA5, L}, {0x3042, L}, {0x30A2, L}, {0x30FC, L} /* Lm */, {0xAC00, L},
        {0xD7A3, L}, {0x1100, L}, {0x3131, L}, {0x05D0, L}, {0x0627, L}, {0x0E01, L},
        {0x20000, L}, {0x2A6D6, L}, {0x1D400, L}, {0x1D7CE, N}, {0x1F600, 0}, {0x1F3FB, 0},
        {0x200D, 0}, {0xFE0F, 0}, {0xE000, 0}, {0xFFFD, 0}, {0x10FFFF, 0}, {0x3002, 0},
        {0xFF0C, 0}, {0x2026, 0}, {FVLM_UTF8_INVALID_BASE + 0xFF, 0},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        CHECK(fvlm_unicode_class(k[i].cp) == k[i].cls, "U+%04X class %u, expected %u", k[i].cp,
              fvlm_unicode_class(k[i].cp), k[i].cls);
    CHECK(fvlm_unicode_ccc(0x0301) == 230 && fvlm_unicode_ccc(0x0323) == 220 &&
          fvlm_unicode_ccc(0x093C) == 7 && fvlm_unicode_ccc('a') == 0, "combining classes");
}

/* ---------------------------------------------------------------- NormalizationTest */

static FILE *open_normalization_test(int *is_pipe)
{
    const char *dir = getenv("FASTVLM_UCD_DIR");
    char path[1024], cmd[1200];
    FILE *f;
    if (!dir || !*dir)
        dir = "/usr/share/unicode";
    snprintf(path, sizeof path, "%s/NormalizationTest.txt", dir);
    if ((f = fopen(path, "r")) != NULL) {
        *is_pipe = 0;
        return f;
    }
    snprintf(path, sizeof path, "%s/NormalizationTest.txt.bz2", dir);
    if ((f = fopen(path, "r")) == NULL)
        return NULL;
    fclose(f);
    snprintf(cmd, sizeof cmd, "bzip2 -dc '%s'", path);
    *is_pipe = 1;
    return popen(cmd, "r");
}

/* Parses "0044 0307" into cps; returns the count (<= max). */
static size_t parse_cps(const char *s, const char *end, uint32_t *cps, size_t max)
{
    size_t n = 0;
    while (s < end && n < max) {
        char *e;
        unsigned long v;
        while (s < end && *s == ' ')
            s++;
        if (s >= end)
            break;
        v = strtoul(s, &e, 16);
        if (e == s)
            break;
        cps[n++] = (uint32_t)v;
        s = e;
    }
    return n;
}

static bool seq_eq(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    return na == nb && (na == 0 || !memcmp(a, b, na * sizeof *a));
}

static void print_seq(const char *label, const uint32_t *a, size_t n)
{
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %04X", a[i]);
    fputc('\n', stderr);
}

static void test_normalization_file(void)
{
    int is_pipe = 0;
    FILE *f = open_normalization_test(&is_pipe);
    char line[4096];
    static unsigned char in_part1[0x110000 / 8];
    int part = -1;
    long lines = 0, bad = 0, bad_qc = 0, bad_inv = 0;

    CHECK(f != NULL, "NormalizationTest.txt(.bz2) not found in $FASTVLM_UCD_DIR or "
                     "/usr/share/unicode: apt-get install unicode-data bzip2");
    if (!f)
        return;
    memset(in_part1, 0, sizeof in_part1);
    while (fgets(line, sizeof line, f)) {
        uint32_t c[5][32], nfc[32 * FVLM_UNICODE_MAX_DECOMP];
        size_t nc[5], nn;
        const char *p = line;
        if (line[0] == '@') {
            part = atoi(line + 5);
            continue;
        }
        if (line[0] == '#' || line[0] == '\n')
            continue;
        for (int k = 0; k < 5; k++) {
            const char *semi = strchr(p, ';');
            if (!semi)
                break;
            nc[k] = parse_cps(p, semi, c[k], 32);
            p = semi + 1;
        }
        lines++;
        if (part == 1 && nc[0] == 1)
            in_part1[c[0][0] >> 3] |= (unsigned char)(1u << (c[0][0] & 7));
        /* NFC conformance: c2 == NFC(c1) == NFC(c2) == NFC(c3); c4 == NFC(c4) == NFC(c5). */
        for (int k = 0; k < 5; k++) {
            const int want = k < 3 ? 1 : 3;
            nn = fvlm_nfc(c[k], nc[k], nfc);
            if (!seq_eq(nfc, nn, c[want], nc[want])) {
                if (bad++ < 20) {
                    fprintf(stderr, "NFC mismatch (line %ld, column %d):\n", lines, k + 1);
                    print_seq("input", c[k], nc[k]);
                    print_seq("ours", nfc, nn);
                    print_seq("expected", c[want], nc[want]);
                }
            }
            if (fvlm_nfc_quick_check(c[k], nc[k]) && !seq_eq(nfc, nn, c[k], nc[k]))
                bad_qc++;
        }
    }
    if (is_pipe)
        CHECK(pclose(f) == 0, "bzip2 -dc failed");
    else
        fclose(f);
    CHECK(lines > 15000, "only %ld lines read from NormalizationTest.txt", lines);
    CHECK(bad == 0, "%ld NFC mismatches in NormalizationTest.txt", bad);
    CHECK(bad_qc == 0, "%ld strings the quick check called NFC are not", bad_qc);

    /* Part 1 complement: every other code point is its own NFC. */
    for (uint32_t x = 0; x < 0x110000; x++) {
        uint32_t out[FVLM_UNICODE_MAX_DECOMP];
        size_t n;
        if ((x >= 0xD800 && x <= 0xDFFF) || (in_part1[x >> 3] >> (x & 7) & 1))
            continue;
        n = fvlm_nfc(&x, 1, out);
        if (n != 1 || out[0] != x) {
            if (bad_inv++ < 10)
                fprintf(stderr, "NFC(U+%04X) changed it, but it is not in Part 1\n", x);
        }
    }
    CHECK(bad_inv == 0, "%ld code points outside Part 1 are not NFC-invariant", bad_inv);
    printf("NormalizationTest: %ld lines, %ld mismatches\n", lines, bad);
}

/* Hand-picked NFC pairs (ASCII fast path, Hangul, singletons, exclusions, reordering). */
static void test_nfc_known(void)
{
    static const struct { uint32_t in[6]; size_t nin; uint32_t out[6]; size_t nout; } k[] = {
        {{'a', 'b'}, 2, {'a', 'b'}, 2},
        {{'e', 0x0301}, 2, {0x00E9}, 1},
        {{0x212B}, 1, {0x00C5}, 1},                        /* ANGSTROM SIGN, singleton */
        {{0x0958}, 1, {0x0915, 0x093C}, 2},                /* excluded composite */
        {{0x0344}, 1, {0x0308, 0x0301}, 2},                /* non-starter decomposition */
        {{'a', 0x0301, 0x0323}, 3, {0x1EA1, 0x0301}, 2},   /* reordered, then composed */
        {{0x1100, 0x1161}, 2, {0xAC00}, 1},                /* Hangul L V */
        {{0x1100, 0x1161, 0x11A8}, 3, {0xAC01}, 1},        /* Hangul L V T */
        {{0xAC00, 0x11A8}, 2, {0xAC01}, 1},                /* Hangul LV T */
        {{0xAC01, 0x11A8}, 2, {0xAC01, 0x11A8}, 2},        /* LVT + T: no */
        {{0x3131, 0x314F}, 2, {0x3131, 0x314F}, 2},        /* compatibility jamo: no */
        {{0x304B, 0x3099}, 2, {0x304C}, 1},                /* ka + dakuten -> ga */
        {{'e', FVLM_UTF8_INVALID_BASE + 0xFF, 0x0301}, 3,  /* an invalid byte blocks */
         {'e', FVLM_UTF8_INVALID_BASE + 0xFF, 0x0301}, 3},
        {{0x0301, 'e'}, 2, {0x0301, 'e'}, 2},              /* leading non-starter */
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        uint32_t out[6 * FVLM_UNICODE_MAX_DECOMP];
        size_t n = fvlm_nfc(k[i].in, k[i].nin, out);
        CHECK(seq_eq(out, n, k[i].out, k[i].nout), "known NFC case %zu", i);
    }
    {
        uint32_t ascii[3] = {'a', 'b', 'c'}, comb[2] = {'e', 0x0301};
        CHECK(fvlm_nfc_quick_check(ascii, 3), "ASCII is NFC");
        CHECK(!fvlm_nfc_quick_check(comb, 2), "e + U+0301 is not certainly NFC");
        CHECK(fvlm_nfc(ascii, 0, ascii) == 0, "empty");
    }
}

int main(void)
{
    printf("Unicode tables: UCD %s\n", fvlm_unicode_version);
    test_utf8();
    test_classes();
    test_nfc_known();
    test_normalization_file();
    return check_summary("test_unicode");
}
