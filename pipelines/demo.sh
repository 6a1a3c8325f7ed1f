#!/usr/bin/env bash
# pipelines/demo.sh — the main job, from a fresh Debian 12 machine: installs what is
# missing, builds, makes the small model, and shows the engine and the element at work.
#   bash pipelines/demo.sh            # everything below
# It uses the trained demo model in models/ when it is there (it knows coloured shapes and
# videotestsrc's patterns); otherwise the tiny RANDOM-weight FastVLM that the tests use
# (architecture-complete, so every stage runs for real, but its words are meaningless).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../tests/setup.sh"
fastvlm_install_deps
fastvlm_build
fastvlm_make_tiny_model

CLI="$FASTVLM_BUILD/tools/fastvlm"
if [ -f "$FASTVLM_ROOT/models/fastvlm-demo.gguf" ]; then
    M="$FASTVLM_ROOT/models/fastvlm-demo.gguf"
    P="$FASTVLM_ROOT/models/fastvlm-demo-mmproj.gguf"
else
    echo "(no trained demo model in models/: using the tiny random model — answers are noise)"
    M="$FASTVLM_BUILD/models/tiny.gguf"
    P="$FASTVLM_BUILD/models/tiny-mmproj.gguf"
fi

echo "== 1. text generation (fastvlm generate, greedy, 24 tokens)"
"$CLI" generate -m "$M" --chat -p "Describe a red ball." -n 24
echo

if "$CLI" help | grep -q '^  run'; then
    echo "== 2. image question (fastvlm run on a generated test image)"
    img="$FASTVLM_BUILD/models/demo.png"
    gst-launch-1.0 -q videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,width=320,height=240 \
        ! videoconvert ! pngenc ! filesink location="$img"
    "$CLI" run -m "$M" --mmproj "$P" --image "$img" -p "What is in the image?" -n 24 --timings
    echo
fi

if [ -f "$FASTVLM_BUILD/gst/libgstfastvlm.so" ]; then
    echo "== 3. live captions: videotestsrc ! fastvlmcaption (captions as bus messages)"
    GST_PLUGIN_PATH="$FASTVLM_BUILD/gst" timeout 120 gst-launch-1.0 -m \
        videotestsrc num-buffers=90 is-live=true pattern=ball \
        ! video/x-raw,width=320,height=240,framerate=15/1 \
        ! fastvlmcaption model="$M" mmproj="$P" max-new-tokens=12 \
        ! fakesink sync=true 2>&1 | grep -E 'fastvlm-caption|text=' | head -20 || true
fi
