#!/usr/bin/env python3
"""demo_scenes.py — synthetic scenes, captions and question/answer pairs for the demo model.

What it is: the seeded, deterministic data generator behind tools/train_demo_model.py and
tests/demo_model/: (1) scenes of 1-4 coloured shapes (circle, square, triangle; small or
large; at left/right/top/bottom/centre) on a black, white or grey background, drawn at
several frame sizes and aspects; (2) REAL frames of GStreamer's videotestsrc patterns,
rendered with gst-launch-1.0 at several sizes (the ball at several times, so it moves);
(3) for both, the caption answering the element's default prompt "Describe the image." and
short question/answer pairs (colour, count, shape, position, size, background, yes/no,
which test pattern); (4) the inverse of the caption grammar (parse_caption) used to score
captions attribute by attribute; (5) the reference preprocessing of predict.py (pad to a
centred black square, PIL bicubic resize, uint8) used for training.
What it is not: a model, a trainer or an evaluator, and not a general image dataset — the
captions follow one fixed grammar so that they can be scored exactly.

Usage (writes PNGs + manifest.jsonl, one line per image with its caption and Q/A):
    demo_scenes.py --out DIR [--seed 1] [--scenes 200] [--patterns] [--sizes eval]
"""

import argparse
import json
import os
import random
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw

DEFAULT_PROMPT = "Describe the image."        # engine/model.c and the element's default
SYSTEM_PROMPT = "You are a helpful assistant."

# --- scene vocabulary ------------------------------------------------------------------

