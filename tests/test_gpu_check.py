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
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "nvdiffrast"),
                           "--gan-budget-s", "60"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls == [f"-m pip install --no-build-isolation --no-deps {tmp_path / 'nvdiffrast'}",
                     "-c import pytest", "-m pytest -q -m cuda tests",
                     f"benchmarks/gpu_check.py --out {tmp_path / 'rows.json'} --gan-budget-s 60"]
    log.unlink()  # without a folder, the options go straight to the driver
    assert subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--rows", "render"], env=env).returncode == 0
    assert log.read_text().splitlines()[-1] == f"benchmarks/gpu_check.py --out {tmp_path / 'rows.json'} --rows render"


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


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path; scripts/gpu_check.sh runs the CUDA one")
def test_real_heldout_row_keeps_what_a_later_rescore_reads(tmp_path, tiny_general_motion):
    """The row a GPU machine runs without dlib: held-out figures, and a tar of the run that rescore() takes."""
    import tarfile

    import numpy as np

    from talkface.pipelines.heldout import rescore
    from talkface.synth.world import write_person

    person = write_person(tmp_path / "person", seconds=5.0, seed=5, size=128, engine="builtin", progress=False)
    out, kept = tmp_path / "rows.json", tmp_path / "kept.tar"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--rows", "--out", str(out),
                           "--real-clip", str(person / "clip.mp4"), "--real-landmarks",
                           str(person / "truth" / "landmarks.npy"), "--motion-general", str(tiny_general_motion),
                           "--keep", str(kept)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(out.read_text())["rows"]["real_heldout"]
    assert row["gan_epochs"] == 1 and (row["train_frames"], row["heldout_frames"]) == (93, 32)
    assert row["audio_driven"]["finetuned"]["lmd_224"] > 0 and "psnr_gain_db" in row["reconstruction"]
    with tarfile.open(kept) as tar:
        tar.extractall(tmp_path / "run", filter="data")
    assert {p.name for p in (tmp_path / "run" / "videos").iterdir()} == {
        "finetuned.mp4", "mean_expression.mp4", "general.mp4", "own_expression.mp4"}

    class Blind:  # finds no face: the figures a detector would replace are dropped, not kept stale
        def detect(self, frames: np.ndarray) -> np.ndarray:
            return np.full((len(frames), 68, 2), np.nan, np.float32)

    rescored = rescore(tmp_path / "run", Blind())
    assert "lmd" not in rescored["audio_driven"]["finetuned"] and rescored["rescored"]["detector"] == "Blind"
