#!/usr/bin/env python3
"""test_bad_input.py — `fastvlm logits` / `fastvlm generate` on broken input: each case
must exit with status 1 (not crash, not 0) and print a message on stderr naming the
thing at fault (the file, tensor, key, value or number).

Broken files are made from a good converted GGUF by editing bytes at positions found with
the independent reader tests/reference/gguf_read.py: truncation, wrong magic, a renamed
tensor, a changed shape, another architecture, an unsupported and an unknown tensor type,
a renamed metadata key. Plus: a missing file, token ids out of range, a prompt longer than
the context, a prompt and a system prompt at FASTVLM_MAX_PROMPT_BYTES and one byte over
(docs/limits.md), and a projector whose width does not match the language model.
Prints 'N passed, N failed'; exits non-zero on any failure.
Environment: FASTVLM_CLI, FASTVLM_SRCDIR, FASTVLM_LLM_PROBE (meson sets them).
"""

import os
import struct
import subprocess
import sys
import tempfile

SRC = os.environ.get("FASTVLM_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("FASTVLM_CLI")
PROBE = os.environ.get("FASTVLM_LLM_PROBE")
sys.path.insert(0, os.path.join(SRC, "tests", "reference"))
import gguf_read  # noqa: E402

PY = sys.executable
passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok    {msg}")
    else:
        failed += 1
        print(f"FAIL  {msg}")


def run(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def expect_fail(label, args, *needles):
    """The command must exit 1 with every needle in stderr."""
    r = run(args)
    msg = r.stderr.strip().replace("\n", " | ")
    ok = r.returncode == 1 and all(n in r.stderr for n in needles)
    check(ok, f"{label}: exit {r.returncode}, stderr names {list(needles)}: {msg!r}")


def patched(src, dst, edits=(), truncate=None):
    with open(src, "rb") as f:
        data = bytearray(f.read())
    for pos, new in edits:
        data[pos:pos + len(new)] = new
    if truncate is not None:
        data = data[:truncate]
    with open(dst, "wb") as f:
        f.write(data)
    return dst


def logits_cmd(gguf, tokens="1,2,3", extra=()):
    return [CLI, "logits", "-m", gguf, "--tokens", tokens, "-o", os.devnull] + list(extra)


def main():
    if not CLI or not os.path.exists(CLI):
        print("FASTVLM_CLI is not set to the fastvlm binary")
        print("0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory(prefix="fvlm-llm-bad-") as work:
        # hidden/ffn multiples of 256 so a tensor can be re-labelled as a 256-block k-quant
        hf = os.path.join(work, "hf")
        subprocess.run([PY, os.path.join(SRC, "tools", "make_tiny_model.py"), hf, "--no-vision",
                        "--hidden", "256", "--heads", "4", "--kv-heads", "2", "--ffn", "512",
                        "--layers", "2", "--seed", "3"], check=True, capture_output=True)
        good = os.path.join(work, "good.gguf")
        subprocess.run([PY, os.path.join(SRC, "tools", "convert_hf_to_gguf.py"), hf, "--outfile",
                        good, "--outtype", "f32"], check=True, capture_output=True)
        g = gguf_read.GGUFFile(good)
        size = os.path.getsize(good)

        r = run(logits_cmd(good))
        check(r.returncode == 0, f"the unmodified file works (exit {r.returncode}) {r.stderr.strip()!r}")

        # missing file
        missing = os.path.join(work, "no-such-model.gguf")
        expect_fail("missing file", logits_cmd(missing), missing)
        expect_fail("missing file (generate)", [CLI, "generate", "-m", missing, "-p", "hi"], missing)

        # wrong magic
        bad = patched(good, os.path.join(work, "magic.gguf"), [(0, b"GGUX")])
        expect_fail("wrong magic", logits_cmd(bad), "magic.gguf")

        # truncated: in the header, and in the tensor data
        bad = patched(good, os.path.join(work, "trunc-head.gguf"), truncate=200)
        expect_fail("truncated header", logits_cmd(bad), "trunc-head.gguf")
        bad = patched(good, os.path.join(work, "trunc-data.gguf"), truncate=size - 1000)
        expect_fail("truncated data", logits_cmd(bad), "trunc-data.gguf")

        # a renamed (hence missing) tensor: same length, so the file stays consistent
        t = g.tensors["blk.1.attn_q.weight"]
        bad = patched(good, os.path.join(work, "rename.gguf"), [(t.info_pos + 8, b"blk.1.attn_X.weight")])
        expect_fail("missing tensor", logits_cmd(bad), "blk.1.attn_q.weight")

        # a changed shape: ffn_up [256, 512] -> [256, 384] (the data still fits)
        t = g.tensors["blk.0.ffn_up.weight"]
        ne_pos = t.info_pos + 8 + len(t.name) + 4
        bad = patched(good, os.path.join(work, "shape.gguf"), [(ne_pos + 8, struct.pack("<Q", 384))])
        expect_fail("wrong shape", logits_cmd(bad), "blk.0.ffn_up.weight", "384")

        # another architecture
        p = g.kv_pos["general.architecture"] + 4 + 8   # value type u32, string length u64
        bad = patched(good, os.path.join(work, "arch.gguf"), [(p, b"llama")])
        expect_fail("unknown architecture", logits_cmd(bad), "llama")

        # unsupported tensor type: q2_K (id 10, 256-element blocks: the data still fits)
        type_pos = ne_pos + 8 * len(t.ne)
        bad = patched(good, os.path.join(work, "q2k.gguf"), [(type_pos, struct.pack("<I", 10))])
        expect_fail("unsupported type (q2_K)", logits_cmd(bad), "blk.0.ffn_up.weight")
        # a type id no version of ggml has
        bad = patched(good, os.path.join(work, "type99.gguf"), [(type_pos, struct.pack("<I", 99))])
        expect_fail("unknown type id 99", logits_cmd(bad), "blk.0.ffn_up.weight")

        # a missing metadata key (renamed in place)
        p = g.kv_pos["qwen2.block_count"] - len("qwen2.block_count")
        bad = patched(good, os.path.join(work, "key.gguf"), [(p, b"qwen2.block_xount")])
        expect_fail("missing metadata key", logits_cmd(bad), "qwen2.block_count")

        # token ids out of range
        n_vocab = g.tensors["token_embd.weight"].ne[1]
        expect_fail("token id = n_vocab", logits_cmd(good, f"1,2,{n_vocab}"), str(n_vocab), "index 2")
        expect_fail("negative token id", logits_cmd(good, "5,-3"), "-3", "index 1")
        expect_fail("token id out of range (generate)",
                    [CLI, "generate", "-m", good, "--tokens", f"1,{n_vocab + 7}"], str(n_vocab + 7))

        # a prompt longer than the context
        toks = ",".join(str(i) for i in range(1, 21))
        expect_fail("prompt longer than the context (logits)", logits_cmd(good, toks, ["-c", "8"]),
                    "20", "8")
        expect_fail("prompt longer than the context (generate --tokens)",
                    [CLI, "generate", "-m", good, "--tokens", toks, "-c", "8"], "20", "8")
        expect_fail("prompt longer than the context (generate -p)",
                    [CLI, "generate", "-m", good, "-p", "The sky is grey and it looks like rain.",
                     "--chat", "-c", "8"], "context holds 8")

        # docs/limits.md: a prompt (or system prompt) of FASTVLM_MAX_PROMPT_BYTES is tokenized
        # (and is then too long for a context of 64), one byte more is refused by name
        at = ("ab " * 30000)[:65536]
        for opt, what in (("-p", "prompt"), ("--system", "system prompt")):
            args = [CLI, "generate", "-m", good, "--chat", "-c", "64"]
            args += ["-p", at] if opt == "-p" else ["-p", "hi", "--system", at]
            r = run(args)
            check(r.returncode == 1 and "context holds 64" in r.stderr
                  and "FASTVLM_MAX_PROMPT_BYTES" not in r.stderr,
                  f"{what} of 65536 bytes passes the limit: exit {r.returncode} {r.stderr.strip()[-200:]!r}")
            args[-1] = at + "b"
            expect_fail(f"{what} of 65537 bytes", args, f"{what} is 65537 bytes",
                        "over the limit of 65536 (FASTVLM_MAX_PROMPT_BYTES)")

        # projector width != language model hidden size (needs the image helper)
        if PROBE:
            vhf = os.path.join(work, "vhf")
            subprocess.run([PY, os.path.join(SRC, "tools", "make_tiny_model.py"), vhf, "--hidden", "64",
                            "--image-size", "128", "--seed", "4"], check=True, capture_output=True)
            vg = os.path.join(work, "v64.gguf")
            subprocess.run([PY, os.path.join(SRC, "tools", "convert_hf_to_gguf.py"), vhf, "--outfile",
                            vg, "--outtype", "f32"], check=True, capture_output=True)
            mmproj = os.path.join(work, "v64-mmproj.gguf")
            expect_fail("projector width != hidden size",
                        [PROBE, "ask", good, mmproj, "128", "4", os.devnull],
                        "v64-mmproj.gguf", "good.gguf", "64", "256")
        else:
            check(False, "FASTVLM_LLM_PROBE is not set: the projector-width case cannot run")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