COLOURS = {                                     # name -> nominal RGB (jittered when drawn)
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 70, 230),
    "yellow": (240, 220, 30), "purple": (140, 50, 190), "orange": (250, 140, 20),
    "white": (245, 245, 245), "black": (10, 10, 10),
}
BACKGROUNDS = {"black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128)}
SHAPES = ["circle", "square", "triangle"]
SIZES = {"small": (0.06, 0.08), "large": (0.12, 0.14)}   # radius as a fraction of min(W, H)
COUNT_WORDS = ["zero", "one", "two", "three", "four"]

# position -> (x, y) anchor as fractions of the frame; caption phrase
POSITIONS = {"top": (0.5, 0.18), "left": (0.18, 0.5), "centre": (0.5, 0.5),
             "right": (0.82, 0.5), "bottom": (0.5, 0.82)}
POSITION_PHRASE = {"top": "at the top", "left": "on the left", "centre": "in the centre",
                   "right": "on the right", "bottom": "at the bottom"}
POSITION_ORDER = ["top", "left", "centre", "right", "bottom"]   # caption reading order
LAYOUTS = {                                     # count -> possible position sets
    1: [["left"], ["right"], ["top"], ["bottom"], ["centre"]],
    2: [["left", "right"], ["top", "bottom"]],
    3: [["left", "centre", "right"], ["top", "centre", "bottom"]],
    4: [["top", "left", "right", "bottom"]],
}

# Frame sizes (W, H): several aspects, multiples of 4 and not. Training and held-out
# evaluation use disjoint size lists.
TRAIN_SIZES = [(128, 96), (160, 120), (176, 144), (240, 180), (256, 256), (320, 240),
               (320, 180), (352, 288), (384, 216), (400, 300), (480, 270), (640, 480),
               (180, 240), (240, 240), (480, 360), (200, 200), (96, 96), (426, 240)]
EVAL_SIZES = [(144, 108), (224, 168), (272, 204), (288, 216), (336, 252), (448, 252),
              (512, 384), (216, 288), (300, 300), (192, 192), (150, 150), (560, 420)]

# --- videotestsrc patterns ---------------------------------------------------------------
# name -> (extra gst properties, caption). Left out on purpose: blink (a black or a white
# frame, the same as black/white), solid-color (black by default), smpte100 (= smpte), and
# zone-plate/chroma-zone-plate at their default k* values (a flat grey frame) — those two
# are rendered with the parameters of the GStreamer documentation example instead.
PATTERNS = {
    "smpte": ("", "the SMPTE colour bars test pattern"),
    "smpte75": ("", "the SMPTE 75% colour bars test pattern"),
    "smpte-rp-219": ("", "the SMPTE RP 219 colour bars test pattern"),
    "snow": ("", "random television snow"),
    "black": ("", "a plain black frame"),
    "white": ("", "a plain white frame"),
    "red": ("", "a plain red frame"),
    "green": ("", "a plain green frame"),
    "blue": ("", "a plain blue frame"),
    "checkers-1": ("", "a red and green checkerboard with 1-pixel squares"),
    "checkers-2": ("", "a red and green checkerboard with 2-pixel squares"),
    "checkers-4": ("", "a red and green checkerboard with 4-pixel squares"),
    "checkers-8": ("", "a red and green checkerboard with 8-pixel squares"),
    "circular": ("", "concentric black and white rings"),
    "zone-plate": ("kx2=20 ky2=20 kt=1", "a black and white zone plate"),
    "chroma-zone-plate": ("kx2=20 ky2=20 kt=1", "a colour zone plate"),
    "gamut": ("", "the gamut checkers test pattern"),
    "ball": ("", "a white ball moving on a black background"),
    "bar": ("", "a white vertical bar on a black background"),
    "pinwheel": ("", "a black and white pinwheel"),
    "spokes": ("", "white spokes radiating from the centre"),
    "gradient": ("", "a grey gradient from black at the top to white at the bottom"),
    "colors": ("", "a spectrum of all colours"),
}
PATTERN_FRAMES = {"ball": 200, "snow": 6, "zone-plate": 30, "chroma-zone-plate": 30}

Q_COUNT = "How many shapes are there?"
Q_BACKGROUND = "What color is the background?"
Q_PATTERN = "Which test pattern is this?"
Q_BALL = "Where is the ball?"
NOT_A_PATTERN = "none"


def q_colour_of_shape(shape):
    return f"What color is the {shape}?"


def q_colour_at(pos):
    return f"What color is the shape {POSITION_PHRASE[pos]}?"


def q_shape_at(pos):
    return f"What shape is {POSITION_PHRASE[pos]}?"


def q_where(colour, shape):
    return f"Where is the {colour} {shape}?"


def q_size(colour, shape):
    return f"Is the {colour} {shape} large or small?"


def q_is_there(colour, shape):
    return f"Is there a {colour} {shape}?"


# --- scenes --------------------------------------------------------------------------------

def sample_scene(rng, sizes=TRAIN_SIZES):
    """A random scene description (a JSON-able dict); rng is a random.Random."""
    w, h = rng.choice(sizes)
    bg = rng.choice(sorted(BACKGROUNDS))
    n = rng.randint(1, 4)
    layout = rng.choice(LAYOUTS[n])
    objs = []
    for pos in layout:
        colour = rng.choice([c for c in sorted(COLOURS) if c != bg])
        shape = rng.choice(SHAPES)
        if n == 1 and bg == "black" and colour == "white" and shape == "circle":
            # the one image the world would not determine: a lone white circle on black IS
            # what videotestsrc pattern=ball shows, so scenes never contain it
            colour = rng.choice([c for c in sorted(COLOURS) if c not in (bg, "white")])
        objs.append({"shape": shape, "colour": colour,
                     "size": rng.choice(sorted(SIZES)), "pos": pos,
                     # jitter kept in the description so rendering is a pure function
                     "dx": rng.uniform(-0.03, 0.03), "dy": rng.uniform(-0.03, 0.03),
                     "r": rng.random(), "tint": [rng.randint(-20, 20) for _ in range(3)]})
    objs.sort(key=lambda o: POSITION_ORDER.index(o["pos"]))
    return {"kind": "scene", "width": w, "height": h, "background": bg, "objects": objs,
            "bg_tint": [rng.randint(-12, 12) for _ in range(3)]}


def _clip8(v):
    return max(0, min(255, int(v)))


def render_scene(scene):
    """Draws the scene at its frame size; returns an RGB PIL image."""
    w, h = scene["width"], scene["height"]
    bg = tuple(_clip8(c + t) for c, t in zip(BACKGROUNDS[scene["background"]], scene["bg_tint"]))
    # draw at 2x and downsample: smooth edges, like a camera would see them
    ss = 2
    im = Image.new("RGB", (w * ss, h * ss), bg)
    d = ImageDraw.Draw(im)
    m = min(w, h) * ss
    for o in scene["objects"]:
        ax, ay = POSITIONS[o["pos"]]
        cx, cy = (ax + o["dx"]) * w * ss, (ay + o["dy"]) * h * ss
        lo, hi = SIZES[o["size"]]
        r = (lo + (hi - lo) * o["r"]) * m
        col = tuple(_clip8(c + t) for c, t in zip(COLOURS[o["colour"]], o["tint"]))
        if o["shape"] == "circle":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col)
        elif o["shape"] == "square":
            s = r * 0.9                      # same visual area class as the circle
            d.rectangle([cx - s, cy - s, cx + s, cy + s], fill=col)
        else:                                # upright equilateral-ish triangle
            d.polygon([(cx, cy - r * 1.05), (cx - r * 1.05, cy + r * 0.8),
                       (cx + r * 1.05, cy + r * 0.8)], fill=col)
    return im.resize((w, h), Image.BOX)


