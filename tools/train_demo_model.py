#!/usr/bin/python3
"""train_demo_model.py — train the small FastVLM-architecture demo captioner and ship it.

What it is: a seeded, deterministic CPU trainer (PyTorch 1.13, 2 threads, about 30 minutes)
for a small model with FastVLM's exact architecture and file layout: a narrow, shallow
FastViTHD tower (all five stages, RepMixer / attention blocks, PatchEmbeds, RepCPEs,
conv_exp + SE; 256x256 input -> 4x4 = 16 image tokens), the mlp2x_gelu projector and a small
Qwen2 decoder (GQA, RoPE, SwiGLU). It trains on tools/demo_scenes.py (coloured shapes + real
videotestsrc frames) with the inference preprocessing of predict.py (black square padding,
PIL bicubic resize to 256, /255) and predict.py's prompt layout (qwen_2 chat template, the 16
image rows spliced at the <image> position, loss on the answer tokens + <|im_end|> only).
The tokenizer is a byte-level BPE learned on the caption/answer corpus, written as a
tokenizer.json in Qwen2's structure with the real special tokens. At the end it writes the
Hugging Face layout (config.json, model.safetensors with the released checkpoint's tensor
names, tokenizer.json, tokenizer_config.json) and runs tools/convert_hf_to_gguf.py.
What it is not: an evaluator (tests/demo_model/eval_demo.py measures the shipped files
through the C engine), nor a general-purpose captioner: it only knows the synthetic world of
demo_scenes.py.

The tower is tests/reference/fastvithd_ref.py's FastVLMVision (a trainable nn.Module whose
names are the checkpoint's), trained directly in the released reparameterized form: the
RepMixer/RepCPE convs start as identity kernels, as the folded training-form blocks would.
The decoder is written here as an nn.Module with Hugging Face Qwen2 names, because
tests/reference/qwen2_ref.py is a no-grad float64 reference; after export the two are
compared on one example (skip with --no-check-ref).

Usage:
  train_demo_model.py [--out models] [--steps 1600] [--seed 0] [--threads 2]
                      [--smoke] [--hf-dir DIR] [--outtype f16] [--no-convert]
  --smoke: 2 steps, batch 4, one pattern size, export + convert into --out (use a temp dir).
Writes OUT/NAME.gguf, OUT/NAME-mmproj.gguf and the float16 Hugging Face checkpoint they were
converted from, OUT/NAME-hf/ (kept so the GGUFs can be regenerated without retraining).
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import demo_scenes as ds  # noqa: E402
import fastvithd_ref  # noqa: E402
import make_tiny_model as mtm  # noqa: E402
import safetensors_io  # noqa: E402

IMAGE_SIZE = 256
N_IMAGE_TOKENS = (IMAGE_SIZE // 64) ** 2

# ---- architecture --------------------------------------------------------------------------

VISION_WIDTHS = [16, 32, 64, 128, 256]     # FastViTHD: 96, 192, 384, 768, 1536
VISION_DEPTHS = [1, 1, 1, 1, 1]            # FastViTHD: 2, 12, 24, 4, 2
VISION_MIXERS = ["repmixer", "repmixer", "repmixer", "attention", "attention"]
LLM = dict(hidden=128, layers=3, heads=4, kv_heads=2, ffn=384, rope_theta=1e6, rms_eps=1e-6)


def vision_config(hidden):
    """fastvithd_ref.FastViTHD config: stages at network.{0,2,4,7,10}, PatchEmbed at
    {1,3,5,8}, RepCPE at {6,9} — the real checkpoint's module indices."""
    net = []
    for s, (w, d) in enumerate(zip(VISION_WIDTHS, VISION_DEPTHS)):
        if s > 0:
            net.append(("down", VISION_WIDTHS[s - 1], w))
            if VISION_MIXERS[s] == "attention":
                net.append(("cpe", w))
        net.append(("stage", w, 4 * w, [VISION_MIXERS[s]] * d))
    e = 2 * VISION_WIDTHS[-1]
    return {"stem_width": VISION_WIDTHS[0], "network": net, "last_width": VISION_WIDTHS[-1],
            "embed_dim": e, "se_reduced": e // 16, "hidden": hidden}


# ---- tokenizer -------------------------------------------------------------------------------

class Tokenizer:
    """Byte-level BPE encoder for our tokenizer.json (ASCII text; the Qwen2 split regex is
    approximated by make_tiny_model's, which agrees with it on ASCII without '_')."""

    def __init__(self, tok_json):
        self.vocab = tok_json["model"]["vocab"]
        self.ranks = {tuple(m.split(" ")): i for i, m in enumerate(tok_json["model"]["merges"])}
        self.special = {t["content"]: t["id"] for t in tok_json["added_tokens"]}
        self.inv = {i: s for s, i in self.vocab.items()}
        self.inv.update({i: s for s, i in self.special.items()})
        self.byte = dict(mtm.bytes_to_unicode())
        self.unbyte = {c: b for b, c in self.byte.items()}
        self.cache = {}

    def _bpe(self, piece):
        if piece in self.cache:
            return self.cache[piece]
        w = [self.byte[b] for b in piece.encode("utf-8")]
        while len(w) > 1:
            best = min(range(len(w) - 1), key=lambda i: self.ranks.get((w[i], w[i + 1]), 1 << 30))
            if (w[best], w[best + 1]) not in self.ranks:
                break
            w = w[:best] + [w[best] + w[best + 1]] + w[best + 2:]
        ids = [self.vocab[s] for s in w]
        self.cache[piece] = ids
        return ids

    def encode(self, text):
        """Special tokens written in the text become their ids (the template's own)."""
        out = []
        i = 0
        while i < len(text):
            nxt = min(((text.find(s, i), s) for s in self.special if text.find(s, i) >= 0),
                      default=(-1, None))
            end = nxt[0] if nxt[0] >= 0 else len(text)
            chunk = text[i:end]
            if chunk:
                assert chunk.isascii() and "_" not in chunk, chunk
                for piece in mtm._TRAIN_SPLIT.findall(chunk):
                    out += self._bpe(piece)
            if nxt[0] < 0:
                break
            out.append(self.special[nxt[1]])
            i = end + len(nxt[1])
        return out

    def decode(self, ids):
        s = "".join(self.inv.get(i, "") for i in ids if i not in self.special.values())
        return bytes(self.unbyte[c] for c in s).decode("utf-8", "replace")


def build_tokenizer(seed):
    corpus = "\n".join(ds.corpus_texts(seed))
    saved = mtm.CORPUS
    mtm.CORPUS = corpus          # make_tokenizer() learns its merges from this module text
    try:
        tok, n_tok = mtm.make_tokenizer(4000, "strings")
    finally:
        mtm.CORPUS = saved
    return tok, n_tok


# ---- decoder (Hugging Face Qwen2 names) ------------------------------------------------------

class Linear(nn.Linear):
    """nn.Linear (same parameters, same state_dict names) computed as a 1x1 convolution
    with the rows as the batch, which PyTorch runs through oneDNN. Debian's torch 1.13 does
    its matrix products with the generic reference BLAS (BLAS_INFO=generic, ~5 GFLOP/s on
    one core); this path is ~8x faster for the decoder's shapes, forward and backward."""

    def forward(self, x):
        shp = x.shape
        y = F.conv2d(x.reshape(-1, shp[-1], 1, 1), self.weight[:, :, None, None], self.bias)
        return y.reshape(*shp[:-1], self.out_features)


def use_fast_linear(module):
    """Turns every nn.Linear inside `module` (the tower's attention, the projector) into
    Linear, in place; parameters are kept."""
    for m in module.modules():
        if type(m) is nn.Linear:
            m.__class__ = Linear


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, hd = c["hidden"], c["hidden"] // c["heads"]
        self.nh, self.nkv, self.hd = c["heads"], c["kv_heads"], hd
        self.q_proj = Linear(h, self.nh * hd)
        self.k_proj = Linear(h, self.nkv * hd)
        self.v_proj = Linear(h, self.nkv * hd)
        self.o_proj = Linear(self.nh * hd, h, bias=False)

    def qkv(self, x, cos, sin):
        """x [b, n, h] -> q [b, nh, n, hd], k and v [b, nkv, n, hd], RoPE applied."""
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.nkv, self.hd).transpose(1, 2)
        return rope(q, cos, sin), rope(k, cos, sin), v

    def attend(self, q, k, v, mask):
        """q [b, nh, n, hd] over k/v [b, nkv, m, hd] with an additive mask [n, m]."""
        b, _, n, _ = q.shape
        g = self.nh // self.nkv                    # q head j reads kv head j // g
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        a = (q @ k.transpose(-1, -2)) * (self.hd ** -0.5) + mask
        o = (a.softmax(-1) @ v).transpose(1, 2).reshape(b, n, self.nh * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = Linear(c["hidden"], c["ffn"], bias=False)
        self.up_proj = Linear(c["hidden"], c["ffn"], bias=False)
        self.down_proj = Linear(c["ffn"], c["hidden"], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden"], c["rms_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden"], c["rms_eps"])
        self.mlp = MLP(c)


def causal_mask(n, n_prefix=0):
    """[n, n_prefix + n] additive mask: every row sees the whole prefix and itself/earlier."""
    m = torch.full((n, n), float("-inf")).triu(1)
    return torch.cat([torch.zeros(n, n_prefix), m], 1) if n_prefix else m


def rope(x, cos, sin):
    """Rotate-half RoPE over the full head_dim; cos/sin [n, hd]."""
    d = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., d:], x[..., :d]], -1) * sin


