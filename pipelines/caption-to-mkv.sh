#!/usr/bin/env bash
# pipelines/caption-to-mkv.sh — caption a video and write it to Matroska with the captions
# as a subtitle track (players show it as a switchable subtitle; the picture is untouched).
#
#   caption-to-mkv.sh [options] INPUT [OUTPUT.mkv]
#     INPUT    a video file or URI; OUTPUT defaults to INPUT-captioned.mkv
#     options  -m MODEL -p MMPROJ -c CONFIG.yaml -q PROMPT -i INTERVAL -o PROP=VALUE
#              (see pipelines/common.sh; models default to build/models/tiny*.gguf)
#     env      FASTVLM_VIDEO_ENCODER  video encoder fragment (default: vp8enc deadline=1 cpu-used=8)
#   example: caption-to-mkv.sh -c configs/fastvlm-0.5b.yaml holiday.mp4 holiday-captioned.mkv
#
# The video is decoded for the element and re-encoded; audio is not carried over. The
# text_src pad goes to a matroskamux subtitle pad (S_TEXT/UTF8). Not here: burned-in text
# (overlay-to-file.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fvlm_parse_args "$@"
set -- "${FVLM_ARGS[@]}"
(($# >= 1 && $# <= 2)) || { fvlm_usage >&2; exit 2; }
fvlm_source_for "$1"
fvlm_encoder
out=${2:-${1%.*}-captioned.mkv}

fvlm_launch "${FVLM_SOURCE[@]}" ! "${FVLM_ELEMENT[@]}" ! queue ! videoconvert \
    ! "${FVLM_ENCODER[@]}" ! queue ! mux. \
    cap.text_src ! queue ! mux. \
    matroskamux name=mux ! filesink "location=$out"
echo "wrote $out"
