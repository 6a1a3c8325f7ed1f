#!/usr/bin/python3
"""test_quantize.py — `fastvlm quantize` on a tiny random FastVLM converted to f32.

usage: test_quantize.py {presets|types|converter|metadata|errors}   (suite 'reference')

  presets    each plan in configs/quant/ applied to both files: every tensor's type (read
             back with `fastvlm info`) is the plan's type for its component, with the
             row-length fallback to f16, and everything else unchanged; the logits
             (`fastvlm logits`) and projector features (`fastvlm vision`) stay within a
             per-type bound of the f32 model's. Prints one row per preset (file sizes and
             errors) for bench/RESULTS.md.
  types      --type q6_k, q5_k, q5_1, q5_0, q4_k, q4_1 on a model with 256/512-wide rows:
             types (with llama.cpp's K-quant fallbacks on the tower's narrow rows) and the
             same per-type error bounds; on rows shorter than 256, q4_k/q5_k/q6_k become
             q5_0/q5_1/q8_0 everywhere.
  converter  `--type T` of the f32 files is byte-identical to tools/convert_hf_to_gguf.py
             --outtype T (an independent Python quantizer and GGUF writer), for f16, bf16,
             q8_0 and q4_0; and quantizing an already converted file is the identity.
  metadata   every key is copied with its value (independent reader
             tests/reference/gguf_read.py), general.file_type follows the type of most
             converted elements (kept when nothing converts), unconverted tensors unchanged.
  errors     bad plans (unknown component/type, duplicate, nested, not a mapping, YAML
             syntax) exit 2 naming FILE:LINE:COL; missing arguments / same file exit 2;
             re-quantizing needs --allow-requantize; a missing or broken input and a
             non-finite weight exit 1; no output or .tmp is left.
What it is not: a speed test (fastvlm bench) or a check of the engine's arithmetic on
quantized weights (tests/llm, tests/vision do that against the PyTorch references).
Environment: FASTVLM_CLI, FASTVLM_SRCDIR as set by meson.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.environ.get("FASTVLM_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("FASTVLM_CLI") or os.path.join(SRC, "build", "tools", "fastvlm")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
sys.path.insert(0, os.path.join(SRC, "tests", "reference"))
import gguf_read  # noqa: E402

PRESETS = os.path.join(SRC, "configs", "quant")
COMPONENTS = ["vision", "projector", "attention", "ffn", "embeddings", "output"]
LLM_COMPONENTS = ["attention", "ffn", "embeddings", "output"]
VISION_COMPONENTS = ["vision", "projector"]
BLOCK = {"f32": 1, "f16": 1, "bf16": 1, "q8_0": 32, "q4_0": 32, "q4_1": 32, "q5_0": 32,
         "q5_1": 32, "q4_k": 256, "q5_k": 256, "q6_k": 256}
FTYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "bf16": 32}
# Relative L2 vs the f32 model, by the coarsest type a plan uses for the components that
# feed the output. Measured on the tiny random models (logits / vision): f16 5.5e-4 / 7e-4,
# bf16 4.4e-3 / 5.7e-3, q8_0 1.4e-2 / 1.8e-2, q6_k 4.9e-2 / 6.0e-2, q5_k 0.10 / 0.12,
# q5_1 0.10 / 0.13, q5_0 0.11 / 0.14, q4_k 0.20 / 0.25, q4_1 0.21 / 0.23, q4_0 0.22 / 0.32
# (random tiny weights are far harsher than trained ones). Bounds leave ~2x headroom.
COARSENESS = ["f32", "f16", "bf16", "q8_0", "q6_k", "q5_k", "q5_1", "q5_0", "q4_k", "q4_1",
              "q4_0"]
LOGITS_BOUND = {"f32": 1e-6, "f16": 5e-3, "bf16": 2e-2, "q8_0": 5e-2, "q6_k": 0.15,
                "q5_k": 0.3, "q5_1": 0.3, "q5_0": 0.3, "q4_k": 0.5, "q4_1": 0.5, "q4_0": 0.5}
VISION_BOUND = {"f32": 1e-6, "f16": 5e-3, "bf16": 2e-2, "q8_0": 5e-2, "q6_k": 0.15,
                "q5_k": 0.35, "q5_1": 0.35, "q5_0": 0.4, "q4_k": 0.6, "q4_1": 0.6, "q4_0": 0.7}
KQUANT_SHAPE = ["--hidden", "256", "--ffn", "512", "--heads", "4", "--kv-heads", "2"]


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


def rel_l2(got, want):
    got, want = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


def make_model(tmp, outtype="f32", shape=()):
    """The tiny random model (default shapes: hidden 64, ffn 128, vision widths 16..256, so
    stage 0's 16-wide matrices exercise the f16 fallback, and no LLM row is a multiple of
    256), converted to `outtype`. `shape`: extra make_tiny_model.py flags."""
    tag = "-".join(shape[1::2]) or "default"
    hf = os.path.join(tmp, "hf-" + tag)
    if not os.path.exists(os.path.join(hf, "model.safetensors")):
        run([PY, os.path.join(SRC, "tools", "make_tiny_model.py"), hf, "--seed", "5", *shape])
    base = os.path.join(tmp, f"tiny-{tag}-{outtype}")
    run([PY, os.path.join(SRC, "tools", "convert_hf_to_gguf.py"), hf, "--outfile",
         base + ".gguf", "--outtype", outtype])
    return hf, base + ".gguf", base + "-mmproj.gguf"


def info_types(path):
    """{tensor name: (type name, shape list)} from `fastvlm info --full`."""
    out = run([CLI, "info", "--full", path]).stdout
    rows = {}
    in_table = False
    for line in out.splitlines():
        if line.startswith("tensors"):
            in_table = True
            continue
        if line.startswith("total"):
            break
        m = re.match(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+\[([\d, ]+)\]", line) if in_table else None
        if m:
            rows[m.group(2)] = (m.group(3).lower(), [int(v) for v in m.group(4).split(",")])
    check(rows, f"no tensor table in `fastvlm info {path}`")
    return rows


def component_of(name, n_dims):
    """Independent restatement of the plan's components (tools/fastvlm/quant_plan.h)."""
    if n_dims != 2:
        return None
    pats = [(r"token_embd\.weight", "embeddings"), (r"output\.weight", "output"),
            (r"blk\.\d+\.attn_(q|k|v|output)\.weight", "attention"),
            (r"blk\.\d+\.ffn_(gate|up|down)\.weight", "ffn"),
            (r"v\.blk\.\d+\.\d+\.(ffn_up|ffn_down|attn_qkv|attn_out)\.weight", "vision"),
            (r"v\.down\.\d+\.pw\.weight", "vision"), (r"mm\.\d+\.weight", "projector")]
    for p, c in pats:
        if re.fullmatch(p, name):
            return c
    return None


