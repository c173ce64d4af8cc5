#!/usr/bin/env bash
# Make a person from one ~10 s clip: preprocess -> audio-to-motion fine-tune -> GAN fine-tune.
#   scripts/finetune.sh CLIP NAME [extra talkface finetune options, e.g. --set gan.epochs=30]
# Uses the general models named in configs/person.yaml (scripts/pretrain_lrw.sh makes them) and
# says which file is missing if one is. Every step is resumable: run the same command again after
# an interruption. The person lands in people/NAME; then run scripts/infer.sh AUDIO NAME OUT.mp4.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 CLIP NAME [talkface finetune options]" >&2
    exit 2
fi
clip=$1 name=$2
shift 2
exec "${TALKFACE:-talkface}" finetune "$clip" --name "$name" "$@"
