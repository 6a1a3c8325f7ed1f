#!/usr/bin/python3
"""test_preprocess.py — image preprocessing (engine/image.c) and decoding
(tools/fastvlm/imageio.c) against PIL, the library predict.py uses.

usage: test_preprocess.py CASE [PREPROCESS_TOOL]     (suite 'reference')
  resize  fvlm_image_preprocess() through tests/vision/preprocess_tool.c on raw RGB buffers
          (odd sizes 1x1, 3x7, 641x479, portrait and landscape, extreme aspect ratios,
          upscales and downscales, row strides with padding bytes, several pad colours)
          vs expand2square + PIL Image.resize(BICUBIC): max |difference| must be 0 LSB
          (measured: 0 on every case, i.e. bit-exact with Pillow 9.4); then the float
          stage (x rescale, - mean, / std) on a non-trivial mean/std, to 1e-6 relative.
  decode  `fastvlm vision --image F --dump-pixels` on PNG (RGB, RGBA, grey, grey+alpha,
          palette with transparency, 1-bit, 16-bit RGB, interlaced) and JPEG (4:2:0,
          4:4:4, grey, progressive, CMYK) files written by PIL vs PIL's
          Image.open(F).convert("RGB") + the same preprocessing: 0 LSB.
PIL's pad colour is int(mean*255) per channel (black for FastVLM); we test other colours
too because the engine takes it from the mmproj.
"""

import os
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vtest as V  # noqa: E402
import fastvithd_ref as R  # noqa: E402

MAX_LSB = 0   # measured bound: bit-exact


def pil_reference(img, size, pad):
    """uint8 [3, size, size] as predict.py gets it before the float conversion."""
    sq = R.expand2square(img.convert("RGB"), tuple(pad))
    return np.asarray(sq.resize((size, size), Image.BICUBIC)).transpose(2, 0, 1)


def run_tool(tool, rgb, stride_pad, size, pad, rescale=1.0, mean=(0, 0, 0), std=(1, 1, 1),
             tmp="."):
    h, w, _ = rgb.shape
    stride = 3 * w + stride_pad
    raw = np.full((h, stride), 0xA5, dtype=np.uint8)     # padding bytes must be ignored
    raw[:, :3 * w] = rgb.reshape(h, 3 * w)
    fin, fout = os.path.join(tmp, "in.rgb"), os.path.join(tmp, "out.f32")
    raw.tofile(fin)
    V.run([tool, fin, w, h, stride, size, fout, *pad, repr(float(rescale)), *map(repr, mean),
           *map(repr, std)])
    return np.fromfile(fout, dtype="<f4").reshape(3, size, size)


