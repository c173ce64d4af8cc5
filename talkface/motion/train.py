"""Training the audio -> motion network: LRW pretraining and per-person fine-tuning (REFERENCE.md, ATC-net).

Both stages are one `MotionTask` run by the shared `talkface.train.Trainer` (resume, DDP,
tensorboard); they differ in data and defaults:

    pretrain   LRW records (talkface lrw preprocess): one 16-frame sequence per clip at a random
               offset 3..7; Adam(2e-4, betas 0.5/0.999), batch 16, 10 epochs; validation on the
               val split at a fixed offset.
    finetune   one person workspace (talkface preprocess): every 16-frame sequence of the first 300
               frames (285); Adam(1e-4), batch 16, 100 epochs, an epoch counting at least 285
               sequences on a shorter clip (`epoch_sequences`); validation on the clip's last 10 %,
               never trained on.

After fine-tuning (unless `calibrate_pose: false`) the final checkpoint gets the person's pose
calibration (network.py `calibrate_pose`; beyond the paper), see `person_pose_calibration`, and
(with `pose_rhythm: true`, the default) the person's pose rhythm, see `person_pose_rhythm`.

Validation reports the loss and, when a morphable model is configured, LMD of the mouth
landmarks projected from predicted vs true coefficients (identity from the clip); without one,
the expression MSE.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np
import torch
from torch import nn

from talkface.atomic import atomic_path
from talkface.errors import TalkfaceError
from talkface.face3d.coeffs import IDENTITY, N_COEFFS, motion_from_coeffs, with_motion
from talkface.motion.activity import speech_activity
from talkface.motion.losses import motion_loss
from talkface.motion.network import (
    EXPRESSION, POSE, POSE_GAIN_RANGE, AudioToMotion, dominant_frequency, fit_pose_calibration, motion_statistics,
)
from talkface.motion.records import read_record, split_records
from talkface.motion.windows import LRW_OFFSETS, SEQUENCE_FRAMES, Clip, LRWSequences, PersonSequences
from talkface.train import (
    StepContext, Task, TrainConfig, Trainer, WeightsReport, load_weights, read_checkpoint,
    seed_everything, with_epochs,
)
from talkface.train.checkpoint import checkpoint_or_latest

log = logging.getLogger(__name__)

MODEL = "motion"  # the model's name in checkpoints
# AudioToMotion's per-person pose buffers: calibration, then rhythm; older checkpoints lack them.
CALIBRATION_KEYS = ("pose_scale", "pose_shift")
RHYTHM_KEYS = ("pose_rhythm_frequency", "pose_rhythm_std")
# The rhythm's variance is divided by the mean squared speech activity of the training frames (so
# the gated rhythm carries the leftover variance on average); a clip that is mostly silence would
# blow that up, so the mean is floored here (at most a 4x variance boost, i.e. 2x std).
MIN_MEAN_ACTIVITY = 0.25
# Validation takes every LRW clip at the middle of the training offsets, so it is deterministic.
VAL_OFFSET = (LRW_OFFSETS[0] + LRW_OFFSETS[1]) // 2
# The paper fine-tunes on 300 frames: 285 overlapping 16-frame sequences.
PAPER_SEQUENCES = 300 - SEQUENCE_FRAMES + 1


# ------------------------------------------------------------------------------------------------
# configs


@dataclass
class NetworkConfig:
    """AudioToMotion sizes (defaults: the paper's, REFERENCE.md)."""

    channels: tuple[int, int, int, int, int] = (64, 128, 256, 256, 512)
    fc_sizes: tuple[int, int] = (2048, 256)
    lstm_hidden: int = 256
    lstm_layers: int = 3
    dropout: float = 0.0

    def kwargs(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "fc_sizes": list(self.fc_sizes), "lstm_hidden": self.lstm_hidden,
                "lstm_layers": self.lstm_layers, "dropout": self.dropout}


@dataclass
class LossConfig:
    """Loss weights relative to the expression MSE (REFERENCE.md)."""

    pose_weight: float = 0.2
    pose_smooth_weight: float = 0.01
    expression_smooth_weight: float = 1e-4


def _pretrain_defaults() -> TrainConfig:
    return TrainConfig(batch_size=16, eval_every=1000, checkpoint_every=1000, log_every=50)


def _finetune_defaults() -> TrainConfig:
    return TrainConfig(batch_size=16, num_workers=0, eval_every=200, checkpoint_every=1000, log_every=20)


@dataclass
class PretrainConfig:
    """configs/motion_lrw.yaml."""

    cache: str = "data/lrw_cache"  # `talkface lrw preprocess --out` folder
    run_dir: str = "runs/motion_lrw"
    epochs: Optional[int] = 10  # train.steps = epochs x batches per epoch; null: use train.steps as given
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    # False: the paper's targets (coefficients, translation z shifted by -0.5). True: per-dimension
    # mean/std of the training motion, stored in the checkpoint, so small pose angles weigh as much
    # as the expression.
    normalize_targets: bool = False
    statistics_clips: int = 2000  # training records read for the normalisation statistics
    val_clips: Optional[int] = 512  # validation records evaluated (null: all)
    morphable_model: Optional[str] = None  # BFM path or "synthetic": adds LMD to validation
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=_pretrain_defaults)


