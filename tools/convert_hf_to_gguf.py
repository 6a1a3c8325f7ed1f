#!/usr/bin/env python3
"""convert_hf_to_gguf.py — convert a FastVLM Hugging Face checkpoint into two GGUF files.

What it is: the converter from an apple/FastVLM-* directory (config.json, model.safetensors or
shards + model.safetensors.index.json, tokenizer.json, tokenizer_config.json) to
  NAME.gguf         the Qwen2 language model + tokenizer in llama.cpp's own `qwen2` layout
                    (llama.cpp can load it as is), and
  NAME-mmproj.gguf  the FastViTHD vision tower + mlp2x_gelu projector in our `fastvithd`
                    layout (docs/model-format.md is the specification of both files).
Python 3 + numpy only; every expected tensor is checked (presence and shape) before anything
is written, and unknown tensors are an error, so a bad checkpoint fails with a message naming
the tensor instead of producing a broken file.
What it is not: a general llama.cpp converter (only Qwen2 + FastViTHD), and it does not
reparameterize training-form FastViT checkpoints (the released ones are already folded).

Usage: convert_hf_to_gguf.py HF_DIR [--outfile NAME.gguf] [--outtype f32|f16|bf16|q8_0|q4_0]
                             [--no-mmproj] [--vocab-only] [--keep-bn] [--name NAME]
"""

import argparse
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402
import safetensors_io  # noqa: E402

PROG = "convert_hf_to_gguf.py"
VISION_PREFIX = "model.vision_tower.vision_tower.model."
PROJ_PREFIX = "model.mm_projector."
MMPROJ_VERSION = 1

# llama.cpp token types (gguf-py TokenType).
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6

# Qwen2's ChatML template (conversation style `qwen_2` of FastVLM's predict.py), used when the
# tokenizer_config.json carries none.
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Tensor storage classes: MATRIX takes --outtype (with the block-size fallback), the rest f32.
MATRIX, F32ONLY = "matrix", "f32"


class ConvertError(Exception):
    """A problem with the input; the message says which file/tensor/key."""


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr)


def load_json(path, required=True):
    if not os.path.isfile(path):
        if required:
            raise ConvertError(f"{path}: file not found")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: cannot parse JSON: {e}") from None


def storage_type(shape, cls, outtype):
    """ggml type for a tensor of numpy `shape` in storage class `cls` under --outtype."""
    if cls != MATRIX or outtype == "f32":
        return gw.GGML_TYPE_F32
    t = gw.TYPE_BY_NAME[outtype]
    if gw.can_store(shape, t):
        return t
    return gw.GGML_TYPE_F16      # rows not a multiple of 32: q8_0/q4_0 cannot hold them


class TensorPlan:
    """The list of output tensors for one GGUF file, and the problems found building it."""

    def __init__(self, ckpt):
        self.ckpt = ckpt
        self.items = []          # (gguf name, numpy shape, storage class, producer)
        self.problems = []
        self.used = set()

    def src(self, hf_name, shape):
        """Checks that `hf_name` exists with torch `shape` and is floating point; records a
        problem otherwise. Returns True when it is usable."""
        self.used.add(hf_name)
        if hf_name not in self.ckpt:
            self.problems.append(f"tensor '{hf_name}' is missing (expected shape {list(shape)})")
            return False
        got = tuple(self.ckpt.shape(hf_name))
        if got != tuple(shape):
            self.problems.append(f"tensor '{hf_name}' has shape {list(got)}, expected {list(shape)}")
            return False
        if self.ckpt.dtype(hf_name) not in safetensors_io.FLOAT_DTYPES:
            self.problems.append(f"tensor '{hf_name}' has dtype {self.ckpt.dtype(hf_name)}, expected a float type")
            return False
        return True

    def copy(self, gguf_name, hf_name, shape, cls, store_shape=None):
        """Output `gguf_name` = source `hf_name` (torch `shape`), reshaped to `store_shape`."""
        if self.src(hf_name, shape):
            store = tuple(store_shape) if store_shape is not None else tuple(shape)
            ckpt = self.ckpt
            self.items.append((gguf_name, store, cls,
                               lambda n=hf_name, s=store: ckpt.get_float32(n).reshape(s)))

    def add(self, gguf_name, store_shape, cls, producer):
        self.items.append((gguf_name, tuple(store_shape), cls, producer))


# ===================================================================== language model

