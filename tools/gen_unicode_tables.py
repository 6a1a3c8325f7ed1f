#!/usr/bin/python3
"""gen_unicode_tables.py — writes engine/unicode_tables.c from the Unicode Character Database.

What it is: the generator of the tables the tokenizer needs and nothing else:
  * character classes used by the Qwen2 pre-tokenizer regex: \\p{L} (Lu Ll Lt Lm Lo),
    \\p{N} (Nd Nl No) and \\s as ECMAScript defines it (Zs + TAB LF VT FF CR + U+2028
    U+2029 U+FEFF), because the reference we are tested against is the JS port of HF
    tokenizers (see the note in engine/unicode.h about U+0085 / U+FEFF);
  * NFC: canonical combining classes, full (recursive) canonical decompositions, the
    primary-composite pairs (two-code-point canonical decompositions minus
    Full_Composition_Exclusion) and the NFC_Quick_Check No/Maybe ranges.
Hangul syllables are not tabled: engine/unicode.c composes/decomposes them arithmetically.
What it is not: a general Unicode library generator (no case mapping, no NFKC, no scripts).

Usage (Debian: apt-get install unicode-data):
  /usr/bin/python3 tools/gen_unicode_tables.py [/usr/share/unicode] > engine/unicode_tables.c
The output is committed; rerun only to move to a newer UCD.
"""

import os
import re
import sys