def _obj_phrase(o):
    # Position first ("on the left a large red circle"), not last: the decoder then names
    # the size/colour/shape right after the words that say which image region they are
    # in, as in the questions ("What color is the shape on the left?"). With the position
    # last, a 200-step trial learned count, background and layout but not the objects.
    return f"{POSITION_PHRASE[o['pos']]} a {o['size']} {o['colour']} {o['shape']}"


def _join(parts):
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def scene_caption(scene):
    n = len(scene["objects"])
    head = f"{COUNT_WORDS[n]} {'shape' if n == 1 else 'shapes'} on a {scene['background']} background"
    return head + ": " + _join([_obj_phrase(o) for o in scene["objects"]]) + "."


def scene_qa(scene, rng=None):
    """All question/answer pairs for a scene, as (category, question, answer). The yes/no
    question is asked once, about a present or (chosen with rng) an absent colour+shape."""
    objs = scene["objects"]
    qa = [("caption", DEFAULT_PROMPT, scene_caption(scene)),
          ("count", Q_COUNT, COUNT_WORDS[len(objs)]),
          ("background", Q_BACKGROUND, scene["background"]),
          ("pattern", Q_PATTERN, NOT_A_PATTERN)]
    shapes = [o["shape"] for o in objs]
    pairs = [(o["colour"], o["shape"]) for o in objs]
    for o in objs:
        qa.append(("colour", q_colour_at(o["pos"]), o["colour"]))
        qa.append(("shape", q_shape_at(o["pos"]), o["shape"]))
        if shapes.count(o["shape"]) == 1:
            qa.append(("colour", q_colour_of_shape(o["shape"]), o["colour"]))
        if pairs.count((o["colour"], o["shape"])) == 1:
            qa.append(("position", q_where(o["colour"], o["shape"]), POSITION_PHRASE[o["pos"]]))
            qa.append(("size", q_size(o["colour"], o["shape"]), o["size"]))
    if rng is not None:
        if rng.random() < 0.5:
            c, s = rng.choice(pairs)
            qa.append(("yesno", q_is_there(c, s), "yes"))
        else:
            absent = [(c, s) for c in sorted(COLOURS) for s in SHAPES if (c, s) not in pairs]
            c, s = rng.choice(absent)
            qa.append(("yesno", q_is_there(c, s), "no"))
    return qa


def parse_caption(text):
    """Inverse of scene_caption. Returns {"count", "background", "objects": [{size, colour,
    shape, pos}]} with None for what cannot be parsed; never raises."""
    out = {"count": None, "background": None, "objects": []}
    t = text.strip().rstrip(".")
    head, _, body = t.partition(": ")
    hw = head.split()
    if hw and hw[0] in COUNT_WORDS:
        out["count"] = COUNT_WORDS.index(hw[0])
    if len(hw) >= 2 and hw[-1] == "background":
        out["background"] = hw[-2]
    parts = body.replace(" and ", ", ").split(", ") if body else []
    phrase_to_pos = {v: k for k, v in POSITION_PHRASE.items()}
    for p in parts:
        w = p.split()
        o = {"size": None, "colour": None, "shape": None, "pos": None}
        if len(w) >= 7 and w[3] == "a":
            o["pos"] = phrase_to_pos.get(" ".join(w[:3]))
            o["size"], o["colour"], o["shape"] = w[4], w[5], w[6]
        out["objects"].append(o)
    return out


