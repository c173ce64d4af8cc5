"""The person workspace: everything preprocess derives from one clip, and how each file was made.

Layout (T frames at 25 fps; all arrays .npy):

    manifest.json        kind, the source clip (size, mtime, sha256), and per step: its key,
                         version, config, inputs, outputs and provenance (talkface.provenance)
    frames.npy           uint8 [T, H, W, 3]   the clip's first T frames at 25 fps
    audio.wav            16 kHz mono, exactly T frames long
    mfcc.npy             float32 [T, 28, 12]  per-frame MFCC windows (talkface.audio)
    landmarks.npy        float32 [T, 68, 2]   frame pixels, gap-filled and smoothed
    transforms.npy       float64 [T, 2, 3]    frame pixels -> aligned 224 px crop pixels
    crops.npy            uint8 [T, 224, 224, 3] the R-Net crops
    crop_landmarks.npy   float32 [T, 68, 2]   landmarks in crop pixels
    window.json          the fixed per-clip window {x0, y0, size, out_size} (background, paste-back)
    window_crops.npy     uint8 [T, S, S, 3]   every frame cut by that window
    coeffs.npy           float32 [T, 257]     in the aligned crop's camera
    renders.npy          uint8 [T, S, S, 3]   (added by the GAN stage) each frame's own coefficients
                                              rendered and composited over its window crop

A step is a keyed artifact (talkface/keyed.py): it is up to date when the manifest records it
finished with the key computed now (a hash of its version, its config and the keys of what it
reads) and its outputs exist. Every file is written atomically and a step is recorded only after
all its outputs are in place, so an interrupted or failed run leaves complete files only, and the
next run redoes exactly what is missing or stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from talkface.atomic import atomic_path
from talkface.errors import TalkfaceError
from talkface.keyed import KeyBook, artifact_key

KIND = "talkface person workspace"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Step:
    """One preprocess step: its outputs and the steps whose outputs it reads."""

    name: str
    version: int  # bump when the step's code changes what it writes
    outputs: tuple[str, ...]
    needs: tuple[str, ...] = ()


STEPS = {
    step.name: step
    for step in (
        Step("frames", 1, ("frames.npy",)),
        Step("audio", 1, ("audio.wav",), ("frames",)),
        Step("mfcc", 1, ("mfcc.npy",), ("audio",)),
        Step("landmarks", 2, ("landmarks.npy",), ("frames",)),  # 2: detector output + 0.5 px (pixel centres)
        Step("align", 1, ("transforms.npy", "crops.npy", "crop_landmarks.npy", "window.json", "window_crops.npy"),
             ("frames", "landmarks")),
        Step("coeffs", 2, ("coeffs.npy",), ("align",)),
    )
}
# Steps later stages add to a workspace from preprocess's outputs (preprocess neither runs nor records them).
DERIVED_STEPS = {
    step.name: step
    for step in (
        Step("renders", 1, ("renders.npy",), ("align", "coeffs")),  # talkface.gan.pairs: the GAN's inputs
    )
}
ALL_STEPS = {**STEPS, **DERIVED_STEPS}


def step_key(step: Step, config: Any, inputs: dict[str, Any]) -> str:
    """A hash of what determines a step's outputs: its version, its config and its inputs' identities."""
    return artifact_key({"step": step.name, "version": step.version, "config": config, "inputs": inputs})


class Workspace:
    """A person workspace folder and its manifest."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.steps = KeyBook(self.root / MANIFEST, KIND, "steps",
                             remedy="delete the workspace and preprocess again")

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest: the book of steps and the workspace's own fields (source, config)."""
        return self.steps.record

    def path(self, name: str) -> Path:
        return self.root / name

    def check_target(self) -> None:
        """Refuse a non-empty folder that is not a workspace (preprocess never writes into foreign folders)."""
        if self.root.exists() and not self.root.is_dir():
            raise TalkfaceError("exists and is not a folder", self.root)
        if self.root.is_dir() and any(self.root.iterdir()) and not (self.root / MANIFEST).is_file():
            raise TalkfaceError("folder is not empty and is not a person workspace; choose a new folder", self.root)

    def step_record(self, name: str) -> dict[str, Any] | None:
        return self.steps.entry(name)

    def is_current(self, name: str, key: str) -> bool:
        """True when step `name` finished with `key` and all its outputs exist."""
        return self.steps.current(name, key) and all(self.path(out).is_file() for out in ALL_STEPS[name].outputs)

    def record(self, name: str, key: str, **fields: Any) -> None:
        """Mark step `name` finished with `key` (call only after its outputs are in place)."""
        from talkface.provenance import provenance

        step = ALL_STEPS[name]
        self.steps.finish(name, key, version=step.version, outputs=list(step.outputs), **fields, made=provenance())

    def forget(self, names: Sequence[str]) -> None:
        """Drop steps from the manifest before redoing them (their old outputs are then stale)."""
        self.steps.forget(names)

    def save_array(self, name: str, array: np.ndarray) -> None:
        with atomic_path(self.path(name)) as tmp:
            with tmp.open("wb") as handle:
                np.save(handle, array)

    def load_array(self, name: str, mmap: bool = False) -> np.ndarray:
        """An output array of a completed step; a one-line error naming the step to run if absent."""
        self.require(_producer(name))
        return np.load(self.path(name), mmap_mode="r" if mmap else None, allow_pickle=False)

    def require(self, step: str) -> None:
        """Fail with the command to run when `step`'s outputs are missing from this workspace."""
        missing = [out for out in ALL_STEPS[step].outputs if not self.path(out).is_file()]
        if not self.steps.done(step) or missing:
            what = (f"workspace has no {missing[0]} (preprocess step '{step}')" if missing else
                    f"workspace has not finished preprocess step '{step}' (or an older talkface made it)")
            raise TalkfaceError(f"{what}; run `talkface preprocess CLIP --out {self.root}` first", self.root)


def _producer(output: str) -> str:
    for step in ALL_STEPS.values():
        if output in step.outputs:
            return step.name
    raise ValueError(f"{output!r} is not a workspace output; outputs: "
                     f"{', '.join(o for s in ALL_STEPS.values() for o in s.outputs)}")
