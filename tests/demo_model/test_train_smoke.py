#!/usr/bin/python3
"""test_train_smoke.py — tools/train_demo_model.py runs end to end in --smoke mode.

What it is: 2 training steps on 4 images, BatchNorm recalibration, float16 export in the
Hugging Face layout, the check of the export against tests/reference/ (fastvithd_ref.py +
qwen2_ref.py), conversion with tools/convert_hf_to_gguf.py, and one `fastvlm run` on the
result — all in a temporary directory, in well under a minute.
What it is not: the training (30 minutes, run by hand; docs/demo-model.md) and not a check
of what the smoke model says (it is untrained).

Environment (tests/meson.build): FASTVLM_SRCDIR, FASTVLM_CLI. Exit 77 = skipped (no torch).
"""

import os
import subprocess
import sys
import tempfile

SRC = os.environ.get("FASTVLM_SRCDIR", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def main():
    try:
        import torch  # noqa: F401
        import PIL  # noqa: F401
    except ImportError as e:
        print(f"SKIP: {e}")
        return 77
    with tempfile.TemporaryDirectory(prefix="fastvlm-train-smoke-") as out:
        r = subprocess.run([sys.executable, os.path.join(SRC, "tools", "train_demo_model.py"),
                            "--smoke", "--threads", "1", "--out", out,
                            "--cache", os.path.join(out, "cache")])
        if r.returncode != 0:
            print(f"FAIL: train_demo_model.py --smoke exited {r.returncode}")
            return 1
        model = os.path.join(out, "fastvlm-demo.gguf")
        mmproj = os.path.join(out, "fastvlm-demo-mmproj.gguf")
        for f in (model, mmproj, os.path.join(out, "fastvlm-demo-hf", "model.safetensors"),
                  os.path.join(out, "fastvlm-demo-hf", "tokenizer.json")):
            if not os.path.isfile(f):
                print(f"FAIL: {f} was not written")
                return 1
        cli = os.environ.get("FASTVLM_CLI")
        if cli and os.path.isfile(cli):
            sys.path.insert(0, os.path.join(SRC, "tools"))
            import demo_scenes as ds
            rng = __import__("random").Random(5)
            png = os.path.join(out, "scene.png")
            ds.render_scene(ds.sample_scene(rng)).save(png)
            r = subprocess.run([cli, "run", "-m", model, "--mmproj", mmproj, "--image", png,
                                "-n", "4", "-t", "1"], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL: fastvlm run on the smoke model: {r.stderr.strip()}")
                return 1
    print("ok: smoke training, export, reference check, conversion and a CLI run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
