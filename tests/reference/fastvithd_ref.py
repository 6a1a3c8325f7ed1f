#!/usr/bin/python3
"""fastvithd_ref.py — independent PyTorch reference of FastVLM's vision side: the FastViTHD
tower (released, reparameterized form), the mlp2x_gelu projector and predict.py's image
preprocessing (expand2square + PIL bicubic + rescale).

What it is: a plain nn.Module transcription of docs/architecture (FastViTHD, §1-§2 and §4 of
the FastVLM spec), written for this project; module names mirror the released Hugging Face
checkpoint (model.vision_tower.vision_tower.model.patch_embed..., network.N.i...,
conv_exp..., model.mm_projector...) so a checkpoint's state dict loads into it with
load_state_dict(strict=True) after dropping only the unused CLIP head (head.proj).
The ConvFFN BatchNorms are kept UNFOLDED here (eval-mode nn.BatchNorm2d with the stored
running statistics), so comparing with the C engine also checks the converter's/loader's
BN folding. Structure (stage count, widths, depths, mixer kinds, RepCPE positions) is read
from the tensor names and shapes, so tiny test checkpoints load as well as the real one.
It reads safetensors with its own small reader (no `safetensors` package, no project code).
What it is not: the C engine's test harness, a trainer, or the Qwen2 decoder
(tests/reference/qwen2_ref.py).

Command line (mirrors `fastvlm vision`):
  fastvithd_ref.py HF_DIR (--pixels RAW.f32 | --image FILE) --size S -o OUT.f32
                   [--tower-only] [--dtype float32|float64] [--dump-pixels P.f32]
writes little-endian float32 [tokens x width] (tower 'embed_dim' or projector 'hidden').
Run with /usr/bin/python3 (Debian's python3-torch 1.13, numpy, python3-pil).
"""

import argparse
import collections
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TOWER_PREFIX = "model.vision_tower.vision_tower.model."
PROJ_PREFIX = "model.mm_projector."
IGNORED_SUFFIXES = ("head.proj",)          # CLIP projection head: not used by the VLM
BN_EPS = 1e-5
LN_EPS = 1e-5
HEAD_DIM = 32
MLP_RATIO = 4

# predict.py's preprocessing for FastVLM: image_mean 0 -> black padding, rescale 1/255, std 1
PAD_RGB = (0, 0, 0)
RESCALE = 1.0 / 255.0
MEAN = (0.0, 0.0, 0.0)
STD = (1.0, 1.0, 1.0)


# ------------------------------------------------------------------------------------------
# safetensors (own reader)
# ------------------------------------------------------------------------------------------

_ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2", "I64": "<i8",
              "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_safetensors(path, want=None):
    """{name: np.ndarray} of one .safetensors file; float types widened to float32.
    want(name) -> bool filters names before the data is read."""
    out = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__" or (want and not want(name)):
                continue
            b, e = info["data_offsets"]
            f.seek(base + b)
            raw = f.read(e - b)
            a = np.frombuffer(raw, dtype=np.dtype(_ST_DTYPES[info["dtype"]]))
            if info["dtype"] == "BF16":
                a = (a.astype(np.uint32) << 16).view(np.float32)
            elif info["dtype"] in ("F16", "F64"):
                a = a.astype(np.float32)
            out[name] = a.reshape(info["shape"]).copy()
    return out


def read_hf_dir(hf_dir, want=None):
    """All tensors of an HF model directory (single file or sharded with an index)."""
    index = os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        out.update(read_safetensors(os.path.join(hf_dir, fn), want))
    return out


# ------------------------------------------------------------------------------------------
# modules (inference form)
# ------------------------------------------------------------------------------------------

