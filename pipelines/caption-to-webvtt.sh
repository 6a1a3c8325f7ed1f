#!/usr/bin/env bash
# pipelines/caption-to-webvtt.sh — caption a video file into a WebVTT subtitle file.
#
#   caption-to-webvtt.sh [options] INPUT [OUTPUT.vtt]
#     INPUT    a video file or URI; OUTPUT defaults to INPUT with .vtt
#     options  -m MODEL -p MMPROJ -c CONFIG.yaml -q PROMPT -i INTERVAL -o PROP=VALUE
#              (see pipelines/common.sh; models default to build/models/tiny*.gguf)
#   example: caption-to-webvtt.sh -c configs/fastvlm-0.5b.yaml holiday.mp4
#
# The element's text_src pad (timestamped text/x-raw captions + GAP events) feeds webvttenc;
# the video itself runs into fakesink as fast as the element lets it (a file is not live, so
# mode=auto captions every sampled frame). Not here: burning captions into the picture
# (overlay-to-file.sh) or keeping the video (caption-to-mkv.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fvlm_parse_args "$@"
set -- "${FVLM_ARGS[@]}"
(($# >= 1 && $# <= 2)) || { fvlm_usage >&2; exit 2; }
fvlm_source_for "$1"
out=${2:-${1%.*}.vtt}

fvlm_launch "${FVLM_SOURCE[@]}" ! "${FVLM_ELEMENT[@]}" ! fakesink sync=false \
    cap.text_src ! queue ! webvttenc ! filesink "location=$out"
echo "wrote $out"