def read_unicode_data(ucd):
    """Yields (cp, name, gc, ccc, decomposition) for every assigned code point, expanding
    the <..., First>/<..., Last> ranges."""
    first = None
    with open(os.path.join(ucd, "UnicodeData.txt"), encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            if len(fields) < 15:
                continue
            cp = int(fields[0], 16)
            name, gc, ccc, decomp = fields[1], fields[2], int(fields[3]), fields[5]
            if name.endswith(", First>"):
                first = cp
                continue
            if name.endswith(", Last>"):
                for c in range(first, cp + 1):
                    yield c, name, gc, ccc, ""
                first = None
                continue
            yield cp, name, gc, ccc, decomp


def read_derived(ucd, fname, prop, value=None):
    """Code points listed in a UCD property file for `prop` (and `value` if given)."""
    out = set()
    rx = re.compile(r"^([0-9A-F]+)(?:\.\.([0-9A-F]+))?\s*;\s*([A-Za-z_]+)\s*(?:;\s*([A-Za-z]+))?")
    with open(os.path.join(ucd, fname), encoding="utf-8") as f:
        for line in f:
            m = rx.match(line)
            if not m or m.group(3) != prop:
                continue
            if value is not None and m.group(4) != value:
                continue
            lo = int(m.group(1), 16)
            hi = int(m.group(2), 16) if m.group(2) else lo
            out.update(range(lo, hi + 1))
    return out


def ucd_version(ucd):
    with open(os.path.join(ucd, "DerivedNormalizationProps.txt"), encoding="utf-8") as f:
        m = re.search(r"DerivedNormalizationProps-([0-9.]+)\.txt", f.readline())
    return m.group(1) if m else "unknown"


def ranges_of(values):
    """{cp: v} -> sorted [(first, last, v)] merging runs of equal v."""
    out = []
    for cp in sorted(values):
        v = values[cp]
        if out and out[-1][1] == cp - 1 and out[-1][2] == v:
            out[-1][1] = cp
        else:
            out.append([cp, cp, v])
    return out


def main():
    ucd = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/unicode"
    version = ucd_version(ucd)

    gc_of, ccc_of, decomp_of = {}, {}, {}
    for cp, _name, gc, ccc, decomp in read_unicode_data(ucd):
        gc_of[cp] = gc
        if ccc:
            ccc_of[cp] = ccc
        if decomp and not decomp.startswith("<"):
            decomp_of[cp] = [int(x, 16) for x in decomp.split()]

    # ---- classes
    LETTER, NUMBER, SPACE = 1, 2, 4
    js_space = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x2028, 0x2029, 0xFEFF}
    js_space |= {cp for cp, gc in gc_of.items() if gc == "Zs"}
    flags = {}
    for cp, gc in gc_of.items():
        f = 0
        if gc in ("Lu", "Ll", "Lt", "Lm", "Lo"):
            f |= LETTER
        if gc in ("Nd", "Nl", "No"):
            f |= NUMBER
        if f:
            flags[cp] = f
    for cp in js_space:
        flags[cp] = flags.get(cp, 0) | SPACE
    class_ranges = ranges_of(flags)

    # ---- NFC data
    def full_decomp(cp):
        if cp not in decomp_of:
            return [cp]
        out = []
        for c in decomp_of[cp]:
            out.extend(full_decomp(c))
        return out

    decomps = {cp: full_decomp(cp) for cp in decomp_of}
    max_decomp = max(len(v) for v in decomps.values())
    exclusions = read_derived(ucd, "DerivedNormalizationProps.txt", "Full_Composition_Exclusion")
    pairs = sorted((d[0], d[1], cp) for cp, d in decomp_of.items()
                   if len(d) == 2 and cp not in exclusions)
    qc_no = read_derived(ucd, "DerivedNormalizationProps.txt", "NFC_QC", "N")
    qc_maybe = read_derived(ucd, "DerivedNormalizationProps.txt", "NFC_QC", "M")
    qc = {cp: 1 for cp in qc_no}
    qc.update({cp: 2 for cp in qc_maybe})
    qc_ranges = ranges_of(qc)
    ccc_ranges = ranges_of(ccc_of)
    # The quick check in unicode.c skips everything below U+0300 without a lookup.
    assert all(r[0] >= 0x300 for r in qc_ranges) and all(r[0] >= 0x300 for r in ccc_ranges)

    w = sys.stdout.write
    w("/*\n * unicode_tables.c — GENERATED by tools/gen_unicode_tables.py from the Unicode "
      "Character\n * Database %s (Debian package unicode-data). Do not edit: rerun the "
      "generator.\n * Tables for engine/unicode.c (layout: see unicode.h); not an API of its "
      "own.\n */\n" % version)
    w('#include "unicode.h"\n\n')
    w('const char fvlm_unicode_version[] = "%s";\n\n' % version)

    w("/* \\p{L} / \\p{N} / ECMAScript \\s: %d ranges of FVLM_UCLASS_* flags. */\n"
      % len(class_ranges))
    w("const fvlm_urange fvlm_uclass_ranges[] = {\n")
    for a, b, v in class_ranges:
        w("    {0x%04X, 0x%04X, %d},\n" % (a, b, v))
    w("};\nconst size_t fvlm_uclass_n = %d;\n\n" % len(class_ranges))

    w("/* Canonical_Combining_Class != 0: %d ranges of the class value. */\n" % len(ccc_ranges))
    w("const fvlm_urange fvlm_ccc_ranges[] = {\n")
    for a, b, v in ccc_ranges:
        w("    {0x%04X, 0x%04X, %d},\n" % (a, b, v))
    w("};\nconst size_t fvlm_ccc_n = %d;\n\n" % len(ccc_ranges))

    w("/* NFC_Quick_Check: value 1 = No, 2 = Maybe (%d ranges; absent = Yes). */\n"
      % len(qc_ranges))
    w("const fvlm_urange fvlm_nfcqc_ranges[] = {\n")
    for a, b, v in qc_ranges:
        w("    {0x%04X, 0x%04X, %d},\n" % (a, b, v))
    w("};\nconst size_t fvlm_nfcqc_n = %d;\n\n" % len(qc_ranges))

    pool = []
    entries = []
    for cp in sorted(decomps):
        d = decomps[cp]
        entries.append((cp, len(pool), len(d)))
        pool.extend(d)
    w("/* Full canonical decompositions (Hangul excluded): %d code points; each entry\n"
      " * indexes `len` code points of fvlm_decomp_pool. Longest: %d. */\n"
      % (len(entries), max_decomp))
    w("const fvlm_udecomp fvlm_decomp_index[] = {\n")
    for cp, off, n in entries:
        w("    {0x%04X, %d, %d},\n" % (cp, off, n))
    w("};\nconst size_t fvlm_decomp_n = %d;\n" % len(entries))
    w("const uint32_t fvlm_decomp_pool[] = {\n")
    for i in range(0, len(pool), 8):
        w("    " + " ".join("0x%04X," % c for c in pool[i:i + 8]) + "\n")
    w("};\n\n")

    w("/* Primary composites: (first, second) -> composite, sorted by (first, second);\n"
      " * %d pairs (Hangul excluded). */\n" % len(pairs))
    w("const fvlm_ucompose fvlm_compose_pairs[] = {\n")
    for a, b, c in pairs:
        w("    {0x%04X, 0x%04X, 0x%04X},\n" % (a, b, c))
    w("};\nconst size_t fvlm_compose_n = %d;\n" % len(pairs))

    sys.stderr.write("UCD %s: %d class ranges, %d ccc ranges, %d qc ranges, %d decompositions "
                     "(max %d), %d composition pairs\n" % (
                         version, len(class_ranges), len(ccc_ranges), len(qc_ranges),
                         len(entries), max_decomp, len(pairs)))
    if max_decomp > 4:
        sys.stderr.write("error: FVLM_UNICODE_MAX_DECOMP (4) in unicode.h is too small\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
