/*
 * unicode_dump.c — prints what engine/unicode.c thinks of every code point, for
 * check_unicode.js to compare with node's own Unicode engine (ICU / V8 regex):
 *   line 1: one digit per code point U+0000..U+10FFFF, the FVLM_UCLASS_* flags (0..7);
 *   then, for each code point whose NFC is not itself: "CP: X Y ..." in hex.
 * Not a test by itself (it asserts nothing).
 */
#include <stdio.h>

#include "unicode.h"

int main(void)
{
    static char line[0x110000 + 1];
    for (uint32_t c = 0; c < 0x110000; c++)
        line[c] = (char)('0' + fvlm_unicode_class(c));
    line[0x110000] = '\0';
    puts(line);
    for (uint32_t c = 0; c < 0x110000; c++) {
        uint32_t out[FVLM_UNICODE_MAX_DECOMP];
        size_t n;
        if (c >= 0xD800 && c <= 0xDFFF)
            continue;
        n = fvlm_nfc(&c, 1, out);
        if (n == 1 && out[0] == c)
            continue;
        printf("%X:", c);
        for (size_t i = 0; i < n; i++)
            printf(" %X", out[i]);
        putchar('\n');
    }
    return fflush(stdout) != 0;
}
