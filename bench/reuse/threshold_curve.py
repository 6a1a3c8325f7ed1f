#!/usr/bin/env python3
"""threshold_curve.py — how the element's reuse-threshold trades reuse for false reuse.

What it is: generates synthetic clips (static scene, static + camera noise, slowly moving
object, hard cuts, a small object appearing/disappearing, snow) as the RGBx squares the
element's worker sees, runs them through the element's own fingerprint gate
(fingerprint_gate.c, compiled here against BUILD's gst/ and orc/ static libraries, so the
ORC code and its C backup are the ones the element runs) and prints, per clip and
threshold: the fraction of frames reused, and the fraction of TRUE scene changes
(a frame whose scene differs from the last encoded frame's) that were wrongly reused.
What it is not: a model run (see reuse_bench.py for captions).

Usage: threshold_curve.py [--build build-reuse-gst] [--size 256] [--frames 60]
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile

THRESHOLDS = [0.5, 1, 2, 3, 4, 6, 8, 12, 16]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def build_helper(build, out):
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "gstreamer-video-1.0",
                         "orc-0.4"], check=True, capture_output=True, text=True).stdout.split()
    cmd = ["cc", "-O2", "-o", out, os.path.join(HERE, "fingerprint_gate.c"),
           "-I" + os.path.join(ROOT, "gst"), "-I" + os.path.join(ROOT, "engine", "include"),
           "-I" + os.path.join(build, "orc"),
           os.path.join(build, "gst", "libgstfastvlm-common.a"),
           os.path.join(build, "orc", "libfastvlm-orc.a")]
    # the worker's object also references the engine (unused here)
    eng = [os.path.join(build, "engine", f) for f in sorted(os.listdir(
        os.path.join(build, "engine"))) if f.endswith(".a")]
    cmd += eng + eng + pc + ["-lm"]
    subprocess.run(cmd, check=True)


class Scene:
    """A flat background and a few rectangles, from a seed."""

    def __init__(self, seed):
        r = random.Random(seed)
        self.bg = [r.randrange(256) for _ in range(3)]
        self.rects = []
        for _ in range(r.randrange(2, 5)):
            w, h = r.uniform(0.15, 0.5), r.uniform(0.15, 0.5)
            self.rects.append([r.uniform(0, 1 - w), r.uniform(0, 1 - h), w, h,
                               [r.randrange(256) for _ in range(3)]])

    def render(self, size, shift=0.0, extra=None, noise=0, rng=None):
        rects = [(x + shift, y, w, h, c) for x, y, w, h, c in self.rects]
        if extra:
            rects.append(extra)
        row_cache = {}
        out = bytearray(size * size * 4)
        for py in range(size):
            fy = (py + 0.5) / size
            spans = []
            for x, y, w, h, c in rects:
                if y <= fy < y + h:
                    spans.append((int(x * size), int((x + w) * size), c))
            key = tuple((a, b, tuple(c)) for a, b, c in spans)
            row = row_cache.get(key)
            if row is None:
                row = bytearray(bytes(self.bg + [255]) * size)
                for a, b, c in spans:
                    a, b = max(a, 0), min(b, size)
                    if b > a:
                        row[a * 4:b * 4] = bytes(list(c) + [255]) * (b - a)
                row_cache[key] = row
            out[py * size * 4:(py + 1) * size * 4] = row
        if noise:
            n = len(out)
            deltas = [rng.randint(-noise, noise) for _ in range(n // 4)]
            for i in range(0, n, 4):
                d = deltas[i >> 2]
                for k in range(3):
                    v = out[i + k] + d
                    out[i + k] = 0 if v < 0 else 255 if v > 255 else v
        return bytes(out)


def clips(size, n):
    """Yields (name, frames, scene id per frame); a differing id is a true change."""
    rng = random.Random(1)
    s = Scene(10)
    yield "static", [s.render(size)] * n, [0] * n
    yield ("camera noise (+-6)", [s.render(size, noise=6, rng=rng) for _ in range(n)],
           [0] * n)
    yield ("slow motion (0.3 %/frame)",
           [s.render(size, shift=0.003 * i) for i in range(n)], [0] * n)
    frames, ids = [], []
    for i in range(n):
        k = i // 6
        frames.append(Scene(100 + k).render(size, noise=2, rng=rng))
        ids.append(k)
    yield "hard cuts (every 6, noise +-2)", frames, ids
    frames, ids = [], []
    obj = [0.4, 0.4, 0.12, 0.12, [250, 20, 20]]
    for i in range(n):
        on = (i // 10) % 2 == 1
        frames.append(s.render(size, extra=obj if on else None))
        ids.append(int(on))
    yield "small object (1.4 % of area) in/out every 10", frames, ids
    frames = []
    for i in range(n):
        frames.append(bytes(rng.getrandbits(8) for _ in range(size * size * 4)))
    yield "snow (one scene)", frames, [0] * n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-reuse-gst"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=60)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        helper = os.path.join(tmp, "fingerprint_gate")
        build_helper(os.path.abspath(a.build), helper)
        print(f"fingerprint on {a.size}x{a.size} squares, {a.frames} frames per clip; "
              "cells: reused % / false reuse % of true changes")
        print("| clip | " + " | ".join(f"thr {t:g}" for t in THRESHOLDS) + " |")
        print("|---|" + "---|" * len(THRESHOLDS))
        for name, frames, ids in clips(a.size, a.frames):
            out = subprocess.run([helper, str(a.size)] + [str(t) for t in THRESHOLDS],
                                 input=b"".join(frames), capture_output=True, check=True)
            rows = [list(map(float, l.split())) for l in out.stdout.decode().splitlines()]
            cells = []
            for t in range(len(THRESHOLDS)):
                reused = changes = false = 0
                ref = None
                for i, r in enumerate(rows):
                    hit = int(r[2 + t])
                    if ref is not None and ids[i] != ref:
                        changes += 1
                        false += hit
                    reused += hit
                    if not hit:
                        ref = ids[i]
                fr = f"{100.0 * false / changes:.0f}" if changes else "-"
                cells.append(f"{100.0 * reused / len(rows):.0f} / {fr}")
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
