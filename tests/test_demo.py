"""`talkface demo` at toy size: every stage runs, the video and the report appear, a re-run skips all.

The shipped configs/demo.yaml is the real thing (about 10 minutes on 2 CPU cores); this shrinks
each stage to a few steps on top of it, so what is tested is the wiring, not the quality (the
quality of each stage has its own tests and benchmarks/).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from talkface.cli import main as cli
from talkface.media import probe_video, read_audio

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
TOY = """_base_: {shipped}
world:
  person_seconds: 5.0
  clip_frames: 100
  frame_size: 128
  motion_words: 3
  motion_clips_per_word: 2
  render_words: 2
  render_clips_per_word: 1
  render_size: 64
  engine: builtin
recon:
  train: {{steps: 1, batch_size: 2, checkpoint_every: 1, device: cpu}}
motion_pretrain:
  val_clips: 2
  network: {{channels: [8, 8, 16, 16, 16], fc_sizes: [32, 32], lstm_hidden: 16, lstm_layers: 1}}
  train: {{steps: 4, batch_size: 4, checkpoint_every: 4, eval_every: 4, device: cpu}}
gan_pretrain:
  window_size: 64
  model: {{ngf: 8, ndf: 8, memory_size: 32}}
  train: {{steps: 2, batch_size: 2, checkpoint_every: 2, device: cpu}}
person:
  preprocess: {{frames: 100, window_size: 64, device: cpu, refine: {{steps: 20}}}}
  motion: {{epochs: 1, train: {{device: cpu}}}}
  gan: {{train_frames: 100, val_frames: 20, epochs: 1, epoch_frames: 1, train: {{batch_size: 8, device: cpu}}}}
infer:
  device: cpu
"""


def test_demo_makes_the_video_and_the_report_and_resumes(tmp_path, capsys):
    config = tmp_path / "toy_demo.yaml"
    config.write_text(TOY.format(shipped=REPO / "configs" / "demo.yaml"))
    out = tmp_path / "demo"
    assert cli(["demo", "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for stage in ("world", "recon", "lrw_cache", "motion_pretrain", "gan_pretrain", "person", "reference", "infer",
                  "report"):
        assert f"{stage:<16}ran" in printed

    heldout = len(read_audio(out / "world" / "heldout.wav")) / 16000
    video = probe_video(out / "demo.mp4")
    assert video.has_audio and video.fps == pytest.approx(25.0)
    assert video.duration_s == pytest.approx(heldout, abs=0.1)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("lmd_finetuned", "lmd_pretrained", "lmd_mean_expression", "pose_statistics_distance"):
        assert metrics["motion"][key] >= 0.0
    assert {"psnr_gan", "psnr_render", "ssim_gan", "ssim_render"} <= set(metrics["gan"])
    assert set(metrics["checks"]) and all(isinstance(v, bool) for v in metrics["checks"].values())
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and "demo.mp4" in report

    assert cli(["demo", "--config", str(config), "--out", str(out)]) == 0  # everything is already done
    again = capsys.readouterr().out
    assert again.count("skipped") == 9 and " ran " not in again
