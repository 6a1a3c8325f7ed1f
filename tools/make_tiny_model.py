#!/usr/bin/env python3
"""make_tiny_model.py — write a tiny random FastVLM checkpoint in the Hugging Face layout.

What it is: a seeded, deterministic generator of a model directory shaped exactly like
apple/FastVLM-* on the Hub (config.json with model_type "llava_qwen2", model.safetensors with
the released reparameterized FastViTHD tensor names + mlp2x_gelu projector + Qwen2 decoder,
tokenizer.json + tokenizer_config.json), with tiny dimensions, for tests and demos. Weights
are random but scaled so activations stay O(1) and greedy decoding is not constant.
What it is not: a trained model (its captions are gibberish), and not a converter — run
tools/convert_hf_to_gguf.py on the output to get the GGUF files.

Usage: make_tiny_model.py OUTDIR [--seed N] [--tokenizer-json PATH] [--no-vision]
         [--image-size 256] [--hidden 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128]
         [--tied] [--dtype f32|bf16] [--merges-format strings|pairs]
         [--vision-depths 2,1,1,1,1] [--vision-widths 16,32,64,128,256]

Tokenizer: by default a self-made byte-level BPE (the 256 GPT-2 byte symbols, merges learned
from the English text below, then <|endoftext|> <|im_start|> <|im_end|> as special added
tokens) in Qwen2's tokenizer.json structure; vocab_size is the token count rounded up to a
multiple of 64, so a few ids at the end have no token (like Qwen's padded embedding).
With --tokenizer-json a real tokenizer.json is copied (and the tokenizer_config.json beside
it, if any) and vocab_size is 151936 (Qwen2's padded size) or the count rounded up to 128.
"""

import argparse
import collections
import json
import os
import re
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

VISION_PREFIX = "model.vision_tower.vision_tower.model."

QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Training text for the toy BPE (written for this file).
CORPUS = """\
A small brown dog runs across the street while a red car waits at the light. Two people are
standing on the corner, one of them holding a blue umbrella. The sky is grey and it looks like
rain. In the background there is a tall building with many windows and a shop with a green sign.
The camera shows a kitchen with a white table, three chairs and a bowl of fresh fruit. There are
apples, oranges and bananas in the bowl. Sunlight comes in through the window on the left side of
the room. A cat is sleeping on the chair next to the table.
This is a picture of a busy train station. Many passengers are walking towards the platform and a
yellow train is arriving. A man in a dark coat is reading a newspaper, and a woman with a child is
looking at the departure board. The clock on the wall shows ten past eight in the morning.
The image shows a park in autumn. The trees have orange and yellow leaves, and some of the leaves
have fallen on the grass. A girl is riding a bicycle along the path, and an old man is sitting on a
wooden bench, feeding the birds. There is a small lake with ducks swimming near the shore.
What is in the image? Describe the image. The scene is quiet and calm. It's a sunny day; they're
playing football on the field, and we've seen the players running, jumping and laughing together.
The numbers 1, 2, 3 and 42 are written on the board. Is there anything unusual in this picture?
"""


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (byte-level BPE alphabet), in id order."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
          + list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [(b, chr(c)) for b, c in zip(bs, cs)]


# Python `re` has no \p{L}; this approximation of the Qwen2 split is only used to learn merges.
_TRAIN_SPLIT = re.compile(
    r"'s|'t|'re|'ve|'m|'ll|'d|[^\r\n\w]?[^\W\d_]+|\d| ?[^\s\w]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_bpe(text, n_merges):
    """Learns up to n_merges byte-level BPE merges (most frequent pair first, ties broken by
    the smaller pair; pairs seen once are merged too, so a short text gives enough merges)."""
    table = dict(bytes_to_unicode())
    words = collections.Counter()
    for piece in _TRAIN_SPLIT.findall(text):
        words[tuple(table[b] for b in piece.encode("utf-8"))] += 1
    words = dict(words)
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        (a, b) = best[0]
        merges.append((a, b))
        new = {}
        for w, c in words.items():
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


def added_token(i, content, special=True):
    return {"id": i, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": special}


def make_tokenizer(n_merges, merges_format):
    """Returns (tokenizer.json dict, number of token ids used)."""
    vocab = {}
    for _, ch in bytes_to_unicode():
        vocab[ch] = len(vocab)
    merges = train_bpe(CORPUS, n_merges)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    n = len(vocab)
    added = [added_token(n + k, s) for k, s in enumerate(SPECIAL_TOKENS)]
    merges_json = [f"{a} {b}" for a, b in merges] if merges_format == "strings" else [[a, b] for a, b in merges]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT_REGEX}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        ]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                    "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": merges_json},
    }
    return tok, n + len(added)


