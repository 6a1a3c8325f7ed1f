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
    export GST_PLUGIN_PATH="$FASTVLM_BUILD/gst"
    # Without model=..., fastvlmcaption uses its built-in demo model (models/).
    if [ "$M" = "$FASTVLM_ROOT/models/fastvlm-demo.gguf" ]; then FILES=(); else
        FILES=(model="$M" mmproj="$P"); fi
    CAPTIONS=("$PY" "$FASTVLM_ROOT/pipelines/captions.py")   # one line per caption
    echo "== 3. live captions: videotestsrc ! fastvlmcaption ! fakesink (at most one per second)"
    for pattern in smpte ball checkers-8 snow; do
        echo "-- videotestsrc pattern=$pattern (live, 15 fps, 4 s)"
        "${CAPTIONS[@]}" videotestsrc num-buffers=60 is-live=true pattern=$pattern \
            ! video/x-raw,width=320,height=240,framerate=15/1 \
            ! fastvlmcaption "${FILES[@]}" interval=1000000000 ! fakesink sync=true
    done
    echo
    echo "== 4. two questions about a drawn scene, through the element (offline)"
    scene="$FASTVLM_BUILD/models/demo-scene.png"
    "$PY" - "$FASTVLM_ROOT/tools" "$scene" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1])
import demo_scenes as ds
def obj(shape, colour, size, pos):
    return {"shape": shape, "colour": colour, "size": size, "pos": pos, "dx": 0.0, "dy": 0.0,
            "r": 0.5, "tint": [0, 0, 0]}
ds.render_scene({"kind": "scene", "width": 320, "height": 240, "background": "grey",
                 "bg_tint": [0, 0, 0], "objects": [obj("circle", "red", "large", "left"),
                                                   obj("triangle", "blue", "small", "right")]}
                ).save(sys.argv[2])
PYEOF
    echo "-- $scene (drawn: a large red circle on the left, a small blue triangle on the right, grey)"
    "${CAPTIONS[@]}" filesrc location="$scene" ! pngdec \
        ! fastvlmcaption "${FILES[@]}" mode=offline \
            'prompts="<\"Describe the image.\", \"What color is the shape on the left?\">"' \
        ! fakesink
fi