def rope_tables(n, hd, theta):
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None]
    ang = torch.cat([ang, ang], -1)
    return ang.cos().float(), ang.sin().float()


class ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous. Needed because the
    token flatten/transpose hands conv_exp's GELU a gradient with channels-last strides, and
    PyTorch 1.13's float32 GELU backward returns garbage (NaN, 1e26) for such a gradient
    (checked against float64: tests would show it as a diverging loss)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g.contiguous()


class ConvBN(nn.Module):
    """Training form of one of the tower's folded "conv + bias" layers (stem, PatchEmbed,
    conv_exp — MobileOne / ReparamLargeKernel blocks in FastViT): conv without bias, then
    BatchNorm. fold() returns the (weight, bias) of the single conv it becomes."""

    def __init__(self, like):
        super().__init__()
        self.conv = nn.Conv2d(like.in_channels, like.out_channels, like.kernel_size,
                              stride=like.stride, padding=like.padding, groups=like.groups,
                              bias=False)
        self.bn = nn.BatchNorm2d(like.out_channels, eps=fastvithd_ref.BN_EPS)

    def forward(self, x):
        return self.bn(self.conv(x))

    def fold(self):
        s = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        return self.conv.weight * s[:, None, None, None], self.bn.bias - self.bn.running_mean * s


