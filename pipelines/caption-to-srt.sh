#!/usr/bin/env bash
# pipelines/caption-to-srt.sh — caption a video file into a SubRip (.srt) subtitle file.
#
#   caption-to-srt.sh [options] INPUT [OUTPUT.srt]
#     INPUT    a video file or URI; OUTPUT defaults to INPUT with .srt
#     options  -m MODEL -p MMPROJ -c CONFIG.yaml -q PROMPT -i INTERVAL -o PROP=VALUE
#              (see pipelines/common.sh; models default to build/models/tiny*.gguf)
#   example: caption-to-srt.sh -i 2s -q "What is the person doing?" talk.mkv
#
# Same as caption-to-webvtt.sh with srtenc (gst-plugins-bad "subenc") in place of webvttenc.
# Not here: subtitles inside the video file (caption-to-mkv.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fvlm_parse_args "$@"
set -- "${FVLM_ARGS[@]}"
(($# >= 1 && $# <= 2)) || { fvlm_usage >&2; exit 2; }
fvlm_source_for "$1"
out=${2:-${1%.*}.srt}

fvlm_launch "${FVLM_SOURCE[@]}" ! "${FVLM_ELEMENT[@]}" ! fakesink sync=false \
    cap.text_src ! queue ! srtenc ! filesink "location=$out"
echo "wrote $out"
