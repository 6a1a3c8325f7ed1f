#!/usr/bin/python3
"""torch_vision_bench.py — wall time of the PyTorch FastViTHD reference (tower + projector,
tests/reference/fastvithd_ref.py) on a Hugging Face checkpoint, for bench/run_bench.sh.

What it is: the PyTorch side of the vision comparison. It loads the checkpoint with the
reference's own loader, sets the thread count, and times `encode()` (planar float32 in,
projected features out, the same span `fastvlm bench` times with encode_image) on the same
synthetic image formula as tools/fastvlm/cmd_bench.c, one warm-up then REPS runs per size.
Prints one JSON object: {"engine": "pytorch", "vision_ms": {size: median}, "spread": ...}.
What it is not: a correctness check (tests/vision does that) or an optimised PyTorch
deployment (eager nn.Module, no torch.compile / TorchScript / channels_last).

usage: torch_vision_bench.py HF_DIR [--sizes 512,1024] [--threads 2] [--reps 3]
                             [--dtype float32|float64]
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import fastvithd_ref as R  # noqa: E402


def synthetic_image(size):
    """cmd_bench.c's synthetic_image(): gradients plus a ripple, values in [0, 1]."""
    u = (np.arange(size, dtype=np.float32) / size)[None, :].repeat(size, 0)
    v = (np.arange(size, dtype=np.float32) / size)[:, None].repeat(size, 1)
    planes = []
    for c in range(3):
        r = 0.5 + 0.5 * np.sin(6.2831853 * (3.0 * u + 2.0 * v + c / 3.0))
        base = u if c == 0 else v if c == 1 else 1.0 - u
        planes.append(base * 0.5 + 0.5 * r)
    return np.stack(planes).astype(np.float32)


def stats(v):
    med = statistics.median(v)
    return med, {"min": min(v), "max": max(v),
                 "mad": statistics.median([abs(x - med) for x in v])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hf_dir")
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    a = ap.parse_args()
    if a.reps < 1 or a.threads < 1:
        ap.error("--reps and --threads must be >= 1")
    try:
        sizes = [int(s) for s in a.sizes.split(",")]
    except ValueError:
        ap.error(f"bad --sizes '{a.sizes}'")
    if any(s <= 0 or s % 64 for s in sizes):
        ap.error("--sizes must be multiples of 64")
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)

    t0 = time.perf_counter()
    model, _ = R.load_vision(a.hf_dir, getattr(torch, a.dtype))
    load_ms = (time.perf_counter() - t0) * 1e3
    out = {"engine": "pytorch", "torch": torch.__version__, "threads": a.threads,
           "reps": a.reps, "dtype": a.dtype, "load_ms": load_ms, "vision_ms": {},
           "spread": {"vision_ms": {}}}
    for size in sizes:
        x = synthetic_image(size)
        times = []
        for r in range(a.reps + 1):
            t0 = time.perf_counter()
            R.encode(model, x)
            t = (time.perf_counter() - t0) * 1e3
            if r > 0:
                times.append(t)
        med, spread = stats(times)
        out["vision_ms"][str(size)] = med
        out["spread"]["vision_ms"][str(size)] = spread
        print(f"torch_vision_bench.py: {size}x{size}: {med:.1f} ms", file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
