"""Training items whose lower face comes from another frame: the GAN cannot tie a frame to its mouth.

A person's GAN fine-tuned on each frame's render over that same frame learns to recognise the
frame, by where its render sits and how it is turned, and to draw that frame's mouth instead of
the mouth rendered; at inference the background frames then lend their mouths to the video
(benchmarks/README.md, "What the video's mouth follows"). A swapped item keeps frame t's render
placement, upper face and surroundings but takes the lower face (jaw, mouth, chin and the neck
below them) from a frame k of nearly the same head pose, in the render window and in the real
target alike, so frame t's placement comes with other frames' mouths and only the render says
which (docs/method.md, "Memory-augmented GAN").
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkface.face3d.coeffs import ANGLES

# dlib / iBUG 68-point indices: the jaw line from below the ears (2-14), the nose (27-35), the lips.
LOWER_FACE = [*range(2, 15), *range(31, 36), *range(48, 68)]
NOSE = list(range(27, 36))  # rigid: aligns the donor's lower face to the base frame
PARTNERS = 8  # nearest frames in head pose a swap draws among
MIN_GAP = 5  # frames: a partner is not a temporal neighbour (whose mouth is nearly the same)
GROW = 0.06  # the swapped region grows by this fraction of the window: the chin's shadow and neck come along
SOFT = 0.02  # its edge is blurred over this fraction of the window


@dataclass(frozen=True)
class LowerFaces:
    """Per frame of one clip: lower-face landmarks (window px) and the frames of nearest head pose."""

    landmarks: np.ndarray  # float32 [T, 68, 2] window px
    partners: np.ndarray  # int64 [T, PARTNERS] frames of nearly the same pose, none within MIN_GAP

    def offset(self, base: int, donor: int) -> tuple[int, int]:
        """(dx, dy) whole px moving the donor's nose onto the base frame's."""
        shift = self.landmarks[base, NOSE].mean(0) - self.landmarks[donor, NOSE].mean(0)
        return int(round(float(shift[0]))), int(round(float(shift[1])))

    def mask(self, base: int, donor: int, size: int) -> np.ndarray:
        """float32 [S, S, 1] in [0, 1]: both lower faces (the donor's moved), grown and softened."""
        dx, dy = self.offset(base, donor)
        region = np.zeros((size, size), np.uint8)
        for points in (self.landmarks[base, LOWER_FACE], self.landmarks[donor, LOWER_FACE] + (dx, dy)):
            cv2.fillConvexPoly(region, cv2.convexHull(np.round(points).astype(np.int32)), 1)
        grow = max(1, round(GROW * size))
        region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
        soft = cv2.GaussianBlur(region.astype(np.float32), (0, 0), max(SOFT * size, 0.5))
        return soft[..., None]


def lower_faces(landmarks: np.ndarray, window_transform: np.ndarray, coeffs: np.ndarray,
                frames: range) -> LowerFaces:
    """LowerFaces of a clip from its landmarks [T, 68, 2] (frame px), window [2, 3] and coefficients [T, 257].

    A frame without a partner (a clip too short for MIN_GAP, or landmarks missing) is its own: its
    swap changes nothing.
    """
    in_window = landmarks @ window_transform[:, :2].T + window_transform[:, 2]
    angles = np.degrees(coeffs[:, ANGLES])  # [T, 3]
    index = np.asarray(frames)
    distance = np.linalg.norm(angles[index, None] - angles[None, index], axis=-1)  # [N, N]
    distance[np.abs(index[:, None] - index[None, :]) < MIN_GAP] = np.inf
    found = np.isfinite(in_window[index]).all(axis=(1, 2))
    distance[~found] = distance[:, ~found] = np.inf
    order = np.argsort(distance, axis=1)[:, :PARTNERS]  # [N, P]
    nearest = np.where(np.isfinite(np.take_along_axis(distance, order, 1)), index[order], index[:, None])
    partners = np.repeat(np.arange(len(landmarks))[:, None], nearest.shape[1], axis=1)
    partners[index] = nearest
    return LowerFaces(np.nan_to_num(in_window).astype(np.float32), partners)


def shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """[S, S, C] moved by whole px (out[y, x] = in[y - dy, x - dx]), the edge rows repeated."""
    size = image.shape[0]
    ys = np.clip(np.arange(size) - dy, 0, size - 1)
    xs = np.clip(np.arange(size) - dx, 0, size - 1)
    return image[ys][:, xs]


def swap_lower_face(base: np.ndarray, donor: np.ndarray, mask: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """uint8 [S, S, 3]: `base` with `donor`'s lower face (moved by `offset`) blended in through `mask`."""
    moved = shifted(donor, *offset).astype(np.float32)
    return np.round(mask * moved + (1 - mask) * base.astype(np.float32)).astype(np.uint8)
