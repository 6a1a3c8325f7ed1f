#!/usr/bin/env python3
"""test_equivalence.py — the C decoder against the independent PyTorch Qwen2
(tests/reference/qwen2_ref.py), through the `fastvlm` CLI.

What it checks, for tiny random models made by tools/make_tiny_model.py (untied, tied,
and a bfloat16 checkpoint; 3 layers, 6 query heads over 2 kv heads, hidden 96, ffn 160)
converted by tools/convert_hf_to_gguf.py to f32, f16, bf16, q8_0 and q4_0:
  - `fastvlm logits` on a fixed 48-token sequence: every position's logits within
    max|d| / max|ref| <= 1e-4 of the reference — for f32 the reference runs on the
    checkpoint's own weights (read from safetensors), for the other types on the GGUF's
    weights dequantized by tests/reference/gguf_read.py;
  - `fastvlm generate --tokens ... --ids`: 32 greedy tokens == the reference's;
  - threads 1, 2, 3 give bit-identical logits; batch prefill == token-by-token decode
    (--one-by-one) within 1e-5; a 600-token sequence (chunked prefill, far positions);
  - the text paths of fastvlm_session_ask(): `generate -p` raw and `--chat` (prompt ids
    from `fastvlm tokenize`, whose equality with Qwen's tokenizer is tests/tokenizer/'s job);
  - image splicing: tests/llm/llm_probe asks about a synthetic image; the reference
    splices the same projected rows between the template's two token runs and its greedy
    ids must match (the tower itself is tests/vision/'s job).
Prints the measured errors and 'N passed, N failed'; exits non-zero on any failure.
Environment: FASTVLM_CLI, FASTVLM_SRCDIR, FASTVLM_LLM_PROBE (meson sets them).
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

SRC = os.environ.get("FASTVLM_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("FASTVLM_CLI")
PROBE = os.environ.get("FASTVLM_LLM_PROBE")
sys.path.insert(0, os.path.join(SRC, "tests", "reference"))
import qwen2_ref  # noqa: E402

PY = sys.executable
TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0"]
SHAPE = ["--hidden", "96", "--heads", "6", "--kv-heads", "2", "--ffn", "160", "--layers", "3"]
TOL_LOGITS = 1e-4
TOL_BATCH = 1e-5
N_SEQ, N_PROMPT, N_GEN = 48, 16, 32

passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok    {msg}")
    else:
        failed += 1
        print(f"FAIL  {msg}")


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def make_model(work, name, extra):
    hf = os.path.join(work, name)
    r = run([PY, os.path.join(SRC, "tools", "make_tiny_model.py"), hf] + extra)
    if r.returncode:
        raise RuntimeError(f"make_tiny_model {name}: {r.stderr}")
    return hf


def convert(hf, out, outtype):
    r = run([PY, os.path.join(SRC, "tools", "convert_hf_to_gguf.py"), hf, "--outfile", out,
             "--outtype", outtype])
    if r.returncode:
        raise RuntimeError(f"convert {hf} {outtype}: {r.stderr}")
    return out


def c_logits(gguf, ids, n_vocab, work, threads=2, extra=(), precision="exact"):
    out = os.path.join(work, "logits.f32")
    r = run([CLI, "logits", "-m", gguf, "--tokens", ",".join(map(str, ids)), "-o", out,
             "-t", str(threads), "--precision", precision] + list(extra))
    if r.returncode:
        raise RuntimeError(f"fastvlm logits {gguf}: {r.stderr.strip()}")
    a = np.fromfile(out, dtype="<f4")
    if a.size != len(ids) * n_vocab:
        raise RuntimeError(f"fastvlm logits wrote {a.size} floats, expected {len(ids) * n_vocab}")
    return a.reshape(len(ids), n_vocab).astype(np.float64)


def c_generate(gguf, args):
    r = run([CLI, "generate", "-m", gguf, "--ids", "-t", "2", "--precision", "exact"] + args)
    if r.returncode:
        raise RuntimeError(f"fastvlm generate: {r.stderr.strip()}")
    return [int(x) for x in r.stdout.split()]


def c_tokenize(gguf, text, special=True):
    r = run([CLI, "tokenize", "-m", gguf] + ([] if special else ["--no-special"]) + [text])
    if r.returncode:
        raise RuntimeError(f"fastvlm tokenize: {r.stderr.strip()}")
    return [int(x) for x in r.stdout.split()]


def rel_err(c, ref):
    return float(np.abs(c - ref).max() / np.abs(ref).max())


def stop_ids(hf):
    """<|im_end|>, <|endoftext|> and config eos, read from the checkpoint's own files."""
    with open(os.path.join(hf, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    with open(os.path.join(hf, "config.json")) as f:
        cfg = json.load(f)
    ids = {t["id"] for t in tok.get("added_tokens", []) if t["content"] in ("<|im_end|>", "<|endoftext|>")}
    if isinstance(cfg.get("eos_token_id"), int):
        ids.add(cfg["eos_token_id"])
    return ids


def greedy_compare(label, c_ids, ref_ids):
    first = next((i for i, (a, b) in enumerate(zip(c_ids, ref_ids)) if a != b), None)
    check(c_ids == ref_ids,
          f"{label}: greedy {len(c_ids)} tokens == reference {len(ref_ids)}"
          + ("" if first is None else f" (first difference at {first}: {c_ids[first]} vs {ref_ids[first]})"))


def test_variant(work, name, extra, summary):
    hf = make_model(work, name, ["--no-vision"] + SHAPE + extra)
    stops = stop_ids(hf)
    ref_hf = qwen2_ref.load_hf(hf)
    n_vocab = ref_hf.cfg["n_vocab"]
    rng = np.random.default_rng(sum(map(ord, name)))
    ids = [int(x) for x in rng.integers(0, n_vocab, N_SEQ)]
    prompt = ids[:N_PROMPT]
    logits_hf = ref_hf.forward_tokens(ids).numpy()
    greedy_hf = ref_hf.greedy(prompt, N_GEN, stops)

    for t in TYPES:
        gguf = convert(hf, os.path.join(work, f"{name}-{t}.gguf"), t)
        label = f"{name}/{t}"
        c = c_logits(gguf, ids, n_vocab, work)
        if t == "f32":
            ref, greedy_ref = logits_hf, greedy_hf
        else:
            m = qwen2_ref.load_gguf(gguf)
            ref, greedy_ref = m.forward_tokens(ids).numpy(), m.greedy(prompt, N_GEN, stops)
        e = rel_err(c, ref)
        e_hf = rel_err(c, logits_hf)
        summary.append((label, e, e_hf))
        check(e <= TOL_LOGITS, f"{label}: logits at {N_SEQ} positions, max|d|/max|ref| = {e:.3g} "
              f"(vs the unquantized checkpoint: {e_hf:.3g})")
        greedy_compare(label, c_generate(gguf, ["--tokens", ",".join(map(str, prompt)),
                                                "-n", str(N_GEN)]), greedy_ref)
        if name == "untied" and t in ("f32", "q4_0"):
            c1 = c_logits(gguf, ids, n_vocab, work, threads=1)
            c3 = c_logits(gguf, ids, n_vocab, work, threads=3)
            check(np.array_equal(c1, c) and np.array_equal(c3, c),
                  f"{label}: threads 1, 2, 3 give identical logits")
        if name == "untied" and t in ("f32", "q8_0"):
            c_tok = c_logits(gguf, ids, n_vocab, work, extra=["--one-by-one"])
            e_b = rel_err(c_tok, c)
            check(e_b <= TOL_BATCH, f"{label}: batch prefill vs token-by-token: {e_b:.3g}")
        if name == "untied" and t != "f32":
            # FASTVLM_PRECISION_FAST (the default): same invariances, bit for bit
            f2 = c_logits(gguf, ids, n_vocab, work, precision="fast")
            f1 = c_logits(gguf, ids, n_vocab, work, threads=1, precision="fast")
            f3 = c_logits(gguf, ids, n_vocab, work, threads=3, precision="fast")
            check(np.array_equal(f1, f2) and np.array_equal(f3, f2),
                  f"{label} fast: threads 1, 2, 3 give identical logits")
            f_tok = c_logits(gguf, ids, n_vocab, work, extra=["--one-by-one"], precision="fast")
            check(np.array_equal(f_tok, f2),
                  f"{label} fast: batch prefill == token-by-token ({rel_err(f_tok, f2):.3g})")
    return hf


def test_long_and_text(work, hf, summary):
    gguf = os.path.join(work, "untied-f32.gguf")
    ref = qwen2_ref.load_hf(hf)
    n_vocab = ref.cfg["n_vocab"]
    stops = stop_ids(hf)

    # 600 positions: the session prefills in chunks of 512 rows
    ids = [int(x) for x in np.random.default_rng(600).integers(0, n_vocab, 600)]
    c = c_logits(gguf, ids, n_vocab, work)
    e = rel_err(c, ref.forward_tokens(ids).numpy())
    summary.append(("untied/f32 600 tokens", e, e))
    check(e <= TOL_LOGITS, f"600-token sequence (chunked prefill): {e:.3g}")

    # raw text prompt through ask(chat = false)
    text = "A small brown dog runs across the street."
    p_ids = c_tokenize(gguf, text, special=False)
    greedy_compare("generate -p (raw)", c_generate(gguf, ["-p", text, "-n", str(N_GEN)]),
                   ref.greedy(p_ids, N_GEN, stops))
    # chat template through ask(chat = true)
    q = "What is in the image?"
    full = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            f"{q}<|im_end|>\n<|im_start|>assistant\n")
    greedy_compare("generate --chat", c_generate(gguf, ["--chat", "-p", q, "-n", str(N_GEN)]),
                   ref.greedy(c_tokenize(gguf, full), N_GEN, stops))
    sys_prompt = "Answer briefly."
    full = (f"<|im_start|>system\n{sys_prompt}<|im_end|>\n<|im_start|>user\n"
            f"{q}<|im_end|>\n<|im_start|>assistant\n")
    greedy_compare("generate --chat --system",
                   c_generate(gguf, ["--chat", "--system", sys_prompt, "-p", q, "-n", str(N_GEN)]),
                   ref.greedy(c_tokenize(gguf, full), N_GEN, stops))


def test_image_ask(work):
    if not PROBE:
        check(False, "FASTVLM_LLM_PROBE is not set: the image-splicing check cannot run")
        return
    hf = make_model(work, "vlm", SHAPE + ["--seed", "21", "--image-size", "128"])
    for t in ("f32", "q8_0"):
        gguf = convert(hf, os.path.join(work, f"vlm-{t}.gguf"), t)
        mmproj = os.path.join(work, f"vlm-{t}-mmproj.gguf")
        rows_path = os.path.join(work, "rows.f32")
        r = run([PROBE, "ask", gguf, mmproj, "128", str(N_GEN), rows_path])
        if r.returncode:
            check(False, f"llm_probe ask ({t}): {r.stderr.strip()}")
            continue
        out = dict(line.split(" ", 1) if " " in line else (line, "") for line in r.stdout.splitlines())
        n_prompt = int(out["n_prompt_tokens"])
        n_rows = int(out["n_image_rows"])
        c_ids = [int(x) for x in out["tokens"].split()]
        rows = np.fromfile(rows_path, dtype="<f4").reshape(n_rows, -1)

        pre = c_tokenize(gguf, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                               "<|im_start|>user\n")
        post = c_tokenize(gguf, "\nDescribe the image.<|im_end|>\n<|im_start|>assistant\n")
        m = qwen2_ref.load_hf(hf) if t == "f32" else qwen2_ref.load_gguf(gguf)
        check(n_prompt == len(pre) + n_rows + len(post),
              f"image ask ({t}): {n_prompt} prompt positions == {len(pre)} + {n_rows} image rows + {len(post)}")
        prefix = torch.cat([m.embed(pre), torch.as_tensor(rows, dtype=torch.float64), m.embed(post)])
        greedy_compare(f"image ask ({t}): image rows spliced at <image>", c_ids,
                       m.greedy(prefix, N_GEN, stop_ids(hf)))
        check(out.get("vision_ms_reported") == "1", f"image ask ({t}): vision time reported")


def main():
    if not CLI or not os.path.exists(CLI):
        print("FASTVLM_CLI is not set to the fastvlm binary")
        print("0 passed, 1 failed")
        return 1
    torch.set_num_threads(1)
    summary = []
    with tempfile.TemporaryDirectory(prefix="fvlm-llm-eq-") as work:
        try:
            hf = test_variant(work, "untied", ["--seed", "11"], summary)
            test_variant(work, "tied", ["--seed", "12", "--tied"], summary)
            test_variant(work, "bf16", ["--seed", "13", "--dtype", "bf16"], summary)
            test_long_and_text(work, hf, summary)
            test_image_ask(work)
        except (RuntimeError, KeyError, ValueError, OSError) as e:
            check(False, f"test aborted: {e}")
    print("\nmax|d|/max|ref| per file (reference: dequantized GGUF weights; last column: vs the checkpoint)")
    for label, e, e_hf in summary:
        print(f"  {label:28s} {e:10.3g} {e_hf:10.3g}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