def make_image(rng, w, h, kind):
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1),
                    ((xx // 3 + yy // 5) % 2) * 255], -1)          # ramps + a checkerboard
    return img.astype(np.uint8)


def case_resize(tool):
    rng = np.random.default_rng(7)
    cases = [(1, 1, 64), (1, 1, 1024), (3, 7, 64), (7, 3, 128), (2, 1, 64), (1, 2, 256),
             (641, 479, 256), (479, 641, 256), (641, 479, 1024), (100, 100, 100),
             (64, 64, 128), (128, 128, 64), (2000, 30, 64), (5, 900, 64), (1280, 720, 1024),
             (720, 1280, 384), (333, 333, 1024), (1023, 1025, 512), (3000, 2000, 1024),
             (1, 3000, 128)]
    cases += [(int(rng.integers(1, 700)), int(rng.integers(1, 700)), int(s))
              for s in rng.choice([64, 128, 192, 256, 448], 12)]
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (w, h, size) in enumerate(cases):
            for kind in ("noise", "smooth"):
                img = make_image(rng, w, h, kind)
                pad = [int(v) for v in rng.integers(0, 256, 3)] if i % 3 else [0, 0, 0]
                stride_pad = int(rng.integers(0, 13)) if i % 2 else 0
                got = run_tool(tool, img, stride_pad, size, pad, tmp=tmp)
                want = pil_reference(Image.fromarray(img), size, pad).astype(np.float32)
                d = float(np.abs(got - want).max())
                worst = max(worst, d)
                if d > MAX_LSB:
                    raise V.TestFailure(f"{w}x{h} -> {size} ({kind}, pad {pad}, stride +"
                                        f"{stride_pad}): max |diff| {d} LSB at "
                                        f"{np.unravel_index(np.argmax(np.abs(got - want)), got.shape)}")
        print(f"resize: {2 * len(cases)} images, max |diff| vs PIL = {worst:g} LSB")

        # float stage: (v * rescale - mean) / std per channel
        img = make_image(rng, 300, 200, "noise")
        rescale, mean, std = 1 / 255, (0.48145466, 0.4578275, 0.40821073), \
            (0.26862954, 0.26130258, 0.27577711)
        got = run_tool(tool, img, 5, 224, [122, 116, 104], rescale, mean, std, tmp)
        u8 = pil_reference(Image.fromarray(img), 224, [122, 116, 104]).astype(np.float64)
        want = (u8 * rescale - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
        e = float(np.abs(got - want).max() / np.abs(want).max())
        print(f"normalisation: max relative difference {e:.3g}")
        V.check(e <= 1e-6, f"normalisation differs by {e:.3g} (relative)")


def case_decode():
    hf, files = V.tiny_model("t256", outtypes=("f32",))
    mmproj = files["f32"][1]
    rng = np.random.default_rng(11)
    base = make_image(rng, 203, 141, "smooth")
    base[::7, ::5] = rng.integers(0, 256, base[::7, ::5].shape, dtype=np.uint8)
    pil = Image.fromarray(base)
    variants = {
        "rgb.png": lambda p: pil.save(p),
        "rgba.png": lambda p: Image.fromarray(np.dstack([base, base[..., :1]])).save(p),
        "grey.png": lambda p: pil.convert("L").save(p),
        "grey_alpha.png": lambda p: pil.convert("LA").save(p),
        "palette.png": lambda p: pil.convert("P", palette=Image.ADAPTIVE, colors=37).save(
            p, transparency=3),
        "bilevel.png": lambda p: pil.convert("1").save(p),
        "rgb16.png": lambda p: _save_rgb16(base, p),
        "interlaced.png": lambda p: _save_interlaced(pil, p),
        "q90.jpg": lambda p: pil.save(p, quality=90),
        "444.jpg": lambda p: pil.save(p, quality=95, subsampling=0),
        "grey.jpg": lambda p: pil.convert("L").save(p),
        "progressive.jpg": lambda p: pil.save(p, progressive=True),
        "cmyk.jpg": lambda p: pil.convert("CMYK").save(p),
        "portrait.png": lambda p: Image.fromarray(base.transpose(1, 0, 2).copy()).save(p),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, save in variants.items():
            path = os.path.join(tmp, name)
            save(path)
            dump = os.path.join(tmp, name + ".f32")
            V.run([V.CLI, "vision", "--mmproj", mmproj, "--image", path, "--size", 256,
                   "-o", os.path.join(tmp, "feat.f32"), "--tower-only", "--dump-pixels", dump])
            # the dump holds v/255 in float32: back to 8-bit levels
            got = np.rint(np.fromfile(dump, dtype="<f4").reshape(3, 256, 256) * 255.0)
            with Image.open(path) as im:
                want = pil_reference(im, 256, (0, 0, 0)).astype(np.float64)
            d = float(np.abs(got - want).max())
            print(f"decode {name:16s} max |diff| vs PIL = {d:.3g} LSB")
            V.check(d <= MAX_LSB, f"{name}: decoded+preprocessed differs from PIL by "
                                         f"{d:.3g} LSB")


def _save_rgb16(base, path):
    # PIL cannot write 16-bit RGB PNGs: build one with zlib (high byte = base, low = noise)
    import struct
    import zlib
    h, w, _ = base.shape
    lo = np.random.default_rng(5).integers(0, 256, base.shape, dtype=np.uint8)
    px = np.stack([base, lo], -1).reshape(h, w * 6)
    raw = b"".join(b"\x00" + row.tobytes() for row in px)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


def _save_interlaced(pil, path):
    # PIL writes no Adam7 PNGs; re-encode with libpng's interlacing through a tiny writer
    import struct
    import zlib
    a = np.asarray(pil)
    h, w, _ = a.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
              (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        raw += b"".join(b"\x00" + row.tobytes() for row in sub)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("resize", "decode"):
        sys.exit(f"usage: {sys.argv[0]} resize TOOL | decode")
    if sys.argv[1] == "resize":
        V.main_wrapper(lambda: case_resize(sys.argv[2]))
    else:
        V.main_wrapper(case_decode)
