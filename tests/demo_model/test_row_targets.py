#!/usr/bin/python3
"""test_row_targets.py — the per-row training targets of tools/demo_scenes.py
(row_targets: what object covers each of the tower's 4 x 4 output cells) against the
rendered pixels, and the scene generator's one exclusion.

What it is: for 300 random training scenes, each object is drawn alone on an empty frame,
preprocessed exactly like the model's input (preprocess: black square padding, resize to
256), and its pixels are counted per cell. This is independent of row_targets' geometry
(object_box: anchors, jitter, radius, padding offset, scale): a cell labelled with an
object must hold a real share of that object's pixels and a cell labelled empty must hold
(almost) none of any object's. An object spread over many cells, none holding a quarter of
its box, labels none (its cells get no target, by design); that must stay rare (≤ 2 %). Then 20 000
generated scenes must never be a lone white circle on black (what videotestsrc
pattern=ball shows: sample_scene excludes it so that "Which test pattern is this?" has one
answer).
What it is not: a test of the trainer (test_train_smoke.py) or of the model.
Exit 77 = skipped (no PIL / numpy).
"""

import os
import random
import sys

SRC = os.environ.get("FASTVLM_SRCDIR", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(SRC, "tools"))

MIN_SHARE_LABELLED = 0.08   # a labelled cell holds >= 8 % of its object's pixels
MAX_SHARE_EMPTY = 0.02      # an empty cell holds <= 2 % of any object's pixels (antialiasing)


def main():
    try:
        import numpy as np
        import demo_scenes as ds
    except ImportError as e:
        print(f"SKIP: {e}")
        return 77
    rng = random.Random(7)
    bad = 0
    checked = 0
    n_objects = unlabelled = 0
    for n in range(300):
        sc = ds.sample_scene(rng)
        targets = ds.row_targets(sc, grid=4, size=256)
        empty = dict(sc, objects=[])
        base = ds.preprocess(ds.render_scene(empty), 256).astype(np.int32)
        masks = []
        for o in sc["objects"]:
            img = ds.preprocess(ds.render_scene(dict(sc, objects=[o])), 256).astype(np.int32)
            m = np.abs(img - base).sum(2) > 24
            masks.append((o, m, max(1, int(m.sum()))))
        labelled = set()
        for cell, t in enumerate(targets):
            gy, gx = divmod(cell, 4)
            sl = (slice(64 * gy, 64 * gy + 64), slice(64 * gx, 64 * gx + 64))
            shares = [(o, float(m[sl].sum()) / tot) for o, m, tot in masks]
            checked += 1
            if t[0] == 0:
                worst = max([s for _, s in shares], default=0.0)
                if worst > MAX_SHARE_EMPTY:
                    bad += 1
                    print(f"scene {n} cell {cell}: labelled empty but holds {worst:.0%} of an object")
            elif t[0] > 0:
                pos = ds.POSITION_ORDER[t[3] - 1]
                o = next(o for o in sc["objects"] if o["pos"] == pos)
                labelled.add(pos)
                want = (1 + sorted(ds.COLOURS).index(o["colour"]), 1 + ds.SHAPES.index(o["shape"]),
                        1 + sorted(ds.SIZES).index(o["size"]))
                share = dict((p["pos"], s) for p, s in shares)[pos]
                if tuple(t[:3]) != want or share < MIN_SHARE_LABELLED:
                    bad += 1
                    print(f"scene {n} cell {cell}: labelled {t} ({pos}), object {want}, "
                          f"holds {share:.0%} of its pixels")
        for o in sc["objects"]:
            n_objects += 1
            unlabelled += o["pos"] not in labelled
    print(f"{unlabelled} of {n_objects} objects label no cell")
    if unlabelled > 0.02 * n_objects:
        bad += 1
    lone = 0
    for _ in range(20000):
        sc = ds.sample_scene(rng)
        objs = sc["objects"]
        lone += (len(objs) == 1 and sc["background"] == "black" and objs[0]["colour"] == "white"
                 and objs[0]["shape"] == "circle")
    if lone:
        bad += 1
        print(f"{lone} of 20000 scenes are a lone white circle on black (the ball pattern)")
    print(f"row targets: {checked} cells of 300 scenes checked against the pixels, {bad} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
