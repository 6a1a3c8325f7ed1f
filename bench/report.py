#!/usr/bin/python3
"""report.py — turns the JSON files bench/run_bench.sh leaves in its results directory into
the markdown tables of bench/RESULTS.md (side-by-side numbers and ratios).

What it is: a formatter. Inputs (any may be missing; a missing or failed run shows as "-"):
  machine.md                      machine and command description (copied verbatim)
  fastvlm-llm-NAME.json           `fastvlm bench --json` on the language-model file NAME
  llama-bench-NAME.json           `llama-bench -o json` on the same file (pp and tg rows)
  fastvlm-vision-TYPE.json        `fastvlm bench --json` with the full-size tower, mmproj TYPE
  torch-vision.json               bench/torch_vision_bench.py on the same checkpoint
Ratios are speed ratios "fastvlm / other": above 1 means fastvlm is faster.
What it is not: a runner (run_bench.sh) — it never starts a benchmark.

usage: report.py RESULTS_DIR
"""

import glob
import json
import os
import sys

LLM_ORDER = ["f16", "q8_0", "balanced", "q4_0", "q4_k_m"]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def pm(med, spread, key, nd=1):
    """'median ±half-range' when a spread is present."""
    if med is None:
        return "-"
    sp = (spread or {}).get(key) if isinstance(spread, dict) else None
    if sp:
        return f"{med:.{nd}f} ±{(sp['max'] - sp['min']) / 2:.{nd}f}"
    return f"{med:.{nd}f}"


def llama_rows(j):
    """(pp tok/s, pp stddev, tg tok/s, tg stddev, build) from llama-bench's JSON array."""
    pp = tg = pps = tgs = None
    build = None
    for row in j or []:
        build = build or f"{row.get('build_commit', '?')} (build {row.get('build_number', '?')})"
        if row.get("n_prompt", 0) > 0 and row.get("n_gen", 0) == 0:
            pp, pps = row.get("avg_ts"), row.get("stddev_ts")
        elif row.get("n_gen", 0) > 0 and row.get("n_prompt", 0) == 0:
            tg, tgs = row.get("avg_ts"), row.get("stddev_ts")
    return pp, pps, tg, tgs, build


