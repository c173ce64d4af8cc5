#!/usr/bin/env bash
# Make a person from one ~10 s clip (or a photo): preprocess -> audio-to-motion fine-tune -> GAN fine-tune.
#   scripts/finetune.sh CLIP NAME [extra `talkface person` options, e.g. --set gan.epochs=30]
# The profile: --config YAML when given; else configs/person.yaml with a CUDA GPU (the paper's
# sizes) and configs/person_cpu.yaml without one (~15 min for 300 frames on 2 cores).
# Uses the general models the profile names (`talkface pretrain synthetic` makes them) and says
# which file is missing if one is. Every step is resumable: run the same command again after an
# interruption. The person lands in people/NAME; then run scripts/infer.sh AUDIO NAME OUT.mp4.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 CLIP NAME [talkface person options]" >&2
    exit 2
fi
clip=$1 name=$2
shift 2
profile=()
if [[ " $* " != *" --config "* && " $* " != *" --config="* ]]; then
    if ! nvidia-smi -L 2> /dev/null | grep -q "^GPU"; then
        profile=(--config "$(cd "$(dirname "$0")/.." && pwd)/configs/person_cpu.yaml")
        echo "no CUDA GPU: the CPU profile configs/person_cpu.yaml (pass --config to choose another)" >&2
    fi
fi
exec "${TALKFACE:-talkface}" person "$clip" --person "$name" "${profile[@]}" "$@"
