"""Rendering the animation over matched real frames, compositing, GAN windows, single-image targets.

One synthetic person (2 s at 256 px) and a workspace written from its truth: the workspace's
coefficients are exactly in its crops' camera, so a render of a real frame's pose must land on that
frame's face to a fraction of a pixel.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from talkface.background.animation import (
    animate,
    load_target,
    plan_animation,
    shared_appearance,
)
from talkface.background.composite import fill_mask_holes
from talkface.background.keyframes import MIN_TRAIN_FRAMES
from talkface.background.single_image import MAX_ANGLE, MAX_SHIFT, limit_pose, plan_single_image
from talkface.errors import TalkfaceError
from talkface.face3d.camera import Camera
from talkface.face3d.coeffs import (
    ANGLES, EXPRESSION, GAMMA, IDENTITY, MOTION_ANGLES, MOTION_EXPRESSION, MOTION_POSE, TEXTURE, TRANSLATION,
    motion_from_coeffs,
)
from talkface.face3d.model import load_morphable_model
from talkface.render.rasterize import rasterize
from talkface.render.renderer import render
from talkface.synth.truth_workspace import write_truth_workspace

SECONDS = 2.0  # 50 frames: enough to match against (MIN_TRAIN_FRAMES = 25)
SIZE = 256


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def person(tmp_path_factory: pytest.TempPathFactory):
    from talkface.synth.world import write_person

    return write_person(tmp_path_factory.mktemp("anim") / "person", seconds=SECONDS, seed=3, size=SIZE,
                        engine="builtin", progress=False)


@pytest.fixture(scope="module")
def target(person, tmp_path_factory):
    return load_target(write_truth_workspace(person, tmp_path_factory.mktemp("anim_ws") / "ws").root)


@pytest.fixture(scope="module")
def model():
    return load_morphable_model("synthetic")


@pytest.fixture(scope="module")
def motion(target) -> np.ndarray:
    """'Predicted' motion: the clip's motion played backwards, with the expression shifted 7 frames."""
    truth = motion_from_coeffs(target.coeffs)[::-1].copy()  # [T, 70]
    truth[:, MOTION_EXPRESSION] = np.roll(truth[:, MOTION_EXPRESSION], 7, axis=0)
    return truth


@pytest.fixture(scope="module")
def plan(target, motion):
    return plan_animation(target, motion, mode="reassign")


def test_mouth_matching_moves_the_background_towards_the_drawn_mouth(target, motion, model, plan):
    """The drawn mouth runs 7 frames off the clip's: within 12 frames of the pose match, frames whose
    own mouths are nearer it are found, and the background still plays frame by frame."""
    from talkface.background.animation import mouth_openings

    matched = plan_animation(target, motion, mode="reassign", mouth_match=(model, 12))
    clip, drawn = mouth_openings(target, motion, model)
    assert np.abs(matched.indices - plan.indices).max() <= 12
    assert np.abs(np.diff(matched.indices)).max() <= 1
    assert np.abs(clip[matched.indices] - drawn).mean() < 0.5 * np.abs(clip[plan.indices] - drawn).mean()
    pose = motion_from_coeffs(matched.coeffs)[:, MOTION_POSE]  # 'reassign': the pose of the frames found
    np.testing.assert_allclose(pose, motion_from_coeffs(target.coeffs)[matched.indices][:, MOTION_POSE], atol=1e-5)


@pytest.fixture(scope="module")
def chunks(target, plan, model):
    return list(animate(target, plan, model, chunk_frames=len(plan.indices)))


def real_landmarks(person, target, indices) -> np.ndarray:
    """The truth landmarks of frames `indices` in window-crop px."""
    landmarks = np.load(person / "truth" / "landmarks.npy")[indices]  # [B, 68, 2] frame px
    w = target.window.transform
    return landmarks @ w[:, :2].T + w[:, 2]


def test_reassign_copies_the_real_frames_pose_exactly(target, motion, plan):
    indices = plan.indices
    assert indices.min() >= 0 and indices.max() < target.n_frames
    assert np.array_equal(plan.coeffs[:, ANGLES], target.coeffs[indices, ANGLES])
    assert np.array_equal(plan.coeffs[:, TRANSLATION], target.coeffs[indices, TRANSLATION])
    assert np.array_equal(plan.coeffs[:, EXPRESSION], motion[:, MOTION_EXPRESSION])
    for block in (IDENTITY, TEXTURE, GAMMA):  # one shared set for the whole clip
        assert np.allclose(plan.coeffs[:, block], shared_appearance(target.coeffs)[block])
    # 'predicted' keeps the network's pose.
    predicted = plan_animation(target, motion, mode="predicted")
    assert np.array_equal(predicted.coeffs[:, ANGLES], motion[:, MOTION_ANGLES])


def test_a_real_frames_coefficients_render_onto_that_frames_landmarks(person, target, model):
    # The camera mapping alone: each frame's own coefficients, through aligned crop -> frame -> window.
    indices = np.array([0, 17, 33, 49])
    coeffs = torch.as_tensor(target.coeffs[indices])
    with torch.no_grad():
        rendered = render(coeffs, model, image_map=target.crop_to_window(indices), size=SIZE)
    assert np.abs(rendered.landmarks.numpy() - real_landmarks(person, target, indices)).max() < 1e-2


