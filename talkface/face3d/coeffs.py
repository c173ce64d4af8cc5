"""The 257-float coefficient layout of one frame (docs/formats.md, "The 257-coefficient layout").

This is the contract between reconstruction, the audio network, the renderer and the synthetic
world: float32 [..., 257], one row per 25 fps frame. Keep every slice of it here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

N_COEFFS = 257

IDENTITY = slice(0, 80)
EXPRESSION = slice(80, 144)
TEXTURE = slice(144, 224)
ANGLES = slice(224, 227)  # radians: rotation about x (pitch), y (yaw), z (roll)
GAMMA = slice(227, 254)  # SH lighting, RGB x 9 bands
TRANSLATION = slice(254, 257)

N_IDENTITY = IDENTITY.stop - IDENTITY.start
N_EXPRESSION = EXPRESSION.stop - EXPRESSION.start
N_TEXTURE = TEXTURE.stop - TEXTURE.start

# The audio network predicts expression + pose: 64 + 3 angles + 3 translation (docs/formats.md, motion layout).
MOTION = (EXPRESSION, ANGLES, TRANSLATION)
N_MOTION = 70


@dataclass(frozen=True)
class Coeffs:
    """Named views into a [..., 257] coefficient tensor (no copies)."""

    identity: torch.Tensor  # [..., 80]
    expression: torch.Tensor  # [..., 64]
    texture: torch.Tensor  # [..., 80]
    angles: torch.Tensor  # [..., 3]
    gamma: torch.Tensor  # [..., 27]
    translation: torch.Tensor  # [..., 3]


def split_coeffs(coeffs: torch.Tensor) -> Coeffs:
    """View a [..., 257] tensor as its named blocks."""
    if coeffs.shape[-1] != N_COEFFS:
        raise ValueError(f"expected coefficients of size {N_COEFFS} in the last dimension, got {tuple(coeffs.shape)}")
    return Coeffs(*(coeffs[..., s] for s in (IDENTITY, EXPRESSION, TEXTURE, ANGLES, GAMMA, TRANSLATION)))


def join_coeffs(
    identity: torch.Tensor,
    expression: torch.Tensor,
    texture: torch.Tensor,
    angles: torch.Tensor,
    gamma: torch.Tensor,
    translation: torch.Tensor,
) -> torch.Tensor:
    """Concatenate the named blocks back into [..., 257]."""
    return torch.cat([identity, expression, texture, angles, gamma, translation], dim=-1)


def motion_from_coeffs(coeffs: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """[..., 257] -> [..., 70]: expression, angles, translation (the audio network's target)."""
    parts = [coeffs[..., s] for s in MOTION]
    return torch.cat(parts, -1) if isinstance(coeffs, torch.Tensor) else np.concatenate(parts, -1)


def with_motion(coeffs: torch.Tensor | np.ndarray, motion: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Return a copy of `coeffs` [..., 257] whose expression and pose come from `motion` [..., 70]."""
    out = coeffs.clone() if isinstance(coeffs, torch.Tensor) else coeffs.copy()
    start = 0
    for block in MOTION:
        size = block.stop - block.start
        out[..., block] = motion[..., start : start + size]
        start += size
    return out
