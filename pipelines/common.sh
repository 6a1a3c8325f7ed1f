# pipelines/common.sh — shared option parsing and set-up for the pipeline scripts (sourced).
#
# What it is: turns the options every pipeline script takes into the `fastvlmcaption ...`
# element description (a bash array, FVLM_ELEMENT) and finds the plugin and the model files:
#   -m, --model PATH       language-model GGUF         (env FASTVLM_MODEL)
#   -p, --mmproj PATH      vision GGUF                 (env FASTVLM_MMPROJ)
#   -c, --config PATH      YAML preset, see configs/   (env FASTVLM_CONFIG)
#   -q, --prompt TEXT      question asked of each frame (env FASTVLM_PROMPT)
#   -i, --interval DUR     one caption per DUR at most: 500ms, 2s, 1.5s, ns (env FASTVLM_INTERVAL)
#   -o, --option K=V       any other element property, repeatable (env FASTVLM_OPTIONS, spaces)
# Without --config and -m, the element's built-in demo model is used (models/fastvlm-demo*.gguf,
# found by the element itself); if it is not shipped, the tiny random test model that
# tests/run.sh builds: $FASTVLM_BUILD/models/tiny.gguf and tiny-mmproj.gguf, FASTVLM_BUILD
# defaulting to <repo>/build. With --config, the preset's model files are used unless -m/-p (or the
# FASTVLM_MODEL/FASTVLM_MMPROJ variables) are given.
# If GST_PLUGIN_PATH is unset and $FASTVLM_BUILD/gst holds the plugin, that is used.
# A script may set FVLM_DEFAULTS (element properties) before calling fvlm_parse_args.
# What it is not: a pipeline; each script builds its own and runs gst-launch-1.0.
# shellcheck shell=bash disable=SC2034  # FVLM_* arrays are read by the sourcing scripts

