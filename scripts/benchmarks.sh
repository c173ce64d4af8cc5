#!/usr/bin/env bash
# Run the per-stage benchmarks on this machine and record their JSON under benchmarks/results/.
#   bash scripts/benchmarks.sh            # the quick ones (a few minutes on 2 CPU cores)
#   bash scripts/benchmarks.sh --all      # also accuracy (recon, motion personalisation, GAN quality), 60-min motion
#                                         # and the real-clip loop (../shared/real) (hours on CPU)
# Each result names the machine it ran on (talkface/benchmarking.py). Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
export PYTHONUNBUFFERED=1

"$python" benchmarks/bench_mfcc.py
"$python" benchmarks/bench_rasterizer.py --threads 1 2
"$python" benchmarks/bench_rasterizer.py --threads 1 2 --mesh synthetic
"$python" benchmarks/bench_train_loop.py
"$python" benchmarks/bench_gan.py
"$python" benchmarks/bench_background.py
"$python" benchmarks/bench_landmarks.py              # dlib landmarks: synthetic truth, every clip of ../shared/real
"$python" -m talkface.cli bench                      # every stage at paper size -> results/pipeline_<cpu|cuda>.json
if [[ "${1:-}" == "--all" ]]; then
    "$python" benchmarks/bench_motion.py
    "$python" benchmarks/bench_motion_personal.py
    "$python" benchmarks/bench_recon.py
    "$python" benchmarks/bench_gan_quality.py
    "$python" benchmarks/bench_synth_mouth_loudness.py  # synthetic and real mouths against loudness
    "$python" benchmarks/bench_real_loop.py           # every real clip x speech file through the scripts (CPU profile)
fi
