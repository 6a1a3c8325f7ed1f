"""gguf_read.py — an independent, numpy-only GGUF reader for the test references.

What it is: a small reader of GGUF v2/v3 files (llama.cpp's container) written from the
format description — header, metadata key/values, tensor table, aligned data — plus the
dequantization of the tensor types the engine computes with (F32, F16, BF16, Q8_0, Q4_0),
so a Python reference can run on exactly the weights a quantized file holds.
What it is not: the project's own reader or writer (engine/gguf.c, tools/gguf_writer.py are
never imported: the point is to check them), and not a validator of hostile files.

API:
    g = GGUFFile(path)
    g.kv["qwen2.block_count"]         -> python value (int/float/str/bool/list)
    g.tensors["blk.0.attn_q.weight"]  -> TensorInfo(name, ne, type, offset, info_pos)
    g.kv_pos["general.architecture"]  -> file offset of the entry's value-type field
                                         (tests use the positions to corrupt files)
    g.array(name)                     -> float64 numpy array in PyTorch order
                                         (ne reversed: a Linear weight comes out [out, in])
"""

import struct
from collections import namedtuple

import numpy as np

GGUF_MAGIC = b"GGUF"

# ggml type ids (ggml.h)
T_F32, T_F16, T_Q4_0, T_Q8_0, T_BF16 = 0, 1, 2, 8, 30
TYPE_NAMES = {T_F32: "f32", T_F16: "f16", T_Q4_0: "q4_0", T_Q8_0: "q8_0", T_BF16: "bf16"}
# (elements per block, bytes per block)
BLOCK = {T_F32: (1, 4), T_F16: (1, 2), T_BF16: (1, 2), T_Q8_0: (32, 34), T_Q4_0: (32, 18)}

# metadata value types
V_U8, V_I8, V_U16, V_I16, V_U32, V_I32, V_F32, V_BOOL, V_STR, V_ARR, V_U64, V_I64, V_F64 = range(13)
_SCALAR = {V_U8: "<B", V_I8: "<b", V_U16: "<H", V_I16: "<h", V_U32: "<I", V_I32: "<i",
           V_F32: "<f", V_BOOL: "<?", V_U64: "<Q", V_I64: "<q", V_F64: "<d"}

# info_pos: file offset where the tensor's info (name length) starts
TensorInfo = namedtuple("TensorInfo", "name ne type offset info_pos")


class _Cursor:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise ValueError(f"GGUF truncated: need {n} bytes at offset {self.pos}")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        n = self.unpack("<Q")
        return bytes(self.take(n)).decode("utf-8", errors="surrogateescape")

    def value(self, vtype):
        if vtype in _SCALAR:
            return self.unpack(_SCALAR[vtype])
        if vtype == V_STR:
            return self.string()
        if vtype == V_ARR:
            etype = self.unpack("<I")
            n = self.unpack("<Q")
            return [self.value(etype) for _ in range(n)]
        raise ValueError(f"GGUF: unknown metadata value type {vtype}")


class GGUFFile:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = memoryview(f.read())
        c = _Cursor(self.buf)
        if bytes(c.take(4)) != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file")
        self.version = c.unpack("<I")
        if self.version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {self.version} not handled")
        n_tensors = c.unpack("<Q")
        n_kv = c.unpack("<Q")
        self.kv = {}
        self.kv_pos = {}
        for _ in range(n_kv):
            key = c.string()
            self.kv_pos[key] = c.pos
            vtype = c.unpack("<I")
            self.kv[key] = c.value(vtype)
        self.tensors = {}
        for _ in range(n_tensors):
            info_pos = c.pos
            name = c.string()
            n_dims = c.unpack("<I")
            ne = tuple(c.unpack("<Q") for _ in range(n_dims))
            ttype = c.unpack("<I")
            off = c.unpack("<Q")
            self.tensors[name] = TensorInfo(name, ne, ttype, off, info_pos)
        align = int(self.kv.get("general.alignment", 32))
        self.data_start = (c.pos + align - 1) // align * align

    def raw(self, name):
        t = self.tensors[name]
        if t.type not in BLOCK:
            raise ValueError(f"tensor {name}: type {t.type} not handled by gguf_read.py")
        bs, ts = BLOCK[t.type]
        n = int(np.prod(t.ne)) if t.ne else 1
        nbytes = n // bs * ts
        start = self.data_start + t.offset
        return np.frombuffer(self.buf[start:start + nbytes], dtype=np.uint8), n

    def array(self, name):
        """The tensor dequantized to float64, shaped in PyTorch order (ne reversed)."""
        t = self.tensors[name]
        data, n = self.raw(name)
        flat = dequantize(t.type, data, n)
        return flat.reshape(tuple(reversed(t.ne)))


def dequantize(ttype, data, n):
    """float64 values of n elements of type `ttype` stored in the uint8 array `data`."""
    if ttype == T_F32:
        return data.view("<f4").astype(np.float64)
    if ttype == T_F16:
        return data.view("<f2").astype(np.float64)
    if ttype == T_BF16:
        u = data.view("<u2").astype(np.uint32) << 16
        return u.view("<f4").astype(np.float64)
    if ttype == T_Q8_0:
        blocks = data.reshape(-1, 34)
        d = blocks[:, :2].copy().view("<f2").astype(np.float64)        # [nb, 1]
        q = blocks[:, 2:].copy().view(np.int8).astype(np.float64)      # [nb, 32]
        return (d * q).reshape(-1)[:n]
    if ttype == T_Q4_0:
        blocks = data.reshape(-1, 18)
        d = blocks[:, :2].copy().view("<f2").astype(np.float64)        # [nb, 1]
        qs = blocks[:, 2:]                                              # [nb, 16]
        lo = (qs & 0x0F).astype(np.float64) - 8.0                       # elements 0..15
        hi = (qs >> 4).astype(np.float64) - 8.0                         # elements 16..31
        return (d * np.concatenate([lo, hi], axis=1)).reshape(-1)[:n]
    raise ValueError(f"type {ttype} not handled")
