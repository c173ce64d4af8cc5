"""A single photo as the target: the photo is every output frame's background, the head moves a little.

With one image there is nothing to match (keyframes.py needs a clip to replay): every output frame
is drawn over the photo's window crop, and the predicted head pose is kept only as small deviations
around the photo's own pose (`limit_pose`), so the rendered face stays on the photographed head.

What degrades against a ~10 s clip of the person:
- no real head motion of the body or background: the hair, neck, shoulders and scene stay frozen
  while the face turns, so the head motion is limited to a few degrees and millimetres;
- nothing fills what a pose change reveals: the photo's own face shows at the rim wherever the
  rendered face moves off it (e.g. behind a turned cheek or a lowered chin), and what the face
  covered in the photo (ear, hair, collar) is never seen;
- lighting is fixed to the photo's one estimate, and identity, texture and lighting come from a
  single view, so errors of that one reconstruction are not averaged out;
- the GAN sees the same background every frame, with no real temporal variation to learn from.

Make the target with `Target.frame(i)` from a workspace (any frame of a clip, or the only frame of a
one-frame workspace), then render with animation.animate as for a clip.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from talkface.background.animation import AnimationPlan, Target, animation_coeffs, check_motion
from talkface.errors import ConfigError, TalkfaceError
from talkface.face3d.coeffs import MOTION_POSE, N_ANGLES, N_TRANSLATION, motion_from_coeffs

# Largest head turn away from the photo's pose, per axis (pitch, yaw, roll): a few degrees keep the
# face on the photographed head and the revealed rim thin.
MAX_ANGLE = math.radians(5.0)
# Largest head shift (x, y, z) in model units (decimetres): 5 mm, ~5 px in the 224 px crop.
MAX_SHIFT = 0.05


def limit_pose(pose: np.ndarray, centre: np.ndarray, max_angle: float = MAX_ANGLE, max_shift: float = MAX_SHIFT,
               scale: float = 1.0) -> np.ndarray:
    """Predicted pose [T, 6] (3 angles, 3 translations) -> centre [6] + bounded deviations, float32 [T, 6].

    The deviation of each frame from the predicted mean pose, times `scale`, is squashed by
    limit * tanh(d / limit): small motion passes almost unchanged (slope 1 at 0), large motion
    saturates smoothly below the limit instead of sticking at a hard clamp. So every output pose
    is strictly within max_angle (radians) and max_shift of the photo's pose `centre`.
    """
    pose = np.asarray(pose, np.float64)
    if max_angle < 0 or max_shift < 0 or scale < 0:
        raise ConfigError(f"pose limits and scale must be >= 0, got {max_angle}, {max_shift}, {scale}")
    limit = np.array([max_angle] * N_ANGLES + [max_shift] * N_TRANSLATION)  # [6]
    deviation = scale * (pose - pose.mean(axis=0))  # [T, 6]
    safe = np.where(limit > 0, limit, 1.0)
    bounded = np.where(limit > 0, safe * np.tanh(deviation / safe), 0.0)
    return (np.asarray(centre, np.float64) + bounded).astype(np.float32)


def plan_single_image(
    photo: Target,
    motion: np.ndarray,
    max_angle: float = MAX_ANGLE,
    max_shift: float = MAX_SHIFT,
    scale: float = 1.0,
    lighting: Literal["mean", "first"] = "mean",
) -> AnimationPlan:
    """Predicted motion [T, 70] over a one-frame target -> every frame on the photo, pose near the photo's.

    Expression is the predicted one; the pose is limit_pose around the photo's pose.
    """
    if photo.n_frames != 1:
        raise TalkfaceError(f"a single-image target has one frame, this one has {photo.n_frames}; "
                            f"use Target.frame(i)", photo.source)
    motion = check_motion(motion).copy()
    photo_pose = motion_from_coeffs(photo.coeffs)[0, MOTION_POSE]  # [6]
    motion[:, MOTION_POSE] = limit_pose(motion[:, MOTION_POSE], photo_pose, max_angle, max_shift, scale)
    indices = np.zeros(len(motion), np.int64)
    return AnimationPlan(indices, np.zeros(0, np.int64), animation_coeffs(photo, motion, lighting))
