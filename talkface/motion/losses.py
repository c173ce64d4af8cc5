"""Training loss of the audio -> motion network (docs/method.md, "Audio to motion").

total = MSE(expression) + 0.2 MSE(pose) + 0.01 smooth(pose) + 1e-4 smooth(expression), all in
target space. The smoothness term follows the original training code (Audio/code/atcnet.py): it
penalises the *prediction's* own frame-to-frame change, not its difference to the target's
change, and it is a sum, not a mean, over frames and dimensions, averaged over the batch:

    smooth(x) = mean_b sum_{t, d} (x[b, t+1, d] - x[b, t, d])²

The weights were tuned with that sum over 16-frame sequences, so it is kept as is; the MSE
terms are means over every element.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from talkface.face3d.coeffs import MOTION_EXPRESSION, MOTION_POSE, N_MOTION


def smoothness(sequence: torch.Tensor) -> torch.Tensor:
    """[B, T, D] -> scalar: squared frame-to-frame differences summed per sequence, batch mean."""
    steps = sequence[:, 1:] - sequence[:, :-1]  # [B, T-1, D]
    return steps.square().sum(dim=(1, 2)).mean()


def motion_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    pose_weight: float = 0.2,
    pose_smooth_weight: float = 0.01,
    expression_smooth_weight: float = 1e-4,
) -> dict[str, torch.Tensor]:
    """Loss terms and their weighted "total" for prediction and target [B, T, 70] in target space."""
    if prediction.shape != target.shape or prediction.dim() != 3 or prediction.shape[-1] != N_MOTION:
        raise ValueError(f"expected prediction and target [B, T, {N_MOTION}], "
                         f"got {tuple(prediction.shape)} and {tuple(target.shape)}")
    terms = {
        "expression": F.mse_loss(prediction[..., MOTION_EXPRESSION], target[..., MOTION_EXPRESSION]),
        "pose": F.mse_loss(prediction[..., MOTION_POSE], target[..., MOTION_POSE]),
        "pose_smooth": smoothness(prediction[..., MOTION_POSE]),
        "expression_smooth": smoothness(prediction[..., MOTION_EXPRESSION]),
    }
    terms["total"] = (
        terms["expression"]
        + pose_weight * terms["pose"]
        + pose_smooth_weight * terms["pose_smooth"]
        + expression_smooth_weight * terms["expression_smooth"]
    )
    return terms


@dataclass
class LossConfig:
    """Loss weights relative to the expression MSE (docs/method.md)."""

    pose_weight: float = 0.2
    pose_smooth_weight: float = 0.01
    expression_smooth_weight: float = 1e-4