def llm_hparams(config):
    def req(key):
        if key not in config or config[key] is None:
            raise ConvertError(f"config.json: key '{key}' is missing")
        return config[key]
    hp = {
        "n_embd": int(req("hidden_size")),
        "n_layer": int(req("num_hidden_layers")),
        "n_ff": int(req("intermediate_size")),
        "n_head": int(req("num_attention_heads")),
        "n_vocab": int(req("vocab_size")),
    }
    hp["n_head_kv"] = int(config.get("num_key_value_heads") or hp["n_head"])
    hp["n_ctx"] = int(config.get("max_position_embeddings") or 32768)
    hp["rope_theta"] = float(config.get("rope_theta") or 10000.0)
    hp["rms_eps"] = float(config.get("rms_norm_eps") or 1e-6)
    if hp["n_embd"] % hp["n_head"]:
        raise ConvertError(f"config.json: hidden_size {hp['n_embd']} is not a multiple of "
                           f"num_attention_heads {hp['n_head']}")
    if hp["n_head"] % hp["n_head_kv"]:
        raise ConvertError(f"config.json: num_attention_heads {hp['n_head']} is not a multiple of "
                           f"num_key_value_heads {hp['n_head_kv']}")
    rs = config.get("rope_scaling")
    if rs:
        raise ConvertError(f"config.json: rope_scaling {rs} is not supported")
    return hp


def plan_llm(plan, hp):
    H, F, V = hp["n_embd"], hp["n_ff"], hp["n_vocab"]
    hd = H // hp["n_head"]
    q, kv = hp["n_head"] * hd, hp["n_head_kv"] * hd
    plan.copy("token_embd.weight", "model.embed_tokens.weight", (V, H), MATRIX)
    for i in range(hp["n_layer"]):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        plan.copy(b + "attn_norm.weight", p + "input_layernorm.weight", (H,), F32ONLY)
        plan.copy(b + "attn_q.weight", p + "self_attn.q_proj.weight", (q, H), MATRIX)
        plan.copy(b + "attn_q.bias", p + "self_attn.q_proj.bias", (q,), F32ONLY)
        plan.copy(b + "attn_k.weight", p + "self_attn.k_proj.weight", (kv, H), MATRIX)
        plan.copy(b + "attn_k.bias", p + "self_attn.k_proj.bias", (kv,), F32ONLY)
        plan.copy(b + "attn_v.weight", p + "self_attn.v_proj.weight", (kv, H), MATRIX)
        plan.copy(b + "attn_v.bias", p + "self_attn.v_proj.bias", (kv,), F32ONLY)
        plan.copy(b + "attn_output.weight", p + "self_attn.o_proj.weight", (H, q), MATRIX)
        plan.copy(b + "ffn_norm.weight", p + "post_attention_layernorm.weight", (H,), F32ONLY)
        plan.copy(b + "ffn_gate.weight", p + "mlp.gate_proj.weight", (F, H), MATRIX)
        plan.copy(b + "ffn_up.weight", p + "mlp.up_proj.weight", (F, H), MATRIX)
        plan.copy(b + "ffn_down.weight", p + "mlp.down_proj.weight", (H, F), MATRIX)
        plan.used.add(p + "self_attn.rotary_emb.inv_freq")      # a buffer some exports keep
    plan.copy("output_norm.weight", "model.norm.weight", (H,), F32ONLY)
    if "lm_head.weight" in plan.ckpt:
        plan.copy("output.weight", "lm_head.weight", (V, H), MATRIX)
    # else: tied; llama.cpp (and our engine) use token_embd.weight for the output.


# ===================================================================== tokenizer

def token_looks_special(t):
    """llama.cpp's does_token_look_special(): added tokens that are control tokens in spirit
    even when tokenizer.json does not flag them special (e.g. Qwen's <|fim_prefix|>)."""
    return (t in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (t.startswith("<|") and t.endswith("|>"))
            or (t.startswith("<\uff5c") and t.endswith("\uff5c>"))
            or (t.startswith("<unused") and t.endswith(">")))


def merges_as_strings(merges, where):
    """tokenizer.json merges, either ["a b", ...] or [["a", "b"], ...] -> ["a b", ...].
    In the pair form a space inside a part is written as U+0120 ('Ġ'), as gguf-py does."""
    if not merges:
        return []
    if isinstance(merges[0], str):
        if not all(isinstance(m, str) for m in merges):
            raise ConvertError(f"{where}: model.merges mixes strings and other values")
        return list(merges)
    out = []
    for m in merges:
        if not (isinstance(m, list) and len(m) == 2 and all(isinstance(p, str) for p in m)):
            raise ConvertError(f"{where}: model.merges entry {m!r} is neither \"a b\" nor [\"a\", \"b\"]")
        out.append(" ".join(p.replace(" ", "\u0120") for p in m))
    return out


