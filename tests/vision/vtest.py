"""vtest.py — shared helpers of the vision tests (tests/vision/test_*.py): paths from the
meson test environment, tiny model generation + conversion (cached per build directory),
running the `fastvlm` CLI, the relative L2 metric, and a reference tower loaded with the
very weights a (possibly quantized) mmproj GGUF holds.

What it is not: a reference implementation (tests/reference/fastvithd_ref.py,
tests/reference/qwen2_ref.py) or a test by itself.
"""

import fcntl
import os
import subprocess
import sys

import numpy as np

SRC = os.environ.get("FASTVLM_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("FASTVLM_BUILDDIR") or os.path.join(SRC, "build")
CLI = os.environ.get("FASTVLM_CLI") or os.path.join(BUILD, "tools", "fastvlm")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
REF_DIR = os.path.join(SRC, "tests", "reference")
if REF_DIR not in sys.path:
    sys.path.insert(0, REF_DIR)



def _tools_hash():
    """Models are cached per build dir, keyed by the generator/converter sources, so that a
    change to the tools never leaves a test running on stale files."""
    import hashlib
    h = hashlib.sha1()
    for f in ("make_tiny_model.py", "convert_hf_to_gguf.py", "gguf_writer.py",
              "safetensors_io.py"):
        p = os.path.join(SRC, "tools", f)
        if os.path.exists(p):
            with open(p, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()[:12]


WORK = os.path.join(BUILD, "tests", "vision-models", _tools_hash())


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def run(args, expect_rc=0, **kw):
    """Runs a command, returns CompletedProcess; raises TestFailure on an unexpected rc."""
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if expect_rc is not None and r.returncode != expect_rc:
        raise TestFailure(f"{' '.join(map(str, args))}\n  exit {r.returncode} (expected "
                          f"{expect_rc})\n  stdout: {r.stdout[-2000:]}\n  stderr: {r.stderr[-2000:]}")
    return r


def rel_l2(got, want):
    got = np.asarray(got, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


def tiny_model(name, image_size=256, extra=(), outtypes=("f32",), keep_bn=False, seed=0):
    """Makes (once per build dir) a tiny random HF model and its GGUFs.
    Returns (hf_dir, {outtype: (llm_gguf, mmproj_gguf)})."""
    os.makedirs(WORK, exist_ok=True)
    hf = os.path.join(WORK, name + "-hf")
    lock = open(os.path.join(WORK, name + ".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)          # meson runs tests in parallel
    try:
        stamp = os.path.join(hf, ".done")
        if not os.path.exists(stamp):
            run([PY, os.path.join(SRC, "tools", "make_tiny_model.py"), hf, "--seed", seed,
                 "--image-size", image_size, *extra])
            open(stamp, "w").close()
        out = {}
        for t in outtypes:
            base = os.path.join(WORK, f"{name}-{t}{'-keepbn' if keep_bn else ''}")
            llm, mm = base + ".gguf", base + "-mmproj.gguf"
            if not (os.path.exists(llm) and os.path.exists(mm)):
                run([PY, os.path.join(SRC, "tools", "convert_hf_to_gguf.py"), hf,
                     "--outfile", llm, "--outtype", t, *(["--keep-bn"] if keep_bn else [])])
            out[t] = (llm, mm)
        return hf, out
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def gguf_to_hf_name(name, cfg):
    """The HF checkpoint name of an mmproj matrix (the tensors a converter may quantize)."""
    import fastvithd_ref as R
    P = R.TOWER_PREFIX
    stages = [i for i, e in enumerate(cfg["network"]) if e[0] == "stage"]
    downs = [i for i, e in enumerate(cfg["network"]) if e[0] == "down"]
    parts = name.split(".")
    if name == "v.stem.2.weight":
        return P + "patch_embed.2.reparam_conv.weight"
    if parts[:2] == ["v", "blk"] and parts[-1] == "weight":
        s, i, what = int(parts[2]), int(parts[3]), parts[4]
        sub = {"ffn_up": "convffn.fc1", "ffn_down": "convffn.fc2",
               "attn_qkv": "token_mixer.qkv", "attn_out": "token_mixer.proj"}[what]
        return f"{P}network.{stages[s]}.{i}.{sub}.weight"
    if parts[:2] == ["v", "down"] and parts[3:] == ["pw", "weight"]:
        return f"{P}network.{downs[int(parts[2]) - 1]}.proj.1.reparam_conv.weight"
    if name in ("v.exp.se_reduce.weight", "v.exp.se_expand.weight"):
        return P + "conv_exp.se." + ("reduce" if "reduce" in name else "expand") + ".weight"
    if parts[0] == "mm" and parts[2] == "weight":
        return f"model.mm_projector.{parts[1]}.weight"
    raise KeyError(name)


def reference_with_gguf_weights(hf_dir, mmproj, dtype=None):
    """The reference tower with every non-f32 tensor of `mmproj` (quantized / half
    matrices) replaced by its dequantized values (tests/reference/gguf_read.py), so the
    engine's arithmetic is compared on identical weights. Returns (model, n_replaced)."""
    import torch
    import fastvithd_ref as R
    import gguf_read
    dtype = dtype or torch.float64
    model, cfg = R.load_vision(hf_dir, dtype)
    g = gguf_read.GGUFFile(mmproj)
    sd = model.state_dict()
    n = 0
    for name, info in g.tensors.items():
        if info.type == gguf_read.T_F32:
            continue
        hf = gguf_to_hf_name(name, cfg)
        w = g.array(name).reshape(tuple(sd[hf].shape))
        sd[hf] = torch.from_numpy(np.ascontiguousarray(w)).to(dtype)
        n += 1
    model.load_state_dict(sd, strict=True)
    return model, n


def main_wrapper(fn):
    """Runs fn(), prints FAIL and exits 1 on TestFailure/AssertionError."""
    try:
        fn()
    except (TestFailure, AssertionError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
