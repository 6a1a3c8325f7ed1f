#!/usr/bin/env python3
"""make_model.py — builds the tiny random FastVLM the gst tests run (tests/gst/).

What it is: tools/make_tiny_model.py (seeded, 64x64 vision input, 2 decoder layers) then
tools/convert_hf_to_gguf.py (f32), writing OUTDIR/tiny.gguf and OUTDIR/tiny-mmproj.gguf.
What it is not: a useful captioner; the tests compare the element with the engine on the
same frames, never caption wording.

Usage: make_model.py TOOLS_DIR OUTDIR
"""
import os
import subprocess
import sys


def main():
    tools, outdir = sys.argv[1], sys.argv[2]
    hf = os.path.join(outdir, "tiny-hf")
    py = sys.executable
    subprocess.run([py, os.path.join(tools, "make_tiny_model.py"), hf, "--seed", "3",
                    "--image-size", "64"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([py, os.path.join(tools, "convert_hf_to_gguf.py"), hf, "--outtype", "f32",
                    "--outfile", os.path.join(outdir, "tiny.gguf")], check=True,
                   stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
