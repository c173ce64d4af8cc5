"""Background frames chosen for their own mouths (background/mouth_match.py) near the pose-matched plan."""

from __future__ import annotations

import numpy as np
import pytest

from talkface.background.mouth_match import mouth_matched_path

CLIP_FRAMES = 120


@pytest.fixture(scope="module")
def clip_mouth() -> np.ndarray:
    """A real clip's mouth opening [M]: opening and closing about four times a second, with some noise."""
    rng = np.random.default_rng(0)
    return np.abs(np.sin(np.arange(CLIP_FRAMES) * 0.5)) + 0.05 * rng.standard_normal(CLIP_FRAMES)


def replay(start: int, count: int) -> np.ndarray:
    return np.arange(start, start + count)


def test_radius_zero_keeps_the_plan(clip_mouth):
    planned = replay(10, 50)
    assert np.array_equal(mouth_matched_path(planned, clip_mouth, np.zeros(50), 0), planned)


def test_the_path_finds_the_mouths_it_is_asked_for_and_plays_as_motion(clip_mouth):
    """The drawn mouth is the clip's own, 5 frames later than the plan: the path finds those frames."""
    planned = replay(20, 60)
    path = mouth_matched_path(planned, clip_mouth, clip_mouth[planned + 5], radius=8)
    assert np.abs(np.diff(path)).max() <= 1  # forwards, backwards or holding: never a jump
    assert np.abs(path - planned).max() <= 8
    assert np.mean(path == planned + 5) > 0.9
    mismatch = np.abs(clip_mouth[path] - clip_mouth[planned + 5]).mean()
    assert mismatch < 0.2 * np.abs(clip_mouth[planned] - clip_mouth[planned + 5]).mean()


def test_the_path_stays_inside_the_clip_and_may_jump_where_the_plan_does(clip_mouth):
    planned = np.concatenate([replay(0, 20), replay(80, 20), replay(CLIP_FRAMES - 20, 20)])  # two jumps
    drawn = np.full(len(planned), clip_mouth.max())  # wide open throughout
    path = mouth_matched_path(planned, clip_mouth, drawn, radius=12)
    assert path.min() >= 0 and path.max() < CLIP_FRAMES and np.abs(path - planned).max() <= 12
    steps = np.abs(np.diff(path))
    assert (steps[np.abs(np.diff(planned)) <= 1] <= 1).all()


def test_where_the_plan_holds_its_frame_the_path_holds_too(clip_mouth):
    """A still head or silence holds the background (keyframes.py); matching mouths must not set it moving."""
    planned = np.concatenate([replay(30, 20), np.full(25, 50), replay(50, 20)])
    path = mouth_matched_path(planned, clip_mouth, np.abs(np.sin(np.arange(len(planned)) * 0.9)), radius=10)
    assert len(set(path[20:45].tolist())) == 1
    assert np.abs(np.diff(path)).max() <= 1


def test_bad_arguments_are_refused(clip_mouth):
    with pytest.raises(ValueError):
        mouth_matched_path(replay(0, 10), clip_mouth, np.zeros(9), 3)
    with pytest.raises(ValueError):
        mouth_matched_path(replay(0, 10), clip_mouth, np.zeros(10), -1)
