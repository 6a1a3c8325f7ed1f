#!/usr/bin/env bash
# tests/fuzz/run_fuzz.sh [SECONDS] [TARGET...] — runs each libFuzzer target for its time
# budget under AddressSanitizer + UBSan, one after the other, on one core.
#
# Targets (default: all four, in this order) and their share of SECONDS (default 60):
#   gguf            the GGUF reader (fuzz_gguf.c)                              SECONDS
#   tokenizer       text through the tokenizer, NFC, detokenizer (fuzz_tokenizer.c)   2/3
#   tokenizer_load  the tokenizer built from hostile GGUF metadata                    1/3
#   config          the YAML preset loader, gst/fastvlm-config.c (fuzz_config.c)     1/2
# so the default run fuzzes for 60 + 40 + 20 + 30 s = 2.5 min (plus ~1 min of compiling).
# FUZZ_TIME_<TARGET>=N (e.g. FUZZ_TIME_config=120) sets one target's budget directly.
#
# The code under test is compiled straight from the sources (no meson) with
# -fsanitize=fuzzer-no-link,address,undefined, so coverage counts only the project's code;
# the harnesses are compiled with the sanitizers but without coverage. Each target starts
# from its committed seed corpus, tests/fuzz/corpus/<target>/ (+ corpus/regressions/ for
# gguf), and its dictionary <target>.dict; new inputs go to a temporary corpus only, nothing
# is minimized, the committed files are never modified. A crash, leak, sanitizer report,
# broken invariant, timeout or OOM in any target makes the script exit non-zero (after the
# other targets ran) and leaves the reproducer in tests/fuzz/crashes/<target>/; replay it with
# the build's plain driver, e.g. build/tests/fuzz/fuzz_tokenizer_replay FILE, or commit it to
# the target's corpus directory so that every build replays it (tests/fuzz/meson.build).
# Needs: clang (14), libclang-rt-14-dev, and for `config` libglib2.0-dev + libyaml-dev
# (Debian packages); a missing one fails the run, it is never skipped.
set -uo pipefail

all_targets=(gguf tokenizer tokenizer_load config)
secs=60
targets=()
for a in "$@"; do
    case "$a" in
        ''|*[!0-9]*)
            case " ${all_targets[*]} " in
                *" $a "*) targets+=("$a") ;;
                *) echo "usage: $0 [SECONDS] [${all_targets[*]}]..." >&2; exit 2 ;;
            esac ;;
        *) secs=$a ;;
    esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")

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

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

common=(-g -O1 -D_DEFAULT_SOURCE -fno-sanitize-recover=all -I"$root/engine/include"
        -I"$root/engine")
instr=("-fsanitize=fuzzer-no-link,address,undefined")
plain=("-fsanitize=address,undefined")

# compile CFLAGS... -- SOURCE OBJECT: one object, quiet unless it fails.
compile() {
    local args=() src obj
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    src=$2 obj=$3
    "$cc" "${args[@]}" -c "$src" -o "$obj" 2>"$obj.log" || { cat "$obj.log" >&2; return 1; }
}

