"""scripts/gpu_check.sh: its steps, and its benchmark driver on the CPU (tiny sizes, CUDA rows skipped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def test_script_builds_nvdiffrast_from_a_folder_runs_the_cuda_tests_and_the_driver(tmp_path):
    log = tmp_path / "calls"
    fake = tmp_path / "python"  # records each call instead of running it
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(fake), "OUT": str(tmp_path / "rows.json")}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "nvdiffrast")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls == [f"-m pip install --no-build-isolation --no-deps {tmp_path / 'nvdiffrast'}",
                     "-c import pytest", "-m pytest -q -m cuda tests",
                     f"benchmarks/gpu_check.py --out {tmp_path / 'rows.json'}"]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path; scripts/gpu_check.sh runs the CUDA one")
def test_driver_writes_every_row_on_the_cpu_at_tiny_sizes(tmp_path):
    out = tmp_path / "rows.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert result["sizes"] == "tiny" and result["machine"]["cpu"]
    assert set(rows) == {"rnet_batch64", "render", "gan_bf16", "end_to_end", "person_finetune"}
    assert rows["rnet_batch64"] == {"skipped": "needs CUDA"}
    for name in ("render", "gan_bf16", "end_to_end"):
        assert rows[name]["frames"] == 25 and rows[name]["frames_per_second"] > 0
    assert rows["render"]["rasterizer"] == "torch"
    assert rows["gan_bf16"]["bf16"] is False and "bf16 needs CUDA" in rows["gan_bf16"]["note"]
    person = rows["person_finetune"]
    assert all(seconds > 0 for seconds in person["seconds"].values())
    assert person["total_seconds_projected"] >= sum(person["seconds"].values())
