#!/usr/bin/python3
"""fullsize_check.py — the C FastViTHD tower + projector at FULL size (depths 2,12,24,4,2,
widths 96..1536, 44 blocks, 48-head attention, SE 3072->192) against the PyTorch reference
(tests/reference/fastvithd_ref.py) at 1024 and 512 input.

What it is: a manual / bench-time check, NOT run by meson (minutes of CPU and ~1 GB of
files). By default it makes a random full-size checkpoint with tools/make_tiny_model.py
(the language model stays tiny; only the tower is full size), converts it with
tools/convert_hf_to_gguf.py, runs `fastvlm vision --pixels` and the reference on the same
random planar image, and prints one table row per (size, output): relative L2, max |diff|
and both wall times (timings are informative only; nothing is asserted on them).
With --hf DIR it uses a real FastVLM checkpoint instead (e.g. apple/FastVLM-0.5B).
Exit status 1 if a relative L2 exceeds the bound (1e-4 for f32, 1e-2 for f16, 5e-2 for
q8_0 - the same bounds as tests/vision/test_vision.py).

usage: fullsize_check.py [--sizes 1024,512] [--outtype f32] [--threads 2] [--workdir DIR]
                         [--hf DIR] [--dtype float32|float64] [--keep]
environment: FASTVLM_CLI (default build/tools/fastvlm), as in the meson tests.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest as V  # noqa: E402
import fastvithd_ref as R  # noqa: E402

BOUNDS = {"f32": 1e-4, "f16": 1e-2, "q8_0": 5e-2, "bf16": 1e-2, "q4_0": None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1024,512")
    ap.add_argument("--outtype", default="f32", choices=list(BOUNDS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", help="keep the generated files here (default: a temp dir)")
    ap.add_argument("--hf", help="use this Hugging Face FastVLM directory instead of random weights")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                    help="reference precision (float64 is ~2x slower)")
    ap.add_argument("--keep", action="store_true", help="do not delete the temp dir")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sizes = [int(s) for s in a.sizes.split(",")]

    work = a.workdir or tempfile.mkdtemp(prefix="fastvithd-full-")
    os.makedirs(work, exist_ok=True)
    try:
        hf = a.hf
        if not hf:
            hf = os.path.join(work, "full-hf")
            if not os.path.exists(os.path.join(hf, "model.safetensors")):
                V.run([V.PY, os.path.join(V.SRC, "tools", "make_tiny_model.py"), hf,
                       "--seed", "7", "--image-size", "1024",
                       "--vision-depths", "2,12,24,4,2",
                       "--vision-widths", "96,192,384,768,1536"])
        base = os.path.join(work, f"full-{a.outtype}")
        mmproj = base + "-mmproj.gguf"
        if not os.path.exists(mmproj):
            V.run([V.PY, os.path.join(V.SRC, "tools", "convert_hf_to_gguf.py"), hf,
                   "--outfile", base + ".gguf", "--outtype", a.outtype])
        if a.outtype == "f32":
            model, _ = R.load_vision(hf, getattr(torch, a.dtype))
        else:
            model, _ = V.reference_with_gguf_weights(hf, mmproj, getattr(torch, a.dtype))
            print("(reference runs on the GGUF's dequantized matrices)")
        bound = BOUNDS[a.outtype] if a.outtype == "f32" else 1e-4

        print(f"{'size':>5} {'output':9} {'tokens':>6} {'width':>5} {'rel L2':>9} "
              f"{'max|diff|':>9} {'engine s':>8} {'torch s':>8}")
        ok = True
        for size in sizes:
            x = np.random.default_rng(size).random((3, size, size), dtype=np.float32)
            px = os.path.join(work, f"px{size}.f32")
            x.astype("<f4").tofile(px)
            for tower_only in (True, False):
                out = os.path.join(work, "out.f32")
                t0 = time.time()
                V.run([V.CLI, "vision", "--mmproj", mmproj, "--pixels", px, "--size", size,
                       "-o", out, "-t", a.threads, *(["--tower-only"] if tower_only else [])])
                t_engine = time.time() - t0
                t0 = time.time()
                ref = R.encode(model, x, tower_only)
                t_ref = time.time() - t0
                got = np.fromfile(out, dtype="<f4").reshape(ref.shape)
                e = V.rel_l2(got, ref)
                print(f"{size:5d} {'tower' if tower_only else 'projector':9} {ref.shape[0]:6d} "
                      f"{ref.shape[1]:5d} {e:9.3g} {np.abs(got - ref).max():9.3g} "
                      f"{t_engine:8.2f} {t_ref:8.2f}", flush=True)
                if bound is not None and not e <= bound:
                    ok = False
        print("OK" if ok else f"FAIL: relative L2 above {bound:g}")
        return 0 if ok else 1
    finally:
        if not a.workdir and not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
