"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module on one torch thread: tiny tensors gain nothing from threads, and on a busy
    2-core machine OpenMP threads stall each other (10-30x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_general_motion(tmp_path_factory) -> Path:
    """A few steps of motion pretraining on a tiny frameless synthetic LRW (a 'general model' run folder)."""
    from talkface.cli import main as cli
    from talkface.synth.world import write_lrw

    root = tmp_path_factory.mktemp("general_motion")
    lrw = root / "lrw"
    write_lrw(lrw, words=2, clips_per_word=2, seed=3, splits=("train", "val"), engine="builtin", progress=False,
              with_frames=False)
    assert cli(["lrw", "preprocess", str(lrw), "--out", str(root / "cache"), "--coeffs", "truth",
                "--quiet"]) == 0
    run = root / "motion_lrw"
    assert cli(["motion", "pretrain", "--set", f"cache={root / 'cache'}", "--set", f"run_dir={run}",
                "--set", "epochs=null", "--set", "val_clips=2", "--set", "network.channels=[8, 8, 16, 16, 16]",
                "--set", "network.fc_sizes=[32, 32]", "--set", "network.lstm_hidden=16",
                "--set", "network.lstm_layers=1", "--set", "train.steps=2", "--set", "train.batch_size=4",
                "--set", "train.num_workers=0", "--set", "train.device=cpu", "--set", "train.eval_every=2",
                "--set", "train.checkpoint_every=2"]) == 0
    return run
