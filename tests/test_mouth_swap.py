"""Mouth swaps (gan/mouth_swap.py): frame t's upper face and surroundings with another frame's lower face."""

from __future__ import annotations

import numpy as np
import pytest

from talkface.gan.data import GanPairs, PairClip
from talkface.gan.mouth_swap import MIN_GAP, LowerFaces, lower_faces, shifted, swap_lower_face

SIZE = 64


def face_landmarks(frames: int, mouth_drop: np.ndarray, nose_x: np.ndarray) -> np.ndarray:
    """[T, 68, 2] frame px: a face whose nose sits at x = nose_x and whose chin drops with the mouth."""
    rng = np.random.default_rng(0)
    base = rng.uniform(20, 44, (68, 2))
    base[27:36] = [32, 28]  # the nose, in one place
    out = np.repeat(base[None], frames, axis=0)
    out[:, :, 0] += nose_x[:, None] - 32
    out[:, 48:68, 1] += mouth_drop[:, None]
    out[:, 2:15, 1] += mouth_drop[:, None]
    return out


def test_partners_are_nearest_in_pose_and_never_temporal_neighbours() -> None:
    frames = 40
    coeffs = np.zeros((frames, 257), np.float32)
    coeffs[:, 225] = np.radians(np.where(np.arange(frames) < 20, 0.0, 15.0))  # two yaw groups
    faces = lower_faces(face_landmarks(frames, np.zeros(frames), np.full(frames, 32.0)), np.eye(2, 3), coeffs,
                        range(frames))
    t = np.arange(frames)[:, None]
    assert (np.abs(faces.partners - t) >= MIN_GAP).all()
    assert ((faces.partners < 20) == (t < 20)).all()  # the same yaw group


def test_swap_moves_the_donor_onto_the_base_nose_and_keeps_the_rest() -> None:
    landmarks = face_landmarks(2, np.array([0.0, 6.0]), np.array([32.0, 29.0]))
    faces = LowerFaces(landmarks.astype(np.float32), np.array([[1], [0]]))
    assert faces.offset(0, 1) == (3, 0)
    mask = faces.mask(0, 1, SIZE)
    assert mask.shape == (SIZE, SIZE, 1) and 0 <= mask.min() and mask.max() == pytest.approx(1.0)
    assert mask[:10].max() < 1e-3  # the forehead stays the base frame's
    base = np.full((SIZE, SIZE, 3), 10, np.uint8)
    donor = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    out = swap_lower_face(base, donor, mask, (3, 0))
    inside, outside = mask[..., 0] > 0.999, mask[..., 0] < 1e-3
    assert np.array_equal(out[inside], shifted(donor, 3, 0)[inside])
    assert np.array_equal(out[outside], base[outside])


def test_shifted_moves_whole_pixels_and_repeats_the_edge() -> None:
    image = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    out = shifted(image, 1, -1)
    assert out[0, 1, 0] == image[1, 0, 0] and out[0, 0, 0] == image[1, 0, 0]  # left edge repeated
    assert out[3, 3, 0] == image[3, 2, 0]  # bottom edge repeated


def test_pairs_swap_window_and_target_alike() -> None:
    """A swapped item's lower face comes from the donor in the render window and in the real frame."""
    frames = 30
    rng = np.random.default_rng(2)
    reals = rng.integers(0, 256, (frames, SIZE, SIZE, 3), dtype=np.uint8)
    renders = rng.integers(0, 256, (frames, SIZE, SIZE, 3), dtype=np.uint8)
    landmarks = face_landmarks(frames, rng.uniform(0, 4, frames), np.full(frames, 32.0))
    faces = lower_faces(landmarks, np.eye(2, 3), np.zeros((frames, 257), np.float32), range(frames))
    clip = PairClip(renders, reals, range(frames), lower_faces=faces)
    np.random.seed(0)
    item = GanPairs([clip], swap_mouths=1.0)[12]
    lower = (slice(None), slice(30, 38), slice(28, 36))  # [3, y, x] well inside every lower face
    real = (item["real"][lower] * 255).round().byte().numpy()
    window = (item["window"][:3][lower] * 255).round().byte().numpy()
    matches = [k for k in range(frames) if np.array_equal(real, reals[k].transpose(2, 0, 1)[lower])]
    assert len(matches) == 1 and matches[0] in faces.partners[12]
    assert np.array_equal(window, renders[matches[0]].transpose(2, 0, 1)[lower])
    upper = (slice(None), slice(0, 6), slice(None))
    assert np.array_equal((item["real"][upper] * 255).round().byte().numpy(), reals[12].transpose(2, 0, 1)[upper])
    with pytest.raises(ValueError, match="lower faces"):
        GanPairs([PairClip(renders, reals, range(frames))], swap_mouths=0.5)


def test_a_frame_without_partners_is_its_own() -> None:
    """Too short a clip for MIN_GAP, or a frame without landmarks: the swap leaves the item as it is."""
    landmarks = face_landmarks(6, np.zeros(6), np.full(6, 32.0))
    landmarks[5] = np.nan
    faces = lower_faces(landmarks, np.eye(2, 3), np.zeros((6, 257), np.float32), range(6))
    assert (faces.partners[5] == 5).all() and (faces.partners[2] == 2).all()
    assert set(faces.partners[0]) == {0}  # frame 5 is MIN_GAP away, but has no face
    image = np.random.default_rng(3).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    assert np.array_equal(swap_lower_face(image, image, faces.mask(2, 2, SIZE), faces.offset(2, 2)), image)
