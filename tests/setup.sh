# tests/setup.sh — shared set-up for tests/run.sh and pipelines/demo.sh (sourced, not run):
# installs the Debian packages the project needs (only when something is missing),
# configures and builds into build/, and makes the small models the demo and tests use.
# Not here: running tests (tests/run.sh) or the demo (pipelines/demo.sh).

FASTVLM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FASTVLM_BUILD="$FASTVLM_ROOT/build"
PY=/usr/bin/python3   # Debian's interpreter: it sees python3-numpy and python3-torch

# One package per line; each is needed by a part of the build or a test suite.
FASTVLM_PACKAGES="
build-essential pkg-config meson ninja-build
liborc-0.4-dev liborc-0.4-dev-bin libyaml-dev libpng-dev libjpeg-dev
libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev libjson-glib-dev
gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
gstreamer1.0-x gstreamer1.0-rtsp gstreamer1.0-plugins-base-apps python3-gi gir1.2-gstreamer-1.0
libpango1.0-dev libcairo2-dev
python3-numpy python3-torch python3-pil
unicode-data bzip2 clang libclang-rt-14-dev valgrind
gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
nodejs npm
"

fastvlm_install_deps() {
    local missing=() p
    for p in $FASTVLM_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    # node/npm may come from outside Debian on some machines: accept any working node + npm.
    if command -v node >/dev/null && command -v npm >/dev/null; then
        local keep=() m
        for m in "${missing[@]}"; do [[ $m == nodejs || $m == npm ]] || keep+=("$m"); done
        missing=("${keep[@]}")
    fi
    if ((${#missing[@]})); then
        echo "== installing: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

fastvlm_build() {
    cd "$FASTVLM_ROOT" || return 1
    if [ ! -f "$FASTVLM_BUILD/build.ninja" ]; then
        meson setup "$FASTVLM_BUILD" --werror || return 1
    fi
    ninja -C "$FASTVLM_BUILD" || return 1
}

# The tiny random model (architecture-complete, meaningless answers) used by tests and
# pipelines when no trained model is given: build/models/tiny.gguf + tiny-mmproj.gguf.
fastvlm_make_tiny_model() {
    local out="$FASTVLM_BUILD/models"
    [ -f "$out/tiny.gguf" ] && [ -f "$out/tiny-mmproj.gguf" ] && return 0
    mkdir -p "$out"
    $PY "$FASTVLM_ROOT/tools/make_tiny_model.py" "$out/tiny-hf" --seed 1 &&
    $PY "$FASTVLM_ROOT/tools/convert_hf_to_gguf.py" "$out/tiny-hf" --outfile "$out/tiny.gguf" --outtype f32
}