def names(d, prefix, order):
    found = [os.path.basename(p)[len(prefix):-5] for p in glob.glob(os.path.join(d, prefix + "*.json"))]
    return [n for n in order if n in found] + sorted(n for n in found if n not in order)


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print("usage: report.py RESULTS_DIR", file=sys.stderr)
        return 2
    d = sys.argv[1]
    out = []
    m = os.path.join(d, "machine.md")
    if os.path.exists(m):
        with open(m) as f:
            out.append(f.read().rstrip() + "\n")

    # ---- language model
    llm = sorted(set(n for n in names(d, "fastvlm-llm-", LLM_ORDER) if not n.startswith("exact-"))
                 | set(names(d, "llama-bench-", LLM_ORDER)),
                 key=lambda n: (LLM_ORDER.index(n) if n in LLM_ORDER else 99, n))
    if llm:
        builds = set()
        pp_n = tg_n = None
        rows = []
        variants = []
        for n in llm:
            variants.append((n, f"fastvlm-llm-{n}.json"))
            if os.path.exists(os.path.join(d, f"fastvlm-llm-exact-{n}.json")):
                variants.append((n, f"fastvlm-llm-exact-{n}.json"))
        for n, fname in variants:
            f = load(os.path.join(d, fname)) or {}
            label = f"{n} ({f.get('precision', 'exact' if 'exact' in fname else 'fast')})"
            lpp, lpps, ltg, ltgs, build = llama_rows(load(os.path.join(d, f"llama-bench-{n}.json")))
            if build:
                builds.add(build)
            pp_n = pp_n or f.get("n_prompt")
            tg_n = tg_n or f.get("n_gen")
            size = f.get("model_bytes")
            sp = f.get("spread") or {}
            rows.append(
                f"| {label} | {fmt(size / 2**20 if size else None, 0)} | "
                f"{pm(f.get('prefill_tok_s'), sp, 'prefill_tok_s')} | "
                f"{fmt(lpp)}{'' if lpps is None else f' ±{lpps:.1f}'} | "
                f"{ratio(f.get('prefill_tok_s'), lpp)} | "
                f"{pm(f.get('decode_tok_s'), sp, 'decode_tok_s', 2)} | "
                f"{fmt(ltg, 2)}{'' if ltgs is None else f' ±{ltgs:.2f}'} | "
                f"{ratio(f.get('decode_tok_s'), ltg)} | "
                f"{pm(f.get('ttft_ms'), sp, 'ttft_ms', 0)} | {fmt(f.get('load_ms'))} | "
                f"{fmt(f.get('peak_rss_mb'), 0)} |")
        pp_s, tg_s = f"pp{pp_n or '?'}", f"tg{tg_n or '?'}"
        out.append("## Language model (random weights; shapes in the run description)\n")
        out.append(f"Tokens per second (median ±half-range for fastvlm, mean ±stddev for "
                   f"llama-bench); ratio = fastvlm / llama.cpp (> 1: fastvlm faster).\n")
        out.append(f"| file | MiB | fastvlm {pp_s} | llama.cpp {pp_s} | ratio | fastvlm {tg_s} | "
                   f"llama.cpp {tg_s} | ratio | fastvlm TTFT ms | load ms | peak RSS MiB |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        out.extend(rows)
        if builds:
            out.append(f"\nllama.cpp build: {', '.join(sorted(builds))}")
        out.append("")

    # ---- vision
    vis = names(d, "fastvlm-vision-", ["f32", "f16", "q8_0", "q4_0"])
    torch_j = load(os.path.join(d, "torch-vision.json")) or {}
    tv = torch_j.get("vision_ms") or {}
    if vis or tv:
        sizes = sorted({int(s) for n in vis
                        for s in ((load(os.path.join(d, f"fastvlm-vision-{n}.json")) or {})
                                  .get("vision_ms") or {})} | {int(s) for s in tv})
        out.append("## Vision tower + projector (random weights; shapes in the run description)\n")
        out.append(f"Milliseconds per image (median ±half-range); ratio = PyTorch ms / fastvlm ms "
                   f"(> 1: fastvlm faster). PyTorch {torch_j.get('torch', '?')}, "
                   f"{torch_j.get('dtype', '?')}, {torch_j.get('threads', '?')} threads, eager.\n")
        head = "| engine | mmproj MiB |" + "".join(f" {s}×{s} ms | ratio |" for s in sizes)
        out.append(head)
        out.append("|---|---|" + "---|---|" * len(sizes))
        tsp = (torch_j.get("spread") or {}).get("vision_ms") or {}
        out.append("| PyTorch reference | - |" +
                   "".join(f" {pm(tv.get(str(s)), tsp, str(s), 0)} | 1.00 |" for s in sizes))
        for n in vis:
            f = load(os.path.join(d, f"fastvlm-vision-{n}.json")) or {}
            v = f.get("vision_ms") or {}
            sp = (f.get("spread") or {}).get("vision_ms") or {}
            size = f.get("mmproj_bytes")
            out.append(f"| fastvlm {n} | {fmt(size / 2**20 if size else None, 0)} |" +
                       "".join(f" {pm(v.get(str(s)), sp, str(s), 0)} | "
                               f"{ratio(tv.get(str(s)), v.get(str(s)))} |" for s in sizes))
        out.append("")

    fails = sorted(glob.glob(os.path.join(d, "*.err")))
    if fails:
        out.append("## Runs that failed\n")
        for p in fails:
            with open(p) as f:
                last = (f.read().strip().splitlines() or ["(no message)"])[-1]
            out.append(f"- `{os.path.basename(p)[:-4]}`: {last}")
        out.append("")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