def load_plan(path):
    import yaml
    with open(path) as f:
        return {k: str(v).lower() for k, v in (yaml.safe_load(f) or {}).items()}


def expected_type(want, row_len):
    if row_len % BLOCK[want] == 0:
        return want
    fb = {"q4_k": "q5_0", "q5_k": "q5_1", "q6_k": "q8_0"}.get(want)
    return fb if fb and row_len % BLOCK[fb] == 0 else "f16"


def check_types(src, out, plan):
    a, b = info_types(src), info_types(out)
    check(list(a) == list(b), f"{out}: tensor names/order differ from {src}")
    n_changed = 0
    for name, (t_in, shape) in a.items():
        t_out, shape_out = b[name]
        check(shape == shape_out, f"{out}: {name} shape {shape_out}, expected {shape}")
        comp = component_of(name, len(shape))
        want = plan.get(comp, "keep") if comp else "keep"
        exp = t_in if want == "keep" else expected_type(want, shape[0])
        check(t_out == exp, f"{out}: {name} ({comp or 'other'}) is {t_out}, expected {exp}")
        n_changed += t_out != t_in
    return n_changed


class Outputs:
    """Logits (`fastvlm logits`, 48 seeded ids) and projector features (`fastvlm vision`,
    a seeded 256x256 planar image) of a model pair, and their distance to the f32 pair's."""

    def __init__(self, tmp, llm, mm):
        self.tmp = tmp
        rng = np.random.default_rng(11)
        self.toks = ",".join(str(t) for t in rng.integers(0, 500, 48))
        self.px = os.path.join(tmp, "px.f32")
        rng.random((3, 256, 256), dtype=np.float32).astype("<f4").tofile(self.px)
        self.ref_l, self.ref_v = self.logits(llm), self.vision(mm)

    def logits(self, m):
        o = os.path.join(self.tmp, "logits.f32")
        run([CLI, "logits", "-m", m, "--tokens", self.toks, "-o", o, "-t", "1"])
        return np.fromfile(o, "<f4")

    def vision(self, p):
        o = os.path.join(self.tmp, "vision.f32")
        run([CLI, "vision", "--mmproj", p, "--pixels", self.px, "--size", "256", "-o", o,
             "-t", "1"])
        return np.fromfile(o, "<f4")

    def check(self, label, plan, llm, mm):
        """Checks both errors against the bounds of the plan's coarsest types."""
        def bound(table, comps):
            used = [plan.get(c, "f32") for c in comps]
            used = [u if u in COARSENESS else "q4_0" for u in used]
            return table[max(used, key=COARSENESS.index)]
        el, ev = rel_l2(self.logits(llm), self.ref_l), rel_l2(self.vision(mm), self.ref_v)
        bl, bv = bound(LOGITS_BOUND, LLM_COMPONENTS), bound(VISION_BOUND, VISION_COMPONENTS)
        check(el <= bl, f"{label}: logits rel L2 {el:.3g} > {bl:g}")
        check(ev <= bv, f"{label}: vision rel L2 {ev:.3g} > {bv:g}")
        return el, bl, ev, bv


