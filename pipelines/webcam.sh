#!/usr/bin/env bash
# pipelines/webcam.sh — caption a V4L2 camera live, in a window.
#
#   webcam.sh [options] [DEVICE]
#     DEVICE   camera device (default /dev/video0)
#     options  -m MODEL -p MMPROJ -c CONFIG.yaml -q PROMPT -i INTERVAL -o PROP=VALUE
#              (see pipelines/common.sh; models default to build/models/tiny*.gguf)
#     env      FASTVLM_VIDEO_SINK     sink fragment (default: autovideosink)
#              FASTVLM_CAMERA_SOURCE  source fragment replacing "v4l2src device=DEVICE"
#   example: webcam.sh -c configs/fast-edge.yaml /dev/video2
#
# Needs a camera and a display: not runnable in CI (the tests run everything after the camera
# with FASTVLM_CAMERA_SOURCE="videotestsrc is-live=true ..." and FASTVLM_VIDEO_SINK=fakesink).
# The element runs with mode=live: video is never held back by the model, the latest frame
# wins, captions are dropped when later than max-latency. Camera caps are left to
# negotiation; a 640x480 request keeps USB bandwidth and conversion cheap.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
FVLM_DEFAULTS=(mode=live)
fvlm_parse_args "$@"
set -- "${FVLM_ARGS[@]}"
(($# <= 1)) || { fvlm_usage >&2; exit 2; }
device=${1:-/dev/video0}
if [ -n "${FASTVLM_CAMERA_SOURCE:-}" ]; then
    read -r -a src <<< "$FASTVLM_CAMERA_SOURCE"
else
    [ -e "$device" ] || fvlm_die "no camera at $device"
    src=(v4l2src "device=$device"
        ! "video/x-raw,width=640,height=480;image/jpeg,width=640,height=480" ! decodebin)
fi
read -r -a sink <<< "${FASTVLM_VIDEO_SINK:-autovideosink}"

fvlm_launch "${src[@]}" ! videoconvert ! "${FVLM_ELEMENT[@]}" ! queue \
    ! textoverlay name=ov wait-text=false valignment=bottom \
        font-desc="Sans, 18" \
    ! videoconvert ! "${sink[@]}" \
    cap.text_src ! queue ! ov.text_sink