def make_tokenizer_config(added):
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": QWEN2_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def round_up(n, m):
    return (n + m - 1) // m * m


class Gen:
    """Seeded random tensors, all float32 until the final dtype cast."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def normal(self, shape, std, mean=0.0):
        return (mean + std * self.rng.standard_normal(shape)).astype(np.float32)

    def uniform(self, shape, lo, hi):
        return self.rng.uniform(lo, hi, shape).astype(np.float32)


def llm_tensors(g, a, vocab_size):
    """Qwen2 decoder tensors (HF names) with O(1) activations: unit-variance embeddings,
    fan-in-scaled projections, RMSNorm weights near 1."""
    t = {}
    h, f = a.hidden, a.ffn
    hd = h // a.heads
    t["model.embed_tokens.weight"] = g.normal((vocab_size, h), 1.0)
    for i in range(a.layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = g.normal((h,), 0.1, 1.0)
        t[p + "self_attn.q_proj.weight"] = g.normal((a.heads * hd, h), 1.0 / np.sqrt(h))
        t[p + "self_attn.q_proj.bias"] = g.normal((a.heads * hd,), 0.1)
        t[p + "self_attn.k_proj.weight"] = g.normal((a.kv_heads * hd, h), 1.0 / np.sqrt(h))
        t[p + "self_attn.k_proj.bias"] = g.normal((a.kv_heads * hd,), 0.1)
        t[p + "self_attn.v_proj.weight"] = g.normal((a.kv_heads * hd, h), 1.0 / np.sqrt(h))
        t[p + "self_attn.v_proj.bias"] = g.normal((a.kv_heads * hd,), 0.1)
        t[p + "self_attn.o_proj.weight"] = g.normal((h, a.heads * hd), 1.0 / np.sqrt(a.heads * hd))
        t[p + "post_attention_layernorm.weight"] = g.normal((h,), 0.1, 1.0)
        t[p + "mlp.gate_proj.weight"] = g.normal((f, h), 1.0 / np.sqrt(h))
        t[p + "mlp.up_proj.weight"] = g.normal((f, h), 1.0 / np.sqrt(h))
        t[p + "mlp.down_proj.weight"] = g.normal((h, f), 1.5 / np.sqrt(f))
    t["model.norm.weight"] = g.normal((h,), 0.1, 1.0)
    if not a.tied:
        t["lm_head.weight"] = g.normal((vocab_size, h), 3.0 / np.sqrt(h))
    return t


def vision_tensors(g, depths, widths, image_size, llm_hidden):
    """FastViTHD in the released (reparameterized) form + the mlp2x_gelu projector, with the
    module indices of the real checkpoint: stages at network.{0,2,4,7,10}, PatchEmbed at
    {1,3,5,8}, RepCPE at {6,9}. Returns (tensors, embed_dim)."""
    t = {}
    P = VISION_PREFIX
    w0 = widths[0]

    def conv(shape, gain=1.4):
        fan_in = int(np.prod(shape[1:]))
        return g.normal(shape, gain / np.sqrt(fan_in))

    def bias(n, std=0.05):
        return g.normal((n,), std)

    def identity_dw(c, k, noise):
        w = g.normal((c, 1, k, k), noise)
        w[:, 0, k // 2, k // 2] += 1.0
        return w

    def nbt():
        return np.array(int(g.rng.integers(1000, 100000)), dtype=np.int64)

    t[P + "patch_embed.0.reparam_conv.weight"] = conv((w0, 3, 3, 3), 2.0)
    t[P + "patch_embed.0.reparam_conv.bias"] = bias(w0, 0.1)
    t[P + "patch_embed.1.reparam_conv.weight"] = conv((w0, 1, 3, 3))
    t[P + "patch_embed.1.reparam_conv.bias"] = bias(w0, 0.1)
    t[P + "patch_embed.2.reparam_conv.weight"] = conv((w0, w0, 1, 1))
    t[P + "patch_embed.2.reparam_conv.bias"] = bias(w0, 0.1)

    mixers = ["repmixer", "repmixer", "repmixer", "attention", "attention"]
    n = 0
    for s, (depth, c) in enumerate(zip(depths, widths)):
        if s > 0:
            cin = widths[s - 1]
            p = f"{P}network.{n}.proj."
            t[p + "0.lkb_reparam.weight"] = conv((c, 1, 7, 7))
            t[p + "0.lkb_reparam.bias"] = bias(c, 0.1)
            t[p + "1.reparam_conv.weight"] = conv((c, c, 1, 1))
            t[p + "1.reparam_conv.bias"] = bias(c, 0.1)
            assert c % cin == 0
            n += 1
            if mixers[s] == "attention":          # RepCPE before the attention stages
                t[f"{P}network.{n}.reparam_conv.weight"] = identity_dw(c, 7, 0.05)
                t[f"{P}network.{n}.reparam_conv.bias"] = bias(c, 0.05)
                n += 1
        for i in range(depth):
            p = f"{P}network.{n}.{i}."
            if mixers[s] == "repmixer":
                t[p + "layer_scale"] = g.uniform((c, 1, 1), 0.1, 1.0)
                t[p + "token_mixer.reparam_conv.weight"] = identity_dw(c, 3, 0.1)
                t[p + "token_mixer.reparam_conv.bias"] = bias(c)
            else:
                t[p + "layer_scale_1"] = g.uniform((c, 1, 1), 0.1, 1.0)
                t[p + "layer_scale_2"] = g.uniform((c, 1, 1), 0.1, 1.0)
                t[p + "norm.weight"] = g.normal((c,), 0.1, 1.0)
                t[p + "norm.bias"] = bias(c, 0.1)
                t[p + "token_mixer.qkv.weight"] = g.normal((3 * c, c), 1.0 / np.sqrt(c))
                t[p + "token_mixer.proj.weight"] = g.normal((c, c), 1.0 / np.sqrt(c))
                t[p + "token_mixer.proj.bias"] = bias(c)
            t[p + "convffn.conv.conv.weight"] = conv((c, 1, 7, 7))
            # small variances make eps matter; gamma ~ sqrt(var) keeps the BN gain near 1
            var = g.uniform((c,), 0.05, 2.0)
            t[p + "convffn.conv.bn.weight"] = (np.sqrt(var) * g.normal((c,), 0.2, 1.0)).astype(np.float32)
            t[p + "convffn.conv.bn.bias"] = bias(c, 0.1)
            t[p + "convffn.conv.bn.running_mean"] = bias(c, 0.2)
            t[p + "convffn.conv.bn.running_var"] = var
            t[p + "convffn.conv.bn.num_batches_tracked"] = nbt()
            t[p + "convffn.fc1.weight"] = conv((4 * c, c, 1, 1))
            t[p + "convffn.fc1.bias"] = bias(4 * c)
            t[p + "convffn.fc2.weight"] = conv((c, 4 * c, 1, 1), 1.0)
            t[p + "convffn.fc2.bias"] = bias(c)
        n += 1

    cl = widths[-1]
    e = 2 * cl
    r = e // 16
    t[P + "conv_exp.reparam_conv.weight"] = conv((e, 1, 3, 3))
    t[P + "conv_exp.reparam_conv.bias"] = bias(e, 0.1)
    t[P + "conv_exp.se.reduce.weight"] = conv((r, e, 1, 1), 2.0)
    t[P + "conv_exp.se.reduce.bias"] = bias(r, 0.1)
    t[P + "conv_exp.se.expand.weight"] = conv((e, r, 1, 1), 2.0)
    t[P + "conv_exp.se.expand.bias"] = bias(e, 0.1)
    t[P + "head.proj"] = g.normal((e, max(32, e // 4)), 1.0 / np.sqrt(e))

    t["model.mm_projector.0.weight"] = g.normal((llm_hidden, e), 1.0 / np.sqrt(e))
    t["model.mm_projector.0.bias"] = bias(llm_hidden)
    t["model.mm_projector.2.weight"] = g.normal((llm_hidden, llm_hidden), 1.0 / np.sqrt(llm_hidden))
    t["model.mm_projector.2.bias"] = bias(llm_hidden)
    return t, e


def int_list(s):
    return [int(v) for v in s.split(",") if v.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer-json", help="use this real tokenizer.json instead of the toy BPE")
    ap.add_argument("--no-vision", action="store_true", help="plain Qwen2 checkpoint, no tower/projector")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=128)
    ap.add_argument("--tied", action="store_true", help="no lm_head.weight, tie_word_embeddings true")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--merges-format", choices=["strings", "pairs"], default="strings",
                    help='tokenizer.json merges as "a b" strings (Qwen2) or ["a","b"] pairs (newer)')
    ap.add_argument("--n-merges", type=int, default=300)
    ap.add_argument("--max-position", type=int, default=4096)
    ap.add_argument("--vision-depths", type=int_list, default=[2, 1, 1, 1, 1])
    ap.add_argument("--vision-widths", type=int_list, default=[16, 32, 64, 128, 256])
    a = ap.parse_args(argv)

    if a.hidden % a.heads or a.heads % a.kv_heads:
        ap.error("hidden must be a multiple of heads, and heads a multiple of kv-heads")
    if (a.hidden // a.heads) % 2:
        ap.error("head_dim (hidden/heads) must be even for RoPE")
    if len(a.vision_depths) != 5 or len(a.vision_widths) != 5:
        ap.error("FastViTHD has 5 stages: give 5 depths and 5 widths")
    if any(w % 32 for w in a.vision_widths[3:]):
        ap.error("attention stage widths (stages 3 and 4) must be multiples of head_dim 32")
    if any(a.vision_widths[i + 1] % a.vision_widths[i] for i in range(4)):
        ap.error("each stage width must be a multiple of the previous one (grouped PatchEmbed)")
    if a.image_size % 64:
        ap.error("--image-size must be a multiple of 64")

    os.makedirs(a.outdir, exist_ok=True)

    # --- tokenizer
    if a.tokenizer_json:
        with open(a.tokenizer_json, encoding="utf-8") as f:
            tok = json.load(f)
        ids = list(tok["model"]["vocab"].values()) + [t["id"] for t in tok.get("added_tokens", [])]
        n_tok = max(ids) + 1
        vocab_size = 151936 if n_tok <= 151936 else round_up(n_tok, 128)
        shutil.copyfile(a.tokenizer_json, os.path.join(a.outdir, "tokenizer.json"))
        beside = os.path.join(os.path.dirname(os.path.abspath(a.tokenizer_json)), "tokenizer_config.json")
        if os.path.isfile(beside):
            shutil.copyfile(beside, os.path.join(a.outdir, "tokenizer_config.json"))
        else:
            with open(os.path.join(a.outdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
                json.dump(make_tokenizer_config(tok.get("added_tokens", [])), f, indent=2, ensure_ascii=False)
    else:
        tok, n_tok = make_tokenizer(a.n_merges, a.merges_format)
        vocab_size = round_up(n_tok, 64)
        with open(os.path.join(a.outdir, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tok, f, indent=2, ensure_ascii=False)
        with open(os.path.join(a.outdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(make_tokenizer_config(tok["added_tokens"]), f, indent=2, ensure_ascii=False)
    special = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    for s in SPECIAL_TOKENS:
        if s not in special:
            sys.exit(f"make_tiny_model.py: tokenizer has no added token {s}")

    # --- weights
    g = Gen(a.seed)
    tensors = llm_tensors(g, a, vocab_size)
    embed_dim = None
    if not a.no_vision:
        vt, embed_dim = vision_tensors(g, a.vision_depths, a.vision_widths, a.image_size, a.hidden)
        tensors.update(vt)
    if a.dtype == "bf16":
        tensors = {k: (("BF16", safetensors_io.float32_to_bf16(v).reshape(v.shape))
                       if v.dtype == np.float32 else v) for k, v in tensors.items()}
    for stale in ("model.safetensors.index.json",):
        p = os.path.join(a.outdir, stale)
        if os.path.exists(p):
            os.unlink(p)
    safetensors_io.write_safetensors(os.path.join(a.outdir, "model.safetensors"), tensors,
                                     metadata={"format": "pt"})

    # --- config
    cfg = {
        "_name_or_path": "tiny-fastvlm",
        "architectures": ["LlavaQwen2ForCausalLM"] if not a.no_vision else ["Qwen2ForCausalLM"],
        "model_type": "llava_qwen2" if not a.no_vision else "qwen2",
        "attention_dropout": 0.0,
        "bos_token_id": special["<|endoftext|>"],
        "eos_token_id": special["<|im_end|>"],
        "hidden_act": "silu",
        "hidden_size": a.hidden,
        "initializer_range": 0.02,
        "intermediate_size": a.ffn,
        "max_position_embeddings": a.max_position,
        "max_window_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": a.max_position,
        "tie_word_embeddings": bool(a.tied),
        "torch_dtype": "bfloat16" if a.dtype == "bf16" else "float32",
        "transformers_version": "4.39.3",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
        "tokenizer_model_max_length": 8192,
        "tokenizer_padding_side": "right",
    }
    if not a.no_vision:
        cfg.update({
            "freeze_mm_mlp_adapter": False,
            "image_aspect_ratio": "pad",
            "mm_hidden_size": embed_dim,
            "mm_patch_merge_type": "flat",
            "mm_projector_lr": None,
            "mm_projector_type": "mlp2x_gelu",
            "mm_use_im_patch_token": False,
            "mm_use_im_start_end": False,
            "mm_vision_select_feature": "patch",
            "mm_vision_select_layer": -2,
            "mm_vision_tower": f"mobileclip_l_{a.image_size}",
            "tune_mm_mlp_adapter": False,
            "unfreeze_mm_vision_tower": True,
            "use_mm_proj": True,
        })
    with open(os.path.join(a.outdir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    n_params = sum(int(np.prod(v[1].shape if isinstance(v, tuple) else v.shape)) for v in tensors.values())
    print(f"make_tiny_model.py: wrote {a.outdir} ({len(tensors)} tensors, {n_params} values, "
          f"vocab {vocab_size}, {'no vision' if a.no_vision else f'image {a.image_size}, embed {embed_dim}'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
