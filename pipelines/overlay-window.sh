#!/usr/bin/env bash
# pipelines/overlay-window.sh — watch a video (or a test pattern) with live captions in a window.
#
#   overlay-window.sh [options] [INPUT]
#     INPUT    a video file or URI; without it a live test pattern (videotestsrc) is shown
#     options  -m MODEL -p MMPROJ -c CONFIG.yaml -q PROMPT -i INTERVAL -o PROP=VALUE
#              (see pipelines/common.sh; models default to build/models/tiny*.gguf)
#     env      FASTVLM_VIDEO_SINK  sink fragment (default: autovideosink)
#   example: overlay-window.sh -c configs/fast-edge.yaml
#
# Needs a display: not runnable on a headless CI machine (the tests run it with
# FASTVLM_VIDEO_SINK=fakesink, which checks everything but the window). mode=live by default,
# so playback runs at real speed and captions follow the latest frame; a preset or -o can
# override it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
FVLM_DEFAULTS=(mode=live)
fvlm_parse_args "$@"
set -- "${FVLM_ARGS[@]}"
(($# <= 1)) || { fvlm_usage >&2; exit 2; }
if (($# == 1)); then
    fvlm_source_for "$1"
else
    FVLM_SOURCE=(videotestsrc is-live=true pattern=ball
        ! "video/x-raw,width=640,height=480,framerate=30/1" ! videoconvert)
fi
read -r -a sink <<< "${FASTVLM_VIDEO_SINK:-autovideosink}"

fvlm_launch "${FVLM_SOURCE[@]}" ! "${FVLM_ELEMENT[@]}" ! queue \
    ! textoverlay name=ov wait-text=false valignment=bottom \
        font-desc="Sans, 18" \
    ! videoconvert ! "${sink[@]}" \
    cap.text_src ! queue ! ov.text_sink