@dataclass
class FinetuneConfig:
    """configs/motion_finetune.yaml."""

    # The LRW checkpoint to start from, or a pretraining run folder (its latest checkpoint);
    # null: from scratch, with a warning.
    pretrained: Optional[str] = None
    run_dir: Optional[str] = None  # null: WORKSPACE/motion_finetune
    train_frames: int = 300  # the paper fine-tunes on the first 300 frames (285 sequences)
    val_fraction: float = 0.1  # the clip's last frames held out for validation
    epochs: Optional[int] = 100
    # An epoch counts at least this many sequences (the paper's 300 frames give 285), so a shorter
    # clip gets the optimiser steps the paper's recipe gives a 300-frame one (100 epochs at batch 16:
    # 1700 steps) and sees its frames more often. Counted over a 5 s real clip's own 4-8 batches, lr
    # 1e-4 fitted talk3's and talk4's own frames at mouth r ~0.70 (60 epochs); with 285-sequence
    # epochs, 0.86 and 0.91 at the CPU profile's 30 (benchmarks/bench_motion_real.py).
    epoch_sequences: int = PAPER_SEQUENCES
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    morphable_model: Optional[str] = None
    # Beyond the paper: after training, fit the person's pose calibration (person_pose_calibration)
    # into the final checkpoint, so predicted head motion keeps the person's mean and swing.
    calibrate_pose: bool = True
    # Beyond the paper: with the calibration, fit an oscillation at the person's dominant pose
    # frequency carrying the variance the net cannot predict (person_pose_rhythm); inference samples
    # it, gated by the audio's speech activity (activity.py), so the head carries the person's rhythm
    # while talking and holds still in silence.
    pose_rhythm: bool = True
    # Beyond the paper: before the first step, shift the pretrained net's output so its mean over the
    # training frames is the person's mean motion (`recentre_on_person`). A general model is off by
    # a per-person offset (on real clips its expression MSE was 0.17-0.19 against the person's own
    # variance of 0.05-0.06); fine-tuning spends itself removing that offset and ends near the
    # person's constant mean, fitting not even its own training frames (benchmarks/bench_motion_real.py).
    recentre: bool = True
    # Beyond the paper: keep the weights of the evaluation (every train.eval_every steps, the
    # re-centred start included) with the lowest expression MSE on the validation tail
    # (`select_on_validation`). A network that fits a 5 s clip's own frames (mouth r ~0.9) predicts
    # its next seconds worse than the person's constant mean; see benchmarks/bench_lipsync_coeffs.py.
    # (Shrinking the expression toward the person's mean by a validated gain was measured too; it
    # held the mouth half open in silence, so it is not done.)
    select_on_validation: bool = False
    # Beyond the paper: the parameters fine-tuning updates. "all" (the paper), or only the output
    # layer ("head") or the LSTM and output layer ("lstm_head"): the general model's audio features
    # carry what generalises to new speech (the re-centred general model predicts a real clip's held-out
    # mouth about as well as the person's mean, r 0.19-0.28), and fitting all of them to 80-150 frames
    # loses it (benchmarks/bench_lipsync_coeffs.py).
    trainable: Literal["all", "lstm_head", "head"] = "all"
    network: NetworkConfig = field(default_factory=NetworkConfig)  # only without a pretrained checkpoint
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=_finetune_defaults)

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.epoch_sequences < 1:
            raise ValueError(f"epoch_sequences must be at least 1, got {self.epoch_sequences}")
        if self.train_frames < SEQUENCE_FRAMES:
            raise ValueError(f"train_frames must be at least {SEQUENCE_FRAMES}, got {self.train_frames}")


