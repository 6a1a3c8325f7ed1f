#!/usr/bin/env bash
# bench/soak/soak.sh — soak test of fastvlmcaption: many frames through a live pipeline
# with the tiny random model, watching the process for leaks.
#
# What it is: runs
#   videotestsrc is-live=true num-buffers=N ! small frames at a high rate !
#   fastvlmcaption (tiny model, stats every second) ! fakesink   c.text_src ! fakesink
# in gst-launch-1.0 and, every few seconds, samples that process's RSS, open fds
# (/proc/PID/fd) and threads, next to the element's latest fastvlm-stats message (frames
# seen/captioned, latency p50/p95/p99). Writes OUT/soak.csv (one row per sample) and
# OUT/summary.md (run parameters and machine, RSS first/last/max and its growth after
# warm-up, fd and thread counts, percentiles over time), and prints the summary.
# Exits non-zero when the pipeline failed, fewer frames than asked went through, the fd
# or thread count changed after warm-up, or RSS grew by more than --max-growth-kb after
# warm-up (default 2048 KiB).
# What it is not: part of `meson test` (it runs for minutes and its numbers only mean
# something on an idle machine), nor a speed benchmark (bench/element_bench.py).
#
# Usage: bench/soak/soak.sh [--frames N] [--fps F] [--size WxH] [--pattern P]
#                           [--every S] [--max-growth-kb K] [--label L] [--out DIR]
#                           [--note TEXT]
#   --label names the results directory bench/soak/results/LABEL (default run-DATE);
#   --note is printed in the summary's title (e.g. "short run on a loaded machine").
# Env: FASTVLM_BUILDDIR (default ./build: the plugin and tests/gst/tiny*.gguf are taken
#      from it; `ninja -C build` makes both).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
frames=100000 fps=250 size=64x48 pattern=ball every=2 max_growth_kb=2048 label="" out="" note=""
while [ $# -gt 0 ]; do
    case "$1" in
        --frames) frames=$2; shift 2 ;;
        --fps) fps=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --pattern) pattern=$2; shift 2 ;;
        --every) every=$2; shift 2 ;;
        --max-growth-kb) max_growth_kb=$2; shift 2 ;;
        --label) label=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --note) note=$2; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
width=${size%x*} height=${size#*x}
build=${FASTVLM_BUILDDIR:-$root/build}
model=$build/tests/gst/tiny.gguf mmproj=$build/tests/gst/tiny-mmproj.gguf
for f in "$build/gst/libgstfastvlm.so" "$model" "$mmproj"; do
    [ -f "$f" ] || { echo "soak.sh: $f missing (ninja -C $build)" >&2; exit 2; }
done
[ -n "$out" ] || out=$root/bench/soak/results/${label:-run-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

export GST_PLUGIN_PATH_1_0=$build/gst
registry=$(mktemp -d)
trap 'rm -rf "$registry"' EXIT
export GST_REGISTRY_1_0=$registry/registry.bin
unset FASTVLM_GST_TEST_DELAY_MS

# machine and run, for the summary
{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo '+local changes')"
    echo "cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "cores=$(nproc)"
    echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "frames=$frames"; echo "fps=$fps"; echo "size=$size"; echo "pattern=$pattern"
    echo "every=$every"; echo "max_growth_kb=$max_growth_kb"; echo "note=$note"
    echo "command=bench/soak/soak.sh --frames $frames --fps $fps --size $size --pattern $pattern --every $every${label:+ --label $label}${note:+ --note \"$note\"}"
} > "$out/run.env"

# Only the stats messages (one per second of running time) are kept, stamped with the
# wall clock; the caption messages (many per second) are dropped by grep.
stamp='import sys, time
for line in sys.stdin:
    sys.stdout.write("%.3f %s" % (time.time(), line)); sys.stdout.flush()'
t0=$(date +%s.%N)
echo "start_wall=$t0" >> "$out/run.env"
gst-launch-1.0 -m -e \
    videotestsrc is-live=true num-buffers="$frames" pattern="$pattern" ! \
    "video/x-raw,format=I420,width=$width,height=$height,framerate=$fps/1" ! \
    fastvlmcaption name=c model="$model" mmproj="$mmproj" threads=1 max-new-tokens=8 \
        stats-interval=1000000000 ! fakesink sync=true \
    c.text_src ! fakesink sync=false \
    > >(grep --line-buffered -E 'fastvlm-stats|ERROR|WARNING|Got EOS' \
        | /usr/bin/python3 -u -c "$stamp" > "$out/messages.log") \
    2> "$out/stderr.log" &
pid=$!

echo "t,rss_kb,fds,threads" > "$out/proc.csv"
while kill -0 "$pid" 2>/dev/null; do
    now=$(date +%s.%N)
    if status=$(cat "/proc/$pid/status" 2>/dev/null) && \
       fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l); then
        rss=$(awk '/^VmRSS/ { print $2 }' <<<"$status")
        threads=$(awk '/^Threads/ { print $2 }' <<<"$status")
        [ -n "$rss" ] && echo "$(echo "$now - $t0" | bc),$rss,$fds,$threads" >> "$out/proc.csv"
    fi
    sleep "$every"
done
set +e
wait "$pid"
rc=$?
set -e
echo "launch_rc=$rc" >> "$out/run.env"
[ -s "$out/stderr.log" ] || rm -f "$out/stderr.log"
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/run.env"
sleep 1   # let the message filter flush

/usr/bin/python3 "$root/bench/soak/summarize.py" "$out"
