"""qwen2_ref.py — an independent Qwen2 decoder in PyTorch (float64), the reference the C
engine's language model is tested against.

What it is: a direct transcription of Hugging Face's Qwen2ForCausalLM forward pass
(RMSNorm, q/k/v with bias, rotate-half RoPE, grouped-query causal attention, SwiGLU MLP,
final norm, lm_head or tied embeddings) with no KV cache: every call recomputes the whole
sequence, which is slow but obviously right. Weights come either from a Hugging Face
directory (config.json + *.safetensors, read by the small reader below — not the project's
tools/safetensors_io.py) or from a GGUF through tests/reference/gguf_read.py, which
dequantizes Q8_0/Q4_0/F16/BF16 so quantized files can be checked exactly.
What it is not: fast, or a tokenizer.

API (also used by the whole-VLM reference of the vision tests):
    m = load_hf(hf_dir)            or   m = load_gguf(path)
    m.embed(ids)                   -> [n, n_embd] float64 tensor
    m.forward_embeddings(rows)     -> [n, n_vocab] logits, positions 0..n-1
    m.forward_tokens(ids)          -> the same from token ids
    m.greedy(prefix, n_new, stop_ids=())
        prefix: token ids (list) or an embedding tensor [n, n_embd] (e.g. text and image
        rows already spliced); returns the generated ids (the stop id is not included).
"""

import json
import os
import struct

import numpy as np
import torch

DTYPE = torch.float64


# ---- safetensors (own reader: 8-byte little-endian header length, JSON header, raw data) ----

_ST_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"),
              "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "BF16": None}


def read_safetensors(path):
    """{name: float64 numpy array} of every floating tensor in the file."""
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        shape = tuple(info["shape"])
        b0, b1 = info["data_offsets"]
        raw = np.frombuffer(data[base + b0:base + b1], dtype=np.uint8)
        if dt == "BF16":
            arr = (raw.view("<u2").astype(np.uint32) << 16).view("<f4")
        elif dt in ("F32", "F16", "F64"):
            arr = raw.view(_ST_DTYPES[dt])
        else:
            continue   # integer buffers (num_batches_tracked) are not weights
        out[name] = arr.astype(np.float64).reshape(shape)
    return out


def read_hf_weights(hf_dir):
    index = os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = [n for n in sorted(os.listdir(hf_dir)) if n.endswith(".safetensors")]
    w = {}
    for fn in files:
        w.update(read_safetensors(os.path.join(hf_dir, fn)))
    return w


# ---- the model ---------------------------------------------------------------------------

class Qwen2Ref:
    """cfg: n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, rope_theta, rms_eps.
    w: {"embed", "norm", "lm_head", "layers": [{"attn_norm", "wq", "bq", "wk", "bk", "wv",
    "bv", "wo", "ffn_norm", "w_gate", "w_up", "w_down"}]} as float64 tensors, Linear weights
    in PyTorch's [out, in] layout."""

    def __init__(self, cfg, w):
        self.cfg = cfg
        self.w = w
        self.head_dim = cfg["n_embd"] // cfg["n_head"]

    def embed(self, ids):
        return self.w["embed"][torch.as_tensor(list(ids), dtype=torch.long)]

    def _rmsnorm(self, x, weight):
        var = (x * x).mean(dim=-1, keepdim=True)
        return x * torch.rsqrt(var + self.cfg["rms_eps"]) * weight

    def _rope(self, x, pos):
        # x [heads, n, d]; rotate-half with inv_freq = theta^(-2i/d), angles in float64
        d = self.head_dim
        inv_freq = self.cfg["rope_theta"] ** (-torch.arange(0, d, 2, dtype=DTYPE) / d)
        ang = pos.to(DTYPE)[:, None] * inv_freq[None, :]          # [n, d/2]
        cos = torch.cat([ang.cos(), ang.cos()], dim=-1)          # [n, d]
        sin = torch.cat([ang.sin(), ang.sin()], dim=-1)
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        rot = torch.cat([-x2, x1], dim=-1)
        return x * cos + rot * sin

    def forward_embeddings(self, rows):
        c = self.cfg
        x = torch.as_tensor(rows, dtype=DTYPE).clone()
        n = x.shape[0]
        hd, nh, nkv = self.head_dim, c["n_head"], c["n_head_kv"]
        pos = torch.arange(n)
        mask = torch.full((n, n), float("-inf"), dtype=DTYPE).triu(1)   # causal
        for L in self.w["layers"]:
            h = self._rmsnorm(x, L["attn_norm"])
            q = (h @ L["wq"].T + L["bq"]).view(n, nh, hd).transpose(0, 1)     # [nh, n, hd]
            k = (h @ L["wk"].T + L["bk"]).view(n, nkv, hd).transpose(0, 1)    # [nkv, n, hd]
            v = (h @ L["wv"].T + L["bv"]).view(n, nkv, hd).transpose(0, 1)
            q, k = self._rope(q, pos), self._rope(k, pos)
            group = nh // nkv                      # head j uses kv head j // group
            k = k.repeat_interleave(group, dim=0)
            v = v.repeat_interleave(group, dim=0)
            att = (q @ k.transpose(1, 2)) / (hd ** 0.5) + mask
            att = torch.softmax(att, dim=-1)
            o = (att @ v).transpose(0, 1).reshape(n, nh * hd)
            x = x + o @ L["wo"].T
            h = self._rmsnorm(x, L["ffn_norm"])
            g = h @ L["w_gate"].T
            x = x + (torch.nn.functional.silu(g) * (h @ L["w_up"].T)) @ L["w_down"].T
        x = self._rmsnorm(x, self.w["norm"])
        return x @ self.w["lm_head"].T

    def forward_tokens(self, ids):
        return self.forward_embeddings(self.embed(ids))

    def greedy(self, prefix, n_new, stop_ids=()):
        if isinstance(prefix, torch.Tensor):
            rows = prefix.to(DTYPE)
        else:
            rows = self.embed(prefix)
        out = []
        for _ in range(n_new):
            logits = self.forward_embeddings(rows)[-1]
            tok = int(torch.argmax(logits))
            if tok in stop_ids:
                break
            out.append(tok)
            rows = torch.cat([rows, self.embed([tok])], dim=0)
        return out


