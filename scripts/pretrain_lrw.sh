#!/usr/bin/env bash
# Pretrain the general models on LRW: preprocessing, then audio-to-motion and GAN pretraining.
#   scripts/pretrain_lrw.sh LRW_ROOT [WORK_DIR]        (WORK_DIR default: data)
# With several local GPUs every step runs under torchrun, one process per GPU (preprocessing
# takes one shard per process). Every step is resumable: run the same command again after an
# interruption. The final checkpoints are copied to checkpoints/general/, where configs/person.yaml
# (talkface person) looks for them.
# Real LRW needs the R-Net and landmark weights of checkpoints/README.md; a synthetic LRW
# (talkface synth lrw) needs none. MOTION_CONFIG / GAN_CONFIG name other configs than the shipped
# configs/motion_lrw.yaml and configs/gan_lrw.yaml; CHECKPOINTS (default checkpoints) is where
# the general models go.
set -euo pipefail
if [[ $# -lt 1 ]]; then
    echo "usage: $0 LRW_ROOT [WORK_DIR]" >&2
    exit 2
fi
root=$1 work=${2:-data}
gpus=0
if command -v nvidia-smi > /dev/null; then
    gpus=$(nvidia-smi -L 2> /dev/null | grep -c "^GPU" || true)
fi
if [[ "$gpus" -gt 1 ]]; then
    run=(torchrun --standalone --nproc_per_node "$gpus" -m talkface.cli)
else
    run=("${TALKFACE:-talkface}")
fi
coeffs=recon
if compgen -G "$root/*/*/*.npz" > /dev/null; then
    coeffs=truth  # a synthetic LRW carries its true coefficients
fi

echo "[1/3] LRW preprocessing ($coeffs coefficients) -> $work/lrw_cache"
"${run[@]}" lrw preprocess "$root" --out "$work/lrw_cache" --coeffs "$coeffs"
echo "[2/3] audio-to-motion pretraining -> $work/runs/motion_lrw"
motion_config=(); [[ -n "${MOTION_CONFIG:-}" ]] && motion_config=(--config "$MOTION_CONFIG")
gan_config=(); [[ -n "${GAN_CONFIG:-}" ]] && gan_config=(--config "$GAN_CONFIG")
"${run[@]}" motion pretrain "${motion_config[@]}" --set "cache=$work/lrw_cache" --out "$work/runs/motion_lrw" --resume
echo "[3/3] GAN pretraining -> $work/runs/gan_lrw"
"${run[@]}" gan pretrain "${gan_config[@]}" --set "lrw_root=$root" --set "cache=$work/gan_cache" \
    --out "$work/runs/gan_lrw" --resume

general=${CHECKPOINTS:-checkpoints}/general
mkdir -p "$general"
for stage in motion_lrw gan_lrw; do
    latest=$(ls -1 "$work/runs/$stage/checkpoints"/step_*.pt | sort -V | tail -n 1)
    cp "$latest" "$general/$stage.pt.tmp" && mv "$general/$stage.pt.tmp" "$general/$stage.pt"
    echo "general model: $general/$stage.pt (from $latest)"
done
