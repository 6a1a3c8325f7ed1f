#!/usr/bin/python3
"""test_quant_ref.py — tensor.c's block formats against an independent numpy
implementation written from ggml's format description (ggml-common.h's structs and the
meaning of each field), through tests/kernels/quant_tool:

  - dequantization of random blocks (random bytes, finite random fp16 scales) of q8_0,
    q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K, q8_K, f16, bf16: bit-identical floats,
    computed here with ggml's order of float32 operations;
  - quantization to q8_0, q4_0, q4_1, q5_0, q5_1: byte-identical to llama.cpp's reference
    formulas re-implemented here; the K-quants (our own scale choice) by round trip only.

usage: test_quant_ref.py QUANT_TOOL. Prints 'N passed, N failed'.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

TOOL = sys.argv[1]
rng = np.random.default_rng(1234)
passed = failed = 0
f32 = np.float32


def check(ok, msg):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", msg)


def run(mode, tname, data):
    with tempfile.TemporaryDirectory() as d:
        i, o = os.path.join(d, "in"), os.path.join(d, "out")
        with open(i, "wb") as f:
            f.write(data)
        subprocess.run([TOOL, mode, tname, i, o], check=True)
        with open(o, "rb") as f:
            return f.read()


def h2f(u16):
    return np.asarray(u16, dtype="<u2").view(np.float16).astype(f32)


def rand_half(n):
    """finite fp16 scales of both signs over a wide range (subnormals included)"""
    while True:
        h = rng.integers(0, 65536, n).astype("<u2")
        bad = (h & 0x7C00) == 0x7C00
        if not bad.any():
            return h
        h[bad] = rng.integers(0, 0x7C00, bad.sum())
        return h


# ---- decoders, one block type at a time: (nb, bytes) -> float32 [nb, block] ---------

def dec_q8_0(b):
    d = h2f(b[:, 0:2].copy().view("<u2")[:, 0])
    q = b[:, 2:34].view(np.int8).astype(f32)
    return d[:, None] * q


def nib(qs):
    return np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int32)


def dec_q4_0(b):
    d = h2f(b[:, 0:2].copy().view("<u2")[:, 0])
    return d[:, None] * (nib(b[:, 2:18]) - 8).astype(f32)


def dec_q4_1(b):
    d = h2f(b[:, 0:2].copy().view("<u2")[:, 0])
    m = h2f(b[:, 2:4].copy().view("<u2")[:, 0])
    return d[:, None] * nib(b[:, 4:20]).astype(f32) + m[:, None]


def q5_vals(qh_bytes, qs):
    qh = qh_bytes.copy().view("<u4")[:, 0].astype(np.uint64)
    bits = ((qh[:, None] >> np.arange(32, dtype=np.uint64)) & 1).astype(np.int32)
    return nib(qs) | (bits << 4)


def dec_q5_0(b):
    d = h2f(b[:, 0:2].copy().view("<u2")[:, 0])
    return d[:, None] * (q5_vals(b[:, 2:6], b[:, 6:22]) - 16).astype(f32)


def dec_q5_1(b):
    d = h2f(b[:, 0:2].copy().view("<u2")[:, 0])
    m = h2f(b[:, 2:4].copy().view("<u2")[:, 0])
    return d[:, None] * q5_vals(b[:, 4:8], b[:, 8:24]).astype(f32) + m[:, None]


def k_scales(s):
    """8 six-bit scales and mins from the 12 bytes"""
    s = s.astype(np.int32)
    sc = np.zeros((s.shape[0], 8), np.int32)
    mn = np.zeros_like(sc)
    sc[:, :4] = s[:, 0:4] & 63
    mn[:, :4] = s[:, 4:8] & 63
    sc[:, 4:] = (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)
    mn[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc, mn


def dec_k45(b, five):
    d = h2f(b[:, 0:2].copy().view("<u2")[:, 0])
    dmin = h2f(b[:, 2:4].copy().view("<u2")[:, 0])
    sc, mn = k_scales(b[:, 4:16])
    qs = b[:, 48:176] if five else b[:, 16:144]
    out = np.zeros((b.shape[0], 256), f32)
    for c in range(4):
        q32 = qs[:, 32 * c:32 * c + 32].astype(np.int32)
        for h in range(2):
            j = 2 * c + h
            q = (q32 >> 4) if h else (q32 & 15)
            if five:
                q = q | (((b[:, 16:48].astype(np.int32) >> j) & 1) << 4)
            d1 = d * sc[:, j].astype(f32)
            m1 = dmin * mn[:, j].astype(f32)
            out[:, 64 * c + 32 * h:64 * c + 32 * h + 32] = d1[:, None] * q.astype(f32) - m1[:, None]
    return out


def dec_q6_K(b):
    ql, qh = b[:, 0:128].astype(np.int32), b[:, 128:192].astype(np.int32)
    sc = b[:, 192:208].view(np.int8).astype(f32)
    d = h2f(b[:, 208:210].copy().view("<u2")[:, 0])
    out = np.zeros((b.shape[0], 256), f32)
    for n in range(2):
        for g in range(4):
            lo = ql[:, 64 * n + 32 * (g & 1):64 * n + 32 * (g & 1) + 32]
            lo = (lo >> 4) if g >> 1 else (lo & 15)
            q = lo | (((qh[:, 32 * n:32 * n + 32] >> (2 * g)) & 3) << 4)
            for l16 in range(2):
                s = sc[:, 8 * n + 2 * g + l16]
                e0 = 128 * n + 32 * g + 16 * l16
                out[:, e0:e0 + 16] = (d * s)[:, None] * (q[:, 16 * l16:16 * l16 + 16] - 32).astype(f32)
    return out


def dec_q8_K(b):
    d = b[:, 0:4].copy().view("<f4")[:, 0]
    return d[:, None] * b[:, 4:260].view(np.int8).astype(f32)


TYPES = {  # name: (block elements, block bytes, decoder, offsets of fp16 scales)
    "q8_0": (32, 34, dec_q8_0, [0]),
    "q4_0": (32, 18, dec_q4_0, [0]),
    "q4_1": (32, 20, dec_q4_1, [0, 2]),
    "q5_0": (32, 22, dec_q5_0, [0]),
    "q5_1": (32, 24, dec_q5_1, [0, 2]),
    "q4_K": (256, 144, lambda b: dec_k45(b, False), [0, 2]),
    "q5_K": (256, 176, lambda b: dec_k45(b, True), [0, 2]),
    "q6_K": (256, 210, dec_q6_K, [208]),
    "q8_K": (256, 292, dec_q8_K, []),
}


def same(a, b):
    a, b = np.asarray(a, f32), np.asarray(b, f32)
    return a.shape == b.shape and bool(np.all((a.view("<u4") == b.view("<u4")) | (np.isnan(a) & np.isnan(b))))


def test_dequant():
    for name, (bs, ts, dec, hoff) in TYPES.items():
        nb = 97
        blocks = rng.integers(0, 256, (nb, ts), dtype=np.uint8)
        for off in hoff:
            blocks[:, off:off + 2] = rand_half(nb).view(np.uint8).reshape(nb, 2)
        if name == "q8_K":
            blocks[:, 0:4] = (rng.standard_normal(nb).astype("<f4") * 0.01).view(np.uint8).reshape(nb, 4)
        got = np.frombuffer(run("dequant", name, blocks.tobytes()), "<f4").reshape(nb, bs)
        want = dec(blocks)
        check(same(got, want), f"dequant {name}: {np.sum(got != want)} values differ")
    for name in ("f16", "bf16"):
        raw = rng.integers(0, 65536, 1001).astype("<u2")
        got = np.frombuffer(run("dequant", name, raw.tobytes()), "<f4")
        want = raw.view(np.float16).astype(f32) if name == "f16" else (raw.astype("<u4") << 16).view("<f4")
        check(same(got, want), f"dequant {name}")


# ---- llama.cpp's reference quantizers, written from their formulas -----------------

def f2h(x):
    return np.asarray(x, f32).astype(np.float16).view("<u2")


def ref_quant(name, x):
    x = x.reshape(-1, 32).astype(f32)
    nb = x.shape[0]
    out = []
    if name == "q8_0":
        amax = np.max(np.abs(x), axis=1)
        d = amax / f32(127)
        idv = np.where(d != 0, f32(1) / np.where(d != 0, d, 1), f32(0)).astype(f32)
        v = (x * idv[:, None]).astype(f32)
        q = np.clip(np.sign(v) * np.floor(np.abs(v) + f32(0.5)), -127, 127).astype(np.int8)
        for i in range(nb):
            out.append(f2h(d[i]).tobytes() + q[i].tobytes())
        return b"".join(out)
    bits = 4 if name in ("q4_0", "q4_1") else 5
    qmax = (1 << bits) - 1
    for i in range(nb):
        xb = x[i]
        if name in ("q4_1", "q5_1"):
            mn, mx = xb.min(), xb.max()
            d = f32((mx - mn) / f32(qmax))
            idv = f32(1) / d if d != 0 else f32(0)
            q = np.minimum(((xb - mn) * idv + f32(0.5)).astype(f32).astype(np.int32), qmax)
            hdr = f2h(d).tobytes() + f2h(mn).tobytes()
        else:
            off = 1 << (bits - 1)
            j = int(np.argmax(np.abs(xb)))
            d = f32(xb[j] / f32(-off))
            idv = f32(1) / d if d != 0 else f32(0)
            q = np.minimum((xb * idv + f32(off + 0.5)).astype(f32).astype(np.int32), qmax)
        qs = (q[:16] & 15) | ((q[16:] & 15) << 4)
        if bits == 5:
            qh = 0
            for k in range(32):
                qh |= int((q[k] >> 4) & 1) << k
            body = np.uint32(qh).astype("<u4").tobytes() + qs.astype(np.uint8).tobytes()
        else:
            body = qs.astype(np.uint8).tobytes()
        if name in ("q4_0", "q5_0"):
            hdr = f2h(d).tobytes()
        out.append(hdr + body)
    return b"".join(out)


def test_quant():
    x = (rng.standard_normal(32 * 64) * np.repeat(10.0 ** rng.uniform(-3, 2, 64), 32)).astype(f32)
    x[32:64] = np.abs(x[32:64])          # an all-positive block
    x[64:96] = 0                         # an all-zero block
    for name in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1"):
        got = run("quant", name, x.tobytes())
        want = ref_quant(name, x)
        nbad = sum(a != b for a, b in zip(got, want))
        check(got == want, f"quant {name}: {nbad} bytes differ")
    for name in ("q4_K", "q5_K", "q6_K", "q8_K"):
        bs, ts, dec, _ = TYPES[name]
        xr = x[:256 * 8]
        q = np.frombuffer(run("quant", name, xr.tobytes()), np.uint8).reshape(-1, ts)
        y = dec(q).reshape(-1)
        # relative to each super-block's max: one scale (Q8_K) or 6-bit sub-scales under
        # one fp16 scale cannot resolve a block 1e5 times smaller than its neighbours
        rng_ = np.repeat(np.max(np.abs(xr.reshape(-1, 256)), axis=1), 256)
        err = np.max(np.abs(y - xr) / np.where(rng_ > 0, rng_, 1))
        levels = {"q4_K": 15, "q5_K": 31, "q6_K": 63, "q8_K": 254}[name]
        check(err <= 2.5 / levels, f"quant {name}: round trip {err:.4g} of the block max")
        print(f"  {name} round trip (numpy decode): {err:.4g} of the super-block max")


test_dequant()
test_quant()
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
