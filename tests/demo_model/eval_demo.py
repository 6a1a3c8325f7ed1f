#!/usr/bin/python3
"""eval_demo.py — accuracy of the shipped demo model, measured through the C engine's CLI.

What it is: generates a held-out set with tools/demo_scenes.py (a seed and frame sizes the
trainer never uses; videotestsrc patterns at the held-out sizes and at other ball/snow/zone
plate frames), asks every image its questions with `fastvlm run` (greedy, one process per
question, exactly what a user would run) and prints a markdown accuracy table:
caption attributes (count, background, and size/colour/shape of each object, matched by
position), whole captions, and each VQA category. With --torch HF_DIR the same questions
also go through the PyTorch model of tools/train_demo_model.py loaded from the Hugging Face
checkpoint, and every answer where the two disagree is listed (a disagreement is a bug in
the engine, the converter or the reference — not a property of the model).
With --via element (or both) every image instead goes through a GStreamer pipeline,
`filesrc ! pngdec ! fastvlmcaption mode=offline prompts=<all its questions> ! fakesink`, and
the answers are read from the element's `fastvlm-caption` bus messages: the element's own
preprocessing (GstVideoConverter + the ORC program) instead of the CLI's PIL-exact one.
What it is not: the CI test (tests/demo_model/test_demo_model.py asserts a few known
answers) and not a benchmark of speed.

Usage:
  eval_demo.py [--cli build/tools/fastvlm] [--model models/fastvlm-demo.gguf]
               [--mmproj models/fastvlm-demo-mmproj.gguf] [--seed 1000] [--scenes 200]
               [--no-patterns] [--torch models/fastvlm-demo-hf] [--out table.md] [-j 1]
               [--via cli|element|both] [--plugin-path build/gst]
"""

import argparse
import collections
import concurrent.futures
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import demo_scenes as ds  # noqa: E402

# Categories reported as VQA (the brief's five + the extra ones we train)
VQA_ORDER = ["colour", "count", "shape", "position", "pattern", "size", "background", "yesno",
             "not-a-pattern"]


