#!/usr/bin/python3
"""make_corpus.py — writes the fuzzer's seed corpus (tests/fuzz/corpus/gguf/*.gguf).

A GGUF writer of its own (struct only, no numpy, nothing shared with engine/gguf.c or the C
tests' writer), so the seeds are also a cross-check that the reader takes files written
from the format description by someone else: tests/fuzz/meson.build replays them and
requires every seed to open. Deterministic: rerunning gives the same bytes.
Usage: /usr/bin/python3 tests/fuzz/make_corpus.py [OUTDIR]
"""
import os
import struct
import sys

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: '<B', I8: '<b', U16: '<H', I16: '<h', U32: '<I', I32: '<i', F32: '<f',
              BOOL: '<?', U64: '<Q', I64: '<q', F64: '<d'}
# ggml type id -> (block size, bytes per block)
GGML = {'f32': (0, 1, 4), 'f16': (1, 1, 2), 'q4_0': (2, 32, 18), 'q8_0': (8, 32, 34),
        'q4_K': (12, 256, 144), 'q6_K': (14, 256, 210), 'bf16': (30, 1, 2)}


def gstr(s):
    b = s.encode('utf-8') if isinstance(s, str) else s
    return struct.pack('<Q', len(b)) + b


def value(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        out = struct.pack('<IQ', et, len(items))
        return out + b''.join(value(et, x) for x in items)
    return struct.pack(SCALAR_FMT[t], v)


def gguf(kvs, tensors, version=3):
    """kvs: [(key, type, value)]; tensors: [(name, typename, ne, data_bytes)]"""
    alignment = dict((k, v) for k, t, v in kvs).get('general.alignment', 32)
    out = b'GGUF' + struct.pack('<IQQ', version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack('<I', t) + value(t, v)
    offset = 0
    layout = []
    for name, tn, ne, data in tensors:
        tid, bs, ts = GGML[tn]
        nrows = 1
        for d in ne[1:]:
            nrows *= d
        assert ne[0] % bs == 0 and len(data) == ne[0] // bs * ts * nrows, name
        out += gstr(name) + struct.pack('<I', len(ne)) + b''.join(struct.pack('<Q', d) for d in ne)
        out += struct.pack('<IQ', tid, offset)
        layout.append(offset)
        offset += len(data)
        offset += -offset % alignment
    if tensors:
        out += b'\0' * (-len(out) % alignment)
    start = len(out)
    for (name, tn, ne, data), off in zip(tensors, layout):
        out += b'\0' * (start + off - len(out))
        out += data
    return out


def pattern(n, seed):
    return bytes((i * 131 + seed * 17 + (i >> 3)) & 0xff for i in range(n))

def quant(nblocks, bsize, seed):
    out = bytearray()
    for i in range(nblocks):
        out += b'\x00\x3c' + pattern(bsize - 2, seed + i)   # fp16 1.0, then the quants
    return bytes(out)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'corpus', 'gguf')
    os.makedirs(outdir, exist_ok=True)
    files = {}
    files['empty_v3.gguf'] = gguf([], [])
    files['empty_v2.gguf'] = gguf([], [], version=2)
    files['kv_all_types_v2.gguf'] = gguf([
        ('t.u8', U8, 200), ('t.i8', I8, -5), ('t.u16', U16, 65535), ('t.i16', I16, -300),
        ('t.u32', U32, 4000000000), ('t.i32', I32, -7), ('t.f32', F32, 0.25),
        ('t.bool', BOOL, True), ('t.str', STR, 'h\u00e9llo "x"\n'), ('t.u64', U64, 2**64 - 1),
        ('t.i64', I64, -2**63), ('t.f64', F64, 1e-300),
        ('a.u8', ARR, (U8, [0, 255])), ('a.i8', ARR, (I8, [-128])), ('a.u16', ARR, (U16, [1])),
        ('a.i16', ARR, (I16, [-1, 2])), ('a.u32', ARR, (U32, [3])), ('a.i32', ARR, (I32, [-4])),
        ('a.f32', ARR, (F32, [1.5, -0.0])), ('a.bool', ARR, (BOOL, [True, False])),
        ('a.str', ARR, (STR, ['', 'x', 'yy'])), ('a.u64', ARR, (U64, [5])),
        ('a.i64', ARR, (I64, [-6])), ('a.f64', ARR, (F64, [2.5])), ('a.empty', ARR, (F32, [])),
    ], [], version=2)
    files['tensors_all_types.gguf'] = gguf([('general.architecture', STR, 'qwen2')], [
        ('t.f32', 'f32', [4, 2], struct.pack('<8f', *[i * 0.5 - 1 for i in range(8)])),
        ('t.f16', 'f16', [3], struct.pack('<3H', 0x3c00, 0x8001, 0x7c00)),
        ('t.bf16', 'bf16', [2, 2], struct.pack('<4H', 0x3f80, 0xbf80, 0x7fc0, 0x0001)),
        ('t.q8_0', 'q8_0', [64, 1], quant(2, 34, 1)),
        ('t.q4_0', 'q4_0', [32, 1, 2], quant(2, 18, 2)),
        ('t.q4_K', 'q4_K', [256], pattern(144, 3)),
    ])
    files['align64_4d.gguf'] = gguf([('general.alignment', U32, 64), ('general.name', STR, 'a')], [
        ('w.a', 'q8_0', [32, 1, 1, 2], quant(2, 34, 4)),
        ('w.empty', 'f32', [8, 0], b''),
        ('w.b', 'f16', [5], pattern(10, 5)),
    ])
    toks = ['<|im_start|>', '<|im_end|>', '\u0120the', 'a', 'b'] + ['t%d' % i for i in range(40)]
    files['tokenizer.gguf'] = gguf([
        ('general.architecture', STR, 'qwen2'),
        ('qwen2.block_count', U32, 2), ('qwen2.context_length', U32, 64),
        ('qwen2.attention.layer_norm_rms_epsilon', F32, 1e-6),
        ('qwen2.rope.freq_base', F32, 1e6),
        ('tokenizer.ggml.model', STR, 'gpt2'),
        ('tokenizer.ggml.tokens', ARR, (STR, toks)),
        ('tokenizer.ggml.token_type', ARR, (I32, [3, 3] + [1] * (len(toks) - 2))),
        ('tokenizer.ggml.merges', ARR, (STR, ['\u0120 t', 'h e', 't h'])),
        ('tokenizer.ggml.eos_token_id', U32, 1),
        ('tokenizer.ggml.add_bos_token', BOOL, False),
    ], [('token_embd.weight', 'q8_0', [32, len(toks)], quant(len(toks), 34, 6))])
    total = 0
    for name, data in sorted(files.items()):
        with open(os.path.join(outdir, name), 'wb') as f:
            f.write(data)
        total += len(data)
        print('%-28s %6d bytes' % (name, len(data)))
    print('total %d bytes' % total)


if __name__ == '__main__':
    main()
