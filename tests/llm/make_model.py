#!/usr/bin/env python3
"""make_model.py — builds the tiny decoder-only models the C session test uses.

What it is: a build-time helper (a meson custom_target) that runs the project's
tools/make_tiny_model.py (text-only, awkward sizes: 3 layers, 6 heads over 2 kv heads,
hidden 96, ffn 160) and tools/convert_hf_to_gguf.py to write OUTDIR/llm-f32.gguf and
OUTDIR/llm-q4_0.gguf. What it is not: a reference — the C test only checks the session's
self-consistency on these files; equivalence with PyTorch is test_equivalence.py's job.

Usage: make_model.py SRCDIR OUTDIR
"""
import os
import subprocess
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    tools = os.path.join(src, "tools")
    hf = os.path.join(out, "llm-hf")
    os.makedirs(out, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(tools, "make_tiny_model.py"), hf, "--no-vision",
                    "--seed", "5", "--hidden", "96", "--heads", "6", "--kv-heads", "2",
                    "--ffn", "160", "--layers", "3"], check=True, stdout=subprocess.DEVNULL)
    for t in ("f32", "q4_0"):
        subprocess.run([sys.executable, os.path.join(tools, "convert_hf_to_gguf.py"), hf,
                        "--outfile", os.path.join(out, f"llm-{t}.gguf"), "--outtype", t],
                       check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
