"""LRW preprocessing, pretraining, fine-tuning and prediction of the audio -> motion network, end to end.

The synthetic world here is the truth-only part of `talkface synth`: the same speech, subjects and
speech-driven motion (synth.world / synth.motion), without rendering faces, which preprocessing
with --coeffs truth never looks at. That keeps the whole file well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from talkface.audio import SAMPLE_RATE
from talkface.cli import main
from talkface.face3d.synthetic import EXPRESSION_DIRECTIONS
from talkface.media import write_wav
from talkface.face3d.coeffs import EXPRESSION, MOTION_EXPRESSION, MOTION_POSE
from talkface.face3d.model import load_morphable_model
from talkface.metrics import lmd, mouth_opening, pose_statistics, pose_statistics_distance
from talkface.motion.records import read_record, stored_key, write_record
from talkface.motion.calibration import (
    MIN_MEAN_ACTIVITY, fit_pose_calibration_into, person_pose_calibration, person_pose_rhythm, recentre_on_person,
    reversed_speech_windows,
)
from talkface.motion.data import (
    PersonClip, in_step, load_person, person_av_offset, person_phones, person_speech_activity, person_split,
)
from talkface.motion.inference import motion_landmarks
from talkface.motion.model import load_motion_model
from talkface.motion import train as motion_train
from talkface.motion.train import FinetuneConfig, finetune
from talkface.pipelines.lrw import default_shard, find_clips
from talkface.synth.appearance import sample_subject
from talkface.synth.motion import generate_motion
from talkface.synth.speech import utterance_for_duration
from talkface.synth.truth_workspace import write_speech_truth_workspace
from talkface.synth.world import lrw_clip_path, write_lrw_clip_without_frames
from talkface.train.config import TrainConfig
from talkface.workspace import Workspace

WORDS = ("ABOUT", "HOUSE", "WATER")
SPLIT_CLIPS = {"train": 8, "val": 2}
BROKEN = "WATER/train/WATER_00099.mp4"
TINY_NET = ["--set", "network.channels=[4,4,8,8,8]", "--set", "network.fc_sizes=[32,16]",
            "--set", "network.lstm_hidden=16"]
PRETRAIN_STEPS = 200
PERSON_SEED = 1234
PERSON_SECONDS = 14.0  # 350 frames: the first 300 train, the last 35 are held out
FIT_STEPS = 200  # fine-tuning steps at the shipped lr (1e-4) in the re-centring test


def write_truth_lrw(root: Path) -> list[str]:
    """LRW layout (29-frame mp4 with the word's speech + WORD_xxxxx.npz ground truth); blank frames."""
    sources = []
    for word in WORDS:
        for split, count in SPLIT_CLIPS.items():
            for index in range(1, count + 1):
                seed = zlib.crc32(f"{word}/{split}/{index}".encode()) & 0x7FFFFFFF
                path = lrw_clip_path(root, word, split, index)
                write_lrw_clip_without_frames(path, word, seed, "builtin")
                sources.append(str(path.relative_to(root)))
    (root / BROKEN).write_bytes(b"not a video")  # a corrupt download
    return sorted(sources)


def write_truth_person(folder: Path, seed: int, seconds: float) -> Workspace:
    """A person workspace holding what preprocess would write for write_person(seed)'s clip: its truth."""
    speech = utterance_for_duration(seconds, seed, SAMPLE_RATE, "builtin")
    subject = sample_subject(seed)
    frames = int(round(seconds * 25))
    motion = generate_motion(speech.audio, SAMPLE_RATE, subject.style, seed, frames, speech.phones)
    return write_speech_truth_workspace(folder, speech.audio,
                                        subject.coeffs(motion.expression, motion.angles, motion.translation))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cli(*args: str) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("motion_world")
    root = base / "lrw"
    sources = write_truth_lrw(root)
    person = write_truth_person(base / "person", PERSON_SEED, PERSON_SECONDS).root
    return {"base": base, "root": root, "sources": sources, "person": person}


@pytest.fixture(scope="module")
def cache(world: dict) -> Path:
    out = world["base"] / "cache"
    assert cli("lrw", "preprocess", world["root"], "--out", out, "--coeffs", "truth", "--quiet") == 0
    return out


def pretrain_args(cache: Path, run_dir: Path, steps: int) -> list:
    return ["motion", "pretrain", "--set", f"cache={cache}", "--set", f"run_dir={run_dir}", "--set", "epochs=null",
            "--set", f"train.steps={steps}", "--set", "train.batch_size=4", "--set", "train.num_workers=0",
            "--set", "train.eval_every=20", "--set", "train.checkpoint_every=100", "--set", "train.log_every=10",
            "--set", "lr=2e-3", "--set", "train.device=cpu", *TINY_NET]


@pytest.fixture(scope="module")
def pretrained(world: dict, cache: Path) -> Path:
    run = world["base"] / "pretrain"
    assert cli(*pretrain_args(cache, run, 20)) == 0
    assert cli(*pretrain_args(cache, run, PRETRAIN_STEPS), "--resume") == 0
    return run


@pytest.fixture(scope="module")
def finetuned(world: dict, pretrained: Path) -> Path:
    run = world["base"] / "finetune"
    code = cli("motion", "finetune", world["person"], "--pretrained", pretrained, "--set", f"run_dir={run}",
               "--set", "epochs=null", "--set", "train.steps=150", "--set", "lr=2e-3", "--set", "train.eval_every=50",
               "--set", "train.device=cpu")
    assert code == 0
    return run


# ------------------------------------------------------------------------------------------------
# LRW preprocessing


def test_preprocess_writes_a_record_per_clip_and_a_manifest(world: dict, cache: Path) -> None:
    manifest = json.loads((cache / "manifest.json").read_text())
    listed = sorted(c["source"] for split in manifest["clips"].values() for c in split)
    assert listed == world["sources"]
    assert manifest["counts"] == {"train": 24, "val": 6} and manifest["coeffs"] == "truth"
    assert "SYNTHETIC GROUND TRUTH" in manifest["coeffs_label"]
    record = read_record(cache / manifest["clips"]["train"][0]["record"])
    assert record.windows.shape == (29, 28, 12) and record.motion.shape == (29, 70)
    assert record.identity.shape == (80,) and record.word == "ABOUT" and record.split == "train"
    truth = np.load((world["root"] / record.source).with_suffix(".npz"))["coeffs"]
    np.testing.assert_array_equal(record.motion[:, MOTION_EXPRESSION], truth[:, EXPRESSION])


def test_broken_clip_is_logged_and_skipped(cache: Path) -> None:
    lines = (cache / "bad_clips.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(BROKEN + "\t")
    assert BROKEN in json.loads((cache / "manifest.json").read_text())["bad_clips"]


def test_rerun_skips_current_records_and_redoes_missing_and_stale_ones(world: dict, cache: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    first = sorted((cache / "records").rglob("*.npz"))
    mtimes = {p: p.stat().st_mtime_ns for p in first}
    first[0].unlink()  # as if the run had been killed before this clip
    write_record(first[1], read_record(first[1]), "made-with-other-settings")  # its key no longer matches
    capsys.readouterr()
    assert cli("lrw", "preprocess", world["root"], "--out", cache, "--coeffs", "truth", "--quiet") == 0
    assert "2 written, 28 already done, 1 bad" in capsys.readouterr().out
    assert stored_key(first[1]) not in (None, "made-with-other-settings")
    assert all(p.stat().st_mtime_ns == mtimes[p] for p in first[2:])


def test_shards_partition_the_clips(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    got = []
    for index in range(2):
        out = world["base"] / f"shard{index}"
        assert cli("lrw", "preprocess", world["root"], "--out", out, "--coeffs", "truth",
                   "--shard", f"{index}/2", "--quiet") == 0
        got.append({str(p.relative_to(out / "records").with_suffix(".mp4")) for p in (out / "records").rglob("*.npz")})
    assert not got[0] & got[1] and sorted(got[0] | got[1]) == world["sources"]
    assert abs(len(got[0]) - len(got[1])) <= 1
    assert sorted(find_clips(world["root"])[0::2] + find_clips(world["root"])[1::2]) == find_clips(world["root"])
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert str(default_shard()) == "1/3"  # under torchrun each process takes its own shard


def test_bad_preprocess_arguments_are_one_line_errors(world: dict, capsys: pytest.CaptureFixture) -> None:
    assert cli("lrw", "preprocess", world["base"] / "nowhere", "--out", world["base"] / "x",
               "--coeffs", "truth") == 1
    assert cli("lrw", "preprocess", world["root"], "--out", world["base"] / "x", "--shard", "2/2") == 1
    config = world["base"] / "recon.yaml"
    config.write_text(f"rnet: {world['base'] / 'missing_rnet.pth'}\n")
    assert cli("lrw", "preprocess", world["root"], "--out", world["base"] / "recon_cache",
               "--config", config) == 1  # once, up front: not one bad clip per clip
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("talkface: error:") for e in errors)
    assert "missing R-Net weights" in errors[2] and not (world["base"] / "recon_cache").exists()


# ------------------------------------------------------------------------------------------------
# training


def test_pretrain_runs_resumes_and_validates(pretrained: Path) -> None:
    checkpoints = sorted(p.name for p in (pretrained / "checkpoints").glob("step_*.pt"))
    assert checkpoints == ["step_0000020.pt", "step_0000100.pt", "step_0000200.pt"]  # 20, then resumed
    stats = [json.loads(line) for line in (pretrained / "stats.jsonl").read_text().splitlines()]
    evals = [s for s in stats if "eval/loss" in s]
    assert [s["step"] for s in evals] == list(range(20, 201, 20))
    assert all("eval/expression_mse" in s for s in evals)
    checkpoint = torch.load(pretrained / "checkpoints" / f"step_{PRETRAIN_STEPS:07d}.pt", weights_only=True)
    assert checkpoint["model_args"]["motion"]["lstm_hidden"] == 16
    assert checkpoint["config"]["train"]["steps"] == PRETRAIN_STEPS


def test_finetune_beats_the_pretrained_model_on_held_out_frames(world: dict, pretrained: Path,
                                                                 finetuned: Path) -> None:
    stats = [json.loads(line) for line in (finetuned / "stats.jsonl").read_text().splitlines()]
    tuned = [s["eval/loss"] for s in stats if "eval/loss" in s][-1]
    person = load_person(world["person"])
    train, held_out = person_split(len(person.motion), 300, 0.1)
    assert (train.stop, held_out.start, held_out.stop) == (300, 315, 350)
    from talkface.motion.losses import LossConfig
    from talkface.motion.validation import person_validation

    before = person_validation(person, held_out, LossConfig(), None)(
        load_motion_model(pretrained / "checkpoints" / f"step_{PRETRAIN_STEPS:07d}.pt"))["loss"]
    assert tuned < 0.9 * before


def test_finetuned_mouth_is_closer_than_pretrained_and_corpus_mean_expression(
        world: dict, cache: Path, pretrained: Path, finetuned: Path) -> None:
    from talkface.face3d.model import load_morphable_model
    from talkface.motion.records import split_records
    from talkface.motion.losses import LossConfig
    from talkface.motion.validation import person_validation

    person = load_person(world["person"])
    train, held_out = person_split(len(person.motion), 300, 0.1)
    validation = person_validation(person, held_out, LossConfig(), load_morphable_model("synthetic"))
    tuned = validation(load_motion_model(finetuned / "checkpoints" / "step_0000150.pt"))["lmd"]
    pre = validation(load_motion_model(pretrained / "checkpoints" / f"step_{PRETRAIN_STEPS:07d}.pt"))["lmd"]
    true_marks = motion_landmarks(validation.face_model, person.motion[held_out], person.identity)

    def mean_expression_lmd(expression: np.ndarray) -> float:
        motion = person.motion[held_out].copy()
        motion[:, MOTION_EXPRESSION] = expression
        return lmd(motion_landmarks(validation.face_model, motion, person.identity), true_marks)

    corpus = np.concatenate([read_record(p).motion[:, MOTION_EXPRESSION] for p in split_records(cache, "train")]).mean(0)
    corpus_mean, person_mean = mean_expression_lmd(corpus), mean_expression_lmd(person.motion[train][:, MOTION_EXPRESSION].mean(0))
    print(f"held-out LMD: fine-tuned {tuned:.3f}, pretrained {pre:.3f}, "
          f"LRW mean expression {corpus_mean:.3f}, the person's mean expression {person_mean:.3f}")
    # Beating the person's own mean expression on unseen speech needs a general model that already
    # maps phones to mouth shapes, i.e. a real pretraining corpus: benchmarks/bench_motion_personal.py
    # (300 records, 600 steps: fine-tuned 1.06 < person's mean 1.50). Since the synthetic mouth
    # follows phones, not loudness, this 24-clip, 200-step corpus cannot give one: measured here,
    # fine-tuned 1.26-1.34 vs the person's mean 1.07 after 150, 600 or 1700 steps, re-centred or not,
    # and 1.18 with a 64-unit LSTM. So this test checks what fine-tuning adds to that general model.
    assert tuned < pre and tuned < corpus_mean


def test_finetune_writes_the_persons_pose_calibration_and_rhythm_into_the_checkpoint(
        world: dict, finetuned: Path) -> None:
    checkpoint = finetuned / "checkpoints" / "step_0000150.pt"
    calibrated = load_motion_model(checkpoint)
    person = load_person(world["person"])
    train, _ = person_split(len(person.motion), 300, 0.1)
    windows, truth = person.windows[train], person.motion[train]
    activity = person_speech_activity(world["person"], len(person.motion))[train]  # [300]
    mean_square_activity = float(np.mean(activity ** 2))
    assert MIN_MEAN_ACTIVITY < mean_square_activity < 1  # speech with pauses
    raw = load_motion_model(checkpoint)
    raw.reset_pose_calibration()
    raw.reset_pose_rhythm()
    scale, shift, frequency, std = person_pose_rhythm(raw, windows, truth, activity)
    assert calibrated.has_pose_rhythm  # the default: pose_rhythm on
    for fitted, buffer in ((scale, "pose_scale"), (shift, "pose_shift"), (frequency, "pose_rhythm_frequency"),
                           (std, "pose_rhythm_std")):
        torch.testing.assert_close(getattr(calibrated, buffer), fitted)
    # On the reversed training speech the calibrated pose has the person's mean, and its variance plus
    # the gated rhythm's (std^2 x mean squared activity) is the person's variance.
    with torch.no_grad():
        out, _ = calibrated(torch.as_tensor(reversed_speech_windows(windows))[None])
        pose = calibrated.calibrate_pose(calibrated.decode_prediction(out[0]))[:, MOTION_POSE].numpy()
    np.testing.assert_allclose(pose.mean(0), truth[:, MOTION_POSE].mean(0), atol=1e-4)
    free = (scale > 0.5).numpy()
    assert free.any()
    np.testing.assert_allclose((pose.var(0) + mean_square_activity * std.square().numpy())[free],
                               truth[:, MOTION_POSE].var(0)[free], rtol=2e-3)
    # Without the rhythm (pose_rhythm: false) the gains restore the person's std on their own.
    net = load_motion_model(checkpoint)
    fit_pose_calibration_into(net, windows, truth)
    expected_scale, expected_shift = person_pose_calibration(raw, windows, truth)
    assert not net.has_pose_rhythm and not torch.allclose(expected_scale, torch.ones(6))
    torch.testing.assert_close(net.pose_scale, expected_scale)
    torch.testing.assert_close(net.pose_shift, expected_shift)


def test_finetune_fits_a_viseme_mouth_that_brings_the_held_out_mouth_closer(world: dict, finetuned: Path) -> None:
    from talkface.media import read_audio
    from talkface.motion.inference import predict_motion

    net = load_motion_model(finetuned / "checkpoints" / "step_0000150.pt")
    assert net.has_viseme_mouth and float(net.viseme_weight) in FinetuneConfig().viseme_weights
    person = load_person(world["person"])
    train, held_out = person_split(len(person.motion), 300, 0.1)
    audio = read_audio(Workspace(world["person"]).path("audio.wav"))
    face = load_morphable_model("synthetic")

    def held_out_lmd(expression: np.ndarray) -> float:
        motion = person.motion[held_out].copy()
        motion[:, MOTION_EXPRESSION] = expression
        return lmd(motion_landmarks(face, motion, person.identity),
                   motion_landmarks(face, person.motion[held_out], person.identity))

    blended = held_out_lmd(predict_motion(net, audio, bf16=False)[held_out, MOTION_EXPRESSION])
    net.reset_viseme_mouth()
    network = held_out_lmd(predict_motion(net, audio, bf16=False)[held_out, MOTION_EXPRESSION])
    person_mean = held_out_lmd(person.motion[train, MOTION_EXPRESSION].mean(0))
    print(f"held-out LMD: with the viseme mouth {blended:.3f}, network alone {network:.3f}, "
          f"the person's mean expression {person_mean:.3f}")
    # The recogniser hears the synthetic voice's phones too (tests/test_speech_recognition.py).
    assert blended < network and blended < person_mean


# A person far from the general model in every mouth direction (the person's own std there is
# 0.03-0.22): the offset the pretrained net would have to unlearn before it can follow the speech.
PERSON_OFFSET = np.zeros(64, np.float32)
PERSON_OFFSET[:6] = (-0.8, 0.6, 0.5, -0.5, 0.6, 0.5)


@pytest.fixture(scope="module")
def offset_person(world: dict) -> Path:
    folder = world["base"] / "offset_person"
    shutil.copytree(world["person"], folder)
    ws = Workspace(folder)
    coeffs = ws.load_array("coeffs.npy")
    coeffs[:, EXPRESSION] += PERSON_OFFSET
    ws.save_array("coeffs.npy", coeffs)
    return folder


def training_frames(workspace: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(windows, motion, identity) of the frames fine-tuning trains on."""
    person = load_person(workspace)
    train, _ = person_split(len(person.motion), 300, 0.1)
    return person.windows[train], person.motion[train], person.identity


def test_recentred_network_starts_at_the_persons_mean(offset_person: Path, pretrained: Path) -> None:
    windows, motion, _ = training_frames(offset_person)
    net = load_motion_model(pretrained / "checkpoints" / f"step_{PRETRAIN_STEPS:07d}.pt")
    before = predicted_motion(net, windows).mean(0)
    assert np.abs(before[:6] - motion[:, :6].mean(0)).max() > 0.4  # the general model is off for this person
    offset = recentre_on_person(net, windows, motion)
    after = predicted_motion(net, windows)
    np.testing.assert_allclose(after.mean(0), motion.mean(0), atol=1e-5)
    np.testing.assert_allclose(offset.numpy(), motion.mean(0) - before, atol=1e-5)
    # Only the centre moved: the motion around it is the general model's, frame for frame.
    np.testing.assert_allclose(after - after.mean(0), predicted_motion(
        load_motion_model(pretrained / "checkpoints" / f"step_{PRETRAIN_STEPS:07d}.pt"), windows) - before,
        atol=1e-5)


def predicted_motion(net: torch.nn.Module, windows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out, _ = net.eval()(torch.as_tensor(windows)[None])
        return net.decode_prediction(out[0]).numpy()


def test_a_short_clip_gets_the_papers_steps_per_epoch(world: dict, pretrained: Path, tmp_path: Path) -> None:
    short = write_truth_person(tmp_path / "short", PERSON_SEED, 5.0).root  # 125 frames
    train, _ = person_split(125, 300, 0.1)
    sequences = train.stop - 15  # 109 training frames: 94 sequences, 5 batches of 16
    steps = {}
    for epoch_sequences in (285, 1):
        config = FinetuneConfig(
            pretrained=str(pretrained), run_dir=str(tmp_path / f"run_{epoch_sequences}"), epochs=2,
            epoch_sequences=epoch_sequences, calibrate_pose=False,
            train=TrainConfig(batch_size=16, num_workers=0, log_every=100, eval_every=10**6, device="cpu"))
        final, _ = finetune(short, config)
        steps[epoch_sequences] = torch.load(final, weights_only=True)["config"]["train"]["steps"]
    # The default: an epoch of the paper's 285 sequences (17 batches), whatever the clip's length.
    assert sequences == 94 and steps == {285: 2 * 17, 1: 2 * 5}


def test_in_step_pairs_each_frame_with_a_later_window_and_holds_the_ends() -> None:
    windows = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((1, 28, 12), np.float32)
    person = PersonClip(windows, np.zeros((5, 70), np.float32), np.zeros(80, np.float32))
    assert in_step(person, 0) is person
    assert in_step(person, 2).windows[:, 0, 0].tolist() == [2, 3, 4, 4, 4]
    assert in_step(person, -1).windows[:, 0, 0].tolist() == [0, 0, 1, 2, 3]
    assert in_step(person, 2).motion is person.motion


def picture_behind_sound(person: Path, out: Path, frames: int) -> Path:
    """A copy of workspace `person` whose picture runs `frames` behind its sound, as a recording's can."""
    shutil.copytree(person, out)
    workspace = Workspace(out)
    for name in ("coeffs.npy", "landmarks.npy"):
        array = workspace.load_array(name)
        workspace.save_array(name, array[np.clip(np.arange(len(array)) - frames, 0, len(array) - 1)])
    return out


def test_finetune_trains_on_pairs_in_step_with_the_clips_own_offset(world: dict, pretrained: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    delay = 3
    late = picture_behind_sound(world["person"], tmp_path / "late", delay)
    offsets = {name: person_av_offset(folder, person_phones(folder, "words"), 300)
               for name, folder in (("as made", world["person"]), ("late", late))}
    assert offsets["late"] == offsets["as made"] - delay  # found from the phones heard and the drawn mouth
    trained_on = []
    sequences = motion_train.PersonSequences
    monkeypatch.setattr(motion_train, "PersonSequences", lambda w, m: trained_on.append(w) or sequences(w, m))
    for step in (True, False):
        config = FinetuneConfig(pretrained=str(pretrained), run_dir=str(tmp_path / f"run_{step}"), epochs=None,
                                in_step=step, calibrate_pose=False, viseme_weights=(),
                                train=TrainConfig(steps=2, batch_size=4, num_workers=0, eval_every=10**6,
                                                  device="cpu"))
        finetune(late, config)
    windows = Workspace(late).load_array("mfcc.npy")
    frames = np.arange(300)
    # Frame t with window t + shift (the shift is negative here: the first window stands in before the clip).
    np.testing.assert_array_equal(trained_on[0], windows[np.maximum(frames + offsets["late"], 0)])
    np.testing.assert_array_equal(trained_on[1], windows[frames])


@pytest.mark.slow
def test_finetuning_fits_an_offset_persons_training_mouth_better_when_recentred(
        offset_person: Path, pretrained: Path, tmp_path: Path) -> None:
    windows, motion, identity = training_frames(offset_person)
    face = load_morphable_model("synthetic")
    true = mouth_opening(motion_landmarks(face, motion, identity))
    r = {}
    for recentre in (True, False):
        config = FinetuneConfig(
            pretrained=str(pretrained), run_dir=str(tmp_path / f"run_{recentre}"), epochs=None, recentre=recentre,
            select_on_validation=False,  # the fit of the training frames is measured here, not a validated choice
            calibrate_pose=False, train=TrainConfig(steps=FIT_STEPS, batch_size=16, num_workers=0, log_every=100,
                                                    eval_every=10**6, checkpoint_every=10**6, device="cpu"))
        final, _ = finetune(offset_person, config)
        predicted = mouth_opening(motion_landmarks(face, predicted_motion(load_motion_model(final), windows), identity))
        r[recentre] = float(np.corrcoef(predicted, true)[0, 1])
    print(f"training-frame mouth opening r: re-centred {r[True]:.3f}, not {r[False]:.3f}")
    # Measured on the loudness-driven synthetic mouth: re-centred 0.81, not -0.45 after 200 steps; on the
    # phone-driven one (harder for this 16-unit net): re-centred 0.34-0.51, not 0.13 after 200-400 steps.
    # Without re-centring the steps go into unlearning the offset, so the mouth does not follow the speech.
    assert r[True] > 0.3 and r[True] > r[False] + 0.15


def test_predict_writes_one_row_per_audio_frame(world: dict, finetuned: Path, tmp_path: Path) -> None:
    checkpoint = finetuned / "checkpoints" / "step_0000150.pt"
    out = tmp_path / "motion.npy"
    audio = world["person"] / "audio.wav"
    assert cli("motion", "predict", audio, "--checkpoint", checkpoint, "--out", out) == 0
    motion = np.load(out)
    assert motion.shape == (350, 70) and motion.dtype == np.float32 and np.isfinite(motion).all()
    assert cli("motion", "predict", audio, "--checkpoint", checkpoint, "--out", out,
               "--pose-source", "reference", "--reference", world["person"]) == 0
    np.testing.assert_allclose(np.load(out)[:, MOTION_POSE], load_person(world["person"]).motion[:, MOTION_POSE], atol=1e-6)


def test_silent_audio_gives_a_closed_still_mouth(world: dict, finetuned: Path, tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    write_wav(silence, np.zeros(2 * SAMPLE_RATE, np.float32))
    out = tmp_path / "silent.npy"
    assert cli("motion", "predict", silence, "--checkpoint", finetuned / "checkpoints" / "step_0000150.pt",
               "--out", out) == 0
    motion = np.load(out)[5:]  # after the recurrence settles on the constant input
    truth = load_person(world["person"]).motion
    jaw = EXPRESSION_DIRECTIONS["jaw_open"]
    speaking = truth[:, jaw] > np.percentile(truth[:, jaw], 50)
    assert motion[:, jaw].mean() < 0.5 * truth[speaking, jaw].mean()
    assert (motion.std(0) <= 0.1 * truth.std(0) + 1e-6).all()


def test_too_short_audio_and_missing_coefficients_are_one_line_errors(world: dict, finetuned: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    short = tmp_path / "short.wav"
    write_wav(short, np.full(200, 0.1, np.float32))
    capsys.readouterr()
    assert cli("motion", "predict", short, "--checkpoint", finetuned / "checkpoints" / "step_0000150.pt",
               "--out", tmp_path / "m.npy") == 1
    empty = tmp_path / "workspace"
    empty.mkdir()
    assert cli("motion", "finetune", empty, "--pretrained", finetuned) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "one video frame" in errors[0]
    assert "coeffs" in errors[1] and "talkface preprocess" in errors[1]
    assert not (tmp_path / "m.npy").exists()


def test_two_process_gloo_pretraining(cache: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = tmp_path / "ddp"
    args = [str(a) for a in pretrain_args(cache, run, 6)] + ["--set", "train.batch_size=2"]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "talkface", *args],
        capture_output=True, text=True, env=env, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(run / "checkpoints" / "step_0000006.pt", weights_only=True)
    assert checkpoint["world_size"] == 2 and len(checkpoint["rng"]) == 2
    assert not any(k.startswith("module.") for k in checkpoint["models"]["motion"])


# ------------------------------------------------------------------------------------------------
# metrics


def test_lmd_ignores_mouth_position_and_measures_shape() -> None:
    rng = np.random.default_rng(0)
    target = rng.normal(size=(5, 68, 2)).astype(np.float32)
    shifted = target + np.array([3.0, -2.0], np.float32)  # the whole face moved: same mouth shape
    assert lmd(shifted, target) == pytest.approx(0.0, abs=1e-6)
    opened = target.copy()
    opened[:, 48:68, 1] *= 2.0
    assert lmd(opened, target) > 0.1


def test_pose_statistics_find_the_rhythm_and_amplitude() -> None:
    t = np.arange(500) / 25.0
    angles = np.stack([0.05 * np.sin(2 * np.pi * 0.4 * t), 0.1 * np.sin(2 * np.pi * 0.2 * t),
                       0.02 * np.sin(2 * np.pi * 1.0 * t)], 1)
    stats = pose_statistics(angles)
    np.testing.assert_allclose(stats["frequency"], [0.4, 0.2, 1.0], atol=0.05)
    np.testing.assert_allclose(stats["std"], [0.05, 0.1, 0.02] / np.sqrt(2), rtol=0.02)
    assert pose_statistics_distance(stats, stats) == 0.0
    assert pose_statistics_distance(stats, pose_statistics(2 * angles)) == pytest.approx(np.log(2) / 2)


def test_mouth_opening_is_the_inner_lip_gap() -> None:
    marks = np.zeros((2, 68, 2), np.float32)
    marks[:, 60:68, 0] = np.arange(8)  # inner lips at distinct x, lower lips 65-67 below 61-63
    marks[0, [65, 66, 67], 1] = 3.0
    marks[1, [65, 66, 67], 1] = [1.0, 2.0, 3.0]
    marks[:, [65, 66, 67], 0] = marks[:, [63, 62, 61], 0]  # each lower point under its upper partner
    np.testing.assert_allclose(mouth_opening(marks), [3.0, 2.0])
    with pytest.raises(ValueError, match="68, 2"):
        mouth_opening(marks[:, :20])
