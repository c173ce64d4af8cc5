"""The GAN's training pairs of one clip: its own coefficients rendered over its own frames.

For a clip with coefficients for every frame, the rough render the GAN learns to refine is frame
t's own coefficients (the clip's shared identity, texture and lighting with frame t's expression
and pose: background/animation.py) rendered and composited over frame t's window crop. This is
the 'reassign' plan with identity indices: each frame is its own background, so the render sits
exactly on the real face. The real frame of the pair is that window crop itself.

The composited renders are a workspace step (`renders`, talkface/workspace.py): uint8
[T, S, S, 3] in renders.npy, recomputed only when the alignment, the coefficients or the
morphable model change.
"""

from __future__ import annotations

import numpy as np
import torch

from talkface.background.animation import CHUNK_FRAMES, AnimationPlan, Target, animate, animation_coeffs
from talkface.face3d.coeffs import motion_from_coeffs
from talkface.face3d.model import MorphableModel
from talkface.workspace import ALL_STEPS, Workspace, step_key

STEP = "renders"
OUTPUT = "renders.npy"
LIGHTING = "mean"  # the animation's default (shared_appearance): what inference renders with


def own_pose_plan(target: Target) -> AnimationPlan:
    """Every frame drawn over itself with its own expression and pose ('reassign', identity indices)."""
    indices = np.arange(target.n_frames, dtype=np.int64)
    coeffs = animation_coeffs(target, motion_from_coeffs(target.coeffs), LIGHTING)
    return AnimationPlan(indices, np.zeros(0, np.int64), coeffs)


def render_pairs(target: Target, model: MorphableModel, backend: str = "auto",
                 chunk_frames: int = CHUNK_FRAMES) -> np.ndarray:
    """The clip's composited renders of its own coefficients: uint8 [T, S, S, 3]."""
    chunks = [
        (chunk.composited.permute(0, 2, 3, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
        for chunk in animate(target, own_pose_plan(target), model, chunk_frames=chunk_frames, backend=backend)
    ]
    return np.concatenate(chunks)


def renders_key(ws: Workspace, morphable_model: str) -> str:
    """The renders step's key: the morphable model and the keys of the steps it reads."""
    step = ALL_STEPS[STEP]
    inputs = {name: (ws.step_record(name) or {}).get("key") for name in step.needs}
    return step_key(step, {"morphable_model": str(morphable_model), "lighting": LIGHTING, "albedo": "low"}, inputs)


def ensure_renders(ws: Workspace, morphable_model: str, backend: str = "auto") -> np.ndarray:
    """The workspace's renders.npy (uint8 [T, S, S, 3]), computed first when missing or stale.

    `morphable_model` is a BFM path or "synthetic" (face3d.model.load_morphable_model): the
    model the workspace's coefficients were fitted with.
    """
    from talkface.background.animation import load_target
    from talkface.face3d.model import load_morphable_model

    for name in ALL_STEPS[STEP].needs:
        ws.require(name)
    key = renders_key(ws, morphable_model)
    if not ws.is_current(STEP, key):
        renders = render_pairs(load_target(ws.root), load_morphable_model(morphable_model), backend)
        ws.forget([STEP])
        ws.save_array(OUTPUT, renders)
        ws.record(STEP, key, config={"morphable_model": str(morphable_model)})
    return ws.load_array(OUTPUT, mmap=True)
