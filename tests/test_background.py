"""Keyframe background matching, compositing, GAN input windows and paste-back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkface.background.color_match import match_colors
from talkface.background.composite import composite, gan_input_windows, shift_images
from talkface.background.keyframes import (
    MIN_TRAIN_FRAMES,
    apply_pose_mode,
    find_keyframes,
    keyframe_signal,
    match_background,
    nearest_pose,
    pingpong_indices,
    plan_background,
    plot_pose_matching,
)
from talkface.background.paste import paste_back
from talkface.errors import ConfigError, TalkfaceError
from talkface.face3d.coeffs import MOTION_EXPRESSION, MOTION_POSE

# --- keyframes -------------------------------------------------------------------------------------


def sinusoids(t: np.ndarray) -> np.ndarray:
    """A slow head turn (period 50 frames) with a faster, smaller sway (period 11)."""
    return 0.2 * np.sin(2 * np.pi * t / 50 + 0.3) + 0.05 * np.sin(2 * np.pi * t / 11 + 1.0)


def smoothed_sinusoids(t: np.ndarray) -> np.ndarray:
    """sinusoids() through the 7-tap Hanning average: each sine is scaled by the filter's gain."""
    lags = np.arange(-3, 4)
    w = np.hanning(7) / np.hanning(7).sum()
    gain = lambda period: float((w * np.cos(2 * np.pi * lags / period)).sum())  # noqa: E731
    return 0.2 * gain(50) * np.sin(2 * np.pi * t / 50 + 0.3) + 0.05 * gain(11) * np.sin(2 * np.pi * t / 11 + 1.0)


def test_keyframes_fall_on_the_extrema_of_a_known_curve():
    n = 250
    keys = find_keyframes(sinusoids(np.arange(n)))
    dense = np.arange(0, n - 1, 1e-3)
    y = smoothed_sinusoids(dense)
    turn = (np.diff(y)[:-1] * np.diff(y)[1:]) < 0
    extrema, values = dense[1:-1][turn], y[1:-1][turn]
    assert len(extrema) > n // 10  # the budget bites: pruning must happen
    assert keys[0] == 0 and keys[-1] == n - 1
    assert len(keys) <= n // 10 + 2
    assert np.diff(keys).min() >= 3
    interior = keys[1:-1]
    # Edge frames are smoothed over mirrored samples, so the analytic curve holds from frame 3 on.
    interior = interior[(interior >= 3) & (interior <= n - 4)]
    assert np.abs(interior[:, None] - extrema[None]).min(axis=1).max() <= 1
    # Every big turn of the head (|angle| >= 0.15 rad, only reachable at a peak of the slow wave)
    # is kept.
    big = extrema[np.abs(values) >= 0.15]
    assert len(big) >= 8
    assert np.abs(big[:, None] - keys[None]).min(axis=1).max() <= 1


def test_keyframes_prune_the_least_prominent_extrema():
    n = 100  # budget 10
    t = np.arange(n)
    bumps = np.zeros(n)
    for centre, height in ((25, 0.4), (50, -0.3), (75, 0.5)):
        bumps += height * np.exp(-0.5 * ((t - centre) / 4) ** 2)
    wiggle = 0.004 * np.sin(2 * np.pi * t / 6)  # many tiny extrema
    keys = find_keyframes(bumps + wiggle)
    for centre in (25, 50, 75):
        assert np.abs(keys - centre).min() <= 1
    assert len(keys) <= n // 10 + 2


def test_close_keyframes_merge_keeping_the_larger_angle():
    x = np.zeros(40)
    x[10], x[12] = 0.5, -0.8  # two spikes 2 frames apart: the larger |angle| (frame 12) wins
    x[1] = 0.9  # next to the first frame, which always stays
    x[30] = 0.3
    # window < 3: no smoothing. Extrema: peaks 1, 10, 30; troughs 12 and the flat valley 2..9
    # (counted at its middle, 5); a budget of 10 keeps all five.
    keys = find_keyframes(x, window=1, max_fraction=0.25)
    assert keys.tolist() == [0, 5, 12, 30, 39]
    # With the default budget of 4 the least prominent extremum (frame 30, 0.3) goes first.
    assert find_keyframes(x, window=1).tolist() == [0, 5, 12, 39]