def tokenizer_metadata(w, hf_dir, config, n_vocab):
    """Writes the tokenizer.* keys exactly as llama.cpp's converter does for Qwen2."""
    tj_path = os.path.join(hf_dir, "tokenizer.json")
    tj = load_json(tj_path)
    tc = load_json(os.path.join(hf_dir, "tokenizer_config.json"), required=False) or {}
    model = tj.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ConvertError(f"{tj_path}: model.type is {model.get('type')!r}; expected a byte-level BPE")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        raise ConvertError(f"{tj_path}: model.vocab is missing")
    reverse = {}
    for s, i in vocab.items():
        reverse[int(i)] = s
    added = {}
    for a in tj.get("added_tokens") or []:
        i = int(a["id"])
        reverse[i] = a["content"]
        added[i] = a
    if reverse and max(reverse) >= n_vocab:
        raise ConvertError(f"{tj_path}: token id {max(reverse)} is not below config.json vocab_size {n_vocab}")

    tokens, types = [], []
    for i in range(n_vocab):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(TOKEN_UNUSED)
            continue
        t = reverse[i]
        if i in added:
            if added[i].get("special") or token_looks_special(t):
                types.append(TOKEN_CONTROL)
            else:
                t = t.replace("\u2581", " ")       # llama.cpp pre-normalizes user-defined spaces
                types.append(TOKEN_USER_DEFINED)
        else:
            types.append(TOKEN_NORMAL)
        tokens.append(t)
    merges = merges_as_strings(model.get("merges"), tj_path)

    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "qwen2")
    w.add_array("tokenizer.ggml.tokens", gw.STRING, tokens)
    w.add_array("tokenizer.ggml.token_type", gw.INT32, types)
    if merges:
        w.add_array("tokenizer.ggml.merges", gw.STRING, merges)

    # Special ids: the token named in tokenizer_config.json (looked up among added_tokens),
    # else config.json's <typ>_token_id — the order gguf-py's SpecialVocab uses.
    content_to_id = {}
    for i, a in sorted(added.items()):
        content_to_id.setdefault(a["content"], i)

    def special(typ):
        e = tc.get(f"{typ}_token")
        content = e.get("content") if isinstance(e, dict) else e
        if isinstance(content, str) and content in content_to_id:
            return content_to_id[content]
        v = config.get(f"{typ}_token_id")
        if isinstance(v, int) and 0 <= v < n_vocab:
            return v
        return None

    ids = {t: special(t) for t in ("bos", "eos", "unk", "pad")}
    eot = content_to_id.get("<|endoftext|>")
    if ids["bos"] is None:
        ids["bos"] = eot
    if ids["pad"] is None:
        ids["pad"] = eot
    if ids["eos"] is None:
        ids["eos"] = content_to_id.get("<|im_end|>", eot)
    for typ, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                     ("unk", "unknown_token_id"), ("pad", "padding_token_id")):
        if ids[typ] is not None:
            w.add_uint32(f"tokenizer.ggml.{key}", ids[typ])
    add_bos = tc.get("add_bos_token")
    w.add_bool("tokenizer.ggml.add_bos_token", add_bos if isinstance(add_bos, bool) else False)
    if isinstance(tc.get("add_eos_token"), bool):
        w.add_bool("tokenizer.ggml.add_eos_token", tc["add_eos_token"])

    tmpl = tc.get("chat_template")
    if isinstance(tmpl, list):
        tmpl = next((t.get("template") for t in tmpl if isinstance(t, dict) and t.get("name") == "default"), None)
    if not isinstance(tmpl, str):
        jinja = os.path.join(hf_dir, "chat_template.jinja")
        if os.path.isfile(jinja):
            with open(jinja, encoding="utf-8") as f:
                tmpl = f.read()
        else:
            cj = load_json(os.path.join(hf_dir, "chat_template.json"), required=False) or {}
            tmpl = cj.get("chat_template") if isinstance(cj.get("chat_template"), str) else QWEN2_CHAT_TEMPLATE
    w.add_string("tokenizer.chat_template", tmpl)
    return len(tokens), len(merges)


# ===================================================================== vision tower

class VisionArch:
    """FastViTHD structure inferred from the checkpoint's keys and shapes."""

    def __init__(self):
        self.stages = []         # dicts: index (network N), width, ffn, depth, mixer, down (N|None), cpe (N|None)
        self.embed = None
        self.se_reduced = None
        self.kernels = {}


