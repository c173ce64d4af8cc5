"""Render the 3D animation where each matched real frame's face is, composite it, window it for the GAN.

docs/method.md, "Rendering". For each output frame:

1. coefficients: the person's identity, texture and lighting (one set for the whole clip, see
   `shared_appearance`), the predicted expression, and the pose of the chosen mode (keyframes.py:
   'reassign' takes the matched background frame's pose, 'predicted' keeps the network's,
   'pingpong' the replayed frame's);
2. camera: the workspace's coefficients live in each frame's aligned 224 px crop (docs/method.md,
   "Reconstruction"), so the mesh is projected with the 224 px camera and its screen positions are
   carried into the clip window's crop (the GAN's working size, 256 px) by the matched frame's
   map, aligned crop -> frame -> window. Both maps are scale + shift, so this is exact: the face
   of 'reassign' lands where that real frame's face is;
3. render with the low-frequency (PCA) albedo, as the released pipeline does;
4. composite over the matched frame's window crop through the hole-filled alpha (composite.py);
5. the GAN's 9-channel input windows (t, t-1, t-2).

`animate` yields fixed-size chunks, carrying the last two composited frames across chunk
boundaries, so long audio never holds more than one chunk of images; the result does not depend
on the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from talkface.background.composite import N_WINDOW, composite, fill_mask_holes, gan_input_windows
from talkface.background.keyframes import Mode, apply_pose_mode, plan_background
from talkface.background.mouth_match import mouth_matched_path
from talkface.errors import ConfigError, TalkfaceError
from talkface.face3d.coeffs import (
    GAMMA,
    IDENTITY,
    MOTION_ANGLES,
    N_COEFFS,
    N_MOTION,
    TEXTURE,
    motion_from_coeffs,
    with_motion,
)
from talkface.face3d.model import MorphableModel
from talkface.recon.alignment import invert_transform
from talkface.recon.frontal_mouth import frontal_opening
from talkface.recon.window import Window, read_window
from talkface.render.renderer import render

LIGHTINGS = ("mean", "first")
CHUNK_FRAMES = 32  # frames per chunk: ~100 MiB of float images at 256 px, a few rasterizer batches


@dataclass(frozen=True)
class Target:
    """What the animation takes from the person's clip: one row per real (training) frame, M of them."""

    coeffs: np.ndarray  # float32 [M, 257], each in its frame's aligned 224 px crop camera
    transforms: np.ndarray  # float64 [M, 2, 3], frame px -> aligned crop px
    window: Window  # the clip window: frame px -> window-crop px (out_size S)
    backgrounds: np.ndarray  # uint8 [M, S, S, 3], every frame cut by the window (a memory map is fine)
    source: Path | None = None  # named in errors

    def __post_init__(self) -> None:
        m, s = len(self.coeffs), self.window.out_size
        bad = (self.coeffs.shape != (m, N_COEFFS) or self.transforms.shape != (m, 2, 3)
               or self.backgrounds.shape != (m, s, s, 3) or m == 0)
        if bad:
            shapes = [list(np.shape(a)) for a in (self.coeffs, self.transforms, self.backgrounds)]
            raise TalkfaceError(f"inconsistent person data: coeffs, transforms, window crops {shapes} for a "
                                f"{s} px window; preprocess the clip again", self.source)

    @property
    def n_frames(self) -> int:
        return len(self.coeffs)

    def crop_to_window(self, indices: np.ndarray) -> np.ndarray:
        """float64 [B, 2, 3]: aligned-crop px of frames `indices` [B] -> window-crop px (window ∘ transform⁻¹)."""
        inverse = invert_transform(self.transforms[np.asarray(indices)])  # [B, 2, 3] crop -> frame
        w = self.window.transform  # [2, 3] frame -> window
        return np.concatenate([w[:, :2] @ inverse[..., :2], (w[:, :2] @ inverse[..., 2:]) + w[:, 2:]], axis=-1)

    def frame(self, index: int) -> Target:
        """This target reduced to its one frame `index` (the single-image case)."""
        if not -self.n_frames <= index < self.n_frames:
            raise TalkfaceError(f"has {self.n_frames} frames; there is no frame {index}", self.source)
        index %= self.n_frames
        keep = slice(index, index + 1)
        return replace(self, coeffs=self.coeffs[keep], transforms=self.transforms[keep],
                       backgrounds=self.backgrounds[keep])


