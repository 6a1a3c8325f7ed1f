#!/usr/bin/env python3
"""test_fast.py — FASTVLM_PRECISION_FAST (engine/kernels_q8.h) against an independent numpy
model of its numerics, and how far it moves from the exact path.

For tiny random Qwen2 models in every fast weight type (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k,
q5_k, q6_k; the K-quants on a model whose widths are multiples of 256):
  - reference (q8_0, q4_0: the types tests/reference/gguf_read.py reads): tests/reference/qwen2_ref.py's decoder (float64) with every quantized matmul
    replaced by the fast numerics written from the definition — each activation row cast
    to float32, quantized per block (d = amax/127, q = round-half-even(x/d), B = 32, or 256
    for K-quants), dequantized and multiplied in float64 with the dequantized weights
    (tests/reference/gguf_read.py). The engine's float32 block-by-block accumulation and
    float32 scale products are not modelled: they and rare rounding flips of q (activations
    differing by float32 vs float64 rounding) are what TOL_REF covers;
  - `fastvlm logits --precision fast` must be within TOL_REF (max|d| / max|ref|);
  - fast vs exact (`--precision exact`): relative L2 of the logits and greedy agreement on
    three prompts are printed, and bounded loosely (TOL_FAST_VS_EXACT, greedy tokens until the
    first difference ≥ MIN_GREEDY_AGREE) — what the default trades, measured not claimed.
usage: test_fast.py   (env FASTVLM_CLI, FASTVLM_SRCDIR)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

SRC = os.environ.get("FASTVLM_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("FASTVLM_CLI", os.path.join(SRC, "build", "tools", "fastvlm"))
PY = sys.executable
sys.path.insert(0, os.path.join(SRC, "tests", "reference"))
import qwen2_ref  # noqa: E402
import gguf_read  # noqa: E402

TOL_REF = 1e-4            # engine fast vs numpy fast model, max|d| / max|ref| (measured ~3e-7)
TOL_FAST_VS_EXACT = 0.1   # relative L2 of the logits, fast vs exact (tiny random models)
MIN_GREEDY_AGREE = 1      # greedy: the first token equal on every prompt (random tiny models have near ties)
SHAPE = ["--hidden", "96", "--heads", "6", "--kv-heads", "2", "--ffn", "160", "--layers", "3"]
SHAPE_K = ["--hidden", "256", "--heads", "4", "--kv-heads", "2", "--ffn", "512", "--layers", "2"]
K_TYPES = {12, 13, 14}    # ggml ids of q4_K, q5_K, q6_K
FAST_TYPES = {2, 3, 6, 7, 8} | K_TYPES
N_SEQ, N_GEN = 40, 12
# the types tests/reference/gguf_read.py dequantizes (the others: fast vs exact only, their
# dequantization is checked by tests/kernels/test_quant_ref.py)
REF_TYPES = ("q8_0", "q4_0")

passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok    {msg}")
    else:
        failed += 1
        print(f"FAIL  {msg}")


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(args[:3])}: {r.stderr.strip()}")
    return r


def quant_act(x, B):
    """The activation side of the fast numerics: rows of float32, blocks of B."""
    x = np.asarray(x, dtype=np.float32)
    n, k = x.shape
    xb = x.reshape(n, k // B, B)
    amax = np.abs(xb).max(axis=2, keepdims=True)
    d = (amax / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    q = np.clip(np.rint((xb * inv).astype(np.float32)), -127, 127)
    return (q.astype(np.float64) * d.astype(np.float64)).reshape(n, k)


class FastRef(qwen2_ref.Qwen2Ref):
    """qwen2_ref's decoder with the fast numerics in every quantized matmul."""

    def __init__(self, base, types):
        super().__init__(base.cfg, base.w)
        self.types = types            # id(weight tensor) -> ggml type

    def lin(self, h, W):
        t = self.types.get(id(W))
        if t not in FAST_TYPES:
            return h @ W.T
        B = 256 if t in K_TYPES else 32
        a = torch.as_tensor(quant_act(h.numpy(), B), dtype=torch.float64)
        return a @ W.T

    def forward_embeddings(self, rows):
        c = self.cfg
        x = torch.as_tensor(rows, dtype=torch.float64).clone()
        n = x.shape[0]
        hd, nh, nkv = self.head_dim, c["n_head"], c["n_head_kv"]
        pos = torch.arange(n)
        mask = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)
        for L in self.w["layers"]:
            h = self._rmsnorm(x, L["attn_norm"])
            q = (self.lin(h, L["wq"]) + L["bq"]).view(n, nh, hd).transpose(0, 1)
            k = (self.lin(h, L["wk"]) + L["bk"]).view(n, nkv, hd).transpose(0, 1)
            v = (self.lin(h, L["wv"]) + L["bv"]).view(n, nkv, hd).transpose(0, 1)
            q, k = self._rope(q, pos), self._rope(k, pos)
            group = nh // nkv
            k = k.repeat_interleave(group, dim=0)
            v = v.repeat_interleave(group, dim=0)
            att = torch.softmax((q @ k.transpose(1, 2)) / (hd ** 0.5) + mask, dim=-1)
            o = (att @ v).transpose(0, 1).reshape(n, nh * hd)
            x = x + self.lin(o, L["wo"])
            h = self._rmsnorm(x, L["ffn_norm"])
            g = self.lin(h, L["w_gate"])
            x = x + self.lin(torch.nn.functional.silu(g) * self.lin(h, L["w_up"]), L["w_down"])
        x = self._rmsnorm(x, self.w["norm"])
        return self.lin(x, self.w["lm_head"])