class ConvFFN(nn.Module):
    """dw7x7 (no bias) -> BatchNorm (eval) -> 1x1 C->F + bias -> GELU(erf) -> 1x1 F->C + bias."""

    def __init__(self, c, f):
        super().__init__()
        self.conv = nn.Sequential(collections.OrderedDict([
            ("conv", nn.Conv2d(c, c, 7, padding=3, groups=c, bias=False)),
            ("bn", nn.BatchNorm2d(c, eps=BN_EPS)),
        ]))
        self.fc1 = nn.Conv2d(c, f, 1)
        self.fc2 = nn.Conv2d(f, c, 1)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.conv(x))))


class RepMixer(nn.Module):
    """Reparameterized RepMixer: one dw3x3 conv with bias; the identity is inside the kernel."""

    def __init__(self, c):
        super().__init__()
        self.reparam_conv = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=True)

    def forward(self, x):
        return self.reparam_conv(x)


class RepMixerBlock(nn.Module):
    def __init__(self, c, f):
        super().__init__()
        self.token_mixer = RepMixer(c)
        self.convffn = ConvFFN(c, f)
        self.layer_scale = nn.Parameter(torch.ones(c, 1, 1))

    def forward(self, x):
        x = self.token_mixer(x)
        return x + self.layer_scale * self.convffn(x)


class LayerNormChannel(nn.Module):
    """LayerNorm over the channel axis of an NCHW map (biased variance)."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + LN_EPS)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MHSA(nn.Module):
    """Multi-head self-attention over the H*W tokens in raster order; qkv without bias."""

    def __init__(self, c):
        super().__init__()
        self.heads = c // HEAD_DIM
        self.qkv = nn.Linear(c, 3 * c, bias=False)
        self.proj = nn.Linear(c, c)

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)                         # [B, N, C], n = y*W + x
        qkv = self.qkv(t).reshape(b, h * w, 3, self.heads, HEAD_DIM).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                          # [B, heads, N, 32]
        q = q * (HEAD_DIM ** -0.5)
        a = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        o = (a @ v).transpose(1, 2).reshape(b, h * w, c)         # heads concatenated
        return self.proj(o).transpose(1, 2).reshape(b, c, h, w)


class AttentionBlock(nn.Module):
    def __init__(self, c, f):
        super().__init__()
        self.norm = LayerNormChannel(c)
        self.token_mixer = MHSA(c)
        self.convffn = ConvFFN(c, f)
        self.layer_scale_1 = nn.Parameter(torch.ones(c, 1, 1))
        self.layer_scale_2 = nn.Parameter(torch.ones(c, 1, 1))

    def forward(self, x):
        x = x + self.layer_scale_1 * self.token_mixer(self.norm(x))
        return x + self.layer_scale_2 * self.convffn(x)


class ConvAct(nn.Module):
    """A reparameterized MobileOne block: conv + bias (+ SE) -> GELU."""

    def __init__(self, cin, cout, k, stride, groups, se_reduced=0):
        super().__init__()
        self.reparam_conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2,
                                      groups=groups, bias=True)
        self.se = SE(cout, se_reduced) if se_reduced else None

    def forward(self, x):
        x = self.reparam_conv(x)
        if self.se is not None:
            x = self.se(x)
        return F.gelu(x)


class SE(nn.Module):
    """Squeeze-excite: global channel mean -> 1x1 reduce + ReLU -> 1x1 expand + sigmoid."""

    def __init__(self, c, r):
        super().__init__()
        self.reduce = nn.Conv2d(c, r, 1)
        self.expand = nn.Conv2d(r, c, 1)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        s = torch.sigmoid(self.expand(F.relu(self.reduce(s))))
        return x * s


class LargeKernel(nn.Module):
    """PatchEmbed's first half: 7x7 stride-2 conv, groups = Cin (Cout/Cin outputs each)."""

    def __init__(self, cin, cout, k=7):
        super().__init__()
        self.lkb_reparam = nn.Conv2d(cin, cout, k, stride=2, padding=k // 2, groups=cin,
                                     bias=True)

    def forward(self, x):
        return F.gelu(self.lkb_reparam(x))