# ------------------------------------------------------------------------------------------------
# data


class RecordClips:
    """The (windows, motion) pairs of LRW records, read lazily (so workers share nothing big)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Clip:
        record = read_record(self.paths[index])
        return record.windows, record.motion


@dataclass(frozen=True)
class PersonClip:
    windows: np.ndarray  # float32 [T, 28, 12]
    motion: np.ndarray  # float32 [T, 70]
    identity: np.ndarray  # float32 [80]


def load_person(workspace: str | Path) -> PersonClip:
    """The workspace's MFCC windows and motion; a one-line error naming the preprocess step when absent."""
    from talkface.workspace import Workspace

    ws = Workspace(workspace)
    coeffs = np.asarray(ws.load_array("coeffs.npy"), np.float32)  # [T, 257]
    windows = np.asarray(ws.load_array("mfcc.npy"), np.float32)  # [T, 28, 12]
    if coeffs.ndim != 2 or coeffs.shape[1] != N_COEFFS or len(coeffs) != len(windows):
        raise TalkfaceError(f"coeffs.npy {coeffs.shape} and mfcc.npy {windows.shape} do not align; "
                            "rerun `talkface preprocess`", Path(workspace))
    return PersonClip(windows, motion_from_coeffs(coeffs).astype(np.float32), coeffs[:, IDENTITY].mean(0))


def person_speech_activity(workspace: str | Path, frames: int) -> np.ndarray:
    """The speech-activity gate [frames] (activity.py) of the workspace's audio.wav."""
    from talkface.media import read_audio
    from talkface.workspace import Workspace

    path = Workspace(workspace).path("audio.wav")
    if not path.is_file():
        raise TalkfaceError("has no audio.wav; rerun `talkface preprocess`", Path(workspace))
    activity = speech_activity(read_audio(path))
    if len(activity) != frames:
        raise TalkfaceError(f"audio.wav gives {len(activity)} frames but the coefficients {frames}; "
                            "rerun `talkface preprocess`", Path(workspace))
    return activity


def person_split(frames: int, train_frames: int, val_fraction: float) -> tuple[slice, slice]:
    """(training frames, held-out frames): the first `train_frames` not in the held-out last fraction."""
    held_out = max(SEQUENCE_FRAMES, math.ceil(frames * val_fraction))
    train_end = min(train_frames, frames - held_out)
    if train_end < SEQUENCE_FRAMES:
        raise TalkfaceError(f"the clip has {frames} frames: too few for {SEQUENCE_FRAMES}-frame training sequences "
                            f"plus {held_out} held-out frames")
    return slice(0, train_end), slice(frames - held_out, frames)


# ------------------------------------------------------------------------------------------------
# validation


@dataclass
class Validation:
    """Held-out sequences and how to score them: windows [N, L, 28, 12], motion [N, L, 70], identity [N, 80]."""

    windows: torch.Tensor
    motion: torch.Tensor
    identity: torch.Tensor
    loss: LossConfig
    face_model: Optional[nn.Module] = None
    batch_size: int = 64

    @torch.no_grad()
    def __call__(self, net: AudioToMotion) -> dict[str, float]:
        device = next(net.parameters()).device
        predictions = []
        for start in range(0, len(self.windows), self.batch_size):
            out, _ = net(self.windows[start:start + self.batch_size].to(device))
            predictions.append(out.float().cpu())
        prediction = torch.cat(predictions)  # [N, L, 70] target space
        target = net.encode_target(self.motion.to(device)).cpu()
        terms = motion_loss(prediction, target, **vars(self.loss))
        decoded = net.decode_prediction(prediction.to(device)).cpu()  # [N, L, 70] coefficient units
        result = {"loss": float(terms["total"]), "expression_mse": float(
            (decoded[..., EXPRESSION] - self.motion[..., EXPRESSION]).square().mean())}
        if self.face_model is not None:
            from talkface.metrics import lmd

            result["lmd"] = lmd(self.landmarks(decoded), self.landmarks(self.motion))
        return result

    def landmarks(self, motion: torch.Tensor) -> np.ndarray:
        """Motion [N, L, 70] -> projected landmarks [N*L, 68, 2] with each sequence's identity."""
        n, length = motion.shape[:2]
        identity = self.identity[:, None].expand(n, length, -1).reshape(n * length, -1)
        return motion_landmarks(self.face_model, motion.reshape(n * length, -1), identity)


