#!/usr/bin/env python3
"""reuse_bench.py — fastvlmcaption with reuse off vs on, on generated videos.

What it is: writes raw RGBx clips and runs each through
  filesrc ! rawvideoparse ! fastvlmcaption mode=offline reuse=<off|on> ! fakesink
with gst-launch-1.0 -m (reuse off; "spec": reuse on with reuse-threshold=0, i.e. KV
prefix + speculative decoding on every frame; "on": defaults, gate included, or the gate
at --threshold), parses the fastvlm-caption messages and prints a table: captions/s
(wall), mean and p95 latency-ms,
decode tokens/s (sum n-tokens / sum decode-ms over model runs), decoder forwards per
token (n-tokens - n-accepted over n-tokens: every token not taken from a verified draft
costs one forward, plain or verification batch), draft acceptance (n-accepted / n-draft),
reuse kinds, and for hard cuts whether every cut was re-captioned (a caption whose
encoded-pts is the cut). Texts off vs on are compared frame by frame (identical expected
with greedy decoding for frames that ran the model; republished answers are the encoded
frame's).
Two clip sets (--clips):
* synthetic (default): threshold_curve.Scene rectangles, square frames (--size): static,
  slow motion (0.3 %/frame), hard cuts every CUT frames. Meant for random-weight models.
* demo: the world of the trained demo captioner (models/fastvlm-demo*.gguf, rendered by
  tools/demo_scenes.py), WIDTHxHEIGHT frames: a static two-shape scene; one shape moving
  left -> centre -> right a few pixels per frame; videotestsrc pattern=ball (real frames);
  hard cuts between random demo scenes. Each frame has its expected caption, so the
  table adds "correct" (captions equal to the frame's expected caption / frames whose
  truth is unambiguous — a shape or ball within 4 % of a third's boundary is not scored);
  a republished (reuse=answer) caption is scored against the frame it is published for.
Exit status 1 when a text differs, a cut is missed or stale, or the spec run drafted
nothing; tests/demo_model runs it on short demo clips (demo-reuse-bench) for that check.
What it is not: a latency benchmark of live mode (bench/element_bench.py).

Usage: reuse_bench.py --model M.gguf --mmproj M-mmproj.gguf [--frames 40] [--size 256]
       [--threads 2] [--max-new-tokens 32] [--plugin-path BUILD/gst]
       reuse_bench.py --clips demo [--frames 60] [--width 320 --height 240]
       [--plugin-path BUILD/gst] [--threshold T] [--save-frames DIR]
       (the model defaults to models/fastvlm-demo*.gguf)
Targets (idle machine): static >= 10x captions/s; slow motion >= 1.5x decode tokens/s
from speculation with identical text; hard cuts: every cut re-captioned.
"""
import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from threshold_curve import Scene  # noqa: E402

FPS = 25
FIELD = re.compile(r'([a-z-]+)=\(([a-z0-9]+)\)("(?:[^"\\]|\\.)*"|[^,;]+)')


def write_clip(path, kind, n, size, cut):
    """A synthetic clip (threshold_curve.Scene); no expected captions."""
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
    return [None] * n


# --- demo clips: tools/demo_scenes.py's world ----------------------------------------------

def _demo():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import demo_scenes  # noqa: E402  (numpy + PIL, only needed for --clips demo)
    return demo_scenes


def _obj(shape, colour, size, pos, dx=0.0):
    return {"shape": shape, "colour": colour, "size": size, "pos": pos, "dx": dx, "dy": 0.0,
            "r": 0.5, "tint": [0, 0, 0]}


def _scene(w, h, bg, objs):
    return {"kind": "scene", "width": w, "height": h, "background": bg, "objects": objs,
            "bg_tint": [0, 0, 0]}


