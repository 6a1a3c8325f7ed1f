#!/usr/bin/env bash
# asan.sh — the robustness tests against the plugin built with AddressSanitizer (leaks on).
#
# What it is: configures (once) a separate build of the plugin with -Db_sanitize=address
# in ASAN_BUILD (a directory inside the main build dir), builds only gst/libgstfastvlm.so
# there (the engine is linked into it, so the engine is instrumented too), then runs the
# given test programs — the ordinary ones of the main build — with libasan preloaded and
# GST_PLUGIN_PATH on the ASan plugin, shortened by FASTVLM_ROBUST_ASAN (one round of state
# pairs, 50 cycles instead of 200; multistream 10 re-registrations instead of 30; seek,
# renegotiate and EOS in full). Any ASan error or
# LeakSanitizer leak fails it.
# Why this subset: it runs every code path of the robustness tests once (start/stop with a
# run in flight at every transition, flush mid-generation, caps changes, EOS drain and
# drop) in about a minute of CPU; the RTSP test adds only rtspsrc's code paths and a
# process per server, so it stays out.
# How plugins are found: in-process (GST_REGISTRY_FORK=no, no scanner child) and only the
# system plugins the tests use (linked into a private directory), so LeakSanitizer judges
# our plugin and not every plugin installed on the machine.
# What it is not: the engine's own ASan+UBSan run (tests/run.sh, build-asan/).
#
# Usage: asan.sh ASAN_BUILD TESTS_SRCDIR TEST_PROGRAM...
# Env: FASTVLM_SRCDIR (project source root), FASTVLM_TEST_MODEL, FASTVLM_TEST_MMPROJ.
set -euo pipefail

build=$1 srcdir=$2
shift 2

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$FASTVLM_SRCDIR" -Db_sanitize=address -Db_lundef=false \
        -Dtests=false -Dbuildtype=debugoptimized >"$build.setup.log" 2>&1 \
        || { cat "$build.setup.log"; exit 1; }
fi
ninja -C "$build" gst/libgstfastvlm.so >"$build.ninja.log" 2>&1 \
    || { tail -n 40 "$build.ninja.log"; exit 1; }

plugin="$build/gst/libgstfastvlm.so"
libasan=$(ldd "$plugin" | awk '/libasan/ { print $3 }')
[ -n "$libasan" ] || { echo "asan.sh: $plugin is not linked with libasan"; exit 1; }

# the system plugins the tests use, and nothing else
sysdir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
plugins="$build/system-plugins"
mkdir -p "$plugins"
for p in coreelements videotestsrc videoconvertscale videoconvert videoscale app; do
    [ -f "$sysdir/libgst$p.so" ] && ln -sf "$sysdir/libgst$p.so" "$plugins/"
done

export GST_PLUGIN_PATH_1_0="$build/gst"
export GST_PLUGIN_SYSTEM_PATH_1_0="$plugins"
export GST_REGISTRY_1_0="$build/registry.bin"
export GST_REGISTRY_FORK=no
export CK_FORK=no                 # one process per program: leaks are checked at its exit
export CK_DEFAULT_TIMEOUT=600
export FASTVLM_ROBUST_ASAN=1
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=66
export LSAN_OPTIONS="suppressions=$srcdir/lsan.supp:print_suppressions=0:exitcode=66"
rm -f "$GST_REGISTRY_1_0"

status=0
for t in "$@"; do
    echo "== $(basename "$t") under ASan"
    if ! LD_PRELOAD="$libasan" "$t"; then
        echo "FAILED: $(basename "$t") under ASan"
        status=1
    fi
done
exit $status