def case_presets(tmp):
    hf, llm, mm = make_model(tmp)
    o = Outputs(tmp, llm, mm)
    presets = sorted(f[:-5] for f in os.listdir(PRESETS) if f.endswith(".yaml"))
    check({"balanced", "quality", "small"} <= set(presets), f"presets missing: {presets}")
    rows, errs = [], {}
    for name in presets:
        plan_path = os.path.join(PRESETS, name + ".yaml")
        plan = load_plan(plan_path)
        check(set(plan) <= set(COMPONENTS), f"{name}: unexpected keys {set(plan) - set(COMPONENTS)}")
        out_llm, out_mm = os.path.join(tmp, f"{name}.gguf"), os.path.join(tmp, f"{name}-mmproj.gguf")
        run([CLI, "quantize", llm, out_llm, "--plan", plan_path])
        run([CLI, "quantize", mm, out_mm, "--plan", plan_path])
        n1, n2 = check_types(llm, out_llm, plan), check_types(mm, out_mm, plan)
        check(n1 > 0 and n2 > 0, f"{name}: nothing converted ({n1}, {n2})")
        el, bl, ev, bv = o.check(name, plan, out_llm, out_mm)
        errs[name] = (el, ev)
        rows.append((name, os.path.getsize(out_llm), os.path.getsize(out_mm), el, bl, ev, bv))
    if "quality" in errs and "small" in errs:
        check(errs["quality"][0] < errs["small"][0] and errs["quality"][1] < errs["small"][1],
              f"quality is not closer to f32 than small: {errs}")
    print(f"tiny model (f32: LLM {os.path.getsize(llm)} B, mmproj {os.path.getsize(mm)} B)")
    print(f"| preset | LLM bytes | mmproj bytes | logits rel L2 (bound) | vision rel L2 (bound) |")
    print("|---|---|---|---|---|")
    for name, sl, sm, el, bl, ev, bv in rows:
        print(f"| {name} | {sl} | {sm} | {el:.3g} ({bl:g}) | {ev:.3g} ({bv:g}) |")


