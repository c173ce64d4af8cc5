"""A clip's audio-video offset from its phones and its detected mouth (talkface/motion/av_offset.py)."""

from __future__ import annotations

import numpy as np
import pytest

from talkface.motion.av_offset import MAX_OFFSET_FRAMES, audio_video_offset, offset_correlations
from talkface.speech.recognition import phone_track
from talkface.synth.speech import utterance_for_duration

FRAMES = 150


@pytest.fixture(scope="module")
def phones():
    """The built-in engine's own phone timeline of 6 s of speech."""
    return utterance_for_duration(6.0, seed=3, engine="builtin").phones


def landmarks_with_gap(gap: np.ndarray, eye_distance: float | np.ndarray = 60.0) -> np.ndarray:
    """[T, 68, 2] landmarks whose eyes sit `eye_distance` (scalar or [T]) px apart and whose inner lips
    open by `gap` [T] px."""
    marks = np.zeros((len(gap), 68, 2))
    marks[:, 42:48, 0] = np.broadcast_to(eye_distance, gap.shape)[:, None]
    marks[:, 65:68, 1] = gap[:, None]  # lower inner lip; the upper one (61-63) stays at y = 0
    return marks


def test_a_shifted_track_is_the_same_track_read_later(phones):
    base, later = phone_track(phones, FRAMES), phone_track(phones, FRAMES, shift=3)
    np.testing.assert_allclose(later[:-3], base[3:], atol=1e-6)


@pytest.mark.parametrize("true_shift", [-2, 0, 3])
def test_the_offset_that_puts_the_phones_in_step_with_the_mouth_is_found(phones, true_shift: int):
    # A mouth whose lip gap is the jaw of the phones `true_shift` frames later, seen at a varying
    # distance from the camera (the gap is read over the eye distance) with detector noise.
    rng = np.random.default_rng(0)
    distance = np.linspace(50.0, 80.0, FRAMES)
    gap = phone_track(phones, FRAMES, true_shift)[:, 0] * 0.5 * distance + rng.normal(0, 0.5, FRAMES)
    marks = landmarks_with_gap(gap, distance)
    assert audio_video_offset(phones, marks) == true_shift
    correlations = offset_correlations(phones, marks)
    assert sorted(correlations) == list(range(-MAX_OFFSET_FRAMES, MAX_OFFSET_FRAMES + 1))
    assert correlations[true_shift] > 0.95


def test_a_mouth_that_does_not_move_gives_no_offset(phones):
    assert audio_video_offset(phones, landmarks_with_gap(np.full(FRAMES, 4.0))) == 0