def motion_landmarks(face_model: nn.Module, motion: torch.Tensor | np.ndarray,
                     identity: torch.Tensor | np.ndarray) -> np.ndarray:
    """Landmarks [T, 68, 2] of motion [T, 70] on a face of identity [80] or [T, 80] (mean texture, no light)."""
    motion = torch.as_tensor(np.asarray(motion, np.float32))
    coeffs = torch.zeros(len(motion), N_COEFFS)
    coeffs[:, IDENTITY] = torch.as_tensor(np.asarray(identity, np.float32))
    with torch.no_grad():
        return face_model(with_motion(coeffs, motion)).landmarks.numpy()


def _face_model(source: str | None) -> nn.Module | None:
    if source is None:
        return None
    from talkface.face3d.model import load_morphable_model

    return load_morphable_model(source)


def lrw_validation(cache: str | Path, loss: LossConfig, max_clips: int | None,
                   face_model: nn.Module | None) -> Validation:
    """The val split's records, each at the fixed offset VAL_OFFSET (frames VAL_OFFSET+1 .. +16)."""
    paths = split_records(cache, "val")[:max_clips]
    records = [read_record(p) for p in paths]
    span = slice(VAL_OFFSET + 1, VAL_OFFSET + 1 + SEQUENCE_FRAMES)
    return Validation(
        windows=torch.as_tensor(np.stack([r.windows[span] for r in records])),
        motion=torch.as_tensor(np.stack([r.motion[span] for r in records])),
        identity=torch.as_tensor(np.stack([r.identity for r in records])),
        loss=loss, face_model=face_model,
    )


def person_validation(person: PersonClip, held_out: slice, loss: LossConfig,
                      face_model: nn.Module | None) -> Validation:
    """The held-out frames as one sequence (the LSTM starts from zero state at its first frame)."""
    return Validation(
        windows=torch.as_tensor(person.windows[held_out])[None], motion=torch.as_tensor(person.motion[held_out])[None],
        identity=torch.as_tensor(person.identity)[None], loss=loss, face_model=face_model,
    )


# ------------------------------------------------------------------------------------------------
# the task


@dataclass
class BestWeights:
    """The weights of the best validation seen so far (lowest expression MSE), kept on the CPU."""

    expression_mse: float = math.inf
    state: Optional[dict[str, torch.Tensor]] = None

    def offer(self, net: nn.Module, expression_mse: float) -> None:
        if expression_mse < self.expression_mse:
            self.expression_mse = expression_mse
            self.state = {key: value.detach().cpu().clone() for key, value in net.state_dict().items()}


