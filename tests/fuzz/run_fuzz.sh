#!/usr/bin/env bash
# tests/fuzz/run_fuzz.sh [SECONDS] — fuzzes the GGUF reader with libFuzzer for SECONDS
# (default 60) under AddressSanitizer + UBSan.
#
# Compiles tests/fuzz/fuzz_gguf.c with engine/gguf.c, engine/tensor.c and engine/error.c
# straight from the sources into a temporary directory (no meson needed), seeds it with
# tests/fuzz/corpus/gguf/ (+ corpus/regressions/ if present, + the dictionary gguf.dict) and
# runs one process. New interesting inputs go to the temporary corpus only; the committed
# one is never modified. A crash, leak, sanitizer report or timeout exits non-zero and
# leaves the reproducer in tests/fuzz/crashes/ (replay it: the printed binary + the file,
# or build-*/tests/fuzz/fuzz_replay FILE).
# Needs: clang (14) and libclang-rt-14-dev (Debian packages). Uses one core.
set -euo pipefail

secs=${1:-60}
case "$secs" in ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${CLANG:-}
if [ -z "$cc" ]; then
    for c in clang clang-14; do
        if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
    done
fi
if [ -z "$cc" ]; then
    echo "run_fuzz.sh: clang not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz_gguf.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/corpus" "$here/crashes"

"$cc" -std=c11 -g -O1 -D_DEFAULT_SOURCE \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$root/engine/include" -I"$root/engine" \
    "$root/engine/gguf.c" "$root/engine/tensor.c" "$root/engine/error.c" \
    "$here/fuzz_gguf.c" -lm -o "$tmp/fuzz_gguf"

seeds=("$here/corpus/gguf")
[ -d "$here/corpus/regressions" ] && seeds+=("$here/corpus/regressions")

echo "run_fuzz.sh: fuzzing for ${secs}s (seeds: ${seeds[*]#$root/})"
set +e
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
"$tmp/fuzz_gguf" "$tmp/corpus" "${seeds[@]}" \
    -dict="$here/gguf.dict" -max_total_time="$secs" -max_len=16384 -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$here/crashes/" >"$tmp/log" 2>&1
rc=$?
set -e

# one summary line: executions, coverage, corpus
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/log" | tail -1)
last=$(grep -E '^#[0-9]+' "$tmp/log" | tail -1 || true)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
corp=$(sed -n 's/.* corp: \([0-9/]*[a-zA-Z]*\).*/\1/p' <<<"$last")
echo "run_fuzz.sh: ${execs:-?} executions in ${secs}s, coverage ${cov:-?} edges, ${ft:-?} features, corpus ${corp:-?}"

if [ "$rc" -ne 0 ]; then
    echo "run_fuzz.sh: FAILED (exit $rc); the fuzzer's report:" >&2
    grep -E 'ERROR|SUMMARY|invariant|runtime error|Test unit written|deadly signal|timeout' \
        "$tmp/log" | head -40 >&2
    tail -30 "$tmp/log" >&2
    echo "run_fuzz.sh: reproducers are in ${here#$root/}/crashes/" >&2
    exit 1
fi
echo "run_fuzz.sh: no crash"