class RepMixerTrain(nn.Module):
    """Training form of RepMixer: x + ls * BN(dw3x3(x)). Linear in x, so it folds exactly
    into the released single dw3x3 conv with bias (identity at the kernel centre)."""

    def __init__(self, like):
        super().__init__()
        c = like.out_channels
        self.conv = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn = nn.BatchNorm2d(c, eps=fastvithd_ref.BN_EPS)
        self.layer_scale = nn.Parameter(torch.full((c, 1, 1), 0.1))

    def forward(self, x):
        return x + self.layer_scale * self.bn(self.conv(x))

    def fold(self):
        s = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        ls = self.layer_scale.view(-1)
        w = self.conv.weight * (ls * s)[:, None, None, None]
        w = w + F.pad(torch.ones(w.shape[0], 1, 1, 1), (1, 1, 1, 1))
        return w, ls * (self.bn.bias - self.bn.running_mean * s)


def _train_form_sites(tower):
    """(parent module, attribute name, training-form class) of every folded conv we train
    in its unfolded form. RepCPE stays a plain conv (identity-initialised)."""
    sites = []
    for m in tower.modules():
        if isinstance(m, fastvithd_ref.ConvAct):
            sites.append((m, "reparam_conv", ConvBN))
        elif isinstance(m, fastvithd_ref.LargeKernel):
            sites.append((m, "lkb_reparam", ConvBN))
        elif isinstance(m, fastvithd_ref.RepMixer):
            sites.append((m, "reparam_conv", RepMixerTrain))
    return sites


def to_training_form(tower):
    for parent, name, cls in _train_form_sites(tower):
        setattr(parent, name, cls(getattr(parent, name)))


@torch.no_grad()
def fold_to_released_form(tower):
    """Replaces every training-form layer by the nn.Conv2d (with bias) it folds into, using
    the BatchNorm running statistics: the state_dict then has the released names."""
    for m in list(tower.modules()):
        for name in ("reparam_conv", "lkb_reparam"):
            t = getattr(m, name, None)
            if isinstance(t, (ConvBN, RepMixerTrain)):
                w, b = t.fold()
                c = t.conv
                conv = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, stride=c.stride,
                                 padding=c.padding, groups=c.groups, bias=True)
                conv.weight.copy_(w)
                conv.bias.copy_(b)
                setattr(m, name, conv)