class MotionTask(Task):
    """One optimiser over AudioToMotion; the loss is `motion_loss` in the network's target space.

    With `keep_best`, every evaluation offers the weights to `best` (BestWeights).
    """

    def __init__(self, net: AudioToMotion, lr: float, betas: tuple[float, float], loss: LossConfig,
                 validation: Validation | None = None, keep_best: bool = False, trainable: str = "all"):
        self.net = net
        self.loss = loss
        self.validation = validation
        self.optimizer = torch.optim.Adam(trainable_parameters(net, trainable), lr=lr, betas=betas)
        self.best = BestWeights() if keep_best and validation is not None else None

    def models(self) -> dict[str, nn.Module]:
        return {MODEL: self.net}

    def model_args(self) -> dict[str, dict[str, Any]]:
        return {MODEL: self.net.constructor_args()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {MODEL: self.optimizer}

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        prediction, _ = ctx.models[MODEL](batch["windows"])  # [B, 16, 70]
        terms = motion_loss(prediction, self.net.encode_target(batch["motion"]), **vars(self.loss))
        ctx.optimize(terms["total"], MODEL)
        return {name: value.detach() for name, value in terms.items()}

    def evaluate(self) -> dict[str, float]:
        if self.validation is None:
            return {}
        results = self.validation(self.net)
        if self.best is not None:
            self.best.offer(self.net, results["expression_mse"])
        return results


TRAINABLE = {"all": ("encoder", "fc", "lstm", "head"), "lstm_head": ("lstm", "head"), "head": ("head",)}


def trainable_parameters(net: AudioToMotion, trainable: str) -> list[nn.Parameter]:
    """The parameters of the named group (TRAINABLE); the others are frozen (no gradient is computed for them)."""
    if trainable not in TRAINABLE:
        raise TalkfaceError(f"trainable must be one of {sorted(TRAINABLE)}, got {trainable!r}")
    chosen = []
    for name in TRAINABLE["all"]:
        for parameter in getattr(net, name).parameters():
            parameter.requires_grad_(name in TRAINABLE[trainable])
            chosen += [parameter] if name in TRAINABLE[trainable] else []
    return chosen


def pretrain(config: PretrainConfig, resume: bool = False) -> Path:
    """Pretrain on the LRW cache's train split; return the final checkpoint."""
    paths = split_records(config.cache, "train")
    seed_everything(config.train.seed)  # the initial weights are a function of the seed
    net = AudioToMotion(**config.network.kwargs())
    if config.normalize_targets:
        motion = np.stack([read_record(p).motion for p in paths[:config.statistics_clips]])
        net.set_target_statistics(*motion_statistics(torch.as_tensor(motion)))
    # Only rank 0 evaluates (Task.evaluate), so only it loads the validation set.
    is_main = int(os.environ.get("RANK", "0")) == 0
    validation = lrw_validation(config.cache, config.loss, config.val_clips,
                                _face_model(config.morphable_model)) if is_main else None
    task = MotionTask(net, config.lr, config.betas, config.loss, validation)
    train = with_epochs(config.train, config.epochs, len(paths), "training sequences")
    full = dataclasses.replace(config, train=train)
    return Trainer(task, LRWSequences(RecordClips(paths)), train, config.run_dir, full_config=full).fit(resume)


def finetune(workspace: str | Path, config: FinetuneConfig,
             resume: bool = False) -> tuple[Path, WeightsReport | None]:
    """Fine-tune on a person workspace's first frames; return (final checkpoint, pretrained-weights report)."""
    person = load_person(workspace)
    train_frames, held_out = person_split(len(person.motion), config.train_frames, config.val_fraction)
    net, report = _initial_network(config, person.windows[train_frames], person.motion[train_frames])
    validation = person_validation(person, held_out, config.loss, _face_model(config.morphable_model))
    task = MotionTask(net, config.lr, config.betas, config.loss, validation, keep_best=config.select_on_validation,
                      trainable=config.trainable)
    if task.best is not None:
        task.evaluate()  # the re-centred general model is a candidate too
    dataset = PersonSequences(person.windows[train_frames], person.motion[train_frames])
    train = with_epochs(config.train, config.epochs, max(len(dataset), config.epoch_sequences), "training sequences")
    run_dir = Path(config.run_dir) if config.run_dir is not None else Path(workspace) / "motion_finetune"
    full = dataclasses.replace(config, train=train)
    final = Trainer(task, dataset, train, run_dir, full_config=full).fit(resume)
    if task.best is not None and int(os.environ.get("RANK", "0")) == 0:
        select_on_validation(final, task.best, validation)
    if config.calibrate_pose and int(os.environ.get("RANK", "0")) == 0:
        activity = person_speech_activity(workspace, len(person.motion))[train_frames] if config.pose_rhythm else None
        calibrate_checkpoint(final, person.windows[train_frames], person.motion[train_frames], activity)
    return final, report


def select_on_validation(path: str | Path, best: BestWeights, validation: Validation) -> AudioToMotion:
    """Checkpoint `path` gets the best validated weights (the final ones among the candidates); the net.

    The state of a run resumed after its last evaluation is not kept, so the resumed run chooses
    among the evaluations it made itself and the final weights.
    """
    net = load_motion_model(path)
    best.offer(net, validation(net)["expression_mse"])
    net.load_state_dict(best.state)
    log.info("kept the weights of validation expression MSE %.5f", best.expression_mse)
    _save_model(path, net)
    return net


def reversed_speech_windows(windows: np.ndarray) -> np.ndarray:
    """MFCC windows [T, 28, 12] of the time-reversed audio: frame order and each window's time axis reversed."""
    return np.ascontiguousarray(windows[::-1, ::-1])


@torch.no_grad()
def _predicted_motion(net: AudioToMotion, windows: np.ndarray) -> torch.Tensor:
    """The net's decoded, uncalibrated motion [T, 70] on windows [T, 28, 12], as one sequence."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    try:
        prediction, _ = net(torch.as_tensor(np.ascontiguousarray(windows), device=device)[None])
        return net.decode_prediction(prediction[0].float()).cpu()
    finally:
        net.train(was_training)


def _predicted_pose(net: AudioToMotion, windows: np.ndarray) -> torch.Tensor:
    """The net's decoded, uncalibrated pose [T, 6] on windows [T, 28, 12], as one sequence."""
    return _predicted_motion(net, windows)[:, POSE]


@torch.no_grad()
def recentre_on_person(net: AudioToMotion, windows: np.ndarray, motion: np.ndarray) -> torch.Tensor:
    """Shift the net's output so its mean over the training frames is the person's mean motion; the shift [70].

    windows [T, 28, 12], motion [T, 70]: the frames fine-tuning trains on. The shift moves the
    net's target mean (network.py `shift_output`), so the first step starts from the person's mean
    instead of spending itself on the general model's offset for this person.
    """
    offset = torch.as_tensor(motion, dtype=torch.float32).mean(0) - _predicted_motion(net, windows).mean(0)
    net.shift_output(offset)
    return offset


@torch.no_grad()
def person_pose_calibration(net: AudioToMotion, windows: np.ndarray,
                            motion: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale [6], shift [6]) mapping the fine-tuned net's pose on new speech onto the person's training pose.

    The target is the true pose of the training frames (windows [T, 28, 12], motion [T, 70]). The
    net's own statistics come from the training audio played backwards: after 100 epochs the net
    has partly memorised the training frames' pose (its swing there is 55-90 % of the truth on the
    synthetic benchmark, against 40-55 % on new speech), so a gain fitted on them under-corrects.
    Reversed speech has the same spectrum, loudness and syllable rate but none of the memorised
    sequences; the net's pose angle swing on it matches its swing on unseen speech (within 11 % there).
    """
    pose = _predicted_pose(net, reversed_speech_windows(windows))  # [T, 6]
    return fit_pose_calibration(pose, torch.as_tensor(motion[:, POSE]))


@torch.no_grad()
def person_pose_rhythm(
    net: AudioToMotion, windows: np.ndarray, motion: np.ndarray, activity: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scale [6], shift [6], rhythm frequency [6] Hz, rhythm std [6]): calibration plus rhythm.

    By the law of total variance the true pose variance is the variance of what the audio predicts
    (the net's pose on the reversed training speech, as in `person_pose_calibration`) plus that of
    the unpredictable rest. So the calibration gain is no longer inflated to the full true std: it
    is min(true/predicted std, 1), clamped to POSE_GAIN_RANGE, and the rhythm gets the remaining
    variance, true - (gain x predicted)^2, so prediction + rhythm has the person's variance (the two
    are independent: the rhythm is sampled). Inference multiplies the rhythm by the speech activity
    (activity.py), so with the training frames' activity [T] given, the rhythm's own variance is the
    remaining one divided by mean(activity^2) (floored at MIN_MEAN_ACTIVITY): the gated rhythm then
    carries it on average over the clip. The rhythm oscillates (inference.py `PoseRhythm`) at the
    dominant frequency of the person's true training pose: the audio cannot tell the rhythm's phase,
    so that peak is what the prediction lacks. A Yule-Walker AR(2) fit was tried first, on the
    forward-frame residual (true - predicted) and on the true pose: on 300 frames both came out with
    real poles, i.e. low-pass noise with no peak, and drew random dominant frequencies
    (pose-statistics distance 0.37, mean over seeds 0.61, against 0.18 without a rhythm).
    """
    true = torch.as_tensor(motion[:, POSE])  # [T, 6]
    predicted_mean, predicted_std = motion_statistics(_predicted_pose(net, reversed_speech_windows(windows)))
    true_mean, true_std = motion_statistics(true)
    gain = (true_std / predicted_std).clamp(max=1.0).clamp(*POSE_GAIN_RANGE)
    residual_variance = (true_std.square() - (gain * predicted_std).square()).clamp_min(0)  # [6]
    if activity is not None:
        residual_variance /= max(float(np.mean(np.square(activity))), MIN_MEAN_ACTIVITY)
    return gain, true_mean - gain * predicted_mean, dominant_frequency(true), residual_variance.sqrt()