def infer_vision(ckpt, problems):
    """Groups network.N modules into stages/downsamplers/CPEs from the key names.
    Structure errors go to `problems`; returns a VisionArch (possibly incomplete)."""
    P = VISION_PREFIX
    keys = [k[len(P):] for k in ckpt.keys() if k.startswith(P)]
    roles = {}               # N -> role
    blocks = {}              # N -> set of block indices
    for k in keys:
        m = re.match(r"network\.(\d+)\.(.*)$", k)
        if not m:
            continue
        n, rest = int(m.group(1)), m.group(2)
        bm = re.match(r"(\d+)\.", rest)
        if bm:
            role = "stage"
            blocks.setdefault(n, set()).add(int(bm.group(1)))
        elif rest.startswith("proj."):
            role = "down"
        elif rest.startswith("reparam_conv."):
            role = "cpe"
        else:
            role = "?" + rest
        if roles.get(n, role) != role:
            problems.append(f"vision module network.{n} mixes {roles[n]} and {role} keys")
        roles.setdefault(n, role)

    arch = VisionArch()
    pending_down = pending_cpe = None
    expect = "stage"
    for n in sorted(roles):
        role = roles[n]
        if role.startswith("?"):
            problems.append(f"vision module network.{n} is not a stage, PatchEmbed or RepCPE "
                            f"(unexpected key '{P}network.{n}.{role[1:]}')")
            continue
        if role == "down":
            if expect != "down" or pending_down is not None:
                problems.append(f"vision module network.{n} (PatchEmbed) is not preceded by a stage")
            pending_down, expect = n, "cpe_or_stage"
        elif role == "cpe":
            if pending_down is None or pending_cpe is not None:
                problems.append(f"vision module network.{n} (RepCPE) does not follow a PatchEmbed")
            pending_cpe = n
        else:
            if arch.stages and pending_down is None:
                problems.append(f"vision stage network.{n} is not preceded by a PatchEmbed")
            idx = sorted(blocks[n])
            if idx != list(range(len(idx))):
                problems.append(f"vision stage network.{n} has block indices {idx}, expected 0..{len(idx) - 1}")
            pre = f"{P}network.{n}.0."
            width = None
            for key, dim in (("convffn.conv.conv.weight", 0), ("convffn.fc1.weight", 1),
                             ("convffn.fc2.weight", 0), ("convffn.conv.bn.weight", 0)):
                if pre + key in ckpt:
                    width = int(ckpt.shape(pre + key)[dim])
                    break
            if width is None:
                problems.append(f"cannot infer the width of vision stage network.{n} "
                                f"('{pre}convffn.conv.conv.weight' is missing)")
                width = 0
            ffn = int(ckpt.shape(pre + "convffn.fc1.weight")[0]) if pre + "convffn.fc1.weight" in ckpt else 4 * width
            mixer = "attention" if any(f"{P}network.{n}.{i}.token_mixer.qkv.weight" in ckpt for i in idx) else "repmixer"
            arch.stages.append({"index": n, "width": width, "ffn": ffn, "depth": len(idx), "mixer": mixer,
                                "down": pending_down, "cpe": pending_cpe})
            pending_down = pending_cpe = None
            expect = "down"
    if pending_down is not None or pending_cpe is not None:
        problems.append("the last vision module is a PatchEmbed/RepCPE without a stage after it")
    if not arch.stages:
        problems.append(f"no vision stages found under '{P}network.'")

    def kernel(key, default, dim=2):
        k = P + key
        return int(ckpt.shape(k)[dim]) if k in ckpt and len(ckpt.shape(k)) == 4 else default

    first = {m: next((s for s in arch.stages if s["mixer"] == m), None) for m in ("repmixer", "attention")}
    arch.kernels["stem"] = kernel("patch_embed.0.reparam_conv.weight", 3)
    arch.kernels["repmixer"] = kernel(f"network.{first['repmixer']['index']}.0.token_mixer.reparam_conv.weight", 3) \
        if first["repmixer"] else 3
    cpe = next((s["cpe"] for s in arch.stages if s["cpe"] is not None), None)
    arch.kernels["pos_embed"] = kernel(f"network.{cpe}.reparam_conv.weight", 7) if cpe is not None else 7
    down = next((s["down"] for s in arch.stages if s["down"] is not None), None)
    arch.kernels["downsample"] = kernel(f"network.{down}.proj.0.lkb_reparam.weight", 7) if down is not None else 7
    arch.kernels["ffn_dw"] = kernel(f"network.{arch.stages[0]['index']}.0.convffn.conv.conv.weight", 7) \
        if arch.stages else 7
    arch.kernels["exp"] = kernel("conv_exp.reparam_conv.weight", 3)
    if P + "conv_exp.reparam_conv.weight" in ckpt:
        arch.embed = int(ckpt.shape(P + "conv_exp.reparam_conv.weight")[0])
    else:
        problems.append(f"tensor '{P}conv_exp.reparam_conv.weight' is missing")
        arch.embed = 2 * (arch.stages[-1]["width"] if arch.stages else 0)
    if P + "conv_exp.se.reduce.weight" in ckpt:
        arch.se_reduced = int(ckpt.shape(P + "conv_exp.se.reduce.weight")[0])
    else:
        arch.se_reduced = arch.embed // 16
    return arch


