#!/usr/bin/env python3
"""make_model.py — builds the tiny random VLM the reuse tests run on.

What it is: a build-time helper (a meson custom_target) that runs tools/make_tiny_model.py
(Qwen2 decoder with awkward sizes: 3 layers, 6 heads over 2 kv heads, hidden 96, ffn 160;
a FastViTHD tower at 128 px, i.e. 4 image rows) and tools/convert_hf_to_gguf.py to write
OUTDIR/reuse-{f32,q4_0}.gguf and their -mmproj.gguf. What it is not: a reference — the
reuse tests compare the engine with itself (reused vs computed afresh); equivalence with
PyTorch is tests/llm and tests/vision's job.

Usage: make_model.py SRCDIR OUTDIR
"""
import os
import subprocess
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    tools = os.path.join(src, "tools")
    hf = os.path.join(out, "reuse-hf")
    os.makedirs(out, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(tools, "make_tiny_model.py"), hf,
                    "--seed", "11", "--image-size", "128", "--hidden", "96", "--heads", "6",
                    "--kv-heads", "2", "--ffn", "160", "--layers", "3"],
                   check=True, stdout=subprocess.DEVNULL)
    for t in ("f32", "q4_0"):
        subprocess.run([sys.executable, os.path.join(tools, "convert_hf_to_gguf.py"), hf,
                        "--outfile", os.path.join(out, f"reuse-{t}.gguf"), "--outtype", t],
                       check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
