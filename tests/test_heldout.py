"""`talkface heldout` at tiny size on a synthetic person: the split, every figure and baseline, the report.

The synthetic truth landmarks stand in for the detector (--landmarks), so the real frames' landmarks
are known exactly and the split can be checked against them. The general motion model is a few
steps of pretraining on a frameless synthetic LRW: what is under test is the evaluation, not quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from talkface.cli import main as cli
from talkface.face3d.coeffs import EXPRESSION, MOTION_EXPRESSION, MOTION_POSE
from talkface.media import count_frames, probe_video, write_video
from talkface.speech.recognition import RECOGNISERS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
SECONDS = 5.0  # 125 frames: the default split fine-tunes on 75 % (93) and scores the last 32
TRAIN, TOTAL = 93, 125
ROWS, TILE = 3, 64


def tiny_config(folder: Path, general: Path) -> Path:
    path = folder / "heldout_tiny.yaml"
    path.write_text(f"""_base_: {REPO / 'configs' / 'heldout.yaml'}
sheet_rows: {ROWS}
sheet_tile: {TILE}
person:
  preprocess:
    window_size: 64
    rnet: null                    # direct fitting: no R-Net weights on a fresh machine
    morphable_model: synthetic
    device: cpu
    refine: {{steps: 60}}
  motion:
    pretrained: {general}
    epochs: 2
    train: {{device: cpu, eval_every: 1000}}
  gan:
    pretrained: null
    val_frames: 10
    epochs: 1
    epoch_frames: 1
    model: {{ngf: 8, ndf: 8, memory_size: 32}}
    train: {{batch_size: 8, device: cpu}}
infer:
  device: cpu
""")
    return path


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_general_motion) -> dict:
    from talkface.synth.world import write_person

    root = tmp_path_factory.mktemp("heldout")
    person = write_person(root / "person", seconds=SECONDS, seed=5, size=128, engine="builtin", progress=False)
    config = tiny_config(root, tiny_general_motion)
    out = root / "eval"
    assert cli(["heldout", str(person / "clip.mp4"), "--out", str(out), "--landmarks",
                str(person / "truth" / "landmarks.npy"), "--config", str(config)]) == 0
    return {"out": out, "person": person, "result": json.loads((out / "heldout.json").read_text())}


@pytest.mark.slow
def test_the_json_has_every_figure_for_the_fine_tuned_model_and_each_baseline(evaluated):
    result = evaluated["result"]
    assert (result["frames"], result["train_frames"], result["heldout_frames"]) == (TOTAL, TRAIN, TOTAL - TRAIN)
    variants = result["audio_driven"]
    assert set(variants) == {"finetuned", "mean_expression", "general", "still", "own_expression"}
    for name, figures in variants.items():
        for key in ("lmd", "lmd_224", "face_lmd", "psnr", "ssim", "pose_stats_distance", "generated_pose_std_y"):
            assert figures[key] is not None and figures[key] >= 0.0, (name, key)
        assert figures["frames"] == TOTAL - TRAIN
        assert figures["frames_without_face"] == 0
    assert variants["still"]["mouth_open_r"] is None  # a mouth held still has no correlation
    assert -1.0 <= variants["finetuned"]["mouth_open_r"] <= 1.0
    recon = result["reconstruction"]
    assert recon["psnr_gain_db"] == pytest.approx(recon["psnr_gan"] - recon["psnr_render"])
    assert 0.0 < recon["ssim_render"] <= 1.0 and 0.0 < recon["ssim_gan"] <= 1.0
    assert result["identity"]["train_spread_mm"] == pytest.approx(0.0, abs=1e-3)  # one identity per clip fit
    assert 0.0 < result["identity"]["heldout_change_mm"] < 50.0
    assert result["viseme_mouth"]["recogniser"] in RECOGNISERS and 0.0 <= result["viseme_mouth"]["weight"] <= 1.0
    assert set(result["checks"]) == {"mouth lmd: fine-tuned < mean_expression", "mouth lmd: fine-tuned < general",
                                     "mouth lmd: fine-tuned < still", "gan psnr >= composited render + 3 dB"}
    report = (evaluated["out"] / "report.md").read_text()
    assert "baseline: general model" in report and "contact_sheet.png" in report
    assert f"phones heard as {result['viseme_mouth']['recogniser']}" in report


@pytest.mark.slow
def test_the_baselines_are_scored_on_the_held_out_frames(evaluated):
    """The real landmarks are the truth's last 32 frames; each figure is recomputable from the saved arrays."""
    from talkface.metrics import lmd
    from talkface.recon.track import clean_track
    from talkface.workspace import Workspace

    out, result = evaluated["out"], evaluated["result"]
    truth = np.load(evaluated["person"] / "truth" / "landmarks.npy")
    arrays = np.load(out / "heldout_arrays.npz")
    real = arrays["real_landmarks"]
    assert real.shape == (TOTAL - TRAIN, 68, 2)
    # preprocess's clean-up of the truth of exactly the held-out frames, not of a shifted range
    np.testing.assert_allclose(real, clean_track(truth[TRAIN:TOTAL]), atol=1e-4)
    assert np.abs(real - clean_track(truth[TRAIN - 1:TOTAL - 1])).max() > 0.1
    training = np.asarray(Workspace(out / "people" / "person").load_array("coeffs.npy"))
    assert len(training) == TRAIN  # fine-tuned on the first frames only
    mean_expression = arrays["mean_expression_motion"]
    assert mean_expression.shape == (TOTAL - TRAIN, 70)
    np.testing.assert_allclose(mean_expression[:, MOTION_EXPRESSION],
                               np.broadcast_to(training[:, EXPRESSION].mean(0), (32, 64)), atol=1e-5)
    for name, figures in result["audio_driven"].items():
        assert figures["lmd"] == pytest.approx(lmd(arrays[f"{name}_landmarks"], real), rel=1e-6), name
    np.testing.assert_allclose(arrays["still_landmarks"], np.broadcast_to(truth[0], real.shape), atol=0.5)
    for name in ("finetuned", "mean_expression", "general", "own_expression"):
        assert count_frames(out / "videos" / f"{name}.mp4") == TOTAL - TRAIN
        assert probe_video(out / "videos" / f"{name}.mp4").has_audio