def bn_fold(ckpt, conv_w, g, b, mean, var, eps):
    """Depthwise conv (no bias) followed by eval BatchNorm -> conv with bias:
    w' = w * g / sqrt(var + eps) (per output channel), b' = b - mean * g / sqrt(var + eps)."""
    w = ckpt.get_float32(conv_w).astype(np.float64)
    gamma = ckpt.get_float32(g).astype(np.float64)
    beta = ckpt.get_float32(b).astype(np.float64)
    mu = ckpt.get_float32(mean).astype(np.float64)
    sigma2 = ckpt.get_float32(var).astype(np.float64)
    scale = gamma / np.sqrt(sigma2 + eps)
    return (w * scale[:, None, None, None]).astype(np.float32), (beta - mu * scale).astype(np.float32)


def plan_vision(plan, arch, llm_hidden, keep_bn, bn_eps):
    P = VISION_PREFIX
    ckpt = plan.ckpt
    k = arch.kernels
    w0 = arch.stages[0]["width"] if arch.stages else 0
    ks = k["stem"]
    plan.copy("v.stem.0.weight", P + "patch_embed.0.reparam_conv.weight", (w0, 3, ks, ks), F32ONLY)
    plan.copy("v.stem.0.bias", P + "patch_embed.0.reparam_conv.bias", (w0,), F32ONLY)
    plan.copy("v.stem.1.weight", P + "patch_embed.1.reparam_conv.weight", (w0, 1, ks, ks), F32ONLY)
    plan.copy("v.stem.1.bias", P + "patch_embed.1.reparam_conv.bias", (w0,), F32ONLY)
    plan.copy("v.stem.2.weight", P + "patch_embed.2.reparam_conv.weight", (w0, w0, 1, 1), F32ONLY)
    plan.copy("v.stem.2.bias", P + "patch_embed.2.reparam_conv.bias", (w0,), F32ONLY)

    prev = None
    for s, st in enumerate(arch.stages):
        C, F, n = st["width"], st["ffn"], st["index"]
        if st["down"] is not None:
            d = f"{P}network.{st['down']}.proj."
            kd = k["downsample"]
            if prev and C % prev:
                plan.problems.append(f"vision stage {s} width {C} is not a multiple of the previous width {prev} "
                                     f"(PatchEmbed network.{st['down']} is a grouped conv)")
            plan.copy(f"v.down.{s}.lk.weight", d + "0.lkb_reparam.weight", (C, 1, kd, kd), F32ONLY)
            plan.copy(f"v.down.{s}.lk.bias", d + "0.lkb_reparam.bias", (C,), F32ONLY)
            plan.copy(f"v.down.{s}.pw.weight", d + "1.reparam_conv.weight", (C, C, 1, 1), MATRIX, (C, C))
            plan.copy(f"v.down.{s}.pw.bias", d + "1.reparam_conv.bias", (C,), F32ONLY)
        if st["cpe"] is not None:
            c = f"{P}network.{st['cpe']}.reparam_conv."
            kp = k["pos_embed"]
            plan.copy(f"v.cpe.{s}.weight", c + "weight", (C, 1, kp, kp), F32ONLY)
            plan.copy(f"v.cpe.{s}.bias", c + "bias", (C,), F32ONLY)
        if st["mixer"] == "attention" and C % 32:
            plan.problems.append(f"vision stage {s} (network.{n}) has width {C}, not a multiple of head_dim 32")
        for i in range(st["depth"]):
            p, b = f"{P}network.{n}.{i}.", f"v.blk.{s}.{i}."
            if st["mixer"] == "repmixer":
                km = k["repmixer"]
                plan.copy(b + "mixer.weight", p + "token_mixer.reparam_conv.weight", (C, 1, km, km), F32ONLY)
                plan.copy(b + "mixer.bias", p + "token_mixer.reparam_conv.bias", (C,), F32ONLY)
                plan.copy(b + "ls", p + "layer_scale", (C, 1, 1), F32ONLY, (C,))
            else:
                plan.copy(b + "norm.weight", p + "norm.weight", (C,), F32ONLY)
                plan.copy(b + "norm.bias", p + "norm.bias", (C,), F32ONLY)
                plan.copy(b + "attn_qkv.weight", p + "token_mixer.qkv.weight", (3 * C, C), MATRIX)
                plan.copy(b + "attn_out.weight", p + "token_mixer.proj.weight", (C, C), MATRIX)
                plan.copy(b + "attn_out.bias", p + "token_mixer.proj.bias", (C,), F32ONLY)
                plan.copy(b + "ls1", p + "layer_scale_1", (C, 1, 1), F32ONLY, (C,))
                plan.copy(b + "ls2", p + "layer_scale_2", (C, 1, 1), F32ONLY, (C,))
            kf = k["ffn_dw"]
            dw, bn = p + "convffn.conv.conv.weight", p + "convffn.conv.bn."
            plan.used.add(bn + "num_batches_tracked")
            if keep_bn:
                plan.copy(b + "ffn_dw.weight", dw, (C, 1, kf, kf), F32ONLY)
                for src, dst in (("weight", "weight"), ("bias", "bias"), ("running_mean", "mean"),
                                 ("running_var", "var")):
                    plan.copy(b + "ffn_bn." + dst, bn + src, (C,), F32ONLY)
            else:
                ok = plan.src(dw, (C, 1, kf, kf))
                for src in ("weight", "bias", "running_mean", "running_var"):
                    ok = plan.src(bn + src, (C,)) and ok
                if ok:
                    var = ckpt.get_float32(bn + "running_var")
                    if np.any(~(var + bn_eps > 0)):
                        plan.problems.append(f"tensor '{bn}running_var' has values <= -eps; cannot fold BN")
                    fold = (lambda dw=dw, bn=bn: bn_fold(ckpt, dw, bn + "weight", bn + "bias",
                                                         bn + "running_mean", bn + "running_var", bn_eps))
                    plan.add(b + "ffn_dw.weight", (C, 1, kf, kf), F32ONLY, lambda f=fold: f()[0])
                    plan.add(b + "ffn_dw.bias", (C,), F32ONLY, lambda f=fold: f()[1])
            plan.copy(b + "ffn_up.weight", p + "convffn.fc1.weight", (F, C, 1, 1), MATRIX, (F, C))
            plan.copy(b + "ffn_up.bias", p + "convffn.fc1.bias", (F,), F32ONLY)
            plan.copy(b + "ffn_down.weight", p + "convffn.fc2.weight", (C, F, 1, 1), MATRIX, (C, F))
            plan.copy(b + "ffn_down.bias", p + "convffn.fc2.bias", (C,), F32ONLY)
        prev = C

    E, R = arch.embed, arch.se_reduced
    last = arch.stages[-1]["width"] if arch.stages else 0
    if last and E % last:
        plan.problems.append(f"conv_exp width {E} is not a multiple of the last stage width {last}")
    ke = k["exp"]
    plan.copy("v.exp.weight", P + "conv_exp.reparam_conv.weight", (E, 1, ke, ke), F32ONLY)
    plan.copy("v.exp.bias", P + "conv_exp.reparam_conv.bias", (E,), F32ONLY)
    plan.copy("v.exp.se_reduce.weight", P + "conv_exp.se.reduce.weight", (R, E, 1, 1), F32ONLY, (R, E))
    plan.copy("v.exp.se_reduce.bias", P + "conv_exp.se.reduce.bias", (R,), F32ONLY)
    plan.copy("v.exp.se_expand.weight", P + "conv_exp.se.expand.weight", (E, R, 1, 1), F32ONLY, (E, R))
    plan.copy("v.exp.se_expand.bias", P + "conv_exp.se.expand.bias", (E,), F32ONLY)

    H = llm_hidden
    plan.copy("mm.0.weight", PROJ_PREFIX + "0.weight", (H, E), MATRIX)
    plan.copy("mm.0.bias", PROJ_PREFIX + "0.bias", (H,), F32ONLY)
    plan.copy("mm.2.weight", PROJ_PREFIX + "2.weight", (H, H), MATRIX)
    plan.copy("mm.2.bias", PROJ_PREFIX + "2.bias", (H,), F32ONLY)


