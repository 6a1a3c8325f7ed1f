#!/usr/bin/python3
"""test_cli.py — bad and borderline input to `fastvlm vision` and `fastvlm run`: each must
end with a one-line message naming the cause and exit status 1 (2 for usage errors), never
a crash; a 1x1 image must work.

usage: test_cli.py {vision|run}     (suite 'reference': needs the Python model tools)
Inputs: undecodable, empty, missing and truncated image files; PNGs whose headers claim
8192x8193 pixels and a 65537-pixel side (one over FASTVLM_MAX_IMAGE_PIXELS and
FASTVLM_MAX_IMAGE_SIDE, refused before decoding) and a real 65536x1 PNG (at the limit,
works); 64 questions (works) and 65 (refused, FASTVLM_MAX_PROMPTS); --size not a
multiple of 64; a --pixels file of the wrong size; an mmproj with a tensor renamed away;
a language-model GGUF given as mmproj; an mmproj whose projector width (32) differs from
the language model's hidden size (64).
"""

import os
import struct
import sys
import tempfile
import zlib

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest as V  # noqa: E402


def expect_fail(args, *needles, rc=1):
    r = V.run(args, expect_rc=None)
    msg = r.stderr.strip()
    V.check(r.returncode == rc, f"{' '.join(map(str, args[1:]))}: exit {r.returncode}, "
                                f"expected {rc}; stderr: {msg[-500:]}")
    for n in needles:
        V.check(n in msg, f"{' '.join(map(str, args[1:]))}: message lacks '{n}': {msg[-500:]}")
    print(f"ok  exit {rc}: {msg.splitlines()[-1] if msg else ''}")


def png_header_only(path, w, h):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def bad_files(tmp):
    """{label: (path, expected message part)}"""
    rng = np.random.default_rng(3)
    img = Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    good_png, good_jpg = os.path.join(tmp, "good.png"), os.path.join(tmp, "good.jpg")
    img.save(good_png)
    img.save(good_jpg, quality=90)
    files = {}
    p = os.path.join(tmp, "garbage.png")
    with open(p, "wb") as f:
        f.write(b"this is not an image at all\n" * 10)
    files["garbage"] = (p, "not a PNG or JPEG")
    p = os.path.join(tmp, "empty.jpg")
    open(p, "wb").close()
    files["empty"] = (p, "empty")
    files["missing"] = (os.path.join(tmp, "no-such-file.png"), "cannot open")
    for name, src, n, needle in (("truncated.png", good_png, 120, "bad PNG"),
                                 ("truncated.jpg", good_jpg, 600, "bad JPEG")):
        p = os.path.join(tmp, name)
        with open(src, "rb") as f, open(p, "wb") as g:
            g.write(f.read()[:n])
        files[name] = (p, needle)
    # docs/limits.md: one pixel over FASTVLM_MAX_IMAGE_PIXELS, one column over
    # FASTVLM_MAX_IMAGE_SIDE; refused from the header, before decoding
    p = os.path.join(tmp, "huge.png")
    png_header_only(p, 8192, 8193)
    files["huge"] = (p, "67117056 pixels, over the limit of 67108864 (FASTVLM_MAX_IMAGE_PIXELS)")
    p = os.path.join(tmp, "wide.png")
    png_header_only(p, 65537, 1)
    files["wide"] = (p, "over the limit of 65536 pixels (FASTVLM_MAX_IMAGE_SIDE)")
    return files


def widest(tmp):
    """A real 65536x1 PNG: at FASTVLM_MAX_IMAGE_SIDE, it must work."""
    p = os.path.join(tmp, "65536x1.png")
    Image.new("RGB", (65536, 1), (10, 200, 30)).save(p)
    return p


def one_by_one(tmp):
    p = os.path.join(tmp, "1x1.png")
    Image.new("RGB", (1, 1), (200, 30, 90)).save(p)
    return p


def mmproj_without(mmproj, tensor, tmp):
    """A copy of mmproj with `tensor` renamed (same length) so that it is missing."""
    with open(mmproj, "rb") as f:
        data = f.read()
    key = struct.pack("<Q", len(tensor)) + tensor.encode()
    V.check(data.count(key) == 1, f"{mmproj}: tensor name {tensor} not found once")
    out = os.path.join(tmp, "broken-mmproj.gguf")
    with open(out, "wb") as f:
        f.write(data.replace(key, key[:-1] + b"X"))
    return out