def test_keyframe_signal_is_the_roll():
    angles = np.random.default_rng(0).normal(size=(20, 3))
    assert np.array_equal(keyframe_signal(angles), angles[:, 2])


# --- matching --------------------------------------------------------------------------------------


def head_curve(s: np.ndarray) -> np.ndarray:
    """[len(s), 3] angles: incommensurate sways per axis, so no pose repeats exactly."""
    s = np.asarray(s, np.float64)
    return np.stack(
        [
            0.10 * np.sin(2 * np.pi * s / 37 + 0.4) + 0.03 * np.sin(2 * np.pi * s / 13),
            0.25 * np.sin(2 * np.pi * s / 61 + 1.1) + 0.05 * np.sin(2 * np.pi * s / 17 + 2.0),
            0.12 * np.sin(2 * np.pi * s / 43 + 2.3) + 0.04 * np.sin(2 * np.pi * s / 23 + 0.5),
        ],
        axis=1,
    )


def test_silent_stretches_hold_the_background_whatever_the_pose_does():
    """A head that moves (e.g. a network settling in the first frames of a silence) is replayed while
    there is speech and held where the speech-activity gate is shut throughout a keyframe stretch."""
    train = head_curve(np.arange(300))
    pred = head_curve(np.arange(0, 160, 2))  # [80, 3]: faster than the clip, never 'still'
    keys = find_keyframes(keyframe_signal(pred))
    assert len(keys) > 3
    moving = match_background(pred, train, keys)
    assert len(np.unique(moving)) > 3
    silent = np.zeros(80, bool)
    silent[keys[1]:] = True  # speech up to the second keyframe, silence after it
    held = match_background(pred, train, keys, silent=silent)
    np.testing.assert_array_equal(held[: keys[1] + 1], moving[: keys[1] + 1])
    assert (held[keys[1]:] == held[keys[1]]).all()
    with pytest.raises(ValueError, match="silent has 79 frames"):
        match_background(pred, train, keys, silent=silent[1:])


def test_every_silent_run_holds_its_background_wherever_the_keyframes_fall():
    """A silence that starts or ends inside a keyframe stretch (1 s of silence before speech, as a real
    recording has) holds the background through the whole run, not only where a stretch is silent
    throughout; the speech in between still moves it."""
    train = head_curve(np.arange(300))
    pred = head_curve(np.arange(0, 200, 2))  # [100, 3]: a head that never rests
    keys = find_keyframes(keyframe_signal(pred))
    silent = np.zeros(100, bool)
    silent[:25] = silent[81:] = True
    assert not set(keys) & {24, 25, 80, 81}  # the runs' edges are no keyframes of the pose
    indices, _ = plan_background(pred, train, silent=silent)
    assert (indices[:25] == indices[0]).all() and (indices[81:] == indices[81]).all()
    assert len(np.unique(indices[25:81])) > 3


@pytest.mark.parametrize("seed", [1, 2])
def test_background_indices_are_in_range_monotone_and_bounded(seed):
    rng = np.random.default_rng(seed)
    train = head_curve(np.arange(300)) + rng.normal(0, 0.01, (300, 3))
    pred = np.cumsum(rng.normal(0, 0.02, (180, 3)), axis=0)  # a random walk, unlike any training run
    keys = find_keyframes(keyframe_signal(pred))
    idx = match_background(pred, train, keys)
    assert idx.dtype == np.int64 and idx.shape == (180,)
    assert idx.min() >= 0 and idx.max() < 300
    assert np.abs(np.diff(idx)).max() <= 1  # never faster than real time
    for a, b in zip(keys[:-1], keys[1:]):
        steps = np.diff(idx[a : b + 1])
        assert (steps >= 0).all() or (steps <= 0).all()
    assert idx[0] == nearest_pose(train, pred[0])
    assert idx[0] == np.argmin(np.abs(train - pred[0]).sum(axis=1))