FASTVLM_ROOT=${FASTVLM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
FASTVLM_BUILD=${FASTVLM_BUILD:-$FASTVLM_ROOT/build}
FVLM_DEFAULTS=()
shopt -s extglob

fvlm_die() { echo "${0##*/}: $*" >&2; exit 2; }

# Prints DUR ("250us", "500ms", "2s", "1.5s", plain = ns) in nanoseconds, for the element's
# GstClockTime properties (gst-launch-1.0 only takes plain numbers there).
fvlm_duration_ns() {
    local re='^([0-9]+)(\.([0-9]+))?(ns|us|ms|s)?$' int frac unit digits
    [[ $1 =~ $re ]] || fvlm_die "not a duration: '$1' (e.g. 500ms, 2s, 1.5s)"
    int=${BASH_REMATCH[1]} frac=${BASH_REMATCH[3]} unit=${BASH_REMATCH[4]:-ns}
    case $unit in ns) digits=0 ;; us) digits=3 ;; ms) digits=6 ;; s) digits=9 ;; esac
    frac=${frac%%+(0)}
    ((${#frac} <= digits)) || fvlm_die "duration finer than 1 ns: '$1'"
    while ((${#frac} < digits)); do frac+=0; done
    echo $((10#$int * 10**digits + 10#${frac:-0}))
}

# Parses the common options; what is left (the script's own arguments) goes to FVLM_ARGS.
fvlm_parse_args() {
    local model=${FASTVLM_MODEL:-} mmproj=${FASTVLM_MMPROJ:-} config=${FASTVLM_CONFIG:-}
    local prompt=${FASTVLM_PROMPT:-} interval=${FASTVLM_INTERVAL:-}
    local -a opts=()
    read -r -a opts <<< "${FASTVLM_OPTIONS:-}"
    FVLM_ARGS=()
    while (($#)); do
        case "$1" in
            -m|--model) model=${2:?$1 needs a value}; shift 2 ;;
            -p|--mmproj) mmproj=${2:?$1 needs a value}; shift 2 ;;
            -c|--config) config=${2:?$1 needs a value}; shift 2 ;;
            -q|--prompt) prompt=${2:?$1 needs a value}; shift 2 ;;
            -i|--interval) interval=${2:?$1 needs a value}; shift 2 ;;
            -o|--option) opts+=("${2:?$1 needs a value}"); shift 2 ;;
            -h|--help) fvlm_usage; exit 0 ;;
            --) shift; FVLM_ARGS+=("$@"); break ;;
            -*) fvlm_die "unknown option $1 (try --help)" ;;
            *) FVLM_ARGS+=("$1"); shift ;;
        esac
    done
    if [ -z "$config" ]; then
        # No model given: the element's built-in demo model (models/fastvlm-demo*.gguf) when
        # it is shipped — the element finds it itself — else the tiny random test model.
        if [ -z "$model" ] && [ ! -f "$FASTVLM_ROOT/models/fastvlm-demo.gguf" ]; then
            model=$FASTVLM_BUILD/models/tiny.gguf
            mmproj=${mmproj:-$FASTVLM_BUILD/models/tiny-mmproj.gguf}
        fi
    else
        [ -f "$config" ] || fvlm_die "config file not found: $config"
    fi
    [ -z "$model" ] || [ -f "$model" ] ||
        fvlm_die "model not found: $model (make it with tests/run.sh or set FASTVLM_MODEL)"
    [ -z "$mmproj" ] || [ -f "$mmproj" ] ||
        fvlm_die "mmproj not found: $mmproj (set FASTVLM_MMPROJ)"

    if [ -z "${GST_PLUGIN_PATH:-}" ] && [ -f "$FASTVLM_BUILD/gst/libgstfastvlm.so" ]; then
        export GST_PLUGIN_PATH="$FASTVLM_BUILD/gst"
    fi
    gst-inspect-1.0 fastvlmcaption >/dev/null 2>&1 ||
        fvlm_die "element fastvlmcaption not found (build the plugin, or set GST_PLUGIN_PATH)"

    # A script's own defaults (FVLM_DEFAULTS, e.g. mode=live for a camera) come first, then
    # the preset, then explicit options: later properties on the element override earlier.
    FVLM_ELEMENT=(fastvlmcaption name=cap "${FVLM_DEFAULTS[@]}")
    [ -z "$config" ] || FVLM_ELEMENT+=("config=$config")
    [ -z "$model" ] || FVLM_ELEMENT+=("model=$model")
    [ -z "$mmproj" ] || FVLM_ELEMENT+=("mmproj=$mmproj")
    [ -z "$prompt" ] || FVLM_ELEMENT+=("prompt=$prompt")
    if [ -n "$interval" ]; then
        interval=$(fvlm_duration_ns "$interval") || exit 2
        FVLM_ELEMENT+=("interval=$interval")
    fi
    FVLM_ELEMENT+=("${opts[@]}")
}

# Prints the script's usage: its header comment up to the first blank line.
fvlm_usage() {
    sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"
}

# Runs gst-launch-1.0 with -e (Ctrl-C sends EOS, so subtitle files are finished cleanly).
fvlm_launch() {
    if [ -n "${FASTVLM_VERBOSE:-}" ]; then
        printf '%q ' gst-launch-1.0 -e "$@" >&2; echo >&2
    fi
    gst-launch-1.0 -e "$@"
}

# FVLM_SOURCE: decoded video from INPUT, a file name or a URI (file://, http://, rtsp://...).
fvlm_source_for() {
    local input=${1:?missing INPUT (a video file or URI)}
    if [[ $input == *://* ]]; then
        FVLM_SOURCE=(uridecodebin "uri=$input")
    else
        [ -f "$input" ] || fvlm_die "input not found: $input"
        FVLM_SOURCE=(filesrc "location=$input" ! decodebin)
    fi
    # The element converts/downscales the frames it samples itself; videoconvert only
    # bridges formats it does not take.
    FVLM_SOURCE+=(! videoconvert)
}

# FVLM_ENCODER: how output video is compressed (env FASTVLM_VIDEO_ENCODER, a launch
# fragment). VP8 is in Debian's gst-plugins-good; x264 would need the non-free "ugly" set.
fvlm_encoder() {
    read -r -a FVLM_ENCODER <<< "${FASTVLM_VIDEO_ENCODER:-vp8enc deadline=1 cpu-used=8}"
}