def case_types(tmp):
    """Every other plan type, on a model whose LLM rows (256, 512) suit the K-quants; the
    tower's 16..128-wide rows exercise the K-quant fallbacks (q4_k -> q5_0 ...) and f16."""
    hf, llm, mm = make_model(tmp, shape=KQUANT_SHAPE)
    o = Outputs(tmp, llm, mm)
    print("| type | LLM bytes | mmproj bytes | logits rel L2 (bound) | vision rel L2 (bound) |")
    print("|---|---|---|---|---|")
    for t in ("q6_k", "q5_k", "q5_1", "q5_0", "q4_k", "q4_1"):
        plan = {c: t for c in COMPONENTS}
        out_llm, out_mm = os.path.join(tmp, f"{t}.gguf"), os.path.join(tmp, f"{t}-mmproj.gguf")
        run([CLI, "quantize", llm, out_llm, "--type", t])
        run([CLI, "quantize", mm, out_mm, "--type", t])
        check_types(llm, out_llm, plan)
        check_types(mm, out_mm, plan)
        got = {ty for ty, _ in info_types(out_llm).values()}
        check(t in got, f"--type {t}: no {t} tensor in the LLM file ({got})")
        el, bl, ev, bv = o.check(t, plan, out_llm, out_mm)
        print(f"| {t} | {os.path.getsize(out_llm)} | {os.path.getsize(out_mm)} | {el:.3g} ({bl:g}) "
              f"| {ev:.3g} ({bv:g}) |")
    # the default tiny model: no row is a multiple of 256, so K-quants take their fallback
    _, llm, _ = make_model(tmp)
    for t, fb in (("q4_k", "q5_0"), ("q5_k", "q5_1"), ("q6_k", "q8_0")):
        out = os.path.join(tmp, "fb.gguf")
        run([CLI, "quantize", llm, out, "--type", t])
        types = {ty for n, (ty, sh) in info_types(out).items() if component_of(n, len(sh))}
        check(types == {fb}, f"--type {t} on rows < 256 gave {types}, expected {fb}")
        print(f"ok  {t} falls back to {fb} on short rows")


def case_converter(tmp):
    hf, llm, mm = make_model(tmp)
    for t in ("f16", "bf16", "q8_0", "q4_0"):
        _, c_llm, c_mm = make_model(tmp, t)
        for src, conv in ((llm, c_llm), (mm, c_mm)):
            out = os.path.join(tmp, f"ours-{t}.gguf")
            run([CLI, "quantize", src, out, "--type", t])
            with open(out, "rb") as a, open(conv, "rb") as b:
                check(a.read() == b.read(),
                      f"--type {t}: {out} differs from the converter's {conv}")
            # quantizing to the type it already has: identity (bytes copied, no requantize)
            again = os.path.join(tmp, f"again-{t}.gguf")
            run([CLI, "quantize", conv, again, "--type", t])
            with open(again, "rb") as a, open(conv, "rb") as b:
                check(a.read() == b.read(), f"--type {t} of a {t} file is not the identity")
        print(f"ok  --type {t}: byte-identical to convert_hf_to_gguf.py --outtype {t}")


def case_metadata(tmp):
    hf, llm, mm = make_model(tmp)
    plan = os.path.join(tmp, "plan.yaml")
    with open(plan, "w") as f:
        f.write("ffn: q4_0\nattention: q8_0\n# the rest is kept\n")
    for src, want_ft in ((llm, FTYPE["q4_0"]), (mm, None)):
        out = os.path.join(tmp, "out.gguf")
        run([CLI, "quantize", src, out, "--plan", plan])
        a, b = gguf_read.GGUFFile(src), gguf_read.GGUFFile(out)
        check(list(a.kv) == list(b.kv), f"{out}: keys {list(b.kv)} != {list(a.kv)}")
        for k, v in a.kv.items():
            if k == "general.file_type":
                continue
            check(b.kv[k] == v, f"{out}: key {k} = {str(b.kv[k])[:80]}, expected {str(v)[:80]}")
        # the mmproj has no ffn/attention tensors: nothing converted, file_type kept
        ft = want_ft if want_ft is not None else a.kv["general.file_type"]
        check(b.kv["general.file_type"] == ft,
              f"{out}: general.file_type {b.kv['general.file_type']}, expected {ft}")
        for name in a.tensors:
            if a.tensors[name].type == b.tensors[name].type:
                check(np.array_equal(a.array(name), b.array(name)), f"{out}: {name} changed")
        print(f"ok  {os.path.basename(src)}: {len(a.kv)} keys copied, file_type {ft}")
    # --type f32 of the f32 file changes nothing at all
    out = os.path.join(tmp, "same.gguf")
    run([CLI, "quantize", llm, out, "--type", "f32"])
    with open(out, "rb") as x, open(llm, "rb") as y:
        check(x.read() == y.read(), "--type f32 of an f32 file is not the identity")
    print("ok  --type f32 of an f32 file is byte-identical")