class PatchEmbed(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.proj = nn.Sequential(LargeKernel(cin, cout), ConvAct(cout, cout, 1, 1, 1))

    def forward(self, x):
        return self.proj(x)


class RepCPE(nn.Module):
    """Conditional positional encoding: dw7x7 + bias, identity folded into the kernel."""

    def __init__(self, c):
        super().__init__()
        self.reparam_conv = nn.Conv2d(c, c, 7, padding=3, groups=c, bias=True)

    def forward(self, x):
        return self.reparam_conv(x)


class FastViTHD(nn.Module):
    """Stem, the network list (stages, PatchEmbeds, RepCPEs at the checkpoint's indices),
    conv_exp with SE. forward(pixels [B,3,S,S]) -> tokens [B, (S/64)^2, E], raster order."""

    def __init__(self, cfg):
        super().__init__()
        c0 = cfg["stem_width"]
        self.patch_embed = nn.Sequential(ConvAct(3, c0, 3, 2, 1), ConvAct(c0, c0, 3, 2, c0),
                                         ConvAct(c0, c0, 1, 1, 1))
        layers = []
        for item in cfg["network"]:
            kind = item[0]
            if kind == "down":
                layers.append(PatchEmbed(item[1], item[2]))
            elif kind == "cpe":
                layers.append(RepCPE(item[1]))
            else:
                _, c, f, kinds = item
                layers.append(nn.Sequential(*[
                    (AttentionBlock(c, f) if k == "attention" else RepMixerBlock(c, f))
                    for k in kinds]))
        self.network = nn.ModuleList(layers)
        cl, e = cfg["last_width"], cfg["embed_dim"]
        self.conv_exp = ConvAct(cl, e, 3, 1, cl, se_reduced=cfg["se_reduced"])

    def forward(self, x):
        x = self.patch_embed(x)
        for layer in self.network:
            x = layer(x)
        x = self.conv_exp(x)
        return x.flatten(2).transpose(1, 2)


class _Box(nn.Module):
    pass


class FastVLMVision(nn.Module):
    """model.vision_tower.vision_tower.model (the tower) + model.mm_projector."""

    def __init__(self, cfg):
        super().__init__()
        self.model = _Box()
        self.model.vision_tower = _Box()
        self.model.vision_tower.vision_tower = _Box()
        self.model.vision_tower.vision_tower.model = FastViTHD(cfg)
        self.model.mm_projector = nn.Sequential(nn.Linear(cfg["embed_dim"], cfg["hidden"]),
                                                nn.GELU(),
                                                nn.Linear(cfg["hidden"], cfg["hidden"]))

    @property
    def tower(self):
        return self.model.vision_tower.vision_tower.model

    def forward(self, pixels, tower_only=False):
        t = self.tower(pixels)
        return t if tower_only else self.model.mm_projector(t)


# ------------------------------------------------------------------------------------------
# building from a checkpoint
# ------------------------------------------------------------------------------------------

def config_from_state(sd):
    """Structure from tensor names and shapes (stage widths, depths, mixers, RepCPEs)."""
    P = TOWER_PREFIX
    cfg = {"stem_width": sd[P + "patch_embed.0.reparam_conv.weight"].shape[0], "network": []}
    width = cfg["stem_width"]
    n = 0
    while any(k.startswith(f"{P}network.{n}.") for k in sd):
        p = f"{P}network.{n}."
        if p + "proj.0.lkb_reparam.weight" in sd:
            cout = sd[p + "proj.0.lkb_reparam.weight"].shape[0]
            cfg["network"].append(("down", width, cout))
            width = cout
        elif p + "reparam_conv.weight" in sd:
            cfg["network"].append(("cpe", width))
        else:
            kinds = []
            while any(k.startswith(f"{p}{len(kinds)}.") for k in sd):
                q = f"{p}{len(kinds)}."
                kinds.append("attention" if q + "token_mixer.qkv.weight" in sd else "repmixer")
            f = sd[p + "0.convffn.fc1.weight"].shape[0]
            cfg["network"].append(("stage", width, f, kinds))
        n += 1
    cfg["last_width"] = width
    cfg["embed_dim"] = sd[P + "conv_exp.reparam_conv.weight"].shape[0]
    cfg["se_reduced"] = sd[P + "conv_exp.se.reduce.weight"].shape[0]
    cfg["hidden"] = sd[PROJ_PREFIX + "0.weight"].shape[0]
    return cfg


def load_vision(hf_dir, dtype=torch.float64):
    """FastVLMVision with the checkpoint's weights (strict), in eval mode, in `dtype`."""
    sd = read_hf_dir(hf_dir, lambda k: k.startswith(TOWER_PREFIX) or k.startswith(PROJ_PREFIX))
    sd = {k: v for k, v in sd.items() if not k.endswith(IGNORED_SUFFIXES)}
    cfg = config_from_state(sd)
    m = FastVLMVision(cfg)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    own = m.state_dict()
    # num_batches_tracked is a training counter: tolerated when absent from the checkpoint
    for k in own:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = own[k]
    m.load_state_dict(state, strict=True)
    return m.to(dtype).eval(), cfg


# ------------------------------------------------------------------------------------------
# preprocessing (predict.py: expand2square -> CLIPImageProcessor with PIL bicubic)
# ------------------------------------------------------------------------------------------

def expand2square(img, color):
    from PIL import Image
    w, h = img.size
    if w == h:
        return img
    if w > h:
        out = Image.new(img.mode, (w, w), color)
        out.paste(img, (0, (w - h) // 2))
        return out
    out = Image.new(img.mode, (h, h), color)
    out.paste(img, ((h - w) // 2, 0))
    return out


def preprocess_pil(img, size, pad=PAD_RGB, rescale=RESCALE, mean=MEAN, std=STD):
    """PIL image -> float32 planar [3, size, size] as predict.py prepares it."""
    from PIL import Image
    img = expand2square(img.convert("RGB"), tuple(int(c) for c in pad))
    img = img.resize((size, size), Image.BICUBIC)
    a = np.asarray(img, dtype=np.uint8).astype(np.float64) * rescale
    a = ((a - np.array(mean)) / np.array(std)).astype(np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def preprocess_file(path, size, **kw):
    from PIL import Image
    with Image.open(path) as im:
        return preprocess_pil(im, size, **kw)


@torch.no_grad()
def encode(model, planar, tower_only=False):
    """planar float32 [3,S,S] -> float64 numpy [tokens, width]."""
    dtype = next(model.parameters()).dtype
    x = torch.from_numpy(np.ascontiguousarray(planar)).to(dtype)[None]
    return model(x, tower_only=tower_only)[0].double().numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description="FastViTHD + projector reference")
    ap.add_argument("hf_dir")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pixels", help="planar float32 [3 x S x S]")
    src.add_argument("--image", help="image file, preprocessed like predict.py with PIL")
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--tower-only", action="store_true")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    ap.add_argument("--dump-pixels", help="write the preprocessed planar input here")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    if a.pixels:
        planar = np.fromfile(a.pixels, dtype="<f4")
        if planar.size != 3 * a.size * a.size:
            sys.exit(f"{a.pixels}: {planar.size} floats, expected 3*{a.size}*{a.size}")
        planar = planar.reshape(3, a.size, a.size)
    else:
        planar = preprocess_file(a.image, a.size)
    if a.dump_pixels:
        planar.astype("<f4").tofile(a.dump_pixels)
    model, _ = load_vision(a.hf_dir, getattr(torch, a.dtype))
    out = encode(model, planar, a.tower_only)
    out.astype("<f4").tofile(a.output)
    print(f"fastvithd_ref.py: {out.shape[0]} tokens x {out.shape[1]} -> {a.output}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