def run_cli(cli, model, mmproj, image, question, threads=1):
    r = subprocess.run([cli, "run", "-m", model, "--mmproj", mmproj, "--image", image,
                        "-p", question, "-n", "96", "-t", str(threads)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"fastvlm run failed ({r.returncode}) on {image} / {question!r}: "
                           f"{r.stderr.strip()}")
    return r.stdout.strip()


class ElementAsker:
    """Answers through fastvlmcaption: one offline pipeline per image, all its questions in
    the `prompts` property, answers taken from the `fastvlm-caption` element messages."""

    def __init__(self, model, mmproj, plugin_path):
        if plugin_path:
            os.environ["GST_PLUGIN_PATH"] = os.path.abspath(plugin_path)
        import gi
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
        Gst.init(None)
        if Gst.ElementFactory.find("fastvlmcaption") is None:
            raise RuntimeError("fastvlmcaption not found (set --plugin-path)")
        self.Gst, self.model, self.mmproj = Gst, model, mmproj

    def ask_all(self, png, questions):
        return self.ask_source(f'filesrc location="{png}" ! pngdec', questions, png)

    def ask_source(self, source, questions, name=None):
        """Runs `SOURCE ! fastvlmcaption mode=offline prompts=<questions> ! fakesink` to EOS;
        returns the answers in question order. model/mmproj None = the element's default."""
        Gst = self.Gst
        name = name or source
        for q in questions:
            if '"' in q or "\\" in q:
                raise ValueError(f"question not representable in a launch line: {q!r}")
        arr = ", ".join(f'\\"{q}\\"' for q in questions)
        files = ""
        if self.model:
            files += f' model="{self.model}"'
        if self.mmproj:
            files += f' mmproj="{self.mmproj}"'
        desc = (f'{source} ! fastvlmcaption mode=offline threads=1 max-new-tokens=96{files} '
                f'prompts="<{arr}>" ! fakesink')
        pipe = Gst.parse_launch(desc)
        answers = [None] * len(questions)
        try:
            pipe.set_state(Gst.State.PLAYING)
            bus = pipe.get_bus()
            while True:
                m = bus.timed_pop_filtered(300 * Gst.SECOND, Gst.MessageType.EOS
                                           | Gst.MessageType.ERROR | Gst.MessageType.ELEMENT)
                if m is None:
                    raise RuntimeError(f"{name}: no EOS within 300 s")
                if m.type == Gst.MessageType.ERROR:
                    e, dbg = m.parse_error()
                    raise RuntimeError(f"{name}: {e.message} ({dbg})")
                if m.type == Gst.MessageType.EOS:
                    break
                st = m.get_structure()
                if st is not None and st.get_name() == "fastvlm-caption":
                    answers[st.get_value("prompt-index")] = st.get_value("text").strip()
        finally:
            pipe.set_state(Gst.State.NULL)
        if any(a is None for a in answers):
            raise RuntimeError(f"{name}: {answers.count(None)} of {len(questions)} questions "
                               "got no fastvlm-caption message")
        return answers


class TorchModel:
    """The trainer's PyTorch model loaded from the exported Hugging Face directory."""

    def __init__(self, hf_dir):
        import torch
        import train_demo_model as T
        import safetensors_io
        self.T, self.torch = T, torch
        torch.set_num_threads(1)
        with open(os.path.join(hf_dir, "tokenizer.json"), encoding="utf-8") as f:
            self.tok = T.Tokenizer(json.load(f))
        with open(os.path.join(hf_dir, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        self.model = T.DemoVLM(cfg["vocab_size"])
        ck = safetensors_io.Checkpoint(hf_dir)
        state = {k: torch.from_numpy(np.array(ck.raw(k), dtype=np.int64))
                 if k.endswith("num_batches_tracked") else torch.from_numpy(ck.get_float32(k))
                 for k in ck.keys() if not k.endswith("head.proj")}
        self.model.load_state_dict(state, strict=True)
        self.model.eval()
        self.prompting = T.Prompting(self.tok)

    def ask(self, png, question):
        with Image.open(png) as im:
            u8 = ds.preprocess(im.convert("RGB"), self.T.IMAGE_SIZE)
        text, _ = self.T.greedy(self.model, self.prompting, u8, question, max_new=96)
        return text.strip()


def held_out_set(seed, n_scenes, patterns, workdir, cache):
    """[(png path, item, [(category, question, answer)])] — scenes at EVAL_SIZES, then every
    pattern at every EVAL_SIZE (multi-frame patterns at frames offset by the seed)."""
    rng = random.Random(seed)
    items = []
    for i in range(n_scenes):
        sc = ds.sample_scene(rng, ds.EVAL_SIZES)
        png = os.path.join(workdir, f"scene-{i:04d}.png")
        ds.render_scene(sc).save(png)
        qa = ds.scene_qa(sc, rng)
        # one question per VQA category (chosen at random), plus the caption
        by_cat = collections.defaultdict(list)
        for c, q, a in qa:
            by_cat[c].append((c, q, a))
        pick = [x for x in qa if x[0] == "caption"]
        for c in ("count", "colour", "shape", "position", "size", "background", "yesno",
                  "pattern"):
            if by_cat[c]:
                c_, q, a = rng.choice(by_cat[c])
                pick.append(("not-a-pattern" if c == "pattern" else c, q, a))
        items.append((png, sc, pick))
    if patterns:
        for k, (img, item) in enumerate(ds.pattern_items(ds.EVAL_SIZES, cache, frame_stride=9,
                                                         frame_offset=seed % 7 + 1)):
            png = os.path.join(workdir, f"pattern-{k:04d}.png")
            Image.fromarray(img).save(png)
            items.append((png, item, ds.pattern_qa(item)))
    return items


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", default=os.environ.get("FASTVLM_CLI",
                                                    os.path.join(ROOT, "build", "tools", "fastvlm")))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "fastvlm-demo.gguf"))
    ap.add_argument("--mmproj", default=os.path.join(ROOT, "models", "fastvlm-demo-mmproj.gguf"))
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--scenes", type=int, default=200)
    ap.add_argument("--no-patterns", action="store_true")
    ap.add_argument("--torch", metavar="HF_DIR", help="also run the PyTorch model and compare")
    ap.add_argument("--out", help="write the markdown table here too")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "fastvlm-vts-cache"))
    ap.add_argument("-j", "--jobs", type=int, default=1, help="CLI processes in parallel")
    ap.add_argument("--show-errors", type=int, default=20)
    ap.add_argument("--via", choices=["cli", "element", "both"], default="cli",
                    help="answer through the CLI, the GStreamer element, or both (two tables)")
    ap.add_argument("--plugin-path", default=os.path.join(ROOT, "build", "gst"),
                    help="GST_PLUGIN_PATH for --via element")
    a = ap.parse_args(argv)
    rc = 0
    for via in (["cli", "element"] if a.via == "both" else [a.via]):
        rc |= evaluate(a, via)
    return rc


