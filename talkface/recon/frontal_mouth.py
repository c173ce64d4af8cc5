"""A video's mouth opening with the head pose taken out: the lips of its 3D fit, turned to the front.

The inner-lip gap of 2D landmarks mixes mouth and head: a nod shortens the gap on screen, a turn
shortens the distance between the eyes that normalises it. On a 5 s generated video the head pose
alone moved that reading's correlation with the speech from -0.28 to 0.51 with the mouth held the
same (benchmarks/README.md, "A mouth reading without the head pose"). So the video is read as the
clips are: the morphable model is fitted to its landmarks (one identity, per-frame expression and
pose; `refine_clip` on the landmarks alone), and the gap is measured on the fitted face with its
rotation and translation set to zero, in pixels of the 224 px crop camera.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from talkface.face3d import coeffs as layout
from talkface.face3d.camera import Camera
from talkface.metrics import mouth_opening
from talkface.recon.alignment import alignment_transform, apply_transform
from talkface.recon.inference import RefineConfig, keypoints_2d, posed_mean_face, refine_clip

if TYPE_CHECKING:
    from talkface.face3d.model import MorphableModel

# The landmark fit of preprocess (configs/preprocess.yaml, refine) without its photometric term:
# the mouth is read from the landmarks only, so texture and light need not be fitted.
LANDMARK_FIT = RefineConfig(photometric_frames=0)


def frontal_mouth_opening(landmarks: np.ndarray, model: "MorphableModel", fit: RefineConfig = LANDMARK_FIT,
                          progress: bool = False) -> np.ndarray:
    """Frame landmarks [T, 68, 2] (NaN where no face) -> inner-lip gap [T] of the fitted face seen
    from the front, in 224 px crop pixels (NaN where no face)."""
    marks = np.asarray(landmarks, np.float64)
    found = np.isfinite(marks).all(axis=(1, 2))
    opening = np.full(len(marks), np.nan)
    if not found.any():
        return opening
    transforms = alignment_transform(marks[found])  # [F, 2, 3] frame -> the 224 px crop R-Net would see
    crop_marks = apply_transform(transforms, marks[found]).astype(np.float32)
    coeffs = refine_clip(posed_mean_face(crop_marks, model), None, crop_marks, model, fit,
                         progress=progress, transforms=transforms)
    opening[found] = frontal_opening(coeffs, model)
    return opening


def frontal_opening(coeffs: torch.Tensor, model: "MorphableModel") -> np.ndarray:
    """Coefficients [T, 257] -> inner-lip gap [T] of their face with rotation and translation zeroed,
    in 224 px crop pixels."""
    frontal = coeffs.detach().clone().float()
    frontal[:, layout.ANGLES] = 0.0
    frontal[:, layout.TRANSLATION] = 0.0
    with torch.no_grad():
        return mouth_opening(keypoints_2d(model, frontal.to(model.mean_shape.device), Camera()).cpu().numpy())
