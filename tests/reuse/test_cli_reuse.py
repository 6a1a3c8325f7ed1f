#!/usr/bin/python3
"""test_cli_reuse.py — `fastvlm run` with several images and questions through one session.

What it checks, on the tiny random VLM of tests/reuse/make_model.py:
  - `--image A --image B --image B --image C -p Q1 -p Q2` prints one answer per line,
    image by image, question by question, and the answers with --reuse (the default)
    equal those with --no-reuse and those of one separate run per (image, question):
    reuse never changes an answer (token ids and text);
  - the --timings report says what was reused: nothing with --no-reuse; with --reuse the
    repeated image B is not encoded again (image reused, vision 0 ms), every answer after
    the first reuses KV positions, and previous answers are drafted;
  - usage errors (--draft-max 0) exit 2.
What it is not: a test of the engine's exactness in detail (test_reuse.c) or a benchmark.

usage: test_cli_reuse.py LLM.gguf MMPROJ.gguf          (suite 'reference')
"""
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

CLI = os.environ.get("FASTVLM_CLI", "fastvlm")
N_NEW = "24"
PROMPTS = ["Describe the image.", "What is in the image?"]


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def run(args, rc=0):
    r = subprocess.run([CLI, "run", *args], capture_output=True, text=True)
    check(r.returncode == rc, f"fastvlm run {' '.join(args)}: exit {r.returncode} (want {rc})\n"
          f"{r.stderr[-2000:]}")
    return r


def make_image(path, k):
    yy, xx = np.mgrid[0:90, 0:120]
    a = np.stack([np.sin(xx / (5.0 + 3 * k)) * 127 + 128, (yy * (k + 1) * 3) % 256,
                  (xx * 3 + yy * (5 + k)) % 256], -1).astype(np.uint8)
    Image.fromarray(a).save(path)


def main():
    llm, mmproj = sys.argv[1], sys.argv[2]
    base = ["-m", llm, "--mmproj", mmproj, "-n", N_NEW, "-t", "2"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k in range(3):
            paths.append(os.path.join(tmp, f"img{k}.png"))
            make_image(paths[-1], k)
        seq = [paths[0], paths[1], paths[1], paths[2]]
        img_args = [a for p in seq for a in ("--image", p)]
        q_args = [a for q in PROMPTS for a in ("-p", q)]

        for mode in (["--ids"], []):
            reuse = run(base + img_args + q_args + mode + ["--timings"])
            fresh = run(base + img_args + q_args + mode + ["--timings", "--no-reuse"])
            # (a random model's text may hold newlines: lines are counted on ids only)
            got = reuse.stdout.split("\n")[:-1]
            check(not mode or len(got) == len(seq) * len(PROMPTS),
                  f"{len(got)} answer lines for {len(seq)} images x {len(PROMPTS)} prompts")
            check(reuse.stdout == fresh.stdout,
                  f"--reuse vs --no-reuse answers differ:\n{reuse.stdout}\n{fresh.stdout}")
            print(f"ok  {'ids' if mode else 'text'}: --reuse == --no-reuse")

        # one run per (image, question): the same answers again
        lines = reuse_ids = run(base + img_args + q_args + ["--ids"]).stdout.split("\n")[:-1]
        for i, p in enumerate(seq):
            for j, q in enumerate(PROMPTS):
                alone = run(base + ["--image", p, "-p", q, "--ids"]).stdout.strip()
                check(alone == lines[i * len(PROMPTS) + j].strip(),
                      f"image {i} prompt {j}: alone {alone!r} vs in sequence "
                      f"{lines[i * len(PROMPTS) + j]!r}")
        print(f"ok  in sequence == one run each ({len(reuse_ids)} answers)")

        # what the reports say
        rep = run(base + img_args + q_args + ["--ids", "--timings"]).stderr
        heads = re.findall(r"image (\d+)/\d+ .*?prompt (\d+)/\d+: (\d+) prompt positions "
                           r"\((\d+) reused\)", rep)
        check(len(heads) == len(seq) * len(PROMPTS), f"{len(heads)} per-answer reports")
        vision = re.findall(r"vision +([0-9.]+) ms( \(image reused\))?", rep)
        drafts = [int(x) for x in re.findall(r"draft (\d+), accepted", rep)]
        for n, (img, q, n_prompt, n_reused) in enumerate(heads):
            if n > 0:
                check(int(n_reused) > 0, f"answer {n}: nothing reused")
            if int(q) == 1:
                check(not vision[n][1] or int(img) == 3, f"answer {n}: image reused wrongly")
        # image 3 repeats image 2: not encoded again
        check(vision[4][1] and float(vision[4][0]) == 0.0,
              f"the repeated image was encoded again: {vision[4]}")
        check(sum(drafts[len(PROMPTS):]) > 0, "no previous answer was used as a draft")
        check(re.search(r"answers \(--reuse\): \d+ prompt positions, \d+ reused", rep),
              "no summary line")
        rep = run(base + img_args + q_args + ["--ids", "--timings", "--no-reuse"]).stderr
        check(all(int(r) == 0 for r in re.findall(r"\((\d+) reused\)", rep)),
              "--no-reuse reused KV positions")
        check(all(int(x) == 0 for x in re.findall(r"draft (\d+), accepted", rep)),
              "--no-reuse drafted")
        check("(image reused)" not in rep, "--no-reuse reused an image")
        print("ok  --timings reports (KV, image, drafts)")

        run(base + ["--image", paths[0], "--draft-max", "0"], rc=2)
        print("ok  usage errors")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
