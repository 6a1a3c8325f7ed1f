#!/usr/bin/python3
"""make_tok_corpus.py — writes the seed corpora of the tokenizer fuzz targets.

  corpus/tokenizer_load/*.gguf  vocabularies for fuzz_tokenizer_load (the GGUF tokenizer
                                loader): qwen2_mini.gguf, a real byte-level BPE trained here
                                on a few multilingual paragraphs (Qwen2's byte order, the 22
                                Qwen2.5 added tokens with llama.cpp's token types), and small
                                variants, valid and hostile, of a 256-byte-token vocabulary.
  corpus/tokenizer/*.txt        texts for fuzz_tokenizer (which loads qwen2_mini.gguf once).

The GGUF bytes come from make_corpus.py's writer (struct only, nothing shared with the C
code). Deterministic: rerunning gives the same bytes, so a diff after a rerun means the
generator changed. Usage: /usr/bin/python3 tests/fuzz/make_tok_corpus.py
"""
import collections
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_corpus import ARR, BOOL, I32, STR, U32, gguf  # noqa: E402

N_MERGES = 300

TRAIN = """\
The quick brown fox jumps over the lazy dog. It's what we're told they'll do, and I'd say
the dogs don't mind. Hello world! Hello, hello, HELLO there: 12345 + 678 = 13023.
    def tokenize(self, text):
        return [self.vocab[t] for t in text.split()]
Café naïve résumé déjà vu — Straße, Größe, Übung. ¿Qué tal? Ça va très bien.
中文分词测试：我们今天去公园。日本語のテキストです。한국어 문장입니다.
Привет, как дела? Всё хорошо. مرحبا بالعالم. नमस्ते दुनिया। Γειά σου κόσμε.
Emoji 😀👍🏽 and 👨‍👩‍👧 families; tabs\tand\r\nwindows line ends.


Two blank lines above, and   three   spaces   between   words.
"""

# Qwen2.5's added tokens in id order, with the type llama.cpp's converter gives them
# (3 CONTROL, 4 USER_DEFINED: HF's non-special added tokens).
ADDED = [('<|endoftext|>', 3), ('<|im_start|>', 3), ('<|im_end|>', 3),
         ('<|object_ref_start|>', 3), ('<|object_ref_end|>', 3), ('<|box_start|>', 3),
         ('<|box_end|>', 3), ('<|quad_start|>', 3), ('<|quad_end|>', 3),
         ('<|vision_start|>', 3), ('<|vision_end|>', 3), ('<|vision_pad|>', 3),
         ('<|image_pad|>', 3), ('<|video_pad|>', 3), ('<tool_call>', 4), ('</tool_call>', 4),
         ('<|fim_prefix|>', 3), ('<|fim_middle|>', 3), ('<|fim_suffix|>', 3),
         ('<|fim_pad|>', 3), ('<|repo_name|>', 3), ('<|file_sep|>', 3)]


def bytes_to_unicode():
    """GPT-2's map, in its own order (Qwen2's ids 0..255 follow this order)."""
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [(b, chr(c)) for b, c in zip(bs, cs)]


B2U = dict(bytes_to_unicode())
# Qwen2's split regex with \p{L} as [^\W\d_] and \p{N} as \d (close enough to train on).
SPLIT = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\r\n\w]?[^\W\d_]+|\d| ?[^\s\w]+[\r\n]*"
                   r"|\s*[\r\n]+|\s+(?!\S)|\s+", re.IGNORECASE)


def train(text, n_merges):
    """Plain BPE training: merge the most frequent pair, ties by the pair's strings."""
    words = collections.Counter(
        tuple(B2U[b] for b in w.encode('utf-8')) for w in SPLIT.findall(text))
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        new = collections.Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    return merges


def vocab_gguf(tokens, types, merges, version=3, extra=()):
    kvs = [('general.architecture', STR, 'qwen2'),
           ('tokenizer.ggml.model', STR, 'gpt2'),
           ('tokenizer.ggml.pre', STR, 'qwen2'),
           ('tokenizer.ggml.tokens', ARR, (STR, tokens))]
    if types is not None:
        kvs.append(('tokenizer.ggml.token_type', ARR, types))
    if merges is not None:
        kvs.append(('tokenizer.ggml.merges', ARR, (STR, merges)))
    kvs += list(extra)
    return gguf(kvs, [], version=version)