# build TARGET: writes $tmp/fuzz_TARGET.
build() {
    local t=$1 objs=() libs=() f
    case "$t" in
        gguf|tokenizer|tokenizer_load)
            local engine=(gguf.c tensor.c error.c)
            [ "$t" != gguf ] && engine+=(tokenizer.c unicode.c unicode_tables.c)
            for f in "${engine[@]}"; do
                [ -f "$tmp/engine_${f%.c}.o" ] ||
                    compile -std=c11 "${common[@]}" "${instr[@]}" -- "$root/engine/$f" \
                        "$tmp/engine_${f%.c}.o" || return 1
                objs+=("$tmp/engine_${f%.c}.o")
            done
            compile -std=c11 "${common[@]}" "${plain[@]}" \
                -DFUZZ_VOCAB="\"$here/corpus/tokenizer_load/qwen2_mini.gguf\"" \
                -- "$here/fuzz_$t.c" "$tmp/harness_$t.o" || return 1
            libs=(-lm) ;;
        config)
            local pc
            if ! pc=$(pkg-config --cflags glib-2.0 gobject-2.0 yaml-0.1 2>&1); then
                echo "run_fuzz.sh: config needs libglib2.0-dev and libyaml-dev: $pc" >&2
                return 1
            fi
            # shellcheck disable=SC2206
            local cflags=($pc)
            compile -std=gnu11 "${common[@]}" "${cflags[@]}" "${instr[@]}" -- \
                "$root/gst/fastvlm-config.c" "$tmp/config_loader.o" || return 1
            compile -std=gnu11 "${common[@]}" "${cflags[@]}" -I"$root/gst" "${plain[@]}" -- \
                "$here/fuzz_config.c" "$tmp/harness_config.o" || return 1
            objs+=("$tmp/config_loader.o")
            # shellcheck disable=SC2207
            libs=($(pkg-config --libs glib-2.0 gobject-2.0 yaml-0.1) -lm) ;;
    esac
    "$cc" -fsanitize=fuzzer,address,undefined "${objs[@]}" "$tmp/harness_$t.o" "${libs[@]}" \
        -o "$tmp/fuzz_$t"
}

# the per-target budget in seconds (at least 1: libFuzzer reads 0 as "no limit"), -max_len
budget() {
    local var="FUZZ_TIME_$1" s
    case "$1" in
        gguf) s=$secs ;;
        tokenizer) s=$((secs * 2 / 3)) ;;
        tokenizer_load) s=$((secs / 3)) ;;
        config) s=$((secs / 2)) ;;
    esac
    s=${!var:-$s}
    case "$s" in ''|*[!0-9]*) echo "run_fuzz.sh: $var=$s is not a number" >&2; s=1 ;; esac
    echo $((s < 1 ? 1 : s))
}
max_len() {
    case "$1" in gguf) echo 16384 ;; tokenizer_load) echo 32768 ;; *) echo 4096 ;; esac
}

failed=()
t_start=$SECONDS
echo "run_fuzz.sh: compiling ${targets[*]}"
for t in "${targets[@]}"; do
    if ! build "$t"; then
        echo "run_fuzz.sh: $t: does not build" >&2
        failed+=("$t (build)")
    fi
done

for t in "${targets[@]}"; do
    [ -x "$tmp/fuzz_$t" ] || continue
    s=$(budget "$t")
    seeds=("$here/corpus/$t")
    [ "$t" = gguf ] && [ -d "$here/corpus/regressions" ] && seeds+=("$here/corpus/regressions")
    mkdir -p "$tmp/corpus_$t" "$here/crashes/$t"
    log="$tmp/log_$t"
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    "$tmp/fuzz_$t" "$tmp/corpus_$t" "${seeds[@]}" \
        -dict="$here/$t.dict" -max_total_time="$s" -max_len="$(max_len "$t")" -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
        -artifact_prefix="$here/crashes/$t/" >"$log" 2>&1
    rc=$?

    # one summary line: executions, coverage of the code under test, corpus
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9/]*[a-zA-Z]*\).*/\1/p' <<<"$last")
    printf 'run_fuzz.sh: %-15s %9s executions in %4ss, coverage %5s edges, %5s features, corpus %s\n' \
        "$t" "${execs:-?}" "$s" "${cov:-?}" "${ft:-?}" "${corp:-?}"

    if [ "$rc" -ne 0 ]; then
        echo "run_fuzz.sh: $t FAILED (exit $rc); the fuzzer's report:" >&2
        grep -E 'ERROR|SUMMARY|invariant|runtime error|Test unit written|deadly signal|timeout' \
            "$log" | head -40 >&2
        tail -30 "$log" >&2
        echo "run_fuzz.sh: reproducers are in ${here#"$root"/}/crashes/$t/" >&2
        failed+=("$t")
    fi
    rmdir "$here/crashes/$t" "$here/crashes" 2>/dev/null || true   # only if empty
done

echo "run_fuzz.sh: $((SECONDS - t_start))s in all"
if ((${#failed[@]})); then
    echo "run_fuzz.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "run_fuzz.sh: no crash"