def score_caption(scene, text):
    """Attribute accuracy of a generated caption: returns (n_correct, n_total). Attributes:
    the count, the background, and size/colour/shape for each object, matched by position;
    an object missing from the caption counts as wrong, an extra one adds a wrong one."""
    p = parse_caption(text)
    total = correct = 0
    total += 2
    correct += int(p["count"] == len(scene["objects"]))
    correct += int(p["background"] == scene["background"])
    by_pos = {}
    for o in p["objects"]:
        if o["pos"] is not None and o["pos"] not in by_pos:
            by_pos[o["pos"]] = o
    for o in scene["objects"]:
        g = by_pos.get(o["pos"], {})
        for k in ("size", "colour", "shape"):
            total += 1
            correct += int(g.get(k) == o[k])
    extra = len([o for o in p["objects"]]) - len(scene["objects"])
    if extra > 0:
        total += extra
    return correct, total


# --- videotestsrc frames -------------------------------------------------------------------

def render_pattern_frames(pattern, w, h, n_frames, cache_dir, keep=None):
    """Real videotestsrc frames: renders n_frames with gst-launch-1.0 and returns the frames
    listed in `keep` (default all) as uint8 [len(keep), h, w, 3]. Cached as .npy in cache_dir
    (only the kept frames). GStreamer pads RGB rows to a multiple of 4 bytes."""
    keep = list(range(n_frames)) if keep is None else list(keep)
    props = PATTERNS[pattern][0]
    os.makedirs(cache_dir, exist_ok=True)
    tag = props.replace(" ", "_").replace("=", "")
    sel = "all" if keep == list(range(n_frames)) else "-".join(map(str, keep))
    if len(sel) > 40:
        sel = f"{keep[0]}to{keep[-1]}by{keep[1] - keep[0] if len(keep) > 1 else 1}n{len(keep)}"
    path = os.path.join(cache_dir, f"{pattern}{'_' + tag if tag else ''}-{w}x{h}-{n_frames}-{sel}.npy")
    if os.path.isfile(path):
        a = np.load(path)
        if a.shape == (len(keep), h, w, 3):
            return a
    stride = (3 * w + 3) // 4 * 4
    tmp = f"{path}.{os.getpid()}.rgb"
    cmd = (["gst-launch-1.0", "-q", "videotestsrc", f"pattern={pattern}"] + props.split()
           + [f"num-buffers={n_frames}", "!", f"video/x-raw,format=RGB,width={w},height={h}",
              "!", "filesink", f"location={tmp}"])
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        raw = np.fromfile(tmp, np.uint8)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if raw.size != stride * h * n_frames:
        raise RuntimeError(f"{' '.join(cmd)}: {raw.size} bytes, expected {stride * h * n_frames}")
    raw = raw.reshape(n_frames, h, stride)[keep, :, :3 * w].reshape(len(keep), h, w, 3)
    np.save(path + ".part.npy", raw)
    os.replace(path + ".part.npy", path)
    return raw


def horizontal_third(fx):
    """'left'/'centre'/'right' for a horizontal centre at fraction fx of the width, or None
    within 4% of a boundary (ambiguous; such frames are not used or not scored)."""
    for b in (1 / 3, 2 / 3):
        if abs(fx - b) < 0.04:
            return None
    return "left" if fx < 1 / 3 else ("centre" if fx < 2 / 3 else "right")


def ball_position(frame):
    """Horizontal third of the ball's centre (horizontal_third), None without a ball."""
    m = frame.astype(np.int32).sum(2) > 384
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return None
    return horizontal_third(xs.mean() / frame.shape[1])


def pattern_items(sizes, cache_dir, frame_stride=1, frame_offset=0):
    """All (image uint8 [h,w,3], item dict) for every pattern at every size; multi-frame
    patterns contribute the frames offset, offset+stride, ... (usable ball frames only)."""
    out = []
    for name in PATTERNS:
        nf = PATTERN_FRAMES.get(name, 1)
        for (w, h) in sizes:
            idx = list(range(frame_offset % nf, nf, frame_stride)) if nf > 1 else [0]
            frames = dict(zip(idx, render_pattern_frames(name, w, h, nf, cache_dir, idx)))
            for f in idx:
                item = {"kind": "pattern", "pattern": name, "width": w, "height": h, "frame": f}
                if name == "ball":
                    pos = ball_position(frames[f])
                    if pos is None:
                        continue
                    item["ball"] = pos
                out.append((frames[f], item))
    return out


