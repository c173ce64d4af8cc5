"""ATC-net: per-frame MFCC windows -> expression + head pose (docs/method.md, "Audio to motion").

A 2-D CNN encodes each frame's 28x12 MFCC window, two fully connected layers reduce it to 256,
a 3-layer LSTM runs over the frames and a linear layer gives 70 numbers per frame. The network
predicts in *target space*; `encode_target` / `decode_prediction` map to and from coefficient
units with the statistics stored as buffers, so a checkpoint carries them.

Beyond the paper, which relies on fine-tuning alone, the network also carries a per-person pose
calibration (`calibrate_pose`): an affine map per pose dimension, identity unless fine-tuning fits
one (calibration.py, `calibrate_pose` in configs/motion_finetune.yaml). An MSE-trained recurrence cannot
know the phase of a person's head rhythm from the audio, so on new speech it predicts the conditional
mean and its swing shrinks (to 40-55 % of the person's std on the synthetic benchmark); the map
restores the person's pose mean and std.

Also beyond the paper, a per-person pose rhythm (`set_pose_rhythm`): per pose dimension an
oscillation at the person's dominant frequency with a wandering phase, carrying the variance the
net cannot predict (calibration.py `person_pose_rhythm`), sampled at inference (inference.py
`PoseRhythm`), multiplied by the audio's speech activity (activity.py: zero in silence) and added
to the calibrated pose, so the head carries the person's own rhythm while talking. Its std is
zero, i.e. off, unless fine-tuning fits one.

Also beyond the paper, a per-person viseme mouth (`set_viseme_mouth`): a linear map from the mouth
directions of the phones a recogniser hears in the audio (talkface/speech/recognition.py) to the
person's expression, blended into the predicted expression with a weight (`blend_visemes`), and
which of the recogniser's ways of hearing (`viseme_recogniser_name`) its track comes from. The
network learned speech from synthetic voices; the recogniser learned it from real ones
(docs/method.md, "Viseme mouth"). Its weight is zero, i.e. off, unless fine-tuning fits one.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from talkface.audio import N_COEFFS as N_MFCC_COEFFS
from talkface.audio import WINDOW_MFCC_FRAMES
from talkface.face3d.coeffs import (
    MOTION_EXPRESSION, MOTION_POSE, MOTION_TRANSLATION_Z, N_EXPRESSION, N_MOTION, N_POSE,
)
from talkface.speech.recognition import RECOGNISERS, check_recogniser
from talkface.speech.visemes import N_DIRECTIONS

# The original trains on translation z - 0.5 (docs/method.md). Here that shift is the default
# target mean, the one place it lives: target = (motion - mean) / std.
TRANSLATION_Z_OFFSET = 0.5
# Floor for per-dimension std, so a dimension constant in the training data does not blow up.
MIN_STD = 1e-4
# Pose calibration gains are clamped to this range: a prediction that barely moves (a gain of 10+)
# would otherwise be blown up into noise, and one that over-swings is never silenced. The
# synthetic benchmark fits 1.25-2.8 (benchmarks/bench_motion_personal.py).
POSE_GAIN_RANGE = (0.5, 4.0)
# Phase wander of the pose rhythm: Gaussian steps of this std (rad) per 25 fps frame, so the phase
# drifts by 1 rad in ~4 s (100 frames): coherent over a few periods of a 0.2-0.5 Hz head rhythm,
# not a pure tone. On bench_motion_personal.py's fine-tuned network, 0.03 / 0.06 / 0.1 / 0.2 rad put
# the person first in 32 / 32 / 30 / 21 of 32 rhythm seeds; 0.06 is the synthetic generator's own
# drift (talkface/synth/motion.py), so it was not picked, to keep the benchmark honest.
RHYTHM_PHASE_STEP_STD = 0.1

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [layers, B, hidden]


def default_target_mean(size: int = N_MOTION) -> torch.Tensor:
    """[size] zeros, except translation z = 0.5: the original's -0.5 shift of the training target."""
    mean = torch.zeros(size)
    if size == N_MOTION:
        mean[MOTION_TRANSLATION_Z] = TRANSLATION_Z_OFFSET
    return mean


