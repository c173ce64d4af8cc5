"""Validation of the audio -> motion network: held-out sequences scored by loss, expression MSE and LMD.

Pretraining holds out the LRW val split (each clip at one fixed offset); fine-tuning the clip's
last frames, never trained on. LMD needs a morphable model: the mouth landmarks projected from
predicted vs true coefficients, with the clip's identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from talkface.motion.data import LRW_OFFSETS, SEQUENCE_FRAMES, PersonClip
from talkface.motion.inference import motion_landmarks
from talkface.motion.losses import LossConfig, motion_loss
from talkface.face3d.coeffs import MOTION_EXPRESSION
from talkface.motion.network import AudioToMotion
from talkface.motion.records import read_record, split_records

# Validation takes every LRW clip at the middle of the training offsets, so it is deterministic.
VAL_OFFSET = (LRW_OFFSETS[0] + LRW_OFFSETS[1]) // 2


@dataclass
class MotionValidation:
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
            (decoded[..., MOTION_EXPRESSION] - self.motion[..., MOTION_EXPRESSION]).square().mean())}
        if self.face_model is not None:
            from talkface.metrics import lmd

            result["lmd"] = lmd(self.landmarks(decoded), self.landmarks(self.motion))
        return result

    def landmarks(self, motion: torch.Tensor) -> np.ndarray:
        """Motion [N, L, 70] -> projected landmarks [N*L, 68, 2] with each sequence's identity."""
        n, length = motion.shape[:2]
        identity = self.identity[:, None].expand(n, length, -1).reshape(n * length, -1)
        return motion_landmarks(self.face_model, motion.reshape(n * length, -1), identity)


def lrw_validation(cache: str | Path, loss: LossConfig, max_clips: int | None,
                   face_model: nn.Module | None) -> MotionValidation:
    """The val split's records, each at the fixed offset VAL_OFFSET (frames VAL_OFFSET+1 .. +16)."""
    paths = split_records(cache, "val")[:max_clips]
    records = [read_record(p) for p in paths]
    span = slice(VAL_OFFSET + 1, VAL_OFFSET + 1 + SEQUENCE_FRAMES)
    return MotionValidation(
        windows=torch.as_tensor(np.stack([r.windows[span] for r in records])),
        motion=torch.as_tensor(np.stack([r.motion[span] for r in records])),
        identity=torch.as_tensor(np.stack([r.identity for r in records])),
        loss=loss, face_model=face_model,
    )


def person_validation(person: PersonClip, held_out: slice, loss: LossConfig,
                      face_model: nn.Module | None) -> MotionValidation:
    """The held-out frames as one sequence (the LSTM starts from zero state at its first frame)."""
    return MotionValidation(
        windows=torch.as_tensor(person.windows[held_out])[None], motion=torch.as_tensor(person.motion[held_out])[None],
        identity=torch.as_tensor(person.identity)[None], loss=loss, face_model=face_model,
    )