@pytest.mark.slow
def test_every_rendered_variant_is_drawn_on_the_fine_tuned_pose_and_differs_in_the_mouth(evaluated):
    """Mouth LMD compares mouths: the baselines and the ceiling share the fine-tuned prediction's head pose."""
    from talkface.workspace import Workspace

    out, result = evaluated["out"], evaluated["result"]
    arrays = np.load(out / "heldout_arrays.npz")
    pose = arrays["finetuned_motion"][:, MOTION_POSE]
    for name in ("mean_expression", "general", "own_expression"):
        np.testing.assert_allclose(arrays[f"{name}_motion"][:, MOTION_POSE], pose, atol=1e-5, err_msg=name)
    own = Workspace(out / "heldout" / "workspace").load_array("coeffs.npy")[:, EXPRESSION]
    np.testing.assert_allclose(arrays["own_expression_motion"][:, MOTION_EXPRESSION], own, atol=1e-5)
    assert not np.allclose(arrays["general_motion"][:, MOTION_EXPRESSION],
                           arrays["finetuned_motion"][:, MOTION_EXPRESSION], atol=1e-3)
    # The held-out frames' own expression, drawn, is closer to their mouths than the mean mouth is.
    variants = result["audio_driven"]
    assert variants["own_expression"]["lmd"] < variants["mean_expression"]["lmd"]
    assert not any("own_expression" in check for check in result["checks"])  # a ceiling, not a baseline


@pytest.mark.slow
def test_the_contact_sheet_has_a_row_per_sampled_frame_and_four_columns(evaluated):
    sheet = cv2.imread(str(evaluated["out"] / "contact_sheet.png"))
    assert sheet.shape == (ROWS * TILE, 4 * TILE, 3)
    real_tile, gan_tile = sheet[:TILE, :TILE].astype(float), sheet[:TILE, 2 * TILE:3 * TILE].astype(float)
    assert real_tile.std() > 10 and np.abs(real_tile - gan_tile).mean() > 1  # images, and not one image twice


class _Detector:
    """A landmark backend that finds the given landmarks in every frame, or no face (None)."""

    def __init__(self, landmarks: np.ndarray | None):
        self.landmarks = landmarks

    def detect(self, frames: np.ndarray) -> np.ndarray:
        if self.landmarks is None:
            return np.full((len(frames), 68, 2), np.nan, np.float32)
        return self.landmarks[:len(frames)].astype(np.float32)


@pytest.mark.slow
def test_a_rescored_run_takes_the_detector_landmarks_of_each_generated_video(evaluated):
    from talkface.pipelines.heldout import rescore

    real = np.load(evaluated["out"] / "heldout_arrays.npz")["real_landmarks"]
    before = evaluated["result"]["audio_driven"]
    perfect = rescore(evaluated["out"], _Detector(real))
    videos = perfect["rescored"]["videos"]
    assert set(videos) == {"finetuned", "mean_expression", "general", "own_expression"}
    scale = before["finetuned"]["lmd_224"] / before["finetuned"]["lmd"]
    for name in videos:  # each video now reads as the real mouth itself (smoothed once more, as detections are)
        figures = perfect["audio_driven"][name]
        assert figures["lmd"] < 0.05 and figures["lmd_224"] == pytest.approx(figures["lmd"] * scale)
        assert figures["mouth_open_r"] == pytest.approx(1.0, abs=1e-3) and before[name]["lmd"] > 0.1
        assert figures["frames_without_face"] == 0 and figures["psnr"] == before[name]["psnr"]
    assert perfect["audio_driven"]["still"] == before["still"]  # no video: the first frame's own landmarks
    assert perfect["checks"]["mouth lmd: fine-tuned < still"] and not perfect["checks"]["mouth lmd: fine-tuned < general"]
    blind = rescore(evaluated["out"], _Detector(None))
    for name in videos:
        assert "lmd" not in blind["audio_driven"][name]
        assert blind["audio_driven"][name]["frames_without_face"] == TOTAL - TRAIN
    assert json.loads((evaluated["out"] / "heldout.json").read_text()) == evaluated["result"]  # nothing written


