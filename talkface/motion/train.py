"""Training the audio -> motion network: LRW pretraining and per-person fine-tuning (docs/method.md).

Both stages are one `MotionTask` run by the shared `talkface.train.trainer.Trainer` (resume, DDP,
tensorboard); they differ in data and defaults:

    pretrain   LRW records (talkface lrw preprocess): one 16-frame sequence per clip at a random
               offset 3..7; Adam(2e-4, betas 0.5/0.999), batch 16, 10 epochs; validation on the
               val split at a fixed offset.
    finetune   one person workspace (talkface preprocess): every 16-frame sequence of the first 300
               frames (285); Adam(1e-4), batch 16, 100 epochs, an epoch counting at least 285
               sequences on a shorter clip (`epoch_sequences`); validation on the clip's last 10 %,
               never trained on.

After fine-tuning (unless `calibrate_pose: false`) the final checkpoint gets the person's pose
calibration (network.py `calibrate_pose`; beyond the paper), see calibration.py, and
(with `pose_rhythm: true`, the default) the person's pose rhythm.

Validation (validation.py) reports the loss and, when a morphable model is configured, LMD of the mouth
landmarks projected from predicted vs true coefficients (identity from the clip); without one,
the expression MSE.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
from torch import nn

from talkface.errors import TalkfaceError
from talkface.motion.calibration import fit_pose_calibration_into, fit_viseme_mouth_into, recentre_on_person
from talkface.motion.data import (
    SEQUENCE_FRAMES, LRWSequences, PersonClip, PersonSequences, RecordClips, in_step, load_person,
    person_av_offset, person_phones, person_speech_activity, person_split, person_viseme_track,
)
from talkface.motion.losses import LossConfig, motion_loss
from talkface.motion.model import MODEL, PERSON_KEYS, load_motion_model, save_motion_weights
from talkface.face3d.coeffs import MOTION_EXPRESSION, MOTION_POSE
from talkface.motion.network import AudioToMotion, motion_statistics
from talkface.motion.records import read_record, split_records
from talkface.motion.validation import MotionValidation, lrw_validation, person_validation
from talkface.speech.phones import Phone
from talkface.speech.recognition import RECOGNISERS
from talkface.train.checkpoint import WeightsReport, checkpoint_or_latest, load_weights, read_checkpoint
from talkface.train.config import ADAM_BETAS, TrainConfig, with_epochs
from talkface.train.distributed import torchrun_ranks
from talkface.train.rng import seed_everything
from talkface.train.task import StepContext, Task
from talkface.train.trainer import Trainer

log = logging.getLogger(__name__)

# The paper fine-tunes on 300 frames: 285 overlapping 16-frame sequences.
PAPER_SEQUENCES = 300 - SEQUENCE_FRAMES + 1
# Whose track finds the offset `in_step` trains at: the word track's, which found the 7 real clips'
# offsets (av_offset.py) and was the one benchmarks/bench_cross_recording.py measured.
OFFSET_RECOGNISER = "words"


# ------------------------------------------------------------------------------------------------
# configs


@dataclass
class NetworkConfig:
    """AudioToMotion sizes (defaults: the paper's, docs/method.md)."""

    channels: tuple[int, int, int, int, int] = (64, 128, 256, 256, 512)
    fc_sizes: tuple[int, int] = (2048, 256)
    lstm_hidden: int = 256
    lstm_layers: int = 3
    dropout: float = 0.0

    def kwargs(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "fc_sizes": list(self.fc_sizes), "lstm_hidden": self.lstm_hidden,
                "lstm_layers": self.lstm_layers, "dropout": self.dropout}


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
    # False: the paper's targets (coefficients, translation z shifted by -0.5). True: per-dimension
    # mean/std of the training motion, stored in the checkpoint, so small pose angles weigh as much
    # as the expression.
    normalize_targets: bool = False
    statistics_clips: int = 2000  # training records read for the normalisation statistics
    val_clips: Optional[int] = 512  # validation records evaluated (null: all)
    morphable_model: Optional[str] = None  # a model (face3d/model.py) adds LMD to validation; null: none
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
    morphable_model: Optional[str] = None  # adds LMD to validation; auto: the workspace's own; null: none
    # Beyond the paper: after training, fit the person's pose calibration (person_pose_calibration)
    # into the final checkpoint, so predicted head motion keeps the person's mean and swing.
    calibrate_pose: bool = True
    # Beyond the paper: with the calibration, fit an oscillation at the person's dominant pose
    # frequency carrying the variance the net cannot predict (person_pose_rhythm); inference samples
    # it, gated by the audio's speech activity (activity.py), so the head carries the person's rhythm
    # while talking and holds still in silence.
    pose_rhythm: bool = True
    # Beyond the paper: after training, fit the person's viseme mouth (calibration.py
    # person_viseme_mouth: the phones a recogniser trained on real speech hears, mapped onto the
    # person's expression) and blend it into the predicted expression with the weight among these
    # that predicts the validation tail best (1: the viseme mouth alone); empty: off. On 5-8 s real
    # clips the network fits its own frames but not the next seconds, and weights below 1/2 lost on
    # the held-out frames of every real clip (docs/method.md, "Viseme mouth").
    viseme_weights: tuple[float, ...] = (0.5, 0.75, 1.0)
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
    # Beyond the paper, off by default: train on the clip's frames paired with the audio its
    # sound-picture offset puts in step with them (data.py `in_step`; the offset as the viseme mouth
    # finds it, from the word track, av_offset.py), so the network does not learn the recording's
    # offset and carry it into every new video. It predicts another recording of the speaker better
    # (benchmarks/bench_cross_recording.py: 4 of 4 runs) and the clip's own frames better, but on the
    # 7 real clips' videos of new speech the mouth followed the phones less on 2 clips (3 of 11 videos
    # below the check; benchmarks/README.md, "Training in step").
    in_step: bool = False
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
        if not all(0.0 <= w <= 1.0 for w in self.viseme_weights):
            raise ValueError(f"viseme_weights must lie in [0, 1], got {list(self.viseme_weights)}")
        if self.train_frames < SEQUENCE_FRAMES:
            raise ValueError(f"train_frames must be at least {SEQUENCE_FRAMES}, got {self.train_frames}")


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

    def __init__(self, net: AudioToMotion, lr: float, loss: LossConfig,
                 validation: MotionValidation | None = None, keep_best: bool = False, trainable: str = "all"):
        self.net = net
        self.loss = loss
        self.validation = validation
        self.optimizer = torch.optim.Adam(trainable_parameters(net, trainable), lr=lr, betas=ADAM_BETAS)
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


def _face_model(source: str | None, workspace: str | Path | None = None) -> nn.Module | None:
    """The morphable model validation scores LMD with (None: no LMD); "auto" is the workspace's own."""
    if source is None:
        return None
    from talkface.face3d.model import load_morphable_model, recorded_morphable_model, resolve_morphable_model
    from talkface.workspace import Workspace

    recorded = recorded_morphable_model(Workspace(workspace).manifest) if workspace is not None else None
    return load_morphable_model(resolve_morphable_model(source, recorded))


def pretrain(config: PretrainConfig, resume: bool = False) -> Path:
    """Pretrain on the LRW cache's train split; return the final checkpoint."""
    paths = split_records(config.cache, "train")
    seed_everything(config.train.seed)  # the initial weights are a function of the seed
    net = AudioToMotion(**config.network.kwargs())
    if config.normalize_targets:
        motion = np.stack([read_record(p).motion for p in paths[:config.statistics_clips]])
        net.set_target_statistics(*motion_statistics(torch.as_tensor(motion)))
    # Only rank 0 evaluates (Task.evaluate), so only it loads the validation set.
    is_main = torchrun_ranks().is_main
    validation = lrw_validation(config.cache, config.loss, config.val_clips,
                                _face_model(config.morphable_model)) if is_main else None
    task = MotionTask(net, config.lr, config.loss, validation)
    train = with_epochs(config.train, config.epochs, len(paths), "training sequences")
    full = dataclasses.replace(config, train=train)
    return Trainer(task, LRWSequences(RecordClips(paths)), train, config.run_dir, full_config=full).fit(resume)


def finetune(workspace: str | Path, config: FinetuneConfig,
             resume: bool = False) -> tuple[Path, WeightsReport | None]:
    """Fine-tune on a person workspace's first frames; return (final checkpoint, pretrained-weights report)."""
    person = load_person(workspace)
    train_frames, held_out = person_split(len(person.motion), config.train_frames, config.val_fraction)
    heard = RECOGNISERS if config.viseme_weights else (OFFSET_RECOGNISER,) if config.in_step else ()
    phones = {name: person_phones(workspace, name) for name in heard}
    if config.in_step:
        shift = person_av_offset(workspace, phones[OFFSET_RECOGNISER], train_frames.stop)
        person = in_step(person, shift)
        log.info("training on the clip's frames in step with its audio: offset %+d frames", shift)
    net, report = _initial_network(config, person.windows[train_frames], person.motion[train_frames])
    validation = person_validation(person, held_out, config.loss, _face_model(config.morphable_model, workspace))
    task = MotionTask(net, config.lr, config.loss, validation, keep_best=config.select_on_validation,
                      trainable=config.trainable)
    if task.best is not None:
        task.evaluate()  # the re-centred general model is a candidate too
    dataset = PersonSequences(person.windows[train_frames], person.motion[train_frames])
    train = with_epochs(config.train, config.epochs, max(len(dataset), config.epoch_sequences), "training sequences")
    run_dir = Path(config.run_dir) if config.run_dir is not None else Path(workspace) / "motion_finetune"
    full = dataclasses.replace(config, train=train)
    final = Trainer(task, dataset, train, run_dir, full_config=full).fit(resume)
    if torchrun_ranks().is_main:
        personalise_checkpoint(final, config, workspace, person, phones, task.best, validation)
    return final, report


def personalise_checkpoint(path: str | Path, config: FinetuneConfig, workspace: str | Path, person: PersonClip,
                           phones: dict[str, list[Phone]], best: BestWeights | None,
                           validation: MotionValidation) -> AudioToMotion:
    """The fine-tuned checkpoint `path` made the person's, in one load and one save; the net.

    `person` holds the pairs the network was trained on; `phones` what each recogniser heard.

    In order, each as configured: the best validated weights (`best`, the final ones among the
    candidates; a run resumed after its last evaluation chooses among the evaluations it made itself
    and the final weights), the pose calibration and rhythm, the viseme mouth.
    """
    train_frames, held_out = person_split(len(person.motion), config.train_frames, config.val_fraction)
    net = load_motion_model(path)
    if best is not None:
        best.offer(net, validation(net)["expression_mse"])
        net.load_state_dict(best.state)
        log.info("kept the weights of validation expression MSE %.5f", best.expression_mse)
    if config.calibrate_pose:
        activity = person_speech_activity(workspace, len(person.motion))[train_frames] if config.pose_rhythm else None
        fit_pose_calibration_into(net, person.windows[train_frames], person.motion[train_frames], activity)
    if config.viseme_weights:
        tracks = {}
        for name in RECOGNISERS:  # each put in step with the training frames' mouth (av_offset.py)
            tracks[name], shift = person_viseme_track(workspace, len(person.motion), phones[name], train_frames.stop)
            log.info("%s track: the clip's audio-video offset %+d frames", name, shift)
        fit_viseme_mouth_into(net, person.windows, person.motion, tracks, train_frames, held_out,
                              config.viseme_weights)
    save_motion_weights(path, net)
    return net


def _initial_network(config: FinetuneConfig, windows: np.ndarray,
                     motion: np.ndarray) -> tuple[AudioToMotion, WeightsReport | None]:
    """The net fine-tuning starts from, prepared for the person's training windows [T, 28, 12] and motion [T, 70]."""
    net, report = _starting_weights(config)
    if config.recentre:
        offset = recentre_on_person(net, windows, motion)
        log.info("re-centred the network on the person: expression offset rms %.4f, pose offset %s",
                 float(offset[MOTION_EXPRESSION].square().mean().sqrt()),
                 np.round(offset[MOTION_POSE].numpy(), 4).tolist())
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
    report = load_weights(path, net, MODEL, optional=PERSON_KEYS)
    # A calibration and rhythm belong to one person: refit after this fine-tuning.
    net.reset_pose_calibration()
    net.reset_pose_rhythm()
    return net, report


