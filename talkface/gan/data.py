"""(render window, real frame, identity frame) items for training the memory GAN.

One item is frame t of one clip:

    window          float [9, S, S]  composited renders t, t-1, t-2 (clamped at the clip's first
                                     frame), the generator's input (docs/method.md)
    real            float [3, S, S]  the real frame t (its window crop), the generator's target
    identity_frame  float [3, S, S]  another real frame of the same clip, drawn at random: the
                                     learned identity encoder never sees the target it must match,
                                     so it cannot pass the target's pixels through the AdaIN code

All in [0, 1]. Each clip contributes the frames of its range (train = the first N frames, held
out = the rest); the identity frame is drawn from that range too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from talkface.background.composite import N_WINDOW
from talkface.errors import TalkfaceError
from talkface.gan.mouth_swap import LowerFaces, swap_lower_face
from talkface.workspace import Workspace

MIN_CLIP_FRAMES = 2  # an item's identity frame is another frame of its clip's range


@dataclass(frozen=True)
class PairClip:
    """One clip's GAN pairs: renders and real window crops, uint8 [T, S, S, 3] each (memory maps are fine)."""

    renders: np.ndarray
    reals: np.ndarray
    frames: range  # the frames this clip contributes
    source: Path | None = None
    lower_faces: LowerFaces | None = None  # what GanPairs' mouth swaps need (gan/mouth_swap.py)

    def __post_init__(self) -> None:
        if self.renders.shape != self.reals.shape or self.renders.ndim != 4 or self.renders.shape[-1] != 3:
            raise TalkfaceError(f"renders {list(self.renders.shape)} and window crops {list(self.reals.shape)} "
                                "do not match; recompute the renders", self.source)
        if len(self.frames) < MIN_CLIP_FRAMES or self.frames.start < 0 or self.frames.stop > len(self.renders):
            raise TalkfaceError(f"frame range {self.frames.start}..{self.frames.stop} needs at least "
                                f"{MIN_CLIP_FRAMES} of the clip's {len(self.renders)} frames", self.source)


def load_pair_clip(workspace: str | Path, frames: slice = slice(None), morphable_model: str = "auto",
                   backend: str = "auto") -> PairClip:
    """A workspace's pairs over `frames`; its renders are computed first when missing or stale.

    `morphable_model` "auto": the one recorded in the workspace's config (preprocess or truth).
    """
    from talkface.face3d.model import recorded_morphable_model, resolve_morphable_model
    from talkface.gan.pairs import ensure_renders

    ws = Workspace(workspace)
    model = resolve_morphable_model(morphable_model, recorded_morphable_model(ws.manifest))
    renders = ensure_renders(ws, model, backend)
    reals = ws.load_array("window_crops.npy", mmap=True)
    return PairClip(renders, reals, range(len(renders))[frames], ws.root)


def to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.array(images)).movedim(-1, -3).float() / 255.0  # a copy: memory maps are read-only


def window_frames(t: int) -> list[int]:
    """Frames t, t-1, t-2 of the GAN's input window, repeating frame 0 before the clip starts."""
    return [max(t - k, 0) for k in range(N_WINDOW)]


def render_window(renders: np.ndarray, t: int) -> torch.Tensor:
    """[9, S, S]: renders of window_frames(t) in [0, 1]."""
    return to_float(renders[window_frames(t)]).flatten(0, 1)


class GanPairs(Dataset):
    """Items (see the module docstring) over the frame ranges of many clips.

    `swap_mouths`: the fraction of items whose lower face, in the render window and in the real
    frame alike, comes from another frame of nearly the same head pose (gan/mouth_swap.py); it
    needs clips with `lower_faces`.
    """

    def __init__(self, clips: Sequence[PairClip], swap_mouths: float = 0.0):
        if not clips:
            raise TalkfaceError("no clips to train the GAN on")
        if not 0 <= swap_mouths <= 1 or (swap_mouths and any(c.lower_faces is None for c in clips)):
            raise ValueError(f"swap_mouths must be in [0, 1] and needs every clip's lower faces, got {swap_mouths}")
        self.clips = list(clips)
        self.swap_mouths = swap_mouths
        self.items = [(c, t) for c, clip in enumerate(self.clips) for t in clip.frames]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        c, t = self.items[index]
        clip = self.clips[c]
        others = len(clip.frames) - 1
        # a different frame of the range: draw among the others (seeded per item by the trainer)
        pick = int(np.random.randint(others))
        identity = clip.frames[pick + (pick >= clip.frames.index(t))]
        if self.swap_mouths and np.random.random() < self.swap_mouths:
            window, real = _swapped(clip, t, int(np.random.choice(clip.lower_faces.partners[t])))
        else:
            window, real = render_window(clip.renders, t), to_float(clip.reals[t])
        return {"window": window, "real": real, "identity_frame": to_float(clip.reals[identity])}


def _swapped(clip: PairClip, t: int, donor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame t's render window [9, S, S] and real frame [3, S, S] with the donor frame's lower face."""
    faces, size = clip.lower_faces, clip.reals.shape[1]
    mask, offset = faces.mask(t, donor, size), faces.offset(t, donor)
    renders = [swap_lower_face(clip.renders[base], clip.renders[other], mask, offset)
               for base, other in zip(window_frames(t), window_frames(donor))]
    real = swap_lower_face(clip.reals[t], clip.reals[donor], mask, offset)
    return to_float(np.stack(renders)).flatten(0, 1), to_float(real)