def load_target(workspace: str | Path) -> Target:
    """The Target of a person workspace (talkface preprocess); image arrays stay memory-mapped."""
    from talkface.workspace import Workspace

    ws = Workspace(workspace)
    ws.require("align")
    return Target(
        coeffs=ws.load_array("coeffs.npy").astype(np.float32),
        transforms=ws.load_array("transforms.npy").astype(np.float64),
        window=read_window(ws.root),
        backgrounds=ws.load_array("window_crops.npy", mmap=True),
        source=ws.root,
    )


def shared_appearance(coeffs: np.ndarray, lighting: Literal["mean", "first"] = "mean") -> np.ndarray:
    """One float32 [257] row: identity and texture averaged over the clip, lighting per `lighting`.

    Preprocess fits one identity and texture for the whole clip (every row holds the same values),
    so their mean is that shared set; for per-frame estimates the mean is the natural pooling.
    Lighting: "mean" averages the clip's SH coefficients (a light flicker of single frames does not
    become the render's light), "first" takes frame 0's, as the original did (docs/method.md,
    "Rendering"). Expression and pose are zero: they come from the motion.
    """
    if lighting not in LIGHTINGS:
        raise ConfigError(f"unknown lighting {lighting!r}; expected one of {LIGHTINGS}")
    coeffs = np.asarray(coeffs, np.float32)
    row = np.zeros(N_COEFFS, np.float32)
    row[IDENTITY] = coeffs[:, IDENTITY].mean(axis=0)
    row[TEXTURE] = coeffs[:, TEXTURE].mean(axis=0)
    row[GAMMA] = coeffs[:, GAMMA].mean(axis=0) if lighting == "mean" else coeffs[0, GAMMA]
    return row


@dataclass(frozen=True)
class AnimationPlan:
    """Which real frame is behind each output frame, and the coefficients rendered there."""

    indices: np.ndarray  # int64 [T] background frame of each output frame, in [0, M)
    keyframes: np.ndarray  # int64 [K] keyframes of the predicted pose (K = 0 when none were used)
    coeffs: np.ndarray  # float32 [T, 257] in the aligned crop camera of frame indices[t]


def plan_animation(
    target: Target,
    motion: np.ndarray,
    mode: Mode = "reassign",
    lighting: Literal["mean", "first"] = "mean",
    silent: np.ndarray | None = None,
    mouth_match: tuple[MorphableModel, int] | None = None,
) -> AnimationPlan:
    """Predicted motion [T, 70] (expression + pose) -> the background frames and coefficients to render;
    `silent` (bool [T], frames without speech) holds the background still there (keyframes.match_background);
    `mouth_match` (model, radius) then moves the frames within `radius` of the plan towards frames
    whose own mouths are like the drawn one (mouth_match.py; radius 0: not at all)."""
    motion = check_motion(motion)
    train_motion = motion_from_coeffs(target.coeffs)  # [M, 70]
    indices, keyframes = plan_background(motion[:, MOTION_ANGLES], train_motion[:, MOTION_ANGLES], mode, target.source,
                                         silent)
    if mouth_match is not None and mouth_match[1] > 0:
        model, radius = mouth_match
        indices = mouth_matched_path(indices, *mouth_openings(target, motion, model), radius)
    rendered = apply_pose_mode(motion, train_motion, indices, mode)  # [T, 70]
    return AnimationPlan(indices, keyframes, animation_coeffs(target, rendered, lighting))


def mouth_openings(target: Target, motion: np.ndarray, model: MorphableModel) -> tuple[np.ndarray, np.ndarray]:
    """(clip [M], drawn [T]): the frontal inner-lip gap (recon/frontal_mouth.py) of each clip frame's own
    expression and of the motion's [T, 70], both on the clip's shared identity."""
    clip = animation_coeffs(target, motion_from_coeffs(target.coeffs))
    drawn = animation_coeffs(target, motion)
    return frontal_opening(torch.from_numpy(clip), model), frontal_opening(torch.from_numpy(drawn), model)


