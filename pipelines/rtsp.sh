#!/usr/bin/env bash
# pipelines/rtsp.sh — caption an RTSP camera or stream; captions as WebVTT on stdout or a file.
#
#   rtsp.sh [options] [--frames N] URL [OUTPUT.vtt]
#     URL         rtsp://host:port/path
#     OUTPUT      WebVTT file; without it (or "-") cues are printed on stdout as they come
#     --frames N  stop cleanly (EOS) after N decoded frames; default: run until Ctrl-C
#     options     -m MODEL -p MMPROJ -c CONFIG.yaml -q PROMPT -i INTERVAL -o PROP=VALUE
#                 (see pipelines/common.sh; models default to build/models/tiny*.gguf)
#     env         FASTVLM_RTSP_PROTOCOLS  rtspsrc protocols (e.g. tcp behind NAT/firewalls)
#                 FASTVLM_RTSP_LATENCY    jitterbuffer latency in ms (default 200)
#   example: rtsp.sh -c configs/fast-edge.yaml rtsp://192.168.1.20:554/stream1
#
# A network stream is live: the element picks live mode (latest frame wins, bounded
# latency), and rtspsrc's framerate=0/1 caps are fine since sampling follows running time.
# Not here: re-serving the captioned stream.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
frames=
args=()
while (($#)); do
    case "$1" in
        --frames) frames=${2:?--frames needs a value}; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
fvlm_parse_args "${args[@]}"
set -- "${FVLM_ARGS[@]}"
(($# >= 1 && $# <= 2)) || { fvlm_usage >&2; exit 2; }
[[ $1 == rtsp://* || $1 == rtsps://* || $1 == rtspt://* ]] || fvlm_die "not an RTSP URL: $1"
[[ -z $frames || $frames =~ ^[1-9][0-9]*$ ]] || fvlm_die "--frames needs a positive number"

src=(rtspsrc "location=$1" "latency=${FASTVLM_RTSP_LATENCY:-200}")
[ -z "${FASTVLM_RTSP_PROTOCOLS:-}" ] || src+=("protocols=$FASTVLM_RTSP_PROTOCOLS")
limit=()
[ -z "$frames" ] || limit=(! identity "eos-after=$frames")
if [ -z "${2:-}" ] || [ "$2" = - ]; then
    sink=(fdsink fd=1 sync=false)
else
    sink=(filesink "location=$2")
fi

# -q keeps gst-launch's own chatter off stdout, where the cues go.
fvlm_launch -q "${src[@]}" ! decodebin ! videoconvert "${limit[@]}" ! "${FVLM_ELEMENT[@]}" \
    ! fakesink sync=false \
    cap.text_src ! queue ! webvttenc ! "${sink[@]}"