def load_fast_ref(path):
    base = qwen2_ref.load_gguf(path)
    g = gguf_read.GGUFFile(path)
    names = {"wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output",
             "w_gate": "ffn_gate", "w_up": "ffn_up", "w_down": "ffn_down"}
    types = {}
    for i, L in enumerate(base.w["layers"]):
        for key, nm in names.items():
            types[id(L[key])] = g.tensors[f"blk.{i}.{nm}.weight"].type
    out = "output.weight" if "output.weight" in g.tensors else "token_embd.weight"
    types[id(base.w["lm_head"])] = g.tensors[out].type
    return FastRef(base, types), sorted({t for t in types.values()})


def c_logits(gguf, ids, n_vocab, work, precision):
    out = os.path.join(work, "logits.f32")
    run([CLI, "logits", "-m", gguf, "--tokens", ",".join(map(str, ids)), "-o", out, "-t", "2",
         "--precision", precision])
    return np.fromfile(out, dtype="<f4").reshape(len(ids), n_vocab).astype(np.float64)


def c_greedy(gguf, prompt, precision):
    r = run([CLI, "generate", "-m", gguf, "--ids", "-t", "2", "--precision", precision,
             "--tokens", ",".join(map(str, prompt)), "-n", str(N_GEN)])
    return [int(x) for x in r.stdout.split()]


def agree(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main():
    with tempfile.TemporaryDirectory() as work:
        models = {}
        for name, shape in (("m32", SHAPE), ("mk", SHAPE_K)):
            hf = os.path.join(work, name)
            run([PY, os.path.join(SRC, "tools", "make_tiny_model.py"), hf, "--no-vision",
                 "--seed", "5"] + shape)
            f16 = os.path.join(work, f"{name}-f16.gguf")
            run([PY, os.path.join(SRC, "tools", "convert_hf_to_gguf.py"), hf, "--outfile", f16,
                 "--outtype", "f16", "--no-mmproj"])
            models[name] = f16
        cases = [("m32", t) for t in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1")] + \
                [("mk", t) for t in ("q4_k", "q5_k", "q6_k")]
        rng = np.random.default_rng(11)
        rows = []
        for name, t in cases:
            gguf = os.path.join(work, f"{name}-{t}.gguf")
            run([CLI, "quantize", models[name], gguf, "--type", t])
            n_vocab = gguf_read.GGUFFile(gguf).tensors["token_embd.weight"].ne[1]
            ids = [int(x) for x in rng.integers(0, n_vocab, N_SEQ)]
            fast = c_logits(gguf, ids, n_vocab, work, "fast")
            exact = c_logits(gguf, ids, n_vocab, work, "exact")
            l2 = np.linalg.norm(fast - exact) / np.linalg.norm(exact)
            e_ref = float("nan")
            if t in REF_TYPES:
                ref, types = load_fast_ref(gguf)
                want = ref.forward_tokens(ids).numpy()
                e_ref = np.abs(fast - want).max() / np.abs(want).max()
                check(e_ref <= TOL_REF, f"{t}: fast vs numpy fast model {e_ref:.3g} (tensor types {types})")
            agrees = []
            for p in range(3):
                prompt = [int(x) for x in rng.integers(0, n_vocab, 8)]
                agrees.append(agree(c_greedy(gguf, prompt, "fast"), c_greedy(gguf, prompt, "exact")))
            check(l2 <= TOL_FAST_VS_EXACT and min(agrees) >= MIN_GREEDY_AGREE,
                  f"{t}: fast vs exact rel L2 {l2:.3g}, greedy tokens agreeing {agrees} of {N_GEN}")
            rows.append((t, e_ref, l2, agrees))
        print("\n| type | fast vs numpy model (max rel) | fast vs exact (rel L2) | greedy agree |")
        print("|---|---|---|---|")
        for t, e, l2, a in rows:
            print(f"| {t} | {e:.2e} | {l2:.2e} | {a} |")
    print(f"\ntest_fast: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