def case_vision():
    hf, files = V.tiny_model("t256", outtypes=("f32",))
    llm, mmproj = files["f32"]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.f32")
        base = [V.CLI, "vision", "--mmproj", mmproj, "-o", out, "--size", "128"]
        for label, (path, needle) in bad_files(tmp).items():
            expect_fail(base + ["--image", path], path, needle)
        # a 1x1 image works: 2x2 tokens x 64 projector outputs
        V.run(base + ["--image", one_by_one(tmp)])
        got = np.fromfile(out, dtype="<f4")
        V.check(got.size == 4 * 64 and np.isfinite(got).all(),
                f"1x1 image: {got.size} floats written")
        print("ok  1x1 image")
        px = os.path.join(tmp, "px.f32")
        np.zeros(3 * 128 * 127, dtype="<f4").tofile(px)
        expect_fail(base + ["--pixels", px], "expected")
        expect_fail([V.CLI, "vision", "--mmproj", mmproj, "-o", out, "--size", "100",
                     "--image", one_by_one(tmp)], "100", "64")
        expect_fail([V.CLI, "vision", "--mmproj", mmproj_without(mmproj, "mm.2.bias", tmp),
                     "-o", out, "--image", one_by_one(tmp)], "mm.2.bias", "missing")
        expect_fail([V.CLI, "vision", "--mmproj", llm, "-o", out, "--image", one_by_one(tmp)],
                    "general.architecture")
        expect_fail([V.CLI, "vision", "--mmproj", os.path.join(tmp, "none.gguf"), "-o", out,
                     "--image", one_by_one(tmp)], "none.gguf")
        expect_fail([V.CLI, "vision", "--image", one_by_one(tmp)], rc=2)


def case_run():
    hf, files = V.tiny_model("t256", outtypes=("f32",))
    llm, mmproj = files["f32"]
    _, other = V.tiny_model("h32", seed=5, extra=("--hidden", "32", "--heads", "2",
                                                  "--kv-heads", "1"))
    with tempfile.TemporaryDirectory() as tmp:
        base = [V.CLI, "run", "-m", llm, "--mmproj", mmproj, "-p", "What is it?", "-n", "4"]
        for label, (path, needle) in bad_files(tmp).items():
            expect_fail(base + ["--image", path], path, needle)
        r = V.run(base + ["--image", one_by_one(tmp), "--ids"])
        ids = r.stdout.split()
        V.check(1 <= len(ids) <= 4 and all(i.lstrip("-").isdigit() for i in ids),
                f"1x1 image: unexpected output {r.stdout!r}")
        print(f"ok  1x1 image -> ids {ids}")
        r = V.run(base + ["--image", widest(tmp), "--ids"])
        V.check(1 <= len(r.stdout.split()) <= 4, f"65536x1 image: output {r.stdout!r}")
        print("ok  65536x1 image (FASTVLM_MAX_IMAGE_SIDE)")
        # FASTVLM_MAX_PROMPTS questions are answered, one more is refused before any work
        many = [a for i in range(64) for a in ("-p", f"Q{i}?")]
        r = V.run([V.CLI, "run", "-m", llm, "--mmproj", mmproj, "-n", "1", "--ids",
                   "--image", one_by_one(tmp)] + many)
        V.check(len(r.stdout.splitlines()) == 64, f"64 questions: {len(r.stdout.splitlines())} "
                                                  f"answers")
        print("ok  64 questions (FASTVLM_MAX_PROMPTS)")
        expect_fail([V.CLI, "run", "-m", llm, "--mmproj", mmproj, "-n", "1",
                     "--image", one_by_one(tmp)] + many + ["-p", "One more?"],
                    "65 questions (-p), over the limit of 64 (FASTVLM_MAX_PROMPTS)")
        expect_fail(base + ["--image", one_by_one(tmp), "--size", "100"], "100", "64")
        expect_fail(base[:5] + [mmproj_without(mmproj, "v.exp.weight", tmp)] + base[6:]
                    + ["--image", one_by_one(tmp)], "v.exp.weight", "missing")
        expect_fail([V.CLI, "run", "-m", llm, "--mmproj", other["f32"][1], "--image",
                     one_by_one(tmp)], "32", "64")
        expect_fail([V.CLI, "run", "-m", llm, "--image", one_by_one(tmp)], rc=2)


if __name__ == "__main__":
    cases = {"vision": case_vision, "run": case_run}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        sys.exit(f"usage: {sys.argv[0]} {{vision|run}}")
    V.main_wrapper(cases[sys.argv[1]])