def image_size_from_config(config):
    tower = str(config.get("mm_vision_tower") or "")
    m = re.search(r"_(\d+)$", tower)
    if not m:
        log(f"warning: cannot read the image size from mm_vision_tower {tower!r}; using 1024")
        return 1024
    return int(m.group(1))


def vision_metadata(w, arch, config, llm_hidden, keep_bn, bn_eps, name, outtype):
    if config.get("mm_projector_type", "mlp2x_gelu") != "mlp2x_gelu":
        raise ConvertError(f"config.json: mm_projector_type {config.get('mm_projector_type')!r} "
                           "is not supported (only mlp2x_gelu)")
    mmh = config.get("mm_hidden_size")
    if mmh is not None and int(mmh) != arch.embed:
        raise ConvertError(f"config.json: mm_hidden_size {mmh} does not match the vision tower's "
                           f"output width {arch.embed} (conv_exp)")
    w.add_string("general.architecture", "fastvithd")
    w.add_string("general.name", name)
    w.add_uint32("general.file_type", gw.FILE_TYPE[outtype])
    w.add_uint32("general.quantization_version", gw.QUANTIZATION_VERSION)
    w.add_uint32("fastvlm.mmproj.version", MMPROJ_VERSION)
    w.add_uint32("fastvithd.image_size", image_size_from_config(config))
    # stem: two stride-2 convs; then one stride-2 PatchEmbed per downsampler
    w.add_uint32("fastvithd.patch_stride", 4 * 2 ** sum(s["down"] is not None for s in arch.stages))
    w.add_array("fastvithd.stage.depths", gw.UINT32, [s["depth"] for s in arch.stages])
    w.add_array("fastvithd.stage.widths", gw.UINT32, [s["width"] for s in arch.stages])
    w.add_array("fastvithd.stage.ffn_widths", gw.UINT32, [s["ffn"] for s in arch.stages])
    w.add_array("fastvithd.stage.mixers", gw.STRING, [s["mixer"] for s in arch.stages])
    w.add_array("fastvithd.stage.pos_embed", gw.UINT32, [int(s["cpe"] is not None) for s in arch.stages])
    w.add_uint32("fastvithd.repmixer.kernel", arch.kernels["repmixer"])
    w.add_uint32("fastvithd.pos_embed.kernel", arch.kernels["pos_embed"])
    w.add_uint32("fastvithd.downsample.kernel", arch.kernels["downsample"])
    w.add_uint32("fastvithd.attention.head_dim", 32)
    w.add_float32("fastvithd.norm_eps", 1e-5)
    w.add_float32("fastvithd.bn_eps", bn_eps)
    w.add_bool("fastvithd.bn_folded", not keep_bn)
    w.add_uint32("fastvithd.embed_dim", arch.embed)
    w.add_uint32("fastvithd.se.reduced", arch.se_reduced)
    w.add_uint32("fastvithd.stem.kernel", arch.kernels["stem"])
    w.add_string("fastvlm.projector.type", "mlp2x_gelu")
    w.add_uint32("fastvlm.projector.n_embd", llm_hidden)
    w.add_string("fastvlm.image.aspect", str(config.get("image_aspect_ratio") or "pad"))
    mean = [0.0, 0.0, 0.0]
    w.add_array("fastvlm.image.pad_color", gw.FLOAT32, [m * 255.0 for m in mean])
    w.add_string("fastvlm.image.resample", "bicubic")
    w.add_float32("fastvlm.image.rescale", 1.0 / 255.0)
    w.add_array("fastvlm.image.mean", gw.FLOAT32, mean)
    w.add_array("fastvlm.image.std", gw.FLOAT32, [1.0, 1.0, 1.0])


