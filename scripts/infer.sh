#!/usr/bin/env bash
# A video of a fine-tuned person saying AUDIO, with the audio muxed in.
#   scripts/infer.sh AUDIO NAME OUT.mp4 [--pose-source predicted|reference|still]
#                   [--head-motion-scale S] [--output full|face] [--seed N] [--set key=value ...]
# An unknown NAME lists the people that exist (scripts/finetune.sh makes them).
set -euo pipefail
if [[ $# -lt 3 ]]; then
    echo "usage: $0 AUDIO NAME OUT.mp4 [talkface infer options]" >&2
    exit 2
fi
audio=$1 name=$2 out=$3
shift 3
exec "${TALKFACE:-talkface}" infer "$audio" --person "$name" --out "$out" "$@"