def test_a_clip_too_short_to_hold_out_a_second_is_a_one_line_error(tmp_path, capsys):
    clip = tmp_path / "short.mp4"
    frames = np.full((40, 64, 64, 3), 128, np.uint8)
    write_video(clip, frames, audio=(np.zeros(40 * 640, np.float32), 16000))
    assert cli(["heldout", str(clip), "--out", str(tmp_path / "out"), "--train-frames", "30"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "short.mp4" in error and "10 held-out frames" in error
    assert not (tmp_path / "out").exists()


def test_a_clip_without_audio_is_a_one_line_error(tmp_path, capsys):
    clip = tmp_path / "silent.mp4"
    write_video(clip, np.full((60, 64, 64, 3), 128, np.uint8))
    assert cli(["heldout", str(clip), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "silent.mp4" in error


def fake_run(lmd: dict[str, float], gain: float) -> dict:
    """A run's figures as run_heldout returns them, with its checks computed as it computes them."""
    from talkface.pipelines.heldout import checks

    figures = {"audio_driven": {name: {"lmd": value, "lmd_224": 2 * value, "mouth_open_r": 0.1}
                                for name, value in lmd.items()},
               "reconstruction": {"psnr_gain_db": gain}}
    return {**figures, "checks": checks(figures)}


def test_the_seed_summary_spreads_every_figure_and_checks_each_run_and_the_means():
    from talkface.pipelines.heldout import seed_summary

    runs = {0: fake_run({"finetuned": 1.0, "mean_expression": 1.2, "general": 1.5, "still": 3.0,
                         "own_expression": 0.8}, 3.5),
            4: fake_run({"finetuned": 1.6, "mean_expression": 1.5, "general": 1.7, "still": 3.0,
                         "own_expression": 1.4}, 2.9)}
    summary = seed_summary(runs)
    assert summary["seeds"] == [0, 4] and summary["passing_seeds"] == [0]
    finetuned = summary["audio_driven"]["finetuned"]
    assert finetuned["lmd"] == pytest.approx({"mean": 1.3, "min": 1.0, "max": 1.6})
    assert finetuned["lmd_224"] == pytest.approx({"mean": 2.6, "min": 2.0, "max": 3.2})
    assert summary["audio_driven"]["own_expression"]["lmd"]["mean"] == pytest.approx(1.1)
    assert summary["gan_psnr_gain_db"] == pytest.approx({"mean": 3.2, "min": 2.9, "max": 3.5})
    assert summary["checks_per_seed"]["4"]["mouth lmd: fine-tuned < mean_expression"] is False
    # The means: 1.3 < 1.35 (mean mouth) < 1.6 (general) < 3.0 (still); 3.2 dB over the render.
    assert all(summary["checks_of_the_means"].values()) and len(summary["checks_of_the_means"]) == 4


def test_heldout_seeds_fine_tunes_each_seed_in_its_own_folder_and_writes_the_summary(tmp_path, monkeypatch, capsys):
    import talkface.pipelines.heldout as heldout

    calls = []

    def run(clip, out, config, progress=True, say=print):
        calls.append((Path(out).name, config.person.motion.train.seed, config.person.gan.train.seed))
        return fake_run({"finetuned": 1.0, "mean_expression": 1.2, "general": 1.5, "still": 3.0,
                         "own_expression": 0.8}, 3.5)

    monkeypatch.setattr(heldout, "run_heldout", run)
    out = tmp_path / "eval"
    assert cli(["heldout", str(tmp_path / "clip.mp4"), "--out", str(out), "--seeds", "3", "5"]) == 0
    assert calls == [("seed_3", 3, 3), ("seed_5", 5, 5)]
    summary = json.loads((out / "seeds.json").read_text())
    assert summary["seeds"] == [3, 5] and summary["passing_seeds"] == [3, 5]
    printed = capsys.readouterr().out
    assert "finetuned" in printed and "every check passes on seeds [3, 5] of [3, 5]" in printed


def test_the_shipped_configs_load_and_the_cpu_one_keeps_the_split_and_takes_the_cpu_person():
    from talkface.config import load_config
    from talkface.pipelines.heldout import HeldoutConfig
    from talkface.pipelines.person import PersonConfig

    default = load_config(HeldoutConfig, REPO / "configs" / "heldout.yaml", [])
    cpu = load_config(HeldoutConfig, REPO / "configs" / "heldout_cpu.yaml", [])
    person_cpu = load_config(PersonConfig, REPO / "configs" / "person_cpu.yaml", [])
    assert (default.train_frames, default.max_train_frames, default.train_fraction) == (None, 300, 0.75)
    assert cpu.person.preprocess == person_cpu.preprocess and cpu.person.motion == person_cpu.motion
    assert cpu.person.gan.epochs == person_cpu.gan.epochs and cpu.person.gan.val_frames == 16 == default.person.gan.val_frames
