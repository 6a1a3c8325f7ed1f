#!/usr/bin/python3
"""test_bench.py — `fastvlm bench` on the tiny random model: the output's shape, not speed.

usage: test_bench.py {json|table|errors}   (suite 'reference': needs the Python model tools)

  json    `--json -r 1` with --mmproj and two sizes: one JSON object whose fields have the
          documented types, positive timings and rates, min <= median <= max spreads, sizes
          as keys; -p 0 / -n 0 give null prefill / decode; no --mmproj gives vision_ms {}.
  table   the default table names every phase, prints "skipped" for the skipped ones.
  errors  usage errors exit 2 (missing -m, bad --sizes / -r / -t, --sizes without --mmproj,
          unknown option); a missing model file exits 1 with its name; a context too small
          for -p exits 2.
What it is not: a benchmark (bench/run_bench.sh is) — the numbers are never compared.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("FASTVLM_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("FASTVLM_CLI") or os.path.join(SRC, "build", "tools", "fastvlm")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def run(args, expect_rc=0):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if expect_rc is not None and r.returncode != expect_rc:
        raise TestFailure(f"{' '.join(map(str, args))}\n  exit {r.returncode} (expected "
                          f"{expect_rc})\n  stdout: {r.stdout[-2000:]}\n  stderr: {r.stderr[-2000:]}")
    return r


def make_model(tmp):
    hf = os.path.join(tmp, "hf")
    run([PY, os.path.join(SRC, "tools", "make_tiny_model.py"), hf, "--seed", "3",
         "--max-position", "512"])
    base = os.path.join(tmp, "tiny")
    run([PY, os.path.join(SRC, "tools", "convert_hf_to_gguf.py"), hf, "--outfile",
         base + ".gguf", "--outtype", "f16"])
    return base + ".gguf", base + "-mmproj.gguf"


def is_pos(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def check_spread(label, med, sp):
    check(isinstance(sp, dict) and set(sp) == {"min", "max", "mad"}, f"{label}: spread {sp}")
    check(all(isinstance(sp[k], (int, float)) for k in sp), f"{label}: spread types {sp}")
    check(sp["min"] <= med <= sp["max"], f"{label}: min {sp['min']} <= median {med} <= max "
                                         f"{sp['max']} does not hold")
    check(sp["mad"] >= 0, f"{label}: mad {sp['mad']} < 0")


def bench_json(args):
    out = run([CLI, "bench", "--json", *args]).stdout
    try:
        return json.loads(out)
    except json.JSONDecodeError as e:
        raise TestFailure(f"not one JSON object ({e}): {out[:1000]}")


def case_json(tmp):
    llm, mm = make_model(tmp)
    j = bench_json(["-m", llm, "--mmproj", mm, "-t", "1", "-r", "1", "-p", "24", "-n", "6",
                    "--sizes", "128,256"])
    for k in ("load_ms", "prefill_tok_s", "decode_tok_s", "ttft_ms", "peak_rss_mb", "vm_hwm_mb",
              "ru_maxrss_mb"):
        check(is_pos(j.get(k)), f"{k} = {j.get(k)!r}, expected a positive number")
    check(isinstance(j["vision_ms"], dict) and sorted(j["vision_ms"]) == ["128", "256"],
          f"vision_ms = {j['vision_ms']!r}, expected keys 128 and 256")
    check(all(is_pos(v) for v in j["vision_ms"].values()), f"vision_ms {j['vision_ms']}")
    for k in ("threads", "reps", "n_prompt", "n_gen", "n_vocab", "n_embd", "n_layer",
              "model_bytes", "mmproj_bytes"):
        check(isinstance(j.get(k), int) and j[k] > 0, f"{k} = {j.get(k)!r}")
    check((j["threads"], j["reps"], j["n_prompt"], j["n_gen"]) == (1, 1, 24, 6),
          f"run parameters not echoed: {j}")
    check(j["model_bytes"] == os.path.getsize(llm), "model_bytes is not the file size")
    check(j["peak_rss_mb"] < 4096, f"peak_rss_mb {j['peak_rss_mb']} is implausible")
    sp = j["spread"]
    for k in ("load_ms", "prefill_tok_s", "decode_tok_s", "ttft_ms"):
        check_spread(k, j[k], sp[k])
    for s, v in j["vision_ms"].items():
        check_spread("vision " + s, v, sp["vision_ms"][s])
    # ttft includes the prefill of the same tokens
    check(j["ttft_ms"] >= 24 / j["prefill_tok_s"] * 1e3 * 0.5, "ttft shorter than its prefill")
    print("ok  full JSON:", {k: j[k] for k in ("load_ms", "vision_ms", "prefill_tok_s",
                                              "decode_tok_s", "ttft_ms", "peak_rss_mb")})

    j = bench_json(["-m", llm, "-t", "1", "-r", "2", "-p", "0", "-n", "0"])
    check(j["prefill_tok_s"] is None and j["decode_tok_s"] is None and j["ttft_ms"] is None,
          f"-p 0 -n 0 should give nulls: {j}")
    check(j["vision_ms"] == {} and j["mmproj"] is None, f"no --mmproj: vision_ms {j['vision_ms']}")
    check(is_pos(j["load_ms"]) and j["reps"] == 2, f"load_ms {j['load_ms']}")
    check(j["spread"]["prefill_tok_s"] is None, "spread of a skipped phase is not null")
    print("ok  -p 0 -n 0 without --mmproj: nulls and {}")

    j = bench_json(["-m", llm, "--mmproj", mm, "-r", "1", "-p", "8", "-n", "2",
                    "--decode-after", "0", "--no-mmap"])
    check(list(j["vision_ms"]) == ["256"], f"default size should be the file's 256: {j['vision_ms']}")
    check(j["mmap"] is False and is_pos(j["decode_tok_s"]), f"--no-mmap / --decode-after 0: {j}")
    print("ok  default size, --no-mmap, --decode-after 0")


def case_table(tmp):
    llm, mm = make_model(tmp)
    out = run([CLI, "bench", "-m", llm, "-t", "1", "-r", "1", "-p", "16", "-n", "0"]).stdout
    for needle in ("load", "vision", "skipped (no --mmproj)", "prefill pp16", "decode tg0",
                   "skipped (-n 0)", "first token", "peak RSS"):
        check(needle in out, f"table lacks '{needle}':\n{out}")
    print(out)


def case_errors(tmp):
    llm, mm = make_model(tmp)

    def expect(args, rc, *needles):
        r = run([CLI, "bench", *args], expect_rc=None)
        msg = r.stderr.strip()
        check(r.returncode == rc, f"bench {' '.join(args)}: exit {r.returncode}, expected {rc}: {msg}")
        for n in needles:
            check(n in msg, f"bench {' '.join(args)}: message lacks '{n}': {msg}")
        check(r.stdout == "", f"bench {' '.join(args)}: printed results despite the error")
        print(f"ok  exit {rc}: {msg.splitlines()[0] if msg else ''}")

    expect([], 2, "-m MODEL.gguf is required")
    expect(["-m", llm, "--mmproj", mm, "--sizes", "100"], 2, "--sizes")
    expect(["-m", llm, "--mmproj", mm, "--sizes", "256,"], 2, "--sizes")
    expect(["-m", llm, "--sizes", "256"], 2, "--sizes needs --mmproj")
    expect(["-m", llm, "-r", "0"], 2, "-r")
    expect(["-m", llm, "-t", "zero"], 2, "-t")
    expect(["-m", llm, "-p", "-1"], 2, "-p")
    expect(["-m", llm, "--frobnicate"], 2, "unknown option")
    expect(["-m", os.path.join(tmp, "missing.gguf")], 1, "missing.gguf")
    expect(["-m", llm, "-p", "4096", "-r", "1"], 2, "context")


CASES = {"json": case_json, "table": case_table, "errors": case_errors}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print(f"usage: {sys.argv[0]} {{{'|'.join(CASES)}}}", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="fastvlm-bench-")
    try:
        CASES[sys.argv[1]](tmp)
    except TestFailure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