def pattern_caption(item):
    cap = PATTERNS[item["pattern"]][1]
    if item["pattern"] == "ball":
        cap += ", " + POSITION_PHRASE[item["ball"]]
    return cap + "."


def pattern_qa(item):
    qa = [("pattern_caption", DEFAULT_PROMPT, pattern_caption(item)),
          ("pattern", Q_PATTERN, item["pattern"])]
    if item["pattern"] == "ball":
        qa.append(("position", Q_BALL, POSITION_PHRASE[item["ball"]]))
    return qa


def item_qa(item, rng=None):
    return scene_qa(item, rng) if item["kind"] == "scene" else pattern_qa(item)


# --- auxiliary targets (training only) -------------------------------------------------

AUX_HEADS = ([(f"{p}.colour", 1 + len(COLOURS)) for p in POSITION_ORDER]
             + [(f"{p}.shape", 1 + len(SHAPES)) for p in POSITION_ORDER]
             + [(f"{p}.size", 1 + len(SIZES)) for p in POSITION_ORDER]
             + [("count", 5), ("background", len(BACKGROUNDS)), ("pattern", 1 + len(PATTERNS)),
                ("ball", 3)])


ROW_HEADS = [("colour", 1 + len(COLOURS)), ("shape", 1 + len(SHAPES)),
             ("size", 1 + len(SIZES)), ("pos", 1 + len(POSITION_ORDER))]


def object_box(scene, o, size=256):
    """Bounding box (x0, y0, x1, y1) of object o in the preprocessed size x size image
    (preprocess: centred black square padding, then resize), in pixels."""
    w, h = scene["width"], scene["height"]
    s = max(w, h)
    ax, ay = POSITIONS[o["pos"]]
    lo, hi = SIZES[o["size"]]
    r = (lo + (hi - lo) * o["r"]) * min(w, h)
    cx = (ax + o["dx"]) * w + (s - w) // 2
    cy = (ay + o["dy"]) * h + (s - h) // 2
    k = size / s
    return ((cx - r) * k, (cy - r) * k, (cx + r) * k, (cy + r) * k)


def row_targets(item, grid=4, size=256):
    """Per image row (the tower's grid x grid output cells, row-major) and per ROW_HEADS
    entry, a class index: what the object covering that cell is (its colour, shape, size
    and position word), 0 for an empty cell, -1 (no target) for a cell that an object only
    grazes. An object "covers" a cell holding >= 25 % of its bounding box. Targets for a
    per-row auxiliary loss: they ask every image row to say, by itself, what is there and
    where it is, which is what "Where is the red circle?" must read back from one row."""
    n = grid * grid
    if item["kind"] != "scene":
        return [[-1] * len(ROW_HEADS) for _ in range(n)]
    cell = size / grid
    boxes = [(o, object_box(item, o, size)) for o in item["objects"]]
    out = []
    for i in range(n):
        gy, gx = divmod(i, grid)
        x0, y0, x1, y1 = gx * cell, gy * cell, (gx + 1) * cell, (gy + 1) * cell
        best, frac = None, 0.0
        for o, (bx0, by0, bx1, by1) in boxes:
            inter = max(0.0, min(x1, bx1) - max(x0, bx0)) * max(0.0, min(y1, by1) - max(y0, by0))
            f = inter / ((bx1 - bx0) * (by1 - by0))
            if f > frac:
                best, frac = o, f
        if best is None:
            out.append([0] * len(ROW_HEADS))
        elif frac < 0.25:
            out.append([-1] * len(ROW_HEADS))
        else:
            out.append(list(object_classes(best)) + [1 + POSITION_ORDER.index(best["pos"])])
    return out


def object_classes(o):
    """(colour, shape, size) class indices of object o, 0 being kept for "nothing there"."""
    return (1 + sorted(COLOURS).index(o["colour"]), 1 + SHAPES.index(o["shape"]),
            1 + sorted(SIZES).index(o["size"]))