def test_each_output_frame_uses_its_background_frames_camera(target, plan, model):
    # Give every real frame its own aligned-crop map (zoom and shift): the render of output frame t
    # must follow the map of its background frame plan.indices[t], not of frame t or frame 0.
    m = np.arange(target.n_frames)
    zoom = 1.0 + 0.01 * (m % 7)
    moved = target.transforms * zoom[:, None, None]
    moved[:, :, 2] += np.stack([m % 5, -(m % 3)], axis=1)
    warped = dataclasses.replace(target, transforms=moved)
    chunk = next(animate(warped, plan, model, chunk_frames=len(plan.indices)))
    with torch.no_grad():
        crop_landmarks = model(torch.as_tensor(plan.coeffs), Camera()).landmarks.double().numpy()  # [T, 68, 2]
    maps = warped.crop_to_window(plan.indices)  # [T, 2, 3]
    expected = crop_landmarks @ np.swapaxes(maps[:, :, :2], 1, 2) + maps[:, None, :, 2]
    assert np.abs(chunk.landmarks.numpy() - expected).max() < 1e-3


def test_reassigned_faces_land_on_the_real_frames_face(person, target, model, plan, chunks):
    # The real face region: the truth coefficients rendered through the truth's own frame transform.
    indices = plan.indices
    truth = torch.as_tensor(np.load(person / "truth" / "coeffs.npy")[indices])
    to_frame = np.load(person / "truth" / "transform.npy")  # canonical 224 px -> frame px
    w = target.window.transform
    linear, shift = w[:, :2] @ to_frame[:, :2], w[:, :2] @ to_frame[:, 2:] + w[:, 2:]
    canonical_to_window = torch.tensor(np.concatenate([linear, shift], axis=1), dtype=torch.float32)
    with torch.no_grad():
        mesh = model(truth, Camera())
        screen = mesh.screen @ canonical_to_window[:, :2].T + canonical_to_window[:, 2]
        real = rasterize(screen, mesh.vertices[..., 2], model.triangles, (SIZE, SIZE)).mask > 0  # [T, S, S]
    rendered = chunks[0].alpha[:, 0] > 0
    iou = (real & rendered).sum((1, 2)).float() / (real | rendered).sum((1, 2)).float()
    assert iou.min() > 0.9  # only the predicted expression (jaw, lips) differs from the real frame
    # The rigid landmarks (nose bridge, eye corners) move little with expression.
    rigid = [27, 28, 36, 39, 42, 45]
    error = chunks[0].landmarks.numpy()[:, rigid] - real_landmarks(person, target, indices)[:, rigid]
    assert np.abs(error).max() < 0.25


def test_composite_is_the_background_outside_the_mask_and_windows_are_t_t1_t2(chunks, target, plan):
    chunk = chunks[0]
    inside = fill_mask_holes(chunk.alpha > 0)  # [T, 1, S, S]
    assert torch.equal(chunk.filled, inside)  # the chunk carries the mask it was composited through
    outside = (~inside).expand_as(chunk.composited)
    assert torch.equal(chunk.composited[outside], chunk.background[outside])
    assert not torch.equal(chunk.composited[inside.expand_as(chunk.composited)],
                           chunk.background[inside.expand_as(chunk.background)])
    expected = torch.from_numpy(np.asarray(target.backgrounds[plan.indices])).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(chunk.background, expected)
    frames, windows = chunk.composited, chunk.gan_input
    assert windows.shape == (len(frames), 9, SIZE, SIZE)
    for t in (0, 1, 2, 30):
        for k in range(3):
            assert torch.equal(windows[t, 3 * k : 3 * k + 3], frames[max(t - k, 0)])


def test_streaming_in_chunks_gives_the_same_frames_as_one_batch(target, plan, model, chunks):
    streamed = list(animate(target, plan, model, chunk_frames=7))
    assert [c.start for c in streamed] == list(range(0, len(plan.indices), 7))
    for name in ("composited", "gan_input", "alpha", "landmarks"):
        joined = torch.cat([getattr(c, name) for c in streamed])
        assert torch.allclose(joined, getattr(chunks[0], name), atol=1e-5), name


def test_too_short_a_workspace_is_a_one_line_error(person, tmp_path, motion):
    short = load_target(write_truth_workspace(person, tmp_path / "short", frames=MIN_TRAIN_FRAMES - 1).root)
    with pytest.raises(TalkfaceError, match=f"{MIN_TRAIN_FRAMES - 1} frames") as error:
        plan_animation(short, motion)
    assert "\n" not in str(error.value) and str(tmp_path / "short") in str(error.value)


def test_single_image_keeps_the_pose_near_the_photos(target, motion, model):
    photo = target.frame(20)
    wild = motion.copy()
    wild[:, MOTION_POSE] *= 20  # head swings of tens of degrees
    plan = plan_single_image(photo, wild)
    assert np.array_equal(plan.indices, np.zeros(len(wild), np.int64))
    centre = target.coeffs[20]
    assert np.abs(plan.coeffs[:, ANGLES] - centre[ANGLES]).max() <= MAX_ANGLE + 1e-6
    assert np.abs(plan.coeffs[:, TRANSLATION] - centre[TRANSLATION]).max() <= MAX_SHIFT + 1e-6
    assert np.ptp(plan.coeffs[:, ANGLES], axis=0).max() > math.radians(5)  # still moving, not frozen
    assert np.array_equal(plan.coeffs[:, EXPRESSION], wild[:, MOTION_EXPRESSION])
    # Small deviations pass almost unchanged: tanh has slope 1 at 0.
    small = np.full((3, 6), 0.0)
    small[:, 0] = [-0.004, 0.0, 0.004]
    assert np.allclose(limit_pose(small, np.zeros(6))[:, 0], small[:, 0], rtol=0.01, atol=0)
    chunk = next(animate(photo, plan, model, chunk_frames=4))
    assert torch.equal(chunk.background[0], chunk.background[3])
    assert torch.equal(chunk.background[0], torch.from_numpy(np.array(target.backgrounds[20])).permute(2, 0, 1) / 255)
