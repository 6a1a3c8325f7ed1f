#!/usr/bin/env bash
# tests/cross/run_arm64.sh — cross-compiles the engine and its C kernel tests for aarch64
# with Debian's gcc-aarch64-linux-gnu (tests/cross/aarch64.ini) into build-arm64/, and runs
# them under qemu-aarch64 -L /usr/aarch64-linux-gnu: the NEON table against the scalar
# twins (test_simd checks that the active level really is "neon"), the same with
# FASTVLM_CPU=scalar, the quantization formats, the decoder's kernel tests, the thread pool
# and the vision convolutions. Installs the toolchain and qemu-user if missing (root).
# Ends with 'N passed, N failed'; exits non-zero on failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${ARM64_BUILD:-$ROOT/build-arm64}"
cd "$ROOT"

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -d /usr/aarch64-linux-gnu/lib ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" \
            || { echo "0 passed, 1 failed (cannot install ${need[*]})"; exit 1; }
    else
        echo "0 passed, 1 failed (missing ${need[*]}, not root)"; exit 1
    fi
fi

if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" --cross-file tests/cross/aarch64.ini -Dengine_only=true \
        -Dgst=disabled -Dbuildtype=debugoptimized >/dev/null \
        || { echo "0 passed, 1 failed (meson setup)"; exit 1; }
fi
TESTS=(test_simd test_simd_forced_scalar test_q8 test_quant tensor test_kernels test_threadpool vision-conv)
TARGETS=(tests/kernels/test_simd tests/kernels/test_q8 tests/kernels/test_quant tests/gguf/test_tensor
         tests/llm/test_kernels tests/llm/test_threadpool tests/vision/test_conv)
ninja -C "$BUILD" "${TARGETS[@]}" >"$BUILD/ninja-log.txt" 2>&1 \
    || { cat "$BUILD/ninja-log.txt"; echo "0 passed, 1 failed (build)"; exit 1; }

# The dispatch level qemu gives us, for the log (the test also asserts it).
FVLM_TEST_EXPECT_LEVEL=neon qemu-aarch64 -L /usr/aarch64-linux-gnu \
    "$BUILD/tests/kernels/test_simd" 2>/dev/null | grep -m1 '^cpu:' || true

FVLM_TEST_EXPECT_LEVEL=neon meson test -C "$BUILD" --no-rebuild --print-errorlogs --num-processes 2 \
    --timeout-multiplier 10 "${TESTS[@]}"
rc=$?
passed=0 failed=0
while IFS=$'\t' read -r name result; do
    if [ "$result" = OK ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "problem: $name $result"; fi
done < <(/usr/bin/python3 -c 'import json,sys
for line in open(sys.argv[1]):
    d = json.loads(line); print(d["name"] + "\t" + d["result"])' "$BUILD/meson-logs/testlog.json")
[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
