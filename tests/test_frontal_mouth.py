"""The mouth reading without the head pose (recon/frontal_mouth.py) against the mouth that made the landmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkface.face3d import coeffs as layout
from talkface.face3d.camera import Camera
from talkface.face3d.model import load_morphable_model
from talkface.face3d.synthetic import EXPRESSION_DIRECTIONS
from talkface.metrics import mouth_opening, mouth_opening_over_eyes
from talkface.recon.frontal_mouth import frontal_mouth_opening
from talkface.recon.inference import keypoints_2d

FRAMES = 100
SECONDS = np.arange(FRAMES) / 25.0


@pytest.fixture(scope="module")
def model():
    return load_morphable_model("synthetic")


@pytest.fixture(scope="module")
def speaking_face() -> torch.Tensor:
    """[T, 257]: one identity; the jaw half open and swinging a little (the generated mouths' small
    amplitude, benchmarks/README.md), the lips spreading at another rhythm; the head still."""
    generator = torch.Generator().manual_seed(0)
    coeffs = torch.zeros(FRAMES, layout.N_COEFFS)
    coeffs[:, layout.IDENTITY] = 0.5 * torch.randn(1, layout.N_IDENTITY, generator=generator)
    expression = coeffs[:, layout.EXPRESSION]
    expression[:, EXPRESSION_DIRECTIONS["jaw_open"]] = torch.from_numpy(0.5 + 0.08 * np.sin(2 * np.pi * 1.7 * SECONDS))
    expression[:, EXPRESSION_DIRECTIONS["lip_spread"]] = torch.from_numpy(0.3 * np.sin(2 * np.pi * 0.6 * SECONDS))
    return coeffs


def frame_landmarks(model, coeffs: torch.Tensor) -> np.ndarray:
    """[T, 68, 2] landmarks of coeffs in a larger frame, the face off its centre (as in a video)."""
    return keypoints_2d(model, coeffs, Camera()).numpy() * 2.3 + np.array([150.0, 80.0])


def true_opening(model, coeffs: torch.Tensor) -> np.ndarray:
    frontal = coeffs.clone()
    frontal[:, layout.ANGLES] = 0.0
    return mouth_opening(keypoints_2d(model, frontal, Camera()).numpy())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_a_still_head_reads_the_mouth_at_its_size(model, speaking_face):
    truth = true_opening(model, speaking_face)
    read = frontal_mouth_opening(frame_landmarks(model, speaking_face), model)
    assert correlation(read, truth) > 0.99
    assert read.std() == pytest.approx(truth.std(), rel=0.1)  # crop pixels, whatever the face's size in the frame


def test_a_nodding_turning_head_leaves_the_reading_to_the_mouth(model, speaking_face):
    """The pose moves the on-screen gap (over the eye distance) off the mouth; the frontal reading stays on it."""
    posed = speaking_face.clone()
    posed[:, layout.ANGLES.start] = torch.from_numpy(0.35 * np.sin(2 * np.pi * 1.7 * SECONDS + 0.5))  # pitch, ±20°
    posed[:, layout.ANGLES.start + 1] = torch.from_numpy(0.45 * np.sin(2 * np.pi * 0.9 * SECONDS))  # yaw, ±26°
    truth, marks = true_opening(model, posed), frame_landmarks(model, posed)
    screen_r = correlation(mouth_opening_over_eyes(marks), truth)
    assert screen_r < 0.85  # the case is one the screen reading gets wrong
    assert correlation(frontal_mouth_opening(marks, model), truth) > 0.95


def test_frames_without_a_face_stay_unread(model, speaking_face):
    marks = frame_landmarks(model, speaking_face[:20])
    marks[[3, 11]] = np.nan
    read = frontal_mouth_opening(marks, model)
    assert np.isnan(read[[3, 11]]).all() and np.isfinite(np.delete(read, [3, 11])).all()
    assert np.isnan(frontal_mouth_opening(np.full((4, 68, 2), np.nan), model)).all()
