#!/usr/bin/env bash
# pipelines/overlay-to-file.sh — burn the captions into the picture and write a video file.
#
#   overlay-to-file.sh [options] INPUT [OUTPUT.mkv]
#     INPUT    a video file or URI; OUTPUT defaults to INPUT-overlay.mkv (Matroska)
#     options  -m MODEL -p MMPROJ -c CONFIG.yaml -q PROMPT -i INTERVAL -o PROP=VALUE
#              (see pipelines/common.sh; models default to build/models/tiny*.gguf)
#     env      FASTVLM_VIDEO_ENCODER  video encoder fragment (default: vp8enc deadline=1 cpu-used=8)
#              FASTVLM_FONT           Pango font for the captions (default: Sans, 14)
#              FASTVLM_OVERLAY        "textoverlay" (default) or "element" (see below)
#   example: overlay-to-file.sh -i 1s street.mp4 street-captioned.mkv
#
# textoverlay's text_sink is fed from the element's text_src pad: each caption is shown from
# the frame it describes for its duration, and the element's GAP events let textoverlay
# (wait-text=true) pass video on between captions. With FASTVLM_OVERLAY=element the element
# draws the latest caption itself (overlay=true; no textoverlay, fixed style). Every input
# frame reaches the output either way.
# Not here: a live window (overlay-window.sh), a soft subtitle track (caption-to-mkv.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fvlm_parse_args "$@"
set -- "${FVLM_ARGS[@]}"
(($# >= 1 && $# <= 2)) || { fvlm_usage >&2; exit 2; }
fvlm_source_for "$1"
fvlm_encoder
out=${2:-${1%.*}-overlay.mkv}

case "${FASTVLM_OVERLAY:-textoverlay}" in
    element)
        fvlm_launch "${FVLM_SOURCE[@]}" ! "${FVLM_ELEMENT[@]}" overlay=true ! queue \
            ! videoconvert ! "${FVLM_ENCODER[@]}" ! matroskamux ! filesink "location=$out"
        echo "wrote $out"; exit 0 ;;
    textoverlay) ;;
    *) fvlm_die "FASTVLM_OVERLAY must be textoverlay or element" ;;
esac
fvlm_launch "${FVLM_SOURCE[@]}" ! "${FVLM_ELEMENT[@]}" ! queue \
    ! textoverlay name=ov wait-text=true valignment=bottom \
        "font-desc=${FASTVLM_FONT:-Sans, 14}" \
    ! videoconvert ! "${FVLM_ENCODER[@]}" ! matroskamux ! filesink "location=$out" \
    cap.text_src ! queue ! ov.text_sink
echo "wrote $out"