# ===================================================================== driver

def add_planned_tensors(w, plan, outtype):
    counts = {}
    for name, shape, cls, producer in plan.items:
        t = storage_type(shape, cls, outtype)
        w.add_tensor(name, shape, t, producer)
        counts[gw.TYPE_INFO[t][0]] = counts.get(gw.TYPE_INFO[t][0], 0) + 1
    return counts


def check_problems(problems, what):
    if problems:
        shown = problems[:40]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise ConvertError(f"{what}: {len(problems)} problem(s):\n  " + "\n  ".join(shown) + more)


def mmproj_path(outfile):
    base = outfile[:-5] if outfile.endswith(".gguf") else outfile
    return base + "-mmproj.gguf"


def convert(a):
    hf = a.hf_dir
    config = load_json(os.path.join(hf, "config.json"))
    hp = llm_hparams(config)
    name = a.name or os.path.basename(os.path.normpath(hf))
    outfile = a.outfile or f"{name}-{a.outtype}.gguf"

    ckpt = None if a.vocab_only else safetensors_io.Checkpoint(hf)

    # --- plan everything first: no file is written unless the whole checkpoint checks out
    llm = TensorPlan(ckpt)
    vis = None
    arch = None
    if ckpt is not None:
        plan_llm(llm, hp)
        has_vision = any(k.startswith(VISION_PREFIX) or k.startswith(PROJ_PREFIX) for k in ckpt.keys())
        problems = list(llm.problems)
        if has_vision and a.no_mmproj:
            # vision tensors are neither converted nor checked
            llm.used |= {k for k in ckpt.keys() if k.startswith(VISION_PREFIX) or k.startswith(PROJ_PREFIX)}
        elif has_vision:
            vis = TensorPlan(ckpt)
            arch = infer_vision(ckpt, vis.problems)
            plan_vision(vis, arch, hp["n_embd"], a.keep_bn, a.bn_eps)
            problems += vis.problems
        used = llm.used | (vis.used if vis else set())
        for k in ckpt.keys():
            if k in used or k.endswith(".num_batches_tracked") or k.startswith(VISION_PREFIX + "head."):
                continue
            problems.append(f"tensor '{k}' is not part of the expected FastVLM/Qwen2 layout")
        check_problems(problems, hf)

    # --- the language model file
    w = gw.GGUFWriter(outfile)
    w.add_string("general.architecture", "qwen2")
    w.add_string("general.name", name)
    w.add_uint32("qwen2.context_length", hp["n_ctx"])
    w.add_uint32("qwen2.embedding_length", hp["n_embd"])
    w.add_uint32("qwen2.block_count", hp["n_layer"])
    w.add_uint32("qwen2.feed_forward_length", hp["n_ff"])
    w.add_uint32("qwen2.attention.head_count", hp["n_head"])
    w.add_uint32("qwen2.attention.head_count_kv", hp["n_head_kv"])
    w.add_float32("qwen2.rope.freq_base", hp["rope_theta"])
    w.add_float32("qwen2.attention.layer_norm_rms_epsilon", hp["rms_eps"])
    w.add_uint32("general.file_type", gw.FILE_TYPE[a.outtype])
    w.add_uint32("general.quantization_version", gw.QUANTIZATION_VERSION)
    n_tok, n_merges = tokenizer_metadata(w, hf, config, hp["n_vocab"])
    counts = add_planned_tensors(w, llm, a.outtype) if ckpt is not None else {}
    w.write()
    log(f"wrote {outfile}: {w.n_tensors} tensors {counts}, {n_tok} tokens, {n_merges} merges")

    # --- the vision file
    if vis is not None and not a.no_mmproj:
        mp = mmproj_path(outfile)
        w = gw.GGUFWriter(mp)
        vision_metadata(w, arch, config, hp["n_embd"], a.keep_bn, a.bn_eps, name, a.outtype)
        counts = add_planned_tensors(w, vis, a.outtype)
        w.write()
        log(f"wrote {mp}: {w.n_tensors} tensors {counts}, stages depths "
            f"{[s['depth'] for s in arch.stages]} widths {[s['width'] for s in arch.stages]}, "
            f"BN {'kept' if a.keep_bn else 'folded'}")
    elif vis is None and ckpt is not None and not a.no_mmproj:
        log("no vision tower in the checkpoint: no mmproj file written")


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("hf_dir", help="Hugging Face model directory")
    ap.add_argument("--outfile", help="output NAME.gguf (the vision file is NAME-mmproj.gguf)")
    ap.add_argument("--outtype", choices=["f32", "f16", "bf16", "q8_0", "q4_0"], default="f16",
                    help="type of the large matrices (default f16); norms, biases, convs stay f32")
    ap.add_argument("--no-mmproj", action="store_true", help="do not write the vision file")
    ap.add_argument("--vocab-only", action="store_true",
                    help="write only the metadata (hyperparameters + tokenizer) of the LLM file")
    ap.add_argument("--keep-bn", action="store_true",
                    help="store the ConvFFN BatchNorm unfolded (default: folded into the 7x7 dw conv)")
    ap.add_argument("--bn-eps", type=float, default=1e-5, help=argparse.SUPPRESS)
    ap.add_argument("--name", help="general.name (default: the directory name)")
    a = ap.parse_args(argv)
    try:
        convert(a)
    except (ConvertError, safetensors_io.SafetensorsError, gw.GGUFWriterError) as e:
        log(f"error: {e}")
        return 1
    except OSError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