class DemoVLM(nn.Module):
    """state_dict() names are exactly the FastVLM checkpoint's: model.vision_tower.vision_tower.
    model.*, model.mm_projector.*, model.embed_tokens, model.layers.*, model.norm, lm_head."""

    def __init__(self, vocab_size, llm=LLM, training_form=False):
        super().__init__()
        self.llm = dict(llm)
        vis = fastvithd_ref.FastVLMVision(vision_config(llm["hidden"]))
        self.model = vis.model                     # the _Box holding vision_tower + mm_projector
        self._vision = [vis]                       # (not a submodule: avoids duplicate names)
        self.model.embed_tokens = nn.Embedding(vocab_size, llm["hidden"])
        self.model.layers = nn.ModuleList([DecoderLayer(llm) for _ in range(llm["layers"])])
        self.model.norm = RMSNorm(llm["hidden"], llm["rms_eps"])
        self.lm_head = Linear(llm["hidden"], vocab_size, bias=False)
        self._init()
        use_fast_linear(self.model)
        if training_form:
            to_training_form(self.model.vision_tower.vision_tower.model)

    def _init(self):
        g = torch.Generator().manual_seed(1234)
        n_layers = len(self.model.layers)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "vision_tower" in name or "mm_projector" in name:
                    continue                       # PyTorch's default conv/linear init
                if name.endswith("norm.weight") or "layernorm" in name:
                    p.fill_(1.0)
                elif name.endswith(".bias"):
                    p.zero_()
                else:
                    p.normal_(0.0, 0.02, generator=g)
            for L in self.model.layers:           # GPT-2 style scaled residual projections
                L.self_attn.o_proj.weight.mul_(1 / math.sqrt(2 * n_layers))
                L.mlp.down_proj.weight.mul_(1 / math.sqrt(2 * n_layers))
            # The tower is trained in its folded form, without the BatchNorms that follow
            # every conv in FastViT's training form, so it needs a variance-preserving
            # init: He-normal for the convs followed by GELU (stem, PatchEmbed, conv_exp,
            # fc1). PyTorch's default init shrinks the signal ~0.6x per conv, and after the
            # 15 convs of this tower the output no longer depends on the image (measured:
            # across-image std 1e-7 of the rows, training then only learns a caption prior).
            tower = self.model.vision_tower.vision_tower.model
            for m in tower.modules():
                if isinstance(m, (fastvithd_ref.ConvAct, fastvithd_ref.LargeKernel)):
                    conv = m.reparam_conv if isinstance(m, fastvithd_ref.ConvAct) else m.lkb_reparam
                    conv.weight.normal_(0.0, math.sqrt(2.0 / conv.weight[0].numel()), generator=g)
                    conv.bias.zero_()
                elif isinstance(m, fastvithd_ref.ConvFFN):
                    m.conv.conv.weight.normal_(0.0, math.sqrt(1.0 / 49), generator=g)
                    m.fc1.weight.normal_(0.0, math.sqrt(2.0 / m.fc1.in_channels), generator=g)
                    m.fc1.bias.zero_()
                    m.fc2.weight.normal_(0.0, math.sqrt(1.0 / m.fc2.in_channels), generator=g)
                    m.fc2.bias.zero_()
                elif isinstance(m, (fastvithd_ref.RepMixer, fastvithd_ref.RepCPE)):
                    # identity kernel + small noise: the folded form of x + f(x)
                    w = m.reparam_conv.weight
                    k = w.shape[-1]
                    w.normal_(0.0, 0.02, generator=g)
                    w[:, 0, k // 2, k // 2] += 1.0
                    m.reparam_conv.bias.zero_()
            for name, p in tower.named_parameters():
                if "layer_scale" in name:
                    p.fill_(0.1)
            for lin in (self.model.mm_projector[0], self.model.mm_projector[2]):
                lin.weight.normal_(0.0, math.sqrt(1.0 / lin.in_features), generator=g)
                lin.bias.zero_()

    def encode_images(self, pixels):
        """pixels [B,3,256,256] in [0,1] -> projected image rows [B, 16, hidden]: the same
        computation as FastVLMVision.forward, with the tower output's gradient made
        contiguous (see ContiguousGrad)."""
        tower = self.model.vision_tower.vision_tower.model
        x = tower.patch_embed(pixels)
        for layer in tower.network:
            x = layer(x)
        x = ContiguousGrad.apply(tower.conv_exp(x))
        return self.model.mm_projector(x.flatten(2).transpose(1, 2))

    def forward(self, prefix, conts, hidden_only=False):
        """Decoder over sequences that share per-image prefixes.
        prefix [B, P, hidden]: the embedded text before the image + the image rows (the same
        for every question about one image), at positions 0..P-1;
        conts: list of (img_idx [S], ids [S, L]) continuations at positions P..P+L-1, each
        row attending to its image's prefix and causally to itself.
        Returns one logits tensor [S, L, vocab] per continuation group (the final-norm hidden
        states [S, L, hidden] with hidden_only). Equal to running each full sequence on its
        own (checked by check_against_reference)."""
        P = prefix.shape[1]
        hd = self.llm["hidden"] // self.llm["heads"]
        n_max = P + max(ids.shape[1] for _, ids in conts)
        cos, sin = rope_tables(n_max, hd, self.llm["rope_theta"])
        xp = prefix
        xs = [self.model.embed_tokens(ids) for _, ids in conts]
        masks = [causal_mask(ids.shape[1], P) for _, ids in conts]
        mask_p = causal_mask(P)
        for L in self.model.layers:
            at = L.self_attn
            qp, kp, vp = at.qkv(L.input_layernorm(xp), cos[:P], sin[:P])
            for j, (idx, ids) in enumerate(conts):
                n = ids.shape[1]
                q, k, v = at.qkv(L.input_layernorm(xs[j]), cos[P:P + n], sin[P:P + n])
                x = xs[j] + at.attend(q, torch.cat([kp[idx], k], 2), torch.cat([vp[idx], v], 2),
                                      masks[j])
                xs[j] = x + L.mlp(L.post_attention_layernorm(x))
            xp = xp + at.attend(qp, kp, vp, mask_p)
            xp = xp + L.mlp(L.post_attention_layernorm(xp))
        xs = [self.model.norm(x) for x in xs]
        return xs if hidden_only else [self.lm_head(x) for x in xs]

    def make_prefix(self, pre_ids, img_rows):
        """[B, P, hidden]: embeddings of the fixed pre-image text, then the image rows."""
        e = self.model.embed_tokens(torch.tensor(pre_ids))
        return torch.cat([e[None].expand(img_rows.shape[0], -1, -1), img_rows], 1)


# ---- data ----------------------------------------------------------------------------------

class Prompting:
    """predict.py's token layout: pre (14 ids) + 16 image rows + post(question) + answer."""

    def __init__(self, tok):
        self.tok = tok
        self.pre = tok.encode("<|im_start|>system\n" + ds.SYSTEM_PROMPT + "<|im_end|>\n"
                              "<|im_start|>user\n")
        self.im_end = tok.special["<|im_end|>"]
        self.pad = tok.special["<|endoftext|>"]
        self._post = {}

    def post(self, question):
        if question not in self._post:
            self._post[question] = self.tok.encode("\n" + question + "<|im_end|>\n"
                                                   "<|im_start|>assistant\n")
        return self._post[question]

    def continuation(self, question, answer):
        """(ids, loss mask) of what follows the image rows: post(question) + answer +
        <|im_end|>, the mask on the answer and <|im_end|> only."""
        ans = self.tok.encode(answer) + [self.im_end]
        ids = self.post(question) + ans
        return ids, [0] * (len(ids) - len(ans)) + [1] * len(ans)


def to_pixels(u8_list):
    a = np.stack(u8_list).astype(np.float32) * (1.0 / 255.0)          # [B, 256, 256, 3]
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()


class DataSource:
    """Seeded stream of (preprocessed uint8 image, item) — fresh scenes and cached
    videotestsrc frames."""

    def __init__(self, seed, sizes, pattern_sizes, cache, p_pattern=0.25, log=print):
        self.rng = random.Random(seed)
        self.sizes = sizes
        self.p_pattern = p_pattern
        t = time.time()
        self.patterns = [(ds.preprocess(img, IMAGE_SIZE), item)
                         for img, item in ds.pattern_items(pattern_sizes, cache, frame_stride=5)]
        names = sorted({it["pattern"] for _, it in self.patterns})
        self.by_name = {n: [p for p in self.patterns if p[1]["pattern"] == n] for n in names}
        log(f"patterns: {len(self.patterns)} frames of {len(names)} patterns "
            f"({time.time() - t:.1f} s)")

    def sample(self):
        if self.rng.random() < self.p_pattern:
            name = self.rng.choice(sorted(self.by_name))     # balanced over patterns
            return self.rng.choice(self.by_name[name])
        sc = ds.sample_scene(self.rng, self.sizes)
        return ds.preprocess(ds.render_scene(sc), IMAGE_SIZE), sc


def make_batch(src, prompting, n_images, k_qa, rng):
    """Images, auxiliary targets [B, n_heads], and two groups of sequences (captions, short
    answers) with their image index."""
    imgs, aux, row_aux, groups = [], [], [], {"long": [], "short": []}
    for b in range(n_images):
        u8, item = src.sample()
        imgs.append(u8)
        aux.append(ds.aux_targets(item))
        row_aux.append(ds.row_targets(item, grid=IMAGE_SIZE // 64, size=IMAGE_SIZE))
        qa = ds.item_qa(item, rng)
        cap = [x for x in qa if x[0] in ("caption", "pattern_caption")]
        rest = [x for x in qa if x[0] not in ("caption", "pattern_caption")]
        pick = cap + rng.sample(rest, min(k_qa - 1, len(rest)))
        for cat, q, a in pick:
            ids, mask = prompting.continuation(q, a)
            groups["long" if cat.endswith("caption") else "short"].append((b, ids, mask))
    out = []
    for g in groups.values():
        if not g:
            continue
        n = max(len(x[1]) for x in g)
        ids = torch.full((len(g), n), prompting.pad, dtype=torch.long)
        mask = torch.zeros((len(g), n))
        for i, (_, s, m) in enumerate(g):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(m)] = torch.tensor(m, dtype=torch.float32)
        out.append((torch.tensor([x[0] for x in g]), ids, mask))
    return to_pixels(imgs), (torch.tensor(aux), torch.tensor(row_aux)), out


def heads_loss(logits, targets, sizes):
    """Mean over the heads that have a target in this batch of each head's cross-entropy:
    logits [N, sum(sizes)] split into one block per head, targets [N, heads] (-1: none)."""
    losses = [F.cross_entropy(l, targets[:, i], ignore_index=-1)
              for i, l in enumerate(logits.split(sizes, dim=1)) if (targets[:, i] >= 0).any()]
    return sum(losses) / max(1, len(losses))


class AuxHead(nn.Module):
    """Training-only linear read-out of the 16 projected image rows (flattened) into the
    classes of demo_scenes.AUX_HEADS. Not part of the model and not exported: it only gives
    the tower a direct signal early on, while the decoder still ignores the image."""

    def __init__(self, hidden):
        super().__init__()
        self.sizes = [n for _, n in ds.AUX_HEADS]
        self.lin = Linear(N_IMAGE_TOKENS * hidden, sum(self.sizes))

    def loss(self, rows, targets):
        return heads_loss(self.lin(rows.flatten(1)), targets, self.sizes)


class RowAuxHead(nn.Module):
    """Training-only linear read-out of EACH projected image row on its own (one matrix
    shared by the 16 rows) into demo_scenes.ROW_HEADS: the colour, shape, size and position
    word of the object covering that row's cell. AuxHead reads the rows together, so the
    rows never had to say where they are; questions like "Where is the red circle?" need
    exactly that (the decoder finds the row by its content and reads the answer from it,
    while RoPE only tells attention how far away a row is). Not exported."""

    def __init__(self, hidden):
        super().__init__()
        self.sizes = [n for _, n in ds.ROW_HEADS]
        self.lin = Linear(hidden, sum(self.sizes))

    def loss(self, rows, targets):
        return heads_loss(self.lin(rows.reshape(-1, rows.shape[-1])),
                          targets.reshape(-1, len(self.sizes)), self.sizes)


def batch_loss(model, prompting, pixels, groups, aux_head=None, aux_targets=None, aux_weight=0.0):
    rows = model.encode_images(pixels)
    model.image_signal = float(rows.detach().std(0).mean() / rows.detach().std())
    prefix = model.make_prefix(prompting.pre, rows)
    tot, cnt = 0.0, 0.0
    hidden = model(prefix, [(g[0], g[1]) for g in groups], hidden_only=True)
    for (idx, ids, mask), h in zip(groups, hidden):
        # position t predicts token t+1 (the first continuation token is never a target);
        # the lm_head runs only on the positions that have a target
        sel = mask[:, 1:].reshape(-1) > 0
        logits = model.lm_head(h[:, :-1].reshape(-1, h.shape[-1])[sel])
        tot = tot + F.cross_entropy(logits, ids[:, 1:].reshape(-1)[sel], reduction="sum")
        cnt += float(sel.sum())
    if aux_head is not None and aux_weight > 0:
        head, row_head = aux_head
        t, row_t = aux_targets
        model.aux_loss = head.loss(rows, t)
        model.row_aux_loss = row_head.loss(rows, row_t)
        return tot / max(cnt, 1.0) + aux_weight * (model.aux_loss + model.row_aux_loss)
    return tot / max(cnt, 1.0)


@torch.no_grad()
def greedy(model, prompting, u8, question, max_new=64):
    prefix = model.make_prefix(prompting.pre, model.encode_images(to_pixels([u8])))
    ids = prompting.post(question)
    out = []
    for _ in range(max_new):
        logits = model(prefix, [(torch.tensor([0]), torch.tensor([ids + out]))])[0][0, -1]
        t = int(logits.argmax())
        if t == prompting.im_end or t == prompting.pad:
            break
        out.append(t)
    return prompting.tok.decode(out), out


@torch.no_grad()
def recalibrate_bn(model, src, prompting, n_batches, batch):
    """Replaces the BatchNorm running statistics by exact averages over fresh batches."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None                             # cumulative moving average
    model.train()
    for _ in range(n_batches):
        model.encode_images(to_pixels([src.sample()[0] for _ in range(batch)]))
    for m in bns:
        m.momentum = 0.1
    model.eval()


@torch.no_grad()
def round_to_f16(model):
    """Rounds every float parameter and buffer to the nearest float16, so the PyTorch model,
    the float16 Hugging Face export and the GGUF files (f16 matrices, f32 vectors holding
    f16 values) all hold the same numbers."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            t.copy_(t.half().float())


# ---- export --------------------------------------------------------------------------------

def hf_config(vocab_size, special, embed_dim, llm=LLM):
    return {
        "_name_or_path": "fastvlm-demo",
        "architectures": ["LlavaQwen2ForCausalLM"],
        "model_type": "llava_qwen2",
        "attention_dropout": 0.0,
        "bos_token_id": special["<|endoftext|>"],
        "eos_token_id": special["<|im_end|>"],
        "hidden_act": "silu",
        "hidden_size": llm["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": llm["ffn"],
        "max_position_embeddings": 1024,
        "max_window_layers": llm["layers"],
        "num_attention_heads": llm["heads"],
        "num_hidden_layers": llm["layers"],
        "num_key_value_heads": llm["kv_heads"],
        "rms_norm_eps": llm["rms_eps"],
        "rope_scaling": None,
        "rope_theta": llm["rope_theta"],
        "sliding_window": 1024,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "transformers_version": "4.39.3",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
        "tokenizer_model_max_length": 1024,
        "tokenizer_padding_side": "right",
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
        "mm_vision_tower": f"mobileclip_l_{IMAGE_SIZE}",
        "tune_mm_mlp_adapter": False,
        "unfreeze_mm_vision_tower": True,
        "use_mm_proj": True,
    }


def export_hf(model, tok_json, vocab_size, hf_dir):
    os.makedirs(hf_dir, exist_ok=True)
    tensors = {}
    for k, v in model.state_dict().items():
        a = v.detach().cpu().numpy()
        tensors[k] = np.array(a, dtype=np.int64) if k.endswith("num_batches_tracked") \
            else np.ascontiguousarray(a, dtype=np.float16)     # exact: see round_to_f16
    safetensors_io.write_safetensors(os.path.join(hf_dir, "model.safetensors"), tensors,
                                     metadata={"format": "pt"})
    special = {t["content"]: t["id"] for t in tok_json["added_tokens"]}
    embed_dim = 2 * VISION_WIDTHS[-1]
    with open(os.path.join(hf_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config(vocab_size, special, embed_dim), f, indent=2)
    with open(os.path.join(hf_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok_json, f, indent=2, ensure_ascii=False)
    with open(os.path.join(hf_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(mtm.make_tokenizer_config(tok_json["added_tokens"]), f, indent=2,
                  ensure_ascii=False)
    return len(tensors)


@torch.no_grad()
def check_against_reference(model, prompting, hf_dir, u8, question, log):
    """The exported files, read back by the independent references (fastvithd_ref.py for the
    tower + projector, qwen2_ref.py for the decoder), must give this model's logits."""
    import qwen2_ref
    vis, _ = fastvithd_ref.load_vision(hf_dir, torch.float64)
    dec = qwen2_ref.load_hf(hf_dir)
    planar = to_pixels([u8])
    rows_ref = vis(planar.double())[0]
    post = prompting.post(question)
    emb = torch.cat([dec.embed(prompting.pre), rows_ref, dec.embed(post)], 0)
    ref = dec.forward_embeddings(emb)[-len(post):]
    prefix = model.make_prefix(prompting.pre, model.encode_images(planar))
    ours = model(prefix, [(torch.tensor([0]), torch.tensor([post]))])[0][0].double()
    err = float((ref - ours).abs().max() / ref.abs().max())
    log(f"reference check: max |logit diff| / max |logit| = {err:.2e}")
    if err > 1e-3:
        raise SystemExit(f"train_demo_model.py: exported model disagrees with the references ({err:.2e})")


# ---- main ----------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "models"))
    ap.add_argument("--name", default="fastvlm-demo")
    ap.add_argument("--hf-dir", help="where to write the HF checkpoint (default OUT/NAME-hf)")
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=24, help="images per step")
    ap.add_argument("--qa", type=int, default=4, help="sequences per image (caption + others)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--aux-weight", type=float, default=0.5,
                    help="weight of the training-only auxiliary loss (AuxHead)")
    ap.add_argument("--llm-layers", type=int, default=LLM["layers"], help="decoder layers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--outtype", default="f16")
    ap.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "fastvlm-vts-cache"))
    ap.add_argument("--smoke", action="store_true", help="2 steps, batch 4: checks the plumbing")
    ap.add_argument("--no-convert", action="store_true")
    ap.add_argument("--no-check-ref", action="store_true")
    ap.add_argument("--log-every", type=int, default=25)
    a = ap.parse_args(argv)
    LLM["layers"] = a.llm_layers     # the module-level dict every default argument refers to
    if a.smoke:
        a.steps, a.batch = 2, 4
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed + 1)
    t_start = time.time()

    def log(msg):
        print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)

    tok_json, n_tok = build_tokenizer(a.seed)
    vocab_size = mtm.round_up(n_tok, 64)
    tok = Tokenizer(tok_json)
    prompting = Prompting(tok)
    log(f"tokenizer: {n_tok} tokens ({len(tok_json['model']['merges'])} merges), vocab {vocab_size}; "
        f"prompt prefix {len(prompting.pre)} ids, default post {len(prompting.post(ds.DEFAULT_PROMPT))} ids")

    pattern_sizes = ds.TRAIN_SIZES[:1] if a.smoke else ds.TRAIN_SIZES
    src = DataSource(a.seed + 2, ds.TRAIN_SIZES, pattern_sizes, a.cache, log=log)
    model = DemoVLM(vocab_size, training_form=True)
    n_params = sum(p.numel() for p in model.parameters())
    n_vis = sum(p.numel() for n, p in model.named_parameters() if "vision_tower" in n)
    log(f"model: {n_params} parameters ({n_vis} in the tower)")

    aux_head = (AuxHead(LLM["hidden"]), RowAuxHead(LLM["hidden"]))
    params = (list(model.named_parameters())
              + [("aux." + n, p) for n, p in aux_head[0].named_parameters()]
              + [("rowaux." + n, p) for n, p in aux_head[1].named_parameters()])
    decay = [p for n, p in params if p.dim() >= 2]
    no_decay = [p for n, p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.02},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr,
                            betas=(0.9, 0.98))
    warm = max(1, min(100, a.steps // 10))

    def lr_at(s):
        if s < warm:
            return a.lr * (s + 1) / warm
        p = (s - warm) / max(1, a.steps - warm)
        return a.lr * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * p)))

    model.train()
    ema = None
    for step in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        pixels, aux_t, groups = make_batch(src, prompting, a.batch, a.qa, rng)
        loss = batch_loss(model, prompting, pixels, groups, aux_head, aux_t, a.aux_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        opt.step()
        ema = float(loss) if ema is None else 0.95 * ema + 0.05 * float(loss)
        if step % a.log_every == 0 or step == a.steps - 1:
            # image signal: across-image std / overall std of the image rows (0 = blind tower)
            log(f"step {step:5d}/{a.steps} loss {float(loss):.4f} (ema {ema:.4f}) "
                f"lr {lr_at(step):.2e} image signal {model.image_signal:.3f} "
                f"aux {float(getattr(model, 'aux_loss', 0.0)):.3f} "
                f"row {float(getattr(model, 'row_aux_loss', 0.0)):.3f}")

    recalibrate_bn(model, src, prompting, 2 if a.smoke else 20, a.batch)
    fold_to_released_form(model.model.vision_tower.vision_tower.model)
    round_to_f16(model)
    log("batchnorm statistics recalibrated, tower folded to the released form, weights "
        "rounded to float16 (the shipped values)")

    # quick look in PyTorch (the real measurement is eval_demo.py through the C engine)
    erng = random.Random(a.seed + 99)
    n_show = 2 if a.smoke else 12
    ok = 0
    for i in range(n_show):
        sc = ds.sample_scene(erng, ds.EVAL_SIZES)
        text, _ = greedy(model, prompting, ds.preprocess(ds.render_scene(sc), IMAGE_SIZE), ds.DEFAULT_PROMPT)
        c, t = ds.score_caption(sc, text)
        ok += c == t
        if i < 4 or c != t:
            log(f"  ref:  {ds.scene_caption(sc)}\n             got:  {text}")
    log(f"pytorch sanity: {ok}/{n_show} held-out captions fully correct")

    hf_dir = a.hf_dir or os.path.join(a.out, a.name + "-hf")     # kept: re-convertible
    n_t = export_hf(model, tok_json, vocab_size, hf_dir)
    log(f"exported {n_t} tensors to {hf_dir}")
    if not a.no_check_ref:
        u8, _ = src.sample()
        check_against_reference(model, prompting, hf_dir, u8, ds.DEFAULT_PROMPT, log)
    if not a.no_convert:
        outfile = os.path.join(a.out, a.name + ".gguf")
        cmd = [sys.executable, os.path.join(HERE, "convert_hf_to_gguf.py"), hf_dir,
               "--outfile", outfile, "--outtype", a.outtype, "--name", a.name]
        log(" ".join(cmd))
        subprocess.run(cmd, check=True)
        for f in (outfile, os.path.join(a.out, a.name + "-mmproj.gguf")):
            log(f"{f}: {os.path.getsize(f)} bytes")
    log(f"done in {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