def test_matching_tracks_a_time_warped_replay():
    t = np.arange(200)
    warp = 20 + 0.7 * t + 4 * np.sin(2 * np.pi * t / 90)  # slope <= 0.98: playable at speed 1
    train, pred = head_curve(np.arange(300)), head_curve(warp)
    idx, keys = plan_background(pred, train)
    error = np.degrees(np.abs(train[idx] - pred).mean())
    naive = np.degrees(np.abs(train[t] - pred).mean())  # replaying the clip from its start
    print(f"{len(keys)} keyframes, mean |angle error| {error:.2f} deg (naive replay {naive:.2f} deg)")
    assert error < 1.0 and error < 0.2 * naive
    assert np.abs(idx - warp).mean() < 2.0  # it found the warp itself, not just similar poses


def test_pose_modes_and_pingpong():
    rng = np.random.default_rng(3)
    pred, train = rng.normal(size=(12, 70)), rng.normal(size=(30, 70))
    idx = rng.integers(0, 30, 12)
    reassigned = apply_pose_mode(pred, train, idx, "reassign")
    assert np.array_equal(reassigned[:, MOTION_POSE], train[idx][:, MOTION_POSE])
    assert np.array_equal(reassigned[:, MOTION_EXPRESSION], pred[:, MOTION_EXPRESSION])
    assert np.array_equal(apply_pose_mode(pred, train, idx, "predicted"), pred)
    assert pingpong_indices(12, 4).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]
    angles = head_curve(np.arange(60))
    idx, keys = plan_background(angles, head_curve(np.arange(MIN_TRAIN_FRAMES)), mode="pingpong")
    period = 2 * (MIN_TRAIN_FRAMES - 1)
    assert idx[: period + 1].tolist() == [*range(MIN_TRAIN_FRAMES), *range(MIN_TRAIN_FRAMES - 2, -1, -1)]
    assert len(keys) == 0
    with pytest.raises(ConfigError, match="expected one of"):
        apply_pose_mode(pred, train, idx[:12], "mirror")


def test_too_few_training_frames_is_a_one_line_error():
    with pytest.raises(TalkfaceError) as info:
        plan_background(head_curve(np.arange(50)), head_curve(np.arange(10)), source="person/coeffs.npy")
    message = str(info.value)
    assert "\n" not in message
    assert "person/coeffs.npy" in message and "10 frames" in message and f"at least {MIN_TRAIN_FRAMES}" in message
    with pytest.raises(TalkfaceError, match="has 0 frames"):
        match_background(head_curve(np.arange(5)), np.zeros((0, 3)), np.array([0, 4]))