def evaluate(a, via):

    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="fastvlm-eval-") as work:
        items = held_out_set(a.seed, a.scenes, not a.no_patterns, work, a.cache)
        jobs = [(png, item, c, q, ans) for png, item, qa in items for c, q, ans in qa]
        if via == "cli":
            with concurrent.futures.ThreadPoolExecutor(max(1, a.jobs)) as ex:
                got = list(ex.map(lambda j: run_cli(a.cli, a.model, a.mmproj, j[0], j[3]),
                                  jobs))
        else:
            el = ElementAsker(a.model, a.mmproj, a.plugin_path)
            with concurrent.futures.ThreadPoolExecutor(max(1, a.jobs)) as ex:
                per_image = list(ex.map(lambda it: el.ask_all(it[0], [q for _, q, _ in it[2]]),
                                        items))
            got = [g for answers in per_image for g in answers]
        torch_got = None
        if a.torch:
            tm = TorchModel(a.torch)
            torch_got = [tm.ask(j[0], j[3]) for j in jobs]
    t_run = time.time() - t0

    right = collections.Counter()
    total = collections.Counter()
    errors = []
    for (png, item, c, q, ans), g in zip(jobs, got):
        if c == "caption":
            k, n = ds.score_caption(item, g)
            right["caption attributes"] += k
            total["caption attributes"] += n
            right["captions, whole"] += int(g == ans)
            total["captions, whole"] += 1
            ok = g == ans
        elif c == "pattern_caption":
            ok = g == ans
            right["pattern captions, whole"] += int(ok)
            total["pattern captions, whole"] += 1
        else:
            ok = g == ans
            right[c] += int(ok)
            total[c] += 1
        if not ok:
            errors.append((os.path.basename(png), item.get("pattern", ""), q, ans, g))

    lines = ["| measure | correct / total | accuracy |", "|---|---:|---:|"]

    def row(name, key):
        if total[key]:
            lines.append(f"| {name} | {right[key]} / {total[key]} | "
                         f"{100.0 * right[key] / total[key]:.1f}% |")

    row("caption attributes (count, background, size/colour/shape per object)", "caption attributes")
    row("scene captions, exact", "captions, whole")
    row("pattern captions, exact", "pattern captions, whole")
    vqa_r = vqa_t = 0
    for c in VQA_ORDER:
        row(f"VQA: {c}", c)
        vqa_r += right[c]
        vqa_t += total[c]
    if vqa_t:
        lines.append(f"| VQA, all categories | {vqa_r} / {vqa_t} | {100.0 * vqa_r / vqa_t:.1f}% |")
    n_img = len(items)
    head = (f"held-out set: seed {a.seed}, {sum(1 for i in items if i[1]['kind'] == 'scene')} scenes, "
            f"{sum(1 for i in items if i[1]['kind'] == 'pattern')} pattern frames, {len(jobs)} "
            "questions through "
            + (f"`{os.path.basename(a.cli)} run`" if via == "cli" else
               "the fastvlmcaption element (offline pipelines, `prompts`)")
            + f" in {t_run:.0f} s")
    table = head + "\n\n" + "\n".join(lines)
    print(table)
    if errors and a.show_errors:
        print(f"\nfirst {min(len(errors), a.show_errors)} of {len(errors)} wrong answers "
              "(image, pattern, question, expected, got):")
        for e in errors[:a.show_errors]:
            print("  " + " | ".join(e))
    if torch_got is not None:
        diff = [(j, g, t) for j, g, t in zip(jobs, got, torch_got) if g != t]
        print(f"\nC engine vs PyTorch: {len(jobs) - len(diff)} / {len(jobs)} answers identical")
        for j, g, t in diff[:20]:
            print(f"  {os.path.basename(j[0])} {j[3]!r}\n    C:     {g!r}\n    torch: {t!r}")
        table += f"\n\nC engine vs PyTorch (same checkpoint): {len(jobs) - len(diff)} / {len(jobs)} answers identical"
    if a.out:
        with open(a.out, "a" if via == "element" and a.via == "both" else "w",
                  encoding="utf-8") as f:
            f.write(table + "\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