def animation_coeffs(target: Target, motion: np.ndarray, lighting: Literal["mean", "first"] = "mean") -> np.ndarray:
    """[T, 257]: the target's shared appearance (shared_appearance) with expression and pose from `motion` [T, 70]."""
    base = np.broadcast_to(shared_appearance(target.coeffs, lighting), (len(motion), N_COEFFS))
    return with_motion(base.copy(), motion.astype(np.float32))


def check_motion(motion: np.ndarray) -> np.ndarray:
    """Predicted motion as float32 [T, 70], or a one-line error."""
    motion = np.asarray(motion, np.float32)
    if motion.ndim != 2 or motion.shape[1] != N_MOTION or len(motion) == 0 or not np.isfinite(motion).all():
        raise TalkfaceError(f"expected finite predicted motion [T, {N_MOTION}] with T >= 1, got {list(motion.shape)}")
    return motion




@dataclass
class AnimationChunk:
    """Output frames [start, start + B) of an animation: every image float32 in [0, 1], window px."""

    start: int
    indices: np.ndarray  # int64 [B] background frame of each
    coeffs: Tensor  # [B, 257] rendered (aligned-crop camera of its background frame)
    render: Tensor  # [B, 3, S, S] the face alone, black where empty
    alpha: Tensor  # [B, 1, S, S] render coverage {0, 1} (before hole filling)
    filled: Tensor  # bool [B, 1, S, S] the coverage with its holes filled: where the render is drawn
    landmarks: Tensor  # [B, 68, 2] rendered landmarks, window px
    background: Tensor  # [B, 3, S, S] the background frames' window crops
    composited: Tensor  # [B, 3, S, S] render over background (docs/method.md, compositing)
    gan_input: Tensor  # [B, 9, S, S] composited frames t, t-1, t-2


def animate(
    target: Target,
    plan: AnimationPlan,
    model: MorphableModel,
    chunk_frames: int = CHUNK_FRAMES,
    backend: str = "auto",
) -> Iterator[AnimationChunk]:
    """Render, composite and window the planned animation, `chunk_frames` output frames at a time.

    Runs on the model's device.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    if len(plan.indices) and not 0 <= plan.indices.min() <= plan.indices.max() < target.n_frames:
        raise TalkfaceError(f"the plan's background frames run to {plan.indices.max()}, the target has "
                            f"{target.n_frames}; plan with this target", target.source)
    device, size = model.mean_shape.device, target.window.out_size
    history = torch.zeros(0, 3, size, size, device=device)  # the last N_WINDOW - 1 composited frames
    for start in range(0, len(plan.indices), chunk_frames):
        indices = plan.indices[start : start + chunk_frames]
        coeffs = torch.as_tensor(plan.coeffs[start : start + chunk_frames], device=device)
        with torch.no_grad():
            rendered = render(coeffs, model, backend=backend, image_map=target.crop_to_window(indices), size=size)
            background = _backgrounds(target, indices, device)
            filled = fill_mask_holes(rendered.mask > 0)
            composited = composite(rendered.image, rendered.mask, background, filled=filled)
            stacked = torch.cat([history, composited])
            windows = gan_input_windows(stacked)[len(history):]  # [B, 9, S, S]
        history = stacked[-(N_WINDOW - 1):]
        yield AnimationChunk(start, indices, coeffs, rendered.image, rendered.mask, filled, rendered.landmarks,
                             background, composited, windows)


def _backgrounds(target: Target, indices: np.ndarray, device: torch.device) -> Tensor:
    """uint8 window crops of frames `indices` -> float [B, 3, S, S] in [0, 1]."""
    crops = torch.from_numpy(np.ascontiguousarray(target.backgrounds[indices]))  # [B, S, S, 3]
    return crops.to(device).permute(0, 3, 1, 2).float() / 255