def demo_frames(kind, n, w, h, cut, cache):
    """(list of RGB uint8 [h, w, 3] arrays, list of expected captions or None)."""
    import numpy as np
    ds = _demo()
    frames, truth = [], []
    if kind == "static":
        sc = _scene(w, h, "white", [_obj("circle", "red", "large", "left"),
                                    _obj("square", "blue", "small", "right")])
        im = np.asarray(ds.render_scene(sc))
        frames, truth = [im] * n, [ds.scene_caption(sc)] * n
    elif kind == "slow":
        # one shape from the left anchor to the right one; the renderer places it at
        # POSITIONS[pos] + dx, so pos stays "left" and dx carries the motion
        x0, x1 = ds.POSITIONS["left"][0], ds.POSITIONS["right"][0]
        for i in range(n):
            x = x0 + (x1 - x0) * i / max(1, n - 1)
            sc = _scene(w, h, "grey", [_obj("triangle", "yellow", "large", "left", x - x0)])
            frames.append(np.asarray(ds.render_scene(sc)))
            pos = ds.horizontal_third(x)
            truth.append(ds.scene_caption(_scene(w, h, "grey", [
                _obj("triangle", "yellow", "large", pos)])) if pos else None)
    elif kind == "ball":
        arr = ds.render_pattern_frames("ball", w, h, n, cache)
        for fr in arr:
            pos = ds.ball_position(fr)
            frames.append(fr)
            truth.append(ds.pattern_caption({"pattern": "ball", "ball": pos}) if pos else None)
    else:  # cuts: a new random demo scene every `cut` frames
        for i in range(n):
            sc = ds.sample_scene(random.Random(200 + i // cut), sizes=[(w, h)])
            if i % cut == 0:
                im = np.asarray(ds.render_scene(sc))
            frames.append(im)
            truth.append(ds.scene_caption(sc))
    return frames, truth


def write_demo_clip(path, kind, n, w, h, cut, cache, png_dir=None):
    import numpy as np
    frames, truth = demo_frames(kind, n, w, h, cut, cache)
    if png_dir:     # the same frames for `fastvlm run --image ...` (CLI A/B without the element)
        from PIL import Image
        os.makedirs(os.path.join(png_dir, kind), exist_ok=True)
        for i, fr in enumerate(frames):
            Image.fromarray(fr).save(os.path.join(png_dir, kind, f"{i:03d}.png"))
    alpha = np.full((h, w, 1), 255, np.uint8)
    with open(path, "wb") as f:
        for fr in frames:
            f.write(np.concatenate([fr, alpha], axis=2).tobytes())
    return truth


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
    pipe = (f"filesrc location={clip} ! rawvideoparse format=rgbx width={args.width} "
            f"height={args.height} framerate={FPS}/1 ! fastvlmcaption model={args.model} "
            f"mmproj={args.mmproj} mode=offline threads={args.threads} "
            f"max-new-tokens={args.max_new_tokens} reuse={'true' if reuse else 'false'} "
            + ("reuse-threshold=0 " if mode == "spec" else "")
            + (f"reuse-threshold={args.threshold} " if mode == "on" and args.threshold is not None
               else "") +
            "stats-interval=0 ! fakesink")
    env = dict(os.environ)
    if args.plugin_path:
        env["GST_PLUGIN_PATH_1_0"] = args.plugin_path
    t0 = time.monotonic()
    out = subprocess.run(["gst-launch-1.0", "-m"] + pipe.split(), env=env,
                         capture_output=True, text=True, check=True).stdout
    wall = time.monotonic() - t0
    caps = [parse(l) for l in out.splitlines() if "fastvlm-caption" in l]
    return wall, caps


def frame_index(pts):
    return (pts * FPS + 500000000) // 1000000000


def summary(wall, caps, truth):
    lat = sorted(c["latency-ms"] for c in caps)
    runs = [c for c in caps if c.get("reuse") != "answer"]
    tok = sum(c["n-tokens"] for c in runs)
    dec = sum(c["decode-ms"] for c in runs)
    nd = sum(c.get("n-draft", 0) for c in runs)
    na = sum(c.get("n-accepted", 0) for c in runs)
    kinds = {}
    for c in caps:
        kinds[c.get("reuse", "none")] = kinds.get(c.get("reuse", "none"), 0) + 1
    scored = right = 0
    for c in caps:
        i = frame_index(c["frame-pts"])
        if 0 <= i < len(truth) and truth[i] is not None:
            scored += 1
            right += c["text"] == truth[i]
    return {
        "captions/s": len(caps) / wall if wall else 0,
        "mean ms": sum(lat) / len(lat) if lat else 0,
        "p95 ms": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0,
        "decode tok/s": tok * 1000.0 / dec if dec else 0,
        "fwd/tok": (tok - na) / tok if tok else 0,
        "acceptance": na / nd if nd else 0,
        "correct": f"{right}/{scored}" if scored else "-",
        "kinds": " ".join(f"{k}:{v}" for k, v in sorted(kinds.items())),
    }


def show_captions(kind, caps):
    """Runs of equal captions of one mode: 'frames a-b: text'."""
    runs = []
    for c in sorted(caps, key=lambda c: c["frame-pts"]):
        i = frame_index(c["frame-pts"])
        if runs and runs[-1][2] == c["text"]:
            runs[-1][1] = i
        else:
            runs.append([i, i, c["text"]])
    for a, b, t in runs:
        print(f"  {kind} frames {a}-{b}: {t}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", choices=["synthetic", "demo"], default="synthetic")
    ap.add_argument("--model", default=None)
    ap.add_argument("--mmproj", default=None)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, default=256, help="synthetic clips: square side")
    ap.add_argument("--width", type=int, default=320, help="demo clips")
    ap.add_argument("--height", type=int, default=240, help="demo clips")
    ap.add_argument("--cut", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=None,
                    help="default 32 (synthetic), 64 (demo: four-shape captions are longer)")
    ap.add_argument("--plugin-path", default=None)
    ap.add_argument("--threshold", type=float, default=None,
                    help="reuse-threshold of the 'on' runs (default: the element's)")
    ap.add_argument("--show-captions", action="store_true",
                    help="print the runs of equal captions of the 'off' and 'on' runs")
    ap.add_argument("--save-frames", metavar="DIR", default=None,
                    help="demo clips: also write every frame as DIR/<clip>/NNN.png")
    ap.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                    "fastvlm-vts-cache"),
                    help="demo clips: videotestsrc frame cache (demo_scenes.py)")
    args = ap.parse_args()
    if args.clips == "demo":
        args.model = args.model or os.path.join(ROOT, "models", "fastvlm-demo.gguf")
        args.mmproj = args.mmproj or os.path.join(ROOT, "models", "fastvlm-demo-mmproj.gguf")
        kinds = ("static", "slow", "ball", "cuts")
        args.max_new_tokens = args.max_new_tokens or 64
    else:
        if not args.model or not args.mmproj:
            ap.error("--model and --mmproj are required with --clips synthetic")
        args.width = args.height = args.size
        kinds = ("static", "slow", "cuts")
        args.max_new_tokens = args.max_new_tokens or 32
    ok = True
    print("| clip | reuse | captions/s | mean ms | p95 ms | decode tok/s | fwd/tok | "
          "acceptance | correct | reuse kinds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            clip = os.path.join(tmp, kind + ".rgbx")
            if args.clips == "demo":
                truth = write_demo_clip(clip, kind, args.frames, args.width, args.height,
                                        args.cut, args.cache, args.save_frames)
            else:
                truth = write_clip(clip, kind, args.frames, args.size, args.cut)
            res = {}
            for mode in ("off", "spec", "on"):
                wall, caps = run(args, clip, mode)
                res[mode] = caps
                s = summary(wall, caps, truth)
                print(f"| {kind} | {mode} | {s['captions/s']:.2f} | "
                      f"{s['mean ms']:.0f} | {s['p95 ms']:.0f} | {s['decode tok/s']:.1f} | "
                      f"{s['fwd/tok']:.2f} | {s['acceptance']:.2f} | {s['correct']} | "
                      f"{s['kinds']} |", flush=True)
            off = {c["frame-pts"]: c for c in res["off"]}
            for c in res["on"] + res["spec"]:
                ref = off.get(c["encoded-pts"])
                if c.get("reuse") == "none" and ref and ref["text"] != c["text"]:
                    print(f"  TEXT DIFFERS at pts {c['frame-pts']}")
                    ok = False
            # "spec" runs the model on every frame with the previous caption as draft: with
            # no drafted token at all its numbers would be plain decoding's
            if args.frames > 1 and not sum(c.get("n-draft", 0) for c in res["spec"]):
                print("  NO DRAFTS in the spec run")
                ok = False
            if args.show_captions:
                show_captions(kind + " off", res["off"])
                show_captions(kind + " on", res["on"])
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