def calibrate_checkpoint(path: str | Path, windows: np.ndarray, motion: np.ndarray,
                         activity: np.ndarray | None = None) -> AudioToMotion:
    """Fit the person's pose calibration into checkpoint `path`; the net.

    With the training frames' speech activity [T] (`person_speech_activity`), also the pose rhythm.
    """
    net = load_motion_model(path)
    if activity is not None:
        scale, shift, frequency, std = person_pose_rhythm(net, windows, motion, activity)
        net.set_pose_rhythm(frequency, std)
        log.info("pose rhythm %s Hz, std %s", np.round(frequency.numpy(), 3).tolist(),
                 np.round(std.numpy(), 5).tolist())
    else:
        net.reset_pose_rhythm()
        scale, shift = person_pose_calibration(net, windows, motion)
    net.set_pose_calibration(scale, shift)
    log.info("pose calibration gains %s", np.round(scale.numpy(), 3).tolist())
    _save_model(path, net)
    return net


def _save_model(path: str | Path, net: AudioToMotion) -> None:
    """Replace the network's weights in checkpoint `path` (atomically), the rest of it kept."""
    checkpoint = read_checkpoint(path)
    checkpoint["models"][MODEL] = net.state_dict()
    with atomic_path(Path(path)) as tmp:
        torch.save(checkpoint, tmp)


