#!/usr/bin/python3
"""test_vision.py — the C vision tower + projector (`fastvlm vision`) against the
independent PyTorch reference (tests/reference/fastvithd_ref.py, float64) on tiny random
FastVLM checkpoints (tools/make_tiny_model.py -> tools/convert_hf_to_gguf.py).

usage: test_vision.py CASE     (one meson test per case, suite 'reference')
  f32     f32 weights, inputs 128 and 256, tower and projector outputs:
          relative L2 <= 1e-4 against the reference on the checkpoint's own weights
  keepbn  the same with the ConvFFN BatchNorms left unfolded in the GGUF (--keep-bn):
          the engine folds them at load time
  f16, bf16, q8_0, q4_0
          (a) against the reference run on the very weights the GGUF holds (its half /
              quantized matrices dequantized by tests/reference/gguf_read.py): <= 1e-4,
              i.e. the arithmetic is as exact as with f32;
          (b) against the reference on the original float32 weights (the cost of storing
              the weights quantized): f16 <= 1e-2, bf16 <= 2e-2, q8_0 <= 5e-2 (measured 1.5e-2 to 2.5e-2
              on these random weights: ~0.5 % per-matrix rounding compounds over ~20
              sequential matmuls), q4_0 not bounded
  shapes  another architecture (depths 1,2,1,2,3, widths 8..128): odd token grids at 192
          (3x3) and 320 (5x5), f32, <= 1e-4
Inputs are random planar float32 images in [0, 1) given with --pixels.
"""

import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest as V  # noqa: E402
import fastvithd_ref as R  # noqa: E402

torch.set_num_threads(1)

F32_BOUND = 1e-4
SAME_WEIGHTS_BOUND = 1e-4
ORIGINAL_BOUND = {"f16": 1e-2, "bf16": 2e-2, "q8_0": 5e-2, "q4_0": None}


def engine(mmproj, planar, size, tower_only, tmp):
    px = os.path.join(tmp, f"px{size}.f32")
    out = os.path.join(tmp, "out.f32")
    planar.astype("<f4").tofile(px)
    V.run([V.CLI, "vision", "--mmproj", mmproj, "--pixels", px, "--size", size, "-o", out,
           "-t", "2", *(["--tower-only"] if tower_only else [])])
    return np.fromfile(out, dtype="<f4")


def planar_input(size, seed):
    return np.random.default_rng(seed).random((3, size, size), dtype=np.float32)


def compare(label, model, mmproj, sizes, bound, tmp, want_shapes=None):
    worst = 0.0
    for size in sizes:
        x = planar_input(size, size)
        for tower_only in (True, False):
            ref = R.encode(model, x, tower_only)
            got = engine(mmproj, x, size, tower_only, tmp)
            V.check(got.size == ref.size, f"{label} @{size}: engine wrote {got.size} floats, "
                                          f"reference has {ref.shape}")
            e = V.rel_l2(got.reshape(ref.shape), ref)
            what = "tower" if tower_only else "projector"
            print(f"{label:28s} {size:4d} {what:9s} {ref.shape[0]:3d}x{ref.shape[1]:<4d} "
                  f"rel L2 {e:.3g}")
            V.check(np.isfinite(got).all(), f"{label} @{size} {what}: non-finite output")
            if bound is not None:
                V.check(e <= bound, f"{label} @{size} {what}: rel L2 {e:.3g} > {bound:g}")
            worst = max(worst, e)
    return worst


def case_f32(keep_bn=False):
    hf, files = V.tiny_model("t256", outtypes=("f32",), keep_bn=keep_bn)
    model, _ = R.load_vision(hf)
    with tempfile.TemporaryDirectory() as tmp:
        compare("f32" + (" (BN unfolded)" if keep_bn else ""), model, files["f32"][1],
                (128, 256), F32_BOUND, tmp)


def case_quant(t):
    hf, files = V.tiny_model("t256", outtypes=(t,))
    mmproj = files[t][1]
    same, n = V.reference_with_gguf_weights(hf, mmproj)
    V.check(n > 0, f"{mmproj}: no {t} tensor at all (nothing was quantized?)")
    orig, _ = R.load_vision(hf)
    with tempfile.TemporaryDirectory() as tmp:
        compare(f"{t} vs same weights ({n} mats)", same, mmproj, (128, 256),
                SAME_WEIGHTS_BOUND, tmp)
        compare(f"{t} vs original f32 weights", orig, mmproj, (128, 256), ORIGINAL_BOUND[t], tmp)


def case_shapes():
    hf, files = V.tiny_model("shapes", image_size=192, seed=3,
                             extra=("--vision-depths", "1,2,1,2,3",
                                    "--vision-widths", "8,16,32,64,128"))
    model, _ = R.load_vision(hf)
    with tempfile.TemporaryDirectory() as tmp:
        compare("f32 other shapes", model, files["f32"][1], (192, 320), F32_BOUND, tmp)


CASES = {
    "f32": case_f32,
    "keepbn": lambda: case_f32(keep_bn=True),
    "f16": lambda: case_quant("f16"),
    "bf16": lambda: case_quant("bf16"),
    "q8_0": lambda: case_quant("q8_0"),
    "q4_0": lambda: case_quant("q4_0"),
    "shapes": case_shapes,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(CASES)}}}")
    V.main_wrapper(CASES[sys.argv[1]])
