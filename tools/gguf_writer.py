"""gguf_writer.py — write GGUF v3 files (llama.cpp's container) with numpy only.

What it is: a streaming writer (metadata key/values, tensor descriptors, aligned tensor data)
plus the encoders for the tensor types we emit — f32, f16, bf16 and ggml's q8_0 / q4_0
blocks, bit-exact with ggml's reference quantizers (quantize_row_q8_0_ref /
quantize_row_q4_0_ref in ggml-quants.c). Tensor data may be given lazily (a callable), so
a multi-GB checkpoint is converted one tensor at a time.
What it is not: a reader (tests carry their own independent reader), and it knows no model:
names, keys and type choices belong to convert_hf_to_gguf.py.

File layout (GGUF v3, little-endian):
  u32 magic "GGUF" | u32 version 3 | u64 n_tensors | u64 n_kv
  n_kv x  { gguf string key | u32 value type | value }
  n_tensors x { gguf string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset }
  zero padding to `alignment`, then the data section; every tensor starts at a multiple of
  `alignment` (offsets are relative to the data section) and is zero-padded after.
  gguf string = u64 byte length + UTF-8 bytes (no NUL). Array value = u32 element type +
  u64 count + elements. ne[0] is the innermost dimension: a numpy/PyTorch array of shape
  (d0, ..., dk) has ne = (dk, ..., d0) and its bytes are in numpy's C order.
"""

import os
import struct

import numpy as np

GGUF_MAGIC = 0x46554747          # b"GGUF" read as a little-endian u32
GGUF_VERSION = 3
GGUF_DEFAULT_ALIGNMENT = 32

# Metadata value types (gguf.h / ggml's gguf_type).
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)

_SCALAR_FMT = {
    UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
    FLOAT32: "<f", BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d",
}

# ggml tensor types we can write: id, elements per block, bytes per block.
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_Q4_0 = 2
GGML_TYPE_Q8_0 = 8
GGML_TYPE_BF16 = 30

TYPE_INFO = {
    GGML_TYPE_F32: ("f32", 1, 4),
    GGML_TYPE_F16: ("f16", 1, 2),
    GGML_TYPE_BF16: ("bf16", 1, 2),
    GGML_TYPE_Q8_0: ("q8_0", 32, 34),
    GGML_TYPE_Q4_0: ("q4_0", 32, 18),
}
TYPE_BY_NAME = {v[0]: k for k, v in TYPE_INFO.items()}

# llama.cpp's general.file_type (enum llama_ftype) for a file whose big matrices are of a type.
FILE_TYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "bf16": 32}
QUANTIZATION_VERSION = 2         # general.quantization_version (GGML_QNT_VERSION)


_CHUNK = 1 << 22                 # elements encoded at a time (a multiple of every block size)


class GGUFWriterError(Exception):
    pass


# ---------------------------------------------------------------- tensor encoders

def _f16_bits(x):
    return np.asarray(x, dtype=np.float32).astype("<f2")


def encode_f32(x):
    return np.ascontiguousarray(x, dtype="<f4").tobytes()


def encode_f16(x):
    return np.ascontiguousarray(_f16_bits(x)).tobytes()