def aux_targets(item):
    """Class index per AUX_HEADS entry (-1 = no target) — direct labels of what the image
    shows, for an auxiliary loss that speeds up the tower's training. Index 0 of the
    per-position and pattern heads means "nothing there" / "not a pattern"."""
    t = {name: -1 for name, _ in AUX_HEADS}
    if item["kind"] == "scene":
        for p in POSITION_ORDER:
            t[f"{p}.colour"] = t[f"{p}.shape"] = t[f"{p}.size"] = 0
        for o in item["objects"]:
            (t[f"{o['pos']}.colour"], t[f"{o['pos']}.shape"],
             t[f"{o['pos']}.size"]) = object_classes(o)
        t["count"] = len(item["objects"])
        t["background"] = sorted(BACKGROUNDS).index(item["background"])
        t["pattern"] = 0
    else:
        t["pattern"] = 1 + list(PATTERNS).index(item["pattern"])
        if "ball" in item:
            t["ball"] = ["left", "centre", "right"].index(item["ball"])
    return [t[name] for name, _ in AUX_HEADS]


# --- preprocessing (predict.py: expand2square with black, CLIP bicubic resize) -------------

def preprocess(img, size=256):
    """uint8 RGB [h,w,3] array or PIL image -> uint8 [size,size,3], exactly as the reference:
    centred black square padding, then PIL bicubic (antialiased) resize."""
    im = img if isinstance(img, Image.Image) else Image.fromarray(np.ascontiguousarray(img))
    w, h = im.size
    if w != h:
        s = max(w, h)
        sq = Image.new("RGB", (s, s), (0, 0, 0))
        sq.paste(im, ((s - w) // 2, (s - h) // 2))
        im = sq
    return np.asarray(im.resize((size, size), Image.BICUBIC))


# --- text corpus (for the tokenizer) --------------------------------------------------------

def corpus_texts(seed=0, n_scenes=3000):
    """Every kind of text the model reads or writes: chat scaffolding, prompts, captions and
    answers, from n_scenes random scenes plus every pattern caption (ASCII only)."""
    rng = random.Random(seed)
    texts = ["<|im_start|>system\n" + SYSTEM_PROMPT + "<|im_end|>\n<|im_start|>user\n",
             "\n" + DEFAULT_PROMPT + "<|im_end|>\n<|im_start|>assistant\n"]
    for _ in range(n_scenes):
        for _, q, a in scene_qa(sample_scene(rng), rng):
            texts += [q, a]
    for name, (_, cap) in PATTERNS.items():
        texts += [cap + ".", name, Q_PATTERN, Q_BALL]
        for p in ("left", "centre", "right"):
            texts.append(cap + ", " + POSITION_PHRASE[p] + ".")
    return texts


# --- command line: write a set of images + manifest ----------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--patterns", action="store_true", help="also every videotestsrc pattern")
    ap.add_argument("--sizes", choices=["train", "eval"], default="eval")
    ap.add_argument("--pattern-sizes", type=int, default=0,
                    help="use only the first N sizes for patterns (0 = all)")
    ap.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "fastvlm-vts-cache"))
    a = ap.parse_args(argv)
    sizes = TRAIN_SIZES if a.sizes == "train" else EVAL_SIZES
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    lines = []
    for i in range(a.scenes):
        sc = sample_scene(rng, sizes)
        name = f"scene-{i:04d}.png"
        render_scene(sc).save(os.path.join(a.out, name))
        lines.append({"file": name, "item": sc, "qa": scene_qa(sc, rng)})
    if a.patterns:
        psizes = sizes[:a.pattern_sizes] if a.pattern_sizes else sizes
        for k, (img, item) in enumerate(pattern_items(psizes, a.cache, frame_stride=7,
                                                      frame_offset=a.seed)):
            name = f"pattern-{k:04d}-{item['pattern']}.png"
            Image.fromarray(img).save(os.path.join(a.out, name))
            lines.append({"file": name, "item": item, "qa": pattern_qa(item)})
    with open(os.path.join(a.out, "manifest.jsonl"), "w", encoding="utf-8") as f:
        for ln in lines:
            f.write(json.dumps(ln) + "\n")
    print(f"demo_scenes.py: wrote {len(lines)} images to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