def _t(a):
    return torch.as_tensor(np.ascontiguousarray(a), dtype=DTYPE)


def load_hf(hf_dir):
    """From a Hugging Face directory: a Qwen2 checkpoint or a FastVLM one (llava_qwen2),
    whose decoder tensors carry the same names."""
    with open(os.path.join(hf_dir, "config.json")) as f:
        hc = json.load(f)
    raw = read_hf_weights(hf_dir)
    cfg = {
        "n_vocab": raw["model.embed_tokens.weight"].shape[0],
        "n_embd": hc["hidden_size"],
        "n_layer": hc["num_hidden_layers"],
        "n_head": hc["num_attention_heads"],
        "n_head_kv": hc.get("num_key_value_heads", hc["num_attention_heads"]),
        "n_ff": hc["intermediate_size"],
        "rope_theta": float(hc.get("rope_theta", 10000.0)),
        "rms_eps": float(hc.get("rms_norm_eps", 1e-6)),
    }
    layers = []
    for i in range(cfg["n_layer"]):
        p = f"model.layers.{i}."
        layers.append({
            "attn_norm": _t(raw[p + "input_layernorm.weight"]),
            "wq": _t(raw[p + "self_attn.q_proj.weight"]), "bq": _t(raw[p + "self_attn.q_proj.bias"]),
            "wk": _t(raw[p + "self_attn.k_proj.weight"]), "bk": _t(raw[p + "self_attn.k_proj.bias"]),
            "wv": _t(raw[p + "self_attn.v_proj.weight"]), "bv": _t(raw[p + "self_attn.v_proj.bias"]),
            "wo": _t(raw[p + "self_attn.o_proj.weight"]),
            "ffn_norm": _t(raw[p + "post_attention_layernorm.weight"]),
            "w_gate": _t(raw[p + "mlp.gate_proj.weight"]),
            "w_up": _t(raw[p + "mlp.up_proj.weight"]),
            "w_down": _t(raw[p + "mlp.down_proj.weight"]),
        })
    embed = _t(raw["model.embed_tokens.weight"])
    lm_head = _t(raw["lm_head.weight"]) if "lm_head.weight" in raw else embed
    return Qwen2Ref(cfg, {"embed": embed, "norm": _t(raw["model.norm.weight"]),
                          "lm_head": lm_head, "layers": layers})


def load_gguf(path):
    """From a llama.cpp `qwen2` GGUF, weights dequantized by gguf_read.py."""
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    import gguf_read
    g = gguf_read.GGUFFile(path)
    kv = g.kv
    if kv.get("general.architecture") != "qwen2":
        raise ValueError(f"{path}: architecture {kv.get('general.architecture')!r}, not qwen2")
    cfg = {
        "n_embd": int(kv["qwen2.embedding_length"]),
        "n_layer": int(kv["qwen2.block_count"]),
        "n_head": int(kv["qwen2.attention.head_count"]),
        "n_head_kv": int(kv.get("qwen2.attention.head_count_kv", kv["qwen2.attention.head_count"])),
        "n_ff": int(kv["qwen2.feed_forward_length"]),
        "rope_theta": float(kv["qwen2.rope.freq_base"]),
        "rms_eps": float(kv["qwen2.attention.layer_norm_rms_epsilon"]),
    }

    def A(name):
        return _t(g.array(name))

    layers = []
    for i in range(cfg["n_layer"]):
        p = f"blk.{i}."
        layers.append({
            "attn_norm": A(p + "attn_norm.weight"),
            "wq": A(p + "attn_q.weight"), "bq": A(p + "attn_q.bias"),
            "wk": A(p + "attn_k.weight"), "bk": A(p + "attn_k.bias"),
            "wv": A(p + "attn_v.weight"), "bv": A(p + "attn_v.bias"),
            "wo": A(p + "attn_output.weight"),
            "ffn_norm": A(p + "ffn_norm.weight"),
            "w_gate": A(p + "ffn_gate.weight"), "w_up": A(p + "ffn_up.weight"),
            "w_down": A(p + "ffn_down.weight"),
        })
    embed = A("token_embd.weight")
    cfg["n_vocab"] = embed.shape[0]
    lm_head = A("output.weight") if "output.weight" in g.tensors else embed
    return Qwen2Ref(cfg, {"embed": embed, "norm": A("output_norm.weight"), "lm_head": lm_head,
                          "layers": layers})
