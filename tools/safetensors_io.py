"""safetensors_io.py — read and write the safetensors container with numpy only.

What it is: a small reader (single file, or a sharded checkpoint described by
model.safetensors.index.json) that memory-maps tensors lazily, and a writer producing files
the Hugging Face `safetensors` library reads. Used by convert_hf_to_gguf.py and
make_tiny_model.py.
What it is not: a model loader. It knows nothing about tensor names or layouts, does no
dtype conversion beyond bf16/f16 -> f32 on request, and does not import torch or the
`safetensors` package.

Format (https://github.com/huggingface/safetensors): u64 little-endian header length N, N
bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
then the data buffer; offsets are relative to the start of the buffer; tensors are stored
row-major (C order), little-endian.
"""

import json
import os
import struct

import numpy as np

# safetensors dtype name -> (numpy dtype, bytes per element). BF16 has no numpy dtype: it is
# read as uint16 and widened by to_float32().
_DTYPES = {
    "F64": (np.dtype("<f8"), 8),
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2),
    "I64": (np.dtype("<i8"), 8),
    "I32": (np.dtype("<i4"), 4),
    "I16": (np.dtype("<i2"), 2),
    "I8": (np.dtype("i1"), 1),
    "U8": (np.dtype("u1"), 1),
    "BOOL": (np.dtype("?"), 1),
}
_NP_TO_ST = {
    np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("float16"): "F16",
    np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16",
    np.dtype("int8"): "I8", np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL",
}

FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")


class SafetensorsError(Exception):
    """A malformed file or a missing tensor; the message names the file."""


def bf16_to_float32(u16):
    """uint16 bf16 bit patterns -> float32 (exact)."""
    return (np.asarray(u16, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def float32_to_bf16(x):
    """float32 -> uint16 bf16 bit patterns, round to nearest even, NaN kept quiet."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = (u + (0x7FFF + ((u >> 16) & 1))) >> 16
    r = np.where(nan, (u >> 16) | 0x40, r)
    return r.astype(np.uint16)


class SafetensorsFile:
    """One .safetensors file; tensors are memory-mapped on first access."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise SafetensorsError(f"{path}: file too short for a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100 * 1024 * 1024:
                raise SafetensorsError(f"{path}: header length {n} exceeds the file ({size} bytes)")
            try:
                header = json.loads(f.read(n).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise SafetensorsError(f"{path}: header is not valid JSON: {e}") from None
        if not isinstance(header, dict):
            raise SafetensorsError(f"{path}: header is not a JSON object")
        self.metadata = header.pop("__metadata__", None) or {}
        self._data_start = 8 + n
        self._data_size = size - self._data_start
        self._info = {}
        for name, e in header.items():
            try:
                dtype = e["dtype"]
                shape = [int(d) for d in e["shape"]]
                b, end = (int(v) for v in e["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise SafetensorsError(f"{path}: bad header entry for tensor '{name}'") from None
            if dtype not in _DTYPES:
                raise SafetensorsError(f"{path}: tensor '{name}' has unsupported dtype {dtype}")
            count = 1
            for d in shape:
                if d < 0:
                    raise SafetensorsError(f"{path}: tensor '{name}' has a negative dimension")
                count *= d
            if not (0 <= b <= end <= self._data_size) or end - b != count * _DTYPES[dtype][1]:
                raise SafetensorsError(
                    f"{path}: tensor '{name}' data offsets [{b}, {end}] do not match its "
                    f"shape {shape} x {dtype} or exceed the data ({self._data_size} bytes)")
            self._info[name] = (dtype, tuple(shape), b)
        self._mm = None

    def keys(self):
        return list(self._info.keys())

    def __contains__(self, name):
        return name in self._info

    def dtype(self, name):
        return self._info[name][0]

    def shape(self, name):
        return self._info[name][1]

    def raw(self, name):
        """The stored array (numpy view on the mapping); BF16 comes back as uint16."""
        dtype, shape, begin = self._info[name]
        npdt, _ = _DTYPES[dtype]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count == 0:
            return np.zeros(shape, dtype=npdt)
        if self._mm is None:
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        start = self._data_start + begin
        buf = self._mm[start:start + count * npdt.itemsize]
        return buf.view(npdt).reshape(shape)

    def get_float32(self, name):
        """The tensor as a new float32 array (bf16/f16/f64 widened or narrowed)."""
        dtype = self._info[name][0]
        a = self.raw(name)
        if dtype == "BF16":
            return bf16_to_float32(a).reshape(a.shape)
        return np.array(a, dtype=np.float32)


class Checkpoint:
    """All tensors of a Hugging Face model directory: model.safetensors, or the shards listed
    in model.safetensors.index.json (weight_map: tensor name -> shard file name)."""

    def __init__(self, model_dir):
        self.dir = model_dir
        index = os.path.join(model_dir, "model.safetensors.index.json")
        single = os.path.join(model_dir, "model.safetensors")
        self._files = {}
        self._where = {}
        if os.path.isfile(index):
            try:
                with open(index, encoding="utf-8") as f:
                    wmap = json.load(f)["weight_map"]
            except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
                raise SafetensorsError(f"{index}: cannot read weight_map: {e}") from None
            for shard in sorted(set(wmap.values())):
                p = os.path.join(model_dir, shard)
                if not os.path.isfile(p):
                    raise SafetensorsError(f"{index}: shard '{shard}' does not exist")
                self._files[shard] = SafetensorsFile(p)
            for name, shard in wmap.items():
                if name not in self._files[shard]:
                    raise SafetensorsError(
                        f"{index}: tensor '{name}' is listed in shard '{shard}' but not stored there")
                self._where[name] = self._files[shard]
        elif os.path.isfile(single):
            st = SafetensorsFile(single)
            self._files["model.safetensors"] = st
            for name in st.keys():
                self._where[name] = st
        else:
            raise SafetensorsError(
                f"{model_dir}: neither model.safetensors nor model.safetensors.index.json found")

    def keys(self):
        return list(self._where.keys())

    def __contains__(self, name):
        return name in self._where

    def dtype(self, name):
        return self._where[name].dtype(name)

    def shape(self, name):
        return self._where[name].shape(name)

    def raw(self, name):
        return self._where[name].raw(name)

    def get_float32(self, name):
        return self._where[name].get_float32(name)


def write_safetensors(path, tensors, metadata=None):
    """Writes `tensors` (ordered mapping name -> numpy array, or name -> ("BF16", uint16
    array)) to `path`. Tensors are laid out in the given order; the header is padded with
    spaces to a multiple of 8 bytes as the reference implementation does."""
    header = {}
    blobs = []
    off = 0
    for name, t in tensors.items():
        if isinstance(t, tuple):
            dtype, arr = t
            if dtype != "BF16":
                raise ValueError(f"{name}: only BF16 may be given as a (dtype, array) pair")
            arr = np.array(arr, dtype="<u2", order="C")   # (0-d stays 0-d)
        else:
            arr = np.asarray(t)
            if arr.dtype not in _NP_TO_ST:
                raise ValueError(f"{name}: numpy dtype {arr.dtype} has no safetensors equivalent")
            dtype = _NP_TO_ST[arr.dtype]
            arr = np.array(arr, dtype=_DTYPES[dtype][0], order="C")
        b = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