def byte_tokens():
    return [c for _, c in bytes_to_unicode()]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    files = {}

    # The real one: byte tokens, trained merges, added tokens, one unused filler.
    merges = train(TRAIN, N_MERGES)
    tokens = byte_tokens()
    for a, b in merges:
        if a + b not in tokens:            # two merges may make the same string
            tokens.append(a + b)
    n_normal = len(tokens)
    tokens += [s for s, _ in ADDED] + ['[PAD%d]' % (n_normal + len(ADDED))]
    types = [1] * n_normal + [t for _, t in ADDED] + [5]
    eos = n_normal + 2
    files['tokenizer_load/qwen2_mini.gguf'] = vocab_gguf(
        tokens, (I32, types), ['%s %s' % m for m in merges],
        extra=[('tokenizer.ggml.eos_token_id', U32, eos),
               ('tokenizer.ggml.padding_token_id', U32, n_normal),
               ('tokenizer.ggml.bos_token_id', U32, n_normal),
               ('tokenizer.ggml.add_bos_token', BOOL, False)])

    # Small variants around 256 byte tokens.
    small = byte_tokens() + ['\u0120t', 'he', '\u0120the', '<|im_end|>', '<tool_call>']
    small_types = [1] * 259 + [3, 4]
    small_merges = ['\u0120 t', 'h e', '\u0120t he']
    files['tokenizer_load/small_v2_no_types.gguf'] = vocab_gguf(
        small, None, small_merges, version=2)
    # repeated strings and merges, an empty token, strings that are not byte-level, a
    # normal token spelled like an added one, every token type, an empty merge half, added
    # tokens with other first bytes
    odd = small + ['he', '', '\u20ac', '<|im_end|>', '\u0120t', 'x' * 40, 'h', '##', 'zz']
    odd_types = small_types + [1, 1, 1, 1, 6, 2, 0, 3, 4]
    files['tokenizer_load/small_odd.gguf'] = vocab_gguf(
        odd, (I32, odd_types), small_merges + ['h e', '\u0120t he', 'h ', '\u0120 t'])
    # Hostile: each must be refused (merge with a missing half, token_type one short,
    # token_type of strings, too few tokens, merges or tokens that are not strings).
    files['tokenizer_load/bad_merge_missing.gguf'] = vocab_gguf(
        small, (I32, small_types), small_merges + ['q zz'])
    files['tokenizer_load/bad_types_short.gguf'] = vocab_gguf(
        small, (I32, small_types[:-1]), small_merges)
    files['tokenizer_load/bad_types_strings.gguf'] = vocab_gguf(
        small, (STR, ['1'] * len(small)), small_merges)
    files['tokenizer_load/bad_few_tokens.gguf'] = vocab_gguf(
        small[:200], None, [])
    files['tokenizer_load/bad_merges_not_strings.gguf'] = gguf([
        ('tokenizer.ggml.model', STR, 'gpt2'), ('tokenizer.ggml.pre', STR, 'qwen2'),
        ('tokenizer.ggml.tokens', ARR, (STR, byte_tokens())),
        ('tokenizer.ggml.merges', ARR, (U32, [1, 2]))], [])
    files['tokenizer_load/bad_tokens_not_strings.gguf'] = gguf([
        ('tokenizer.ggml.model', STR, 'gpt2'), ('tokenizer.ggml.pre', STR, 'qwen2'),
        ('tokenizer.ggml.tokens', ARR, (I32, list(range(256))))], [])

    texts = {
        'english': 'Hello world! The quick brown fox, isn\'t it? We\'LL see.',
        'code': '    def f(x):\n\treturn x  # 42\r\n\n\n}',
        'chat': '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
                '<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe.'
                '<|im_end|>\n<|im_start|>assistant\n',
        'added_partial': '<|im_end|<|im_<tool_call></tool_call><<|endoftext|>>',
        'tool_nfc': '<tool_call>\u0338>\u0338<|im_end|>\u0338',
        'multilingual': 'Café naïve 中文分词 日本語 한국어 Привет مرحبا नमस्ते Γειά',
        'emoji': '😀👍🏽 👨\u200d👩\u200d👧 🇫🇷',
        'combining_storm': 'e' + '\u0301' * 40 + 'a' + '\u0323\u0301\u0302\u0300' * 10,
        'combining_order': 'q\u0307\u0323 \u1e0b\u0323 \u0f71\u0f72\u0f74 \u05b8\u05b9\u05b1',
        'hangul': '\u1100\u1161\u11a8 \uac00\u11a8 \u1100\u1100\u1161 \ud55c\uae00',
        'leading_marks': '\u0301\u0301e\u0301',
        'decompose': '\u2126 \u212b \u1e9b\u0323 \ufb2c \u0344 \u0958 \u2adc \u01c4',
        'spaces': 'a' + ' ' * 300 + 'b\t\t\n \n  \u3000\u3000x \u00a0\u2028\u2029\ufeff\u0085',
        'numbers': '3.14159 1,000,000 ٣٤٥ ⅻ ²³',
        'contractions': "'s'S'T're'VE'm'LL'd ''ll x'y 's",
        'newlines': '\r\n\r\n\n\n \n\r  \r',
        'empty': '',
    }
    for name, t in texts.items():
        files['tokenizer/%s.txt' % name] = t.encode('utf-8')
    files['tokenizer/invalid_utf8.txt'] = (
        b'a\xc0\x80b\xed\xa0\x80c\xf4\x90\x80\x80d\xe0\x80e\xff\xfe\xc3'
        b'\xa9\xe2\x82\xf0\x9f\x98 \x80\xbf\xc3\xcc\x81\xe0\xa0\xcc\x81')
    files['tokenizer/truncated_tail.txt'] = b'price \xe2\x82\xac\xe2\x82'
    files['tokenizer/nul_bytes.txt'] = b'a\x00b\x00\x00<|im_end|>\x00'

    total = collections.Counter()
    for name, data in sorted(files.items()):
        path = os.path.join(here, 'corpus', name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)
        total[name.split('/')[0]] += len(data)
    for d, n in sorted(total.items()):
        print('corpus/%-16s %6d bytes' % (d, n))
    print('qwen2_mini.gguf: %d tokens, %d merges' % (len(tokens), len(merges)))


if __name__ == '__main__':
    main()