def case_errors(tmp):
    hf, llm, mm = make_model(tmp)
    _, q8_llm, _ = make_model(tmp, "q8_0")
    out = os.path.join(tmp, "out.gguf")

    def expect(args, rc, *needles):
        r = run([CLI, "quantize", *args], expect_rc=None)
        msg = r.stderr.strip()
        check(r.returncode == rc, f"quantize {' '.join(map(str, args))}: exit {r.returncode}, "
                                  f"expected {rc}; stderr: {msg[-600:]}")
        for n in needles:
            check(n in msg, f"quantize {' '.join(map(str, args))}: message lacks '{n}': {msg[-600:]}")
        check(not os.path.exists(out) and not os.path.exists(out + ".tmp"),
              f"quantize {' '.join(map(str, args))}: left {out} or {out}.tmp behind")
        print(f"ok  exit {rc}: {msg.splitlines()[0] if msg else ''}")

    def plan(text):
        p = os.path.join(tmp, "bad.yaml")
        with open(p, "w") as f:
            f.write(text)
        return p

    expect([llm, out, "--plan", plan("vision: q8_0\nffn: q4_0\nlayers: q8_0\n")], 2,
           "bad.yaml:3:1:", "unknown component 'layers'")
    expect([llm, out, "--plan", plan("ffn: q3_k\n")], 2, "bad.yaml:1:6:", "unknown type 'q3_k'")
    expect([llm, out, "--plan", plan("ffn: q4_0\nffn: q8_0\n")], 2, "bad.yaml:2:1:", "twice")
    expect([llm, out, "--plan", plan("ffn:\n  up: q4_0\n")], 2, "bad.yaml:2:3:", "not a mapping")
    expect([llm, out, "--plan", plan("- ffn\n- q4_0\n")], 2, "bad.yaml:1:1:", "a list")
    expect([llm, out, "--plan", plan("ffn: 'q4_0\n")], 2, "bad.yaml:", "YAML error")
    expect([llm, out, "--plan", plan("# nothing\n")], 2, "empty plan")
    expect([llm, out, "--plan", os.path.join(tmp, "missing.yaml")], 2, "cannot open")
    expect([llm, out], 2, "--plan")
    expect([llm, out, "--type", "q4_0", "--plan", plan("ffn: q4_0\n")], 2, "exactly one")
    expect([llm, out, "--type", "int4"], 2, "unknown --type 'int4'")
    expect([llm], 2, "required")
    expect([llm, out, "--type", "q4_0", "--bogus"], 2, "unknown option")
    expect([llm, llm, "--type", "q4_0"], 2, "must not be the input")
    expect([q8_llm, out, "--type", "q4_0"], 2, "already q8_0", "--allow-requantize")
    expect([os.path.join(tmp, "nope.gguf"), out, "--type", "q8_0"], 1, "nope.gguf")
    broken = os.path.join(tmp, "broken.gguf")
    with open(llm, "rb") as f:
        data = f.read()
    with open(broken, "wb") as f:
        f.write(data[: len(data) // 2])
    expect([broken, out, "--type", "q8_0"], 1, "broken.gguf")
    # a NaN in a matrix: refused, not quantized into garbage
    g = gguf_read.GGUFFile(llm)
    info = g.tensors["blk.0.ffn_up.weight"]
    nan = os.path.join(tmp, "nan.gguf")
    with open(nan, "wb") as f:
        f.write(data[: g.data_start + info.offset] + np.float32(np.nan).tobytes() +
                data[g.data_start + info.offset + 4:])
    expect([nan, out, "--type", "q8_0"], 1, "blk.0.ffn_up.weight", "not finite")
    # ... but copied untouched when the plan does not convert it
    run([CLI, "quantize", nan, out, "--plan", plan("attention: q8_0\n")])
    os.remove(out)
    # re-quantizing with the flag works
    run([CLI, "quantize", q8_llm, out, "--type", "q4_0", "--allow-requantize"])
    check(info_types(out)["blk.0.ffn_up.weight"][0] == "q4_0", "--allow-requantize had no effect")
    os.remove(out)
    print("ok  --allow-requantize")


CASES = {"presets": case_presets, "types": case_types, "converter": case_converter,
         "metadata": case_metadata, "errors": case_errors}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print(f"usage: {sys.argv[0]} {{{'|'.join(CASES)}}}", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="fastvlm-quantize-")
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