def _initial_network(config: FinetuneConfig, windows: np.ndarray,
                     motion: np.ndarray) -> tuple[AudioToMotion, WeightsReport | None]:
    """The net fine-tuning starts from, prepared for the person's training windows [T, 28, 12] and motion [T, 70]."""
    net, report = _starting_weights(config)
    if config.recentre:
        offset = recentre_on_person(net, windows, motion)
        log.info("re-centred the network on the person: expression offset rms %.4f, pose offset %s",
                 float(offset[EXPRESSION].square().mean().sqrt()), np.round(offset[POSE].numpy(), 4).tolist())
    return net, report


def _starting_weights(config: FinetuneConfig) -> tuple[AudioToMotion, WeightsReport | None]:
    if config.pretrained is None:
        log.warning("no pretrained checkpoint given: fine-tuning starts from random weights")
        seed_everything(config.train.seed)
        return AudioToMotion(**config.network.kwargs()), None
    path = checkpoint_or_latest(config.pretrained, "talkface motion pretrain")
    args = read_checkpoint(path)["model_args"].get(MODEL)
    if args is None:
        raise TalkfaceError(f"has no '{MODEL}' model arguments; is it an audio -> motion checkpoint?", path)
    net = AudioToMotion(**args)
    report = load_weights(path, net, MODEL)
    # A calibration and rhythm belong to one person: refit after this fine-tuning.
    net.reset_pose_calibration()
    net.reset_pose_rhythm()
    return net, report


def load_motion_model(checkpoint: str | Path) -> AudioToMotion:
    """Rebuild the network a checkpoint was trained with (its constructor args) and load its weights."""
    saved = read_checkpoint(checkpoint)
    args = saved["model_args"].get(MODEL)
    if args is None or MODEL not in saved["models"]:
        raise TalkfaceError(f"holds no '{MODEL}' model (models: {sorted(saved['models'])})", checkpoint)
    net = AudioToMotion(**args)
    report = load_weights(checkpoint, net, MODEL)
    # Checkpoints from before the pose calibration or rhythm lack their buffers: identity, rhythm off.
    missing = [key for key in report.missing if key not in CALIBRATION_KEYS + RHYTHM_KEYS]
    if missing or report.unexpected or report.mismatched:
        raise TalkfaceError(f"'{MODEL}' weights do not match the network (missing {missing}, unexpected "
                            f"{report.unexpected}, mismatched shapes {report.mismatched})", checkpoint)
    return net.eval()
