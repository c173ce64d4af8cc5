#!/usr/bin/env bash
# One command for a CUDA machine: the CUDA tests, nvdiffrast from a local source folder (optional), and
# every GPU benchmark row -> benchmarks/results/gpu_check_cuda.json (benchmarks/gpu_check.py says which),
# in about 5 minutes on one H200 (benchmarks/README.md, "CUDA").
#   scripts/gpu_check.sh [NVDIFFRAST_SOURCE_FOLDER] [gpu_check.py options, e.g. --real-clip C --real-landmarks L]
# Runs from this source tree (PYTHONPATH=., nothing of the project is installed); PYTHON names the
# interpreter (default python3), OUT another result file. Without CUDA the same steps run at tiny sizes
# with the CUDA tests and CUDA-only rows skipped, writing benchmarks/results/gpu_check_cpu.json.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
start=$SECONDS tests_failed=0

if [[ $# -ge 1 && $1 != -* ]]; then
    echo "[1/3] nvdiffrast from $1"
    "$python" -m pip install --no-build-isolation --no-deps "$1"
    shift
else
    echo "[1/3] nvdiffrast: no source folder given (the rasterizer 'auto' uses it only if it is installed)"
fi

echo "[2/3] CUDA tests (pytest -m cuda)"
if "$python" -c "import pytest" 2> /dev/null; then
    "$python" -m pytest -q -m cuda tests || tests_failed=$?  # the rows are still worth writing
else
    echo "pytest is not installed for $python: CUDA tests not run" >&2
fi

echo "[3/3] GPU benchmark rows"
"$python" benchmarks/gpu_check.py ${OUT:+--out "$OUT"} "$@"
echo "gpu_check: done in $((SECONDS - start)) s"
exit "$tests_failed"
