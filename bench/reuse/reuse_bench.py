#!/usr/bin/env python3
"""reuse_bench.py — fastvlmcaption with reuse off vs on, on generated videos.

What it is: writes three raw RGBx clips (threshold_curve.Scene): a static scene, a slowly
moving object, hard cuts every CUT frames; runs each through
  filesrc ! rawvideoparse ! fastvlmcaption mode=offline reuse=<off|on> ! fakesink
with gst-launch-1.0 -m (reuse off; "spec": reuse on with reuse-threshold=0, i.e. KV
prefix + speculative decoding on every frame; "on": defaults, gate included), parses the fastvlm-caption messages and prints a table:
captions/s (wall), mean and p95 latency-ms, decode tokens/s (sum n-tokens / sum
decode-ms over model runs), draft acceptance (n-accepted / n-draft), reuse kinds, and
for hard cuts whether every cut was re-captioned (a caption whose encoded-pts is the cut).
Texts off vs on are compared frame by frame (identical expected with greedy decoding
for frames that ran the model; republished answers are the encoded frame's).
What it is not: a latency benchmark of live mode (bench/element_bench.py).

Usage: reuse_bench.py --model M.gguf --mmproj M-mmproj.gguf [--frames 40] [--size 256]
       [--threads 2] [--max-new-tokens 32] [--plugin-path BUILD/gst]
Targets (idle machine): static >= 10x captions/s; slow motion >= 1.5x decode tokens/s
from speculation with identical text; hard cuts: every cut re-captioned.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from threshold_curve import Scene  # noqa: E402

FPS = 25
FIELD = re.compile(r'([a-z-]+)=\(([a-z0-9]+)\)("(?:[^"\\]|\\.)*"|[^,;]+)')


def write_clip(path, kind, n, size, cut):
    s = Scene(10)
    with open(path, "wb") as f:
        for i in range(n):
            if kind == "static":
                fr = s.render(size)
            elif kind == "slow":
                fr = s.render(size, shift=0.003 * i)
            else:
                fr = Scene(100 + i // cut).render(size)
            f.write(fr)


def parse(line):
    d = {}
    for k, t, v in FIELD.findall(line):
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        elif t in ("double", "float"):
            v = float(v)
        elif t in ("int", "uint", "guint64", "gint64", "uint64", "int64"):
            v = int(v)
        elif t in ("boolean", "gboolean"):
            v = v.strip() in ("true", "1")
        d[k] = v
    return d


def run(args, clip, mode):
    reuse = mode != "off"
    pipe = (f"filesrc location={clip} ! rawvideoparse format=rgbx width={args.size} "
            f"height={args.size} framerate={FPS}/1 ! fastvlmcaption model={args.model} "
            f"mmproj={args.mmproj} mode=offline threads={args.threads} "
            f"max-new-tokens={args.max_new_tokens} reuse={'true' if reuse else 'false'} "
            + ("reuse-threshold=0 " if mode == "spec" else "") +
            f"stats-interval=0 ! fakesink")
    env = dict(os.environ)
    if args.plugin_path:
        env["GST_PLUGIN_PATH_1_0"] = args.plugin_path
    t0 = time.monotonic()
    out = subprocess.run(["gst-launch-1.0", "-m"] + pipe.split(), env=env,
                         capture_output=True, text=True, check=True).stdout
    wall = time.monotonic() - t0
    caps = [parse(l) for l in out.splitlines() if "fastvlm-caption" in l]
    return wall, caps


def summary(wall, caps):
    lat = sorted(c["latency-ms"] for c in caps)
    runs = [c for c in caps if c.get("reuse") != "answer"]
    tok = sum(c["n-tokens"] for c in runs)
    dec = sum(c["decode-ms"] for c in runs)
    nd = sum(c.get("n-draft", 0) for c in runs)
    na = sum(c.get("n-accepted", 0) for c in runs)
    kinds = {}
    for c in caps:
        kinds[c.get("reuse", "none")] = kinds.get(c.get("reuse", "none"), 0) + 1
    return {
        "captions/s": len(caps) / wall if wall else 0,
        "mean ms": sum(lat) / len(lat) if lat else 0,
        "p95 ms": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0,
        "decode tok/s": tok * 1000.0 / dec if dec else 0,
        "acceptance": na / nd if nd else 0,
        "kinds": " ".join(f"{k}:{v}" for k, v in sorted(kinds.items())),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--mmproj", required=True)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--cut", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--plugin-path", default=None)
    args = ap.parse_args()
    ok = True
    print("| clip | reuse | captions/s | mean ms | p95 ms | decode tok/s | acceptance | "
          "reuse kinds |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("static", "slow", "cuts"):
            clip = os.path.join(tmp, kind + ".rgbx")
            write_clip(clip, kind, args.frames, args.size, args.cut)
            res = {}
            for mode in ("off", "spec", "on"):
                wall, caps = run(args, clip, mode)
                res[mode] = caps
                s = summary(wall, caps)
                print(f"| {kind} | {mode} | {s['captions/s']:.2f} | "
                      f"{s['mean ms']:.0f} | {s['p95 ms']:.0f} | {s['decode tok/s']:.1f} | "
                      f"{s['acceptance']:.2f} | {s['kinds']} |")
            off = {c["frame-pts"]: c for c in res["off"]}
            for c in res["on"] + res["spec"]:
                ref = off.get(c["encoded-pts"])
                if c.get("reuse") == "none" and ref and ref["text"] != c["text"]:
                    print(f"  TEXT DIFFERS at pts {c['frame-pts']}")
                    ok = False
            if kind == "cuts":
                cut_ns = [i * 1000000000 // FPS for i in range(0, args.frames, args.cut)]
                enc = {c["encoded-pts"] for c in res["on"]}
                missed = [t for t in cut_ns if t not in enc]
                print(f"  cuts re-captioned: {len(cut_ns) - len(missed)}/{len(cut_ns)}")
                ok &= not missed
                for c in res["on"]:
                    start = max(t for t in cut_ns if t <= c["frame-pts"])
                    if c["encoded-pts"] < start:
                        print(f"  STALE caption at pts {c['frame-pts']}")
                        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