def motion_statistics(motion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension (mean, std) over all frames of `motion` [..., D], std floored at MIN_STD."""
    flat = motion.reshape(-1, motion.shape[-1]).double()  # [N, D]
    return flat.mean(0).float(), flat.std(0, unbiased=False).clamp_min(MIN_STD).float()


def fit_pose_calibration(
    predicted: torch.Tensor, true: torch.Tensor, gain_range: tuple[float, float] = POSE_GAIN_RANGE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale [6], shift [6]) with pose' = scale * pose + shift mapping predicted pose [N, 6] onto true pose [M, 6].

    Per dimension pose' = true_mean + gain * (pose - predicted_mean), gain = true_std / predicted_std
    clamped to `gain_range`: the calibrated prediction has the true mean and (unless clamped) std.
    """
    predicted_mean, predicted_std = motion_statistics(predicted)
    true_mean, true_std = motion_statistics(true)
    gain = (true_std / predicted_std).clamp(*gain_range)
    return gain, true_mean - gain * predicted_mean


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    # 3x3, stride 1, padding 1 keeps the size; no conv bias in front of BatchNorm (as the original).
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _pooled(size: int, stride: int, kernel: int = 3) -> int:
    """Output length of an unpadded max pool."""
    return (size - kernel) // stride + 1


class AudioToMotion(nn.Module):
    """MFCC windows [B, T, 28, 12] -> motion in target space [B, T, out_dim], with LSTM state."""

    def __init__(
        self,
        channels: Sequence[int] = (64, 128, 256, 256, 512),
        fc_sizes: Sequence[int] = (2048, 256),
        lstm_hidden: int = 256,
        lstm_layers: int = 3,
        out_dim: int = N_MOTION,
        dropout: float = 0.0,
        window_shape: Sequence[int] = (WINDOW_MFCC_FRAMES, N_MFCC_COEFFS),
    ):
        super().__init__()
        if len(channels) != 5 or len(fc_sizes) != 2 or len(window_shape) != 2:
            raise ValueError(
                f"need 5 conv widths, 2 fc sizes and a 2-D window, got {channels}, {fc_sizes}, {window_shape}"
            )
        self._args = dict(
            channels=list(channels), fc_sizes=list(fc_sizes), lstm_hidden=lstm_hidden, lstm_layers=lstm_layers,
            out_dim=out_dim, dropout=dropout, window_shape=list(window_shape),
        )
        c1, c2, c3, c4, c5 = channels
        self.window_shape = tuple(window_shape)
        self.encoder = nn.Sequential(
            _conv_bn_relu(1, c1),
            _conv_bn_relu(c1, c2),
            nn.MaxPool2d(3, stride=(1, 2)),  # time keeps its resolution, coefficients halve
            _conv_bn_relu(c2, c3),
            _conv_bn_relu(c3, c4),
            _conv_bn_relu(c4, c5),
            nn.MaxPool2d(3, stride=2),
        )
        height, width = self.window_shape
        # 28x12 -> 26x5 -> 12x2, so 512 * 24 = 12288 at the paper's widths (docs/method.md).
        self.flat_features = c5 * _pooled(_pooled(height, 1), 2) * _pooled(_pooled(width, 2), 2)
        self.fc = nn.Sequential(
            nn.Linear(self.flat_features, fc_sizes[0]),
            nn.ReLU(inplace=True),
            nn.Linear(fc_sizes[0], fc_sizes[1]),
            nn.ReLU(inplace=True),
        )
        self.lstm = nn.LSTM(fc_sizes[1], lstm_hidden, lstm_layers, batch_first=True, dropout=dropout)
        self.head = nn.Linear(lstm_hidden, out_dim)
        self.register_buffer("target_mean", default_target_mean(out_dim))  # [out_dim], coefficient units
        self.register_buffer("target_std", torch.ones(out_dim))  # [out_dim]
        # Per-person pose calibration, identity until fine-tuning fits one (`set_pose_calibration`).
        self.register_buffer("pose_scale", torch.ones(N_POSE))  # [6]
        self.register_buffer("pose_shift", torch.zeros(N_POSE))  # [6], coefficient units
        # Per-person pose rhythm, off (zero std) until fine-tuning fits one (`set_pose_rhythm`).
        self.register_buffer("pose_rhythm_frequency", torch.zeros(N_POSE))  # [6] Hz
        self.register_buffer("pose_rhythm_std", torch.zeros(N_POSE))  # [6] coefficient units
        # Per-person viseme mouth, off (zero weight) until fine-tuning fits one (`set_viseme_mouth`).
        self.register_buffer("viseme_map", torch.zeros(N_DIRECTIONS, N_EXPRESSION))  # [3, 64]
        self.register_buffer("viseme_bias", torch.zeros(N_EXPRESSION))  # [64] coefficient units
        self.register_buffer("viseme_weight", torch.zeros(()))  # share of the viseme mouth in the expression
        self.register_buffer("viseme_recogniser", torch.zeros((), dtype=torch.long))  # index into RECOGNISERS

    def constructor_args(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this network (plain data, for checkpoints)."""
        return {key: list(value) if isinstance(value, list) else value for key, value in self._args.items()}

    def forward(self, windows: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """windows [B, T, 28, 12] -> (prediction in target space [B, T, out_dim], new LSTM state).

        Pass the returned state into the next call to continue the same sequence in chunks.
        """
        if windows.dim() != 4 or tuple(windows.shape[-2:]) != self.window_shape:
            raise ValueError(f"expected windows [B, T, {self.window_shape[0]}, {self.window_shape[1]}], "
                             f"got {tuple(windows.shape)}")
        batch, frames = windows.shape[:2]
        features = self.encoder[0](windows.reshape(batch * frames, 1, *self.window_shape))  # [B*T, c1, 28, 12]
        # Channels-last activations make the convolutions ~20 % faster on CPU (oneDNN; results equal
        # to float rounding). The 1-channel input cannot carry the layout, so it starts here.
        features = self.encoder[1:](features.contiguous(memory_format=torch.channels_last))  # [B*T, C, h, w]
        features = self.fc(features.flatten(1)).reshape(batch, frames, -1)  # [B, T, 256]
        # The recurrence runs in float32 even under autocast: its state is carried across chunks
        # of arbitrarily long audio, and it is a small part of the cost.
        with torch.autocast(windows.device.type, enabled=False):
            hidden, new_state = self.lstm(features.float(), state)  # [B, T, hidden]
            return self.head(hidden), new_state

    def encode_target(self, motion: torch.Tensor) -> torch.Tensor:
        """Motion in coefficient units [..., out_dim] -> the training target."""
        return (motion - self.target_mean) / self.target_std

    def decode_prediction(self, prediction: torch.Tensor) -> torch.Tensor:
        """The network's output [..., out_dim] -> motion in coefficient units."""
        return prediction * self.target_std + self.target_mean

    def set_target_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Normalise targets per dimension with (mean, std) in coefficient units, e.g. `motion_statistics`.

        The mean replaces the default one, translation z shift included: centring subsumes it.
        """
        if mean.shape != self.target_mean.shape or std.shape != self.target_std.shape:
            raise ValueError(f"statistics must have shape {tuple(self.target_mean.shape)}, "
                             f"got {tuple(mean.shape)} and {tuple(std.shape)}")
        self.target_mean.copy_(mean)
        self.target_std.copy_(std.clamp_min(MIN_STD))

    def shift_output(self, offset: torch.Tensor) -> None:
        """Add `offset` [out_dim] (coefficient units) to every decoded prediction, by moving the target mean.

        Targets are encoded with the same mean, so the network's output in target space, its weights
        and its loss on motion shifted by the same offset are unchanged: only the point the decoded
        motion centres on moves (fine-tuning re-centres a general model on a person with it).
        """
        if offset.shape != self.target_mean.shape:
            raise ValueError(f"offset must have shape {tuple(self.target_mean.shape)}, got {tuple(offset.shape)}")
        self.target_mean.add_(offset.to(self.target_mean))

    def calibrate_pose(self, motion: torch.Tensor) -> torch.Tensor:
        """Motion in coefficient units [..., 70] -> the same with the pose mapped by the person's calibration.

        Frame by frame and with stored constants only, so streaming in chunks is unaffected.
        """
        pose = motion[..., MOTION_POSE] * self.pose_scale + self.pose_shift  # [..., 6]
        return torch.cat([motion[..., MOTION_EXPRESSION], pose], -1)

    def set_pose_calibration(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        """pose' = scale * pose + shift per pose dimension, e.g. from `fit_pose_calibration`."""
        if scale.shape != self.pose_scale.shape or shift.shape != self.pose_shift.shape:
            raise ValueError(f"pose calibration must have shape ({N_POSE},), got {tuple(scale.shape)} and "
                             f"{tuple(shift.shape)}")
        self.pose_scale.copy_(scale)
        self.pose_shift.copy_(shift)

    def reset_pose_calibration(self) -> None:
        """Back to the identity: the network's own pose."""
        self.pose_scale.fill_(1.0)
        self.pose_shift.zero_()

    def set_pose_rhythm(self, frequency_hz: torch.Tensor, std: torch.Tensor) -> None:
        """Frequency [6] (Hz) and std [6] (coefficient units) of the sampled pose rhythm per pose dimension."""
        if frequency_hz.shape != self.pose_rhythm_frequency.shape or std.shape != self.pose_rhythm_std.shape:
            raise ValueError(f"pose rhythm frequency and std must have shape ({N_POSE},), got "
                             f"{tuple(frequency_hz.shape)} and {tuple(std.shape)}")
        self.pose_rhythm_frequency.copy_(frequency_hz)
        self.pose_rhythm_std.copy_(std)

    def reset_pose_rhythm(self) -> None:
        """Off: no sampled rhythm is added to the pose."""
        self.pose_rhythm_frequency.zero_()
        self.pose_rhythm_std.zero_()

    def set_viseme_mouth(self, mapping: torch.Tensor, bias: torch.Tensor, weight: float,
                         recogniser: str = RECOGNISERS[0]) -> None:
        """Viseme expression = bias + track @ mapping ([3, 64], [64]), `weight` of it in the blend; the
        track is the one of `recogniser` (speech/recognition.py RECOGNISERS)."""
        if mapping.shape != self.viseme_map.shape or bias.shape != self.viseme_bias.shape:
            raise ValueError(f"viseme mouth must have shapes {tuple(self.viseme_map.shape)} and "
                             f"{tuple(self.viseme_bias.shape)}, got {tuple(mapping.shape)} and {tuple(bias.shape)}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"viseme weight must lie in [0, 1], got {weight}")
        check_recogniser(recogniser)
        self.viseme_map.copy_(mapping)
        self.viseme_bias.copy_(bias)
        self.viseme_weight.fill_(weight)
        self.viseme_recogniser.fill_(RECOGNISERS.index(recogniser))

    def reset_viseme_mouth(self) -> None:
        """Off: the expression is the network's own."""
        self.viseme_map.zero_()
        self.viseme_bias.zero_()
        self.viseme_weight.zero_()
        self.viseme_recogniser.zero_()

    @property
    def viseme_recogniser_name(self) -> str:
        """Which way of hearing phones the viseme mouth was fitted on (speech/recognition.py RECOGNISERS)."""
        return RECOGNISERS[int(self.viseme_recogniser)]

    @property
    def has_viseme_mouth(self) -> bool:
        """Whether inference blends a viseme mouth into the expression (its weight is non-zero)."""
        return bool(self.viseme_weight > 0)

    def blend_visemes(self, motion: torch.Tensor, track: torch.Tensor) -> torch.Tensor:
        """Motion [..., 70] with its expression blended toward the viseme mouth of `track` [..., 3].

        Frame by frame and with stored constants only, so streaming in chunks is unaffected.
        """
        visemes = self.viseme_bias + track.to(self.viseme_map) @ self.viseme_map  # [..., 64]
        expression = torch.lerp(motion[..., MOTION_EXPRESSION], visemes, self.viseme_weight)
        return torch.cat([expression, motion[..., MOTION_POSE]], -1)

    @property
    def has_pose_rhythm(self) -> bool:
        """Whether inference adds a sampled rhythm (some std is non-zero)."""
        return bool((self.pose_rhythm_std > 0).any())
