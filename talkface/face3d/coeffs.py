"""The 257-float coefficient layout of one frame (docs/formats.md, "The 257-coefficient layout").

This is the contract between reconstruction, the audio network, the renderer and the synthetic
world: float32 [..., 257], one row per 25 fps frame. Keep every slice of it here.

It also owns the 70-float motion layout, the audio network's target and output: the blocks of the
coefficients that speech drives, float32 [..., 70] = expression 64, angles 3, translation 3, in
that order. The two layouts have distinct names: EXPRESSION, ANGLES, TRANSLATION are slices of the
coefficients, MOTION_EXPRESSION, MOTION_ANGLES, MOTION_TRANSLATION (and MOTION_POSE, angles plus
translation) slices of the motion vector. No other module writes a slice or a size of either:
it imports them from here, or goes through `motion_from_coeffs` / `with_motion`.

Why here: the motion vector is defined as blocks of the coefficients, so both layouts live
together, next to the morphable model that gives the blocks their meaning; and this module
imports nothing from talkface, so every layer, the lowest included, may import it.
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

N_IDENTITY = IDENTITY.stop - IDENTITY.start  # 80
N_EXPRESSION = EXPRESSION.stop - EXPRESSION.start  # 64
N_TEXTURE = TEXTURE.stop - TEXTURE.start  # 80
N_ANGLES = ANGLES.stop - ANGLES.start  # 3
N_GAMMA = GAMMA.stop - GAMMA.start  # 27
N_TRANSLATION = TRANSLATION.stop - TRANSLATION.start  # 3

# The motion vector (docs/formats.md, motion layout): expression, then the head pose (angles, translation).
MOTION_EXPRESSION = slice(0, N_EXPRESSION)
MOTION_ANGLES = slice(N_EXPRESSION, N_EXPRESSION + N_ANGLES)
MOTION_TRANSLATION = slice(MOTION_ANGLES.stop, MOTION_ANGLES.stop + N_TRANSLATION)
MOTION_POSE = slice(MOTION_ANGLES.start, MOTION_TRANSLATION.stop)  # angles + translation
MOTION_TRANSLATION_Z = MOTION_TRANSLATION.stop - 1  # the depth, the last entry
N_MOTION = MOTION_TRANSLATION.stop  # 70
N_POSE = N_ANGLES + N_TRANSLATION  # 6

# Where each motion block sits in the coefficients: (motion slice, coefficient slice), in motion order.
MOTION_IN_COEFFS = ((MOTION_EXPRESSION, EXPRESSION), (MOTION_ANGLES, ANGLES), (MOTION_TRANSLATION, TRANSLATION))


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
    parts = [coeffs[..., block] for _, block in MOTION_IN_COEFFS]
    return torch.cat(parts, -1) if isinstance(coeffs, torch.Tensor) else np.concatenate(parts, -1)


def with_motion(coeffs: torch.Tensor | np.ndarray, motion: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Return a copy of `coeffs` [..., 257] whose expression and pose come from `motion` [..., 70]."""
    out = coeffs.clone() if isinstance(coeffs, torch.Tensor) else coeffs.copy()
    for in_motion, in_coeffs in MOTION_IN_COEFFS:
        out[..., in_coeffs] = motion[..., in_motion]
    return out


def expression_on_pose(pose_source: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """Motion [T, 70]: the head pose of `pose_source` [T, 70] under `expression`, one [64] held or [T', 64]
    (T then the shorter of the two)."""
    expression = np.asarray(expression)
    if expression.ndim == 1:
        expression = np.broadcast_to(expression, (len(pose_source), len(expression)))
    count = min(len(pose_source), len(expression))
    motion = np.array(pose_source[:count])
    motion[:, MOTION_EXPRESSION] = expression[:count]
    return motion