def test_plot_pose_matching_writes_a_png(tmp_path):
    t = np.arange(80)
    pred, train = head_curve(0.8 * t), head_curve(np.arange(100))
    idx, keys = plan_background(pred, train)
    path = plot_pose_matching(pred, train[idx], keys, tmp_path / "plots" / "pose.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- compositing -----------------------------------------------------------------------------------


def test_composite_fills_enclosed_holes_and_leaves_the_outside_untouched():
    size, b = 40, 2
    gen = torch.Generator().manual_seed(0)
    render = torch.rand(b, 3, size, size, generator=gen)
    background = torch.rand(b, 3, size, size, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    radius = ((yy - 20) ** 2 + (xx - 20) ** 2).sqrt()
    ring = ((radius <= 12) & (radius > 5)).float()  # a face with an enclosed 'mouth' hole
    ring[14, 14] = 0  # a one-pixel speck
    alpha = ring.expand(b, 1, size, size).clone()
    alpha[:, :, 20, 30] = 0.5  # a soft pixel on the edge
    offset = torch.tensor([[3, -2], [-4, 1]])  # per-frame crop offsets (dx, dy)
    out = composite(render, alpha, background, offset)
    for i, (dx, dy) in enumerate(offset.tolist()):
        moved_radius = ((yy - 20 - dy) ** 2 + (xx - 20 - dx) ** 2).sqrt()
        shifted = torch.roll(render[i], (dy, dx), dims=(1, 2))  # no wrap reaches the face here
        outside = moved_radius > 13  # beyond the alpha disk (and the closing's reach)
        assert torch.equal(out[i][:, outside], background[i][:, outside])
        hole = moved_radius <= 5
        assert torch.equal(out[i][:, hole], shifted[:, hole])  # filled: opaque render
        assert torch.equal(out[i][:, 14 + dy, 14 + dx], shifted[:, 14 + dy, 14 + dx])  # speck filled
        soft = out[i][:, 20 + dy, 30 + dx]
        expected = 0.5 * shifted[:, 20 + dy, 30 + dx] + 0.5 * background[i][:, 20 + dy, 30 + dx]
        assert torch.allclose(soft, expected)


def test_shift_images_moves_by_whole_pixels_with_zeros_coming_in():
    image = torch.arange(1, 13, dtype=torch.float32).reshape(1, 1, 3, 4)
    moved = shift_images(image, (1, -1))[0, 0]
    assert moved.tolist() == [[0, 5, 6, 7], [0, 9, 10, 11], [0, 0, 0, 0]]
    assert not shift_images(image, (0, 3)).any() and not shift_images(image, (-9, 0)).any()


def test_gan_input_windows_order_and_first_frames():
    frames = torch.arange(5, dtype=torch.float32)[:, None, None, None].expand(5, 3, 2, 2)
    windows = gan_input_windows(frames)
    assert windows.shape == (5, 9, 2, 2)
    firsts = windows[:, ::3, 0, 0]  # first channel of each of the 3 frames: t, t-1, t-2
    assert firsts.tolist() == [[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 2, 1], [4, 3, 2]]
    assert torch.equal(windows[3, 3:6], frames[2])


# --- paste-back ------------------------------------------------------------------------------------


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """uint8 [h, w, 3]: gentle colour gradients plus mild texture, like skin and background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.6 + 0.2 * x, 0.45 + 0.15 * y, 0.35 + 0.1 * x * y], axis=-1)
    return np.clip((base + rng.normal(0, 0.02, (h, w, 3))) * 255, 0, 255).astype(np.uint8)


def disk_mask(size: int, radius_fraction: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    return (np.hypot(yy - size / 2, xx - size / 2) <= radius_fraction * size).astype(np.float32)


@pytest.mark.parametrize("method", ["feather", "poisson"])
def test_paste_back_touches_only_the_face_region(method):
    frame = smooth_image(120, 160, 0)
    x0, y0, size = 110, -15, 64  # partly outside: past the right and the top edge
    target = smooth_image(size, size, 1)
    target[20:44, 20:44] = (200, 40, 60)  # a distinctive face
    mask = disk_mask(size, 0.4)
    out = paste_back(target, frame, (x0, y0, size), mask, method=method)
    assert out.dtype == np.uint8 and out.shape == frame.shape
    yy, xx = np.mgrid[0:120, 0:160] + 0.5
    outside = np.hypot(yy - (y0 + size / 2), xx - (x0 + size / 2)) > 0.4 * size + 1
    assert np.array_equal(out[outside], frame[outside])
    centre = out[y0 + 32 - 2 : y0 + 32 + 2, x0 + 32 - 2 : x0 + 32 + 2].astype(int)
    assert np.abs(centre - target[30:34, 30:34]).max() <= (0 if method == "feather" else 40)
    assert np.abs(out[outside == False].astype(int) - frame[outside == False]).mean() > 10  # noqa: E712


def test_paste_back_outside_the_frame_and_from_a_tensor():
    frame = smooth_image(50, 60, 0)
    face = torch.rand(3, 32, 32)
    mask = torch.ones(32, 32)
    assert np.array_equal(paste_back(face, frame, (70, 10, 40), mask), frame)
    out = paste_back(face, frame, (10, 5, 40), mask)
    assert np.array_equal(out[:5], frame[:5]) and np.array_equal(out[:, 50:], frame[:, 50:])
    assert not np.array_equal(out[20:30, 25:35], frame[20:30, 25:35])
    with pytest.raises(ConfigError, match="expected one of"):
        paste_back(face, frame, (10, 5, 40), mask, method="blend")


@pytest.mark.parametrize("method", ["feather", "poisson"])
def test_color_matching_reduces_the_seam(method):
    frame = smooth_image(160, 160, 2)
    x0, y0, size = 40, 30, 96
    face = frame[y0 : y0 + size, x0 : x0 + size].astype(int) + (45, -10, -35)  # a GAN colour cast
    face = np.clip(face, 0, 255).astype(np.uint8)
    mask = disk_mask(size, 0.42)
    # The seam: face-region pixels within 8 px inside its border.
    yy, xx = np.mgrid[0:160, 0:160] + 0.5
    r = np.hypot(yy - (y0 + size / 2), xx - (x0 + size / 2))
    seam = (r <= 0.42 * size) & (r > 0.42 * size - 8)
    under = frame[y0 : y0 + size, x0 : x0 + size]
    as_tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    matched = match_colors(as_tensor(face), as_tensor(under), torch.from_numpy(mask >= 0.5)[None, None])[0]
    errors = []
    for candidate in (face, matched):
        out = paste_back(candidate, frame, (x0, y0, size), mask, method=method)
        errors.append(np.abs(out[seam].astype(int) - frame[seam]).mean())
    print(f"{method}: mean |out - frame| at the seam {errors[0]:.2f} -> {errors[1]:.2f} with colour matching")
    if method == "feather":
        assert errors[1] < 0.25 * errors[0]
    else:  # Poisson cloning keeps gradients only: it removes a constant cast by itself
        assert max(errors) < 1.0


def test_output_frames_paste_in_order_while_the_next_chunk_is_made():
    """Threaded, one-chunk-ahead paste-back gives exactly the frames of pasting one by one, in order."""
    from types import SimpleNamespace

    from talkface.background.animation import AnimationChunk
    from talkface.background.composite import fill_mask_holes
    from talkface.pipelines.infer import output_frames, paste_region

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (7, 48, 40, 3), dtype=np.uint8)
    window = SimpleNamespace(x0=4, y0=6, size=30)
    yy, xx = np.mgrid[:16, :16]
    alpha = torch.from_numpy(((yy - 8) ** 2 + (xx - 8) ** 2 < 30).astype(np.float32))[None, None]
    chunks, expected = [], []
    for start, indices in ((0, [6, 2, 2]), (3, [0, 5]), (5, [1, 3, 4])):  # background frames in any order
        faces, backgrounds = torch.rand(2, len(indices), 3, 16, 16, generator=torch.Generator().manual_seed(start))
        masks = alpha.expand(len(indices), -1, -1, -1)
        chunks.append(AnimationChunk(start=start, indices=np.array(indices), coeffs=None, render=None, alpha=masks,
                                     filled=fill_mask_holes(masks), landmarks=None, background=backgrounds,
                                     composited=faces, gan_input=None))
        region = paste_region(fill_mask_holes(masks).float())
        matched = match_colors(faces, backgrounds, region >= 0.5)  # colour-matched a chunk at a time
        expected += [paste_back(face, frames[i], (4, 6, 30), r[0]) for face, i, r in zip(matched, indices, region)]
    made = []
    observed = list(output_frames(iter(chunks), None, frames, window,
                                  observe=lambda chunk, faces: made.append(chunk.start)))
    assert made == [0, 3, 5] and len(observed) == 8
    for got, want in zip(observed, expected):
        assert np.array_equal(got, want)
