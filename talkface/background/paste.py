"""Paste-back: the refined 256x256 face into the full-resolution frame it was cropped from.

docs/method.md, "Compositing and paste-back": the original resized the GAN output to the crop
window and used cv2.seamlessClone over the whole window. Here only the face region moves: the face
(colour-matched to the frame under it beforehand, background/color_match.py) is blended through a
feathered mask ("feather") or Poisson-cloned inside the mask ("poisson"). Every pixel outside the
region is the frame's own.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import torch
from scipy import ndimage

from talkface.errors import ConfigError

METHODS = ("feather", "poisson")
FEATHER = 0.06  # ramp width as a fraction of the window side: ~15 px for a 256 px window


def paste_back(
    face: torch.Tensor | np.ndarray,
    frame: np.ndarray,
    window: tuple[int, int, int],
    mask: torch.Tensor | np.ndarray,
    method: Literal["feather", "poisson"] = "feather",
    feather: float = FEATHER,
) -> np.ndarray:
    """Put `face` (float [3, S, S] in [0, 1] or uint8 [S, S, 3], RGB) into `frame` (uint8 [H, W, 3]).

    window = (x0, y0, size): the face covers frame pixels [x0, x0+size) x [y0, y0+size); it may lie
    partly outside the frame. mask [S, S] in [0, 1] (bool or float) marks the face region of the
    crop. Returns a new uint8 [H, W, 3]; pixels outside the region (and outside the window) are the
    frame's, bit for bit.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown paste-back method {method!r}; expected one of {METHODS}")
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected a uint8 frame [H, W, 3], got {frame.dtype} {list(frame.shape)}")
    x0, y0, size = (int(v) for v in window)
    face, region_mask = _resize(_face_float(face), _mask_float(mask), size)  # [size, size, 3], [size, size]
    # The part of the window inside the frame, in frame and in window coordinates.
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + size, frame.shape[1]), min(y0 + size, frame.shape[0])
    out = frame.copy()
    if fx1 <= fx0 or fy1 <= fy0:
        return out
    face = face[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    region = region_mask[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] >= 0.5
    under = frame[fy0:fy1, fx0:fx1]
    if not region.any():
        return out
    face_u8 = np.clip(np.rint(face * 255), 0, 255).astype(np.uint8)
    if method == "feather":
        blended, region = _feather(face_u8, under, region, feather * size)
    else:
        blended, region = _poisson(face_u8, under, region)
    out[fy0:fy1, fx0:fx1] = np.where(region[..., None], blended, under)
    return out


def _feather(face: np.ndarray, under: np.ndarray, region: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Blend with a weight ramping 0 -> 1 over `width` px inward from the region's border."""
    # Pad so the window's (and the frame's) edge counts as the region's border too.
    inside = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]  # [h, w] px to outside, >= 1 inside
    weight = np.clip(inside / max(width, 1.0), 0, 1)[..., None]  # > 0 exactly on the region
    blended = np.rint(weight * face + (1 - weight) * under).astype(np.uint8)
    return blended, weight[..., 0] > 0


def _poisson(face: np.ndarray, under: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cv2.seamlessClone (normal clone) of the face into the frame crop under it, inside the region."""
    mask = region.astype(np.uint8) * 255
    # OpenCV clears the mask's outer pixel ring itself; clear ours too so both agree on the region.
    mask[[0, -1], :] = 0
    mask[:, [0, -1]] = 0
    if not mask.any():
        return under, np.zeros_like(region)
    # OpenCV puts the mask's bounding box at `centre` minus half its size (integer halves).
    bx, by, bw, bh = cv2.boundingRect(mask)
    # A copy: OpenCV re-borders the mask in its own buffer, scrambling the array passed in.
    cloned = cv2.seamlessClone(face, under, mask.copy(), (bx + bw // 2, by + bh // 2), cv2.NORMAL_CLONE)
    return cloned, mask > 0


def _face_float(face: torch.Tensor | np.ndarray) -> np.ndarray:
    """float [3, S, S] tensor in [0, 1] or uint8 [S, S, 3] -> float32 [S, S, 3] in [0, 1]."""
    if isinstance(face, torch.Tensor):
        if face.ndim != 3 or face.shape[0] != 3:
            raise ValueError(f"expected a face tensor [3, S, S], got {list(face.shape)}")
        return face.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    face = np.asarray(face)
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(f"expected a uint8 face [S, S, 3], got {face.dtype} {list(face.shape)}")
    return face.astype(np.float32) / 255


def _mask_float(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask, np.float32)


def _resize(face: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Face [S, S, 3] and mask [S, S] -> the window's size (area when shrinking, Lanczos when growing)."""
    if mask.shape != face.shape[:2]:
        raise ValueError(f"expected a mask {list(face.shape[:2])} like the face, got {list(mask.shape)}")
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    interp = cv2.INTER_AREA if size < face.shape[0] else cv2.INTER_LANCZOS4
    resized = cv2.resize(face, (size, size), interpolation=interp)
    return np.clip(resized, 0, 1), cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