def encode_bf16(x):
    """Round to nearest even (ggml_compute_fp32_to_bf16); NaN stays a quiet NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = (u + (0x7FFF + ((u >> 16) & 1))) >> 16
    r = np.where(nan, (u >> 16) | 0x40, r)
    return r.astype("<u2").tobytes()


def _blocks(x, qk=32):
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if x.size % qk:
        raise GGUFWriterError(f"{x.size} elements are not a whole number of {qk}-blocks")
    return x.reshape(-1, qk)


def encode_q8_0(x):
    """ggml Q8_0: per 32 values d = max|x|/127 (stored fp16), q = roundf(x * (1/d)) where
    roundf rounds half away from zero and 1/d uses the fp32 d (not the fp16 one)."""
    b = _blocks(x)
    amax = np.abs(b).max(axis=1)
    d = (amax / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1.0) / d).astype(np.float32)
    v = (b * inv[:, None]).astype(np.float32).astype(np.float64)   # exact widening
    q = np.sign(v) * np.floor(np.abs(v) + 0.5)
    out = np.empty(b.shape[0], dtype=[("d", "<f2"), ("qs", "i1", 32)])
    out["d"] = d.astype(np.float16)
    out["qs"] = q.astype(np.int8)
    return out.tobytes()


def encode_q4_0(x):
    """ggml Q4_0: per 32 values take the value m of largest magnitude (first one on ties),
    d = m / -8 (stored fp16), q = min(15, (int8)(x * (1/d) + 8.5f)) in fp32 arithmetic;
    byte j holds q[j] in the low nibble and q[j+16] in the high nibble."""
    b = _blocks(x)
    imax = np.abs(b).argmax(axis=1)
    m = b[np.arange(b.shape[0]), imax]
    d = (m / np.float32(-8.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1.0) / d).astype(np.float32)
    v = (b * inv[:, None]).astype(np.float32) + np.float32(8.5)
    q = np.minimum(15, np.trunc(v).astype(np.int32)).astype(np.uint8)
    out = np.empty(b.shape[0], dtype=[("d", "<f2"), ("qs", "u1", 16)])
    out["d"] = d.astype(np.float16)
    out["qs"] = q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


ENCODERS = {
    GGML_TYPE_F32: encode_f32,
    GGML_TYPE_F16: encode_f16,
    GGML_TYPE_BF16: encode_bf16,
    GGML_TYPE_Q8_0: encode_q8_0,
    GGML_TYPE_Q4_0: encode_q4_0,
}


def tensor_nbytes(shape, ggml_type):
    """Bytes of a tensor of numpy `shape` stored as `ggml_type`; rows (the last numpy axis)
    must be a whole number of blocks."""
    _, bs, ts = TYPE_INFO[ggml_type]
    n = 1
    for d in shape:
        n *= int(d)
    row = int(shape[-1]) if len(shape) else 1
    if row % bs:
        raise GGUFWriterError(f"row length {row} is not a multiple of the block size {bs}")
    return n // bs * ts


def can_store(shape, ggml_type):
    """True when rows of `shape` are a whole number of `ggml_type` blocks."""
    bs = TYPE_INFO[ggml_type][1]
    return len(shape) > 0 and int(shape[-1]) % bs == 0


# ---------------------------------------------------------------- writer

def _gguf_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


class GGUFWriter:
    """Collect metadata and tensor descriptors, then write() the whole file.

    Usage:
        w = GGUFWriter("out.gguf")
        w.add_string("general.architecture", "qwen2")
        w.add_uint32("qwen2.block_count", 24)
        w.add_tensor("token_embd.weight", (vocab, n_embd), GGML_TYPE_F16, lambda: array)
        w.write()
    Metadata is written in insertion order; duplicate keys or tensor names are an error.
    """

    def __init__(self, path, alignment=GGUF_DEFAULT_ALIGNMENT):
        if alignment <= 0 or alignment % 8:
            raise GGUFWriterError("alignment must be a positive multiple of 8")
        self.path = path
        self.alignment = alignment
        self._kv = []            # (key, encoded value bytes incl. type)
        self._keys = set()
        self._tensors = []       # (name, numpy shape, ggml type, nbytes, source)
        self._names = set()

    # --- metadata
    def _add(self, key, payload):
        if key in self._keys:
            raise GGUFWriterError(f"duplicate metadata key '{key}'")
        self._keys.add(key)
        self._kv.append((key, payload))

    def add_scalar(self, key, vtype, value):
        if vtype == STRING:
            self._add(key, struct.pack("<I", STRING) + _gguf_str(value))
        else:
            self._add(key, struct.pack("<I", vtype) + struct.pack(_SCALAR_FMT[vtype], value))

    def add_array(self, key, elem_type, values):
        values = list(values)
        parts = [struct.pack("<IIQ", ARRAY, elem_type, len(values))]
        if elem_type == STRING:
            parts.extend(_gguf_str(v) for v in values)
        elif elem_type == ARRAY:
            raise GGUFWriterError("nested arrays are not supported")
        else:
            fmt = _SCALAR_FMT[elem_type]
            parts.append(struct.pack("<%d%s" % (len(values), fmt[1]), *values))
        self._add(key, b"".join(parts))

    def add_uint32(self, key, v):
        self.add_scalar(key, UINT32, int(v))

    def add_int32(self, key, v):
        self.add_scalar(key, INT32, int(v))

    def add_uint64(self, key, v):
        self.add_scalar(key, UINT64, int(v))

    def add_float32(self, key, v):
        self.add_scalar(key, FLOAT32, float(v))

    def add_bool(self, key, v):
        self.add_scalar(key, BOOL, bool(v))

    def add_string(self, key, v):
        self.add_scalar(key, STRING, str(v))

    # --- tensors
    def add_tensor(self, name, shape, ggml_type, source):
        """Declare tensor `name` of numpy `shape` (outermost first, as PyTorch prints it) to be
        stored as `ggml_type`. `source` is a float array of that shape, or a callable that
        returns one when the data is written."""
        if name in self._names:
            raise GGUFWriterError(f"duplicate tensor name '{name}'")
        if len(name.encode("utf-8")) >= 64:
            raise GGUFWriterError(f"tensor name '{name}' is 64 bytes or longer (ggml's limit)")
        shape = tuple(int(d) for d in shape)
        if not 1 <= len(shape) <= 4:
            raise GGUFWriterError(f"tensor '{name}' has {len(shape)} dims; GGUF allows 1..4")
        try:
            nbytes = tensor_nbytes(shape, ggml_type)
        except GGUFWriterError as e:
            raise GGUFWriterError(f"tensor '{name}': {e}") from None
        self._names.add(name)
        self._tensors.append((name, shape, ggml_type, nbytes, source))

    @property
    def n_tensors(self):
        return len(self._tensors)

    def _pad(self, n):
        return -n % self.alignment

    def write(self):
        """Writes the file (to a temporary name, renamed on success)."""
        head = [struct.pack("<IIQQ", GGUF_MAGIC, GGUF_VERSION, len(self._tensors), len(self._kv))]
        for key, payload in self._kv:
            head.append(_gguf_str(key))
            head.append(payload)
        off = 0
        for name, shape, gtype, nbytes, _ in self._tensors:
            ne = tuple(reversed(shape))
            head.append(_gguf_str(name))
            head.append(struct.pack("<I", len(ne)))
            head.append(struct.pack("<%dQ" % len(ne), *ne))
            head.append(struct.pack("<IQ", gtype, off))
            off += nbytes + self._pad(nbytes)
        head = b"".join(head)
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(head)
                f.write(b"\0" * self._pad(len(head)))
                for name, shape, gtype, nbytes, source in self._tensors:
                    arr = source() if callable(source) else source
                    arr = np.asarray(arr)
                    if tuple(arr.shape) != shape:
                        raise GGUFWriterError(
                            f"tensor '{name}': data has shape {tuple(arr.shape)}, declared {shape}")
                    # encode in slices (whole blocks) to bound the temporaries of big tensors
                    flat = arr.reshape(-1)
                    written = 0
                    for i in range(0, flat.size, _CHUNK):
                        data = ENCODERS[gtype](flat[i:i + _CHUNK])
                        f.write(data)
                        written += len(data)
                    if written != nbytes:
                        raise GGUFWriterError(f"tensor '{name}': encoded {written} bytes, expected {nbytes}")
                    f.write(b"\0" * self._pad(nbytes))
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
