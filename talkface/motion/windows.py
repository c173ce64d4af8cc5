"""Training sequences of (MFCC windows, motion) for the audio -> motion network.

A clip is a pair of frame-aligned arrays: windows [T, 28, 12] (`audio_windows(signal, pad=True)`:
window i belongs to video frame i) and motion [T, 70] (`motion_from_coeffs`). For LRW's interior
frames 3..T-4 the padded windows equal the original's unpadded ones exactly, and only those
frames are sampled, so one convention serves pretraining and fine-tuning.

Items are dicts of float32 tensors: windows [16, 28, 12], motion [16, 70] in coefficient units
(the training step encodes the target with the model's statistics).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from talkface.errors import TalkfaceError
from talkface.face3d.coeffs import N_MOTION

SEQUENCE_FRAMES = 16  # REFERENCE.md: 16-frame training sequences
# LRW: a random offset r in 3..7; the sequence is frames r+1 .. r+16, as in the original's
# dataset code, so frames 4..23 of a 29-frame clip are used and every window lies inside the audio.
LRW_OFFSETS = (3, 7)

Clip = tuple[np.ndarray, np.ndarray]  # (windows [T, 28, 12], motion [T, 70])


def check_clip(windows: np.ndarray, motion: np.ndarray, min_frames: int, name: str) -> None:
    """Raise TalkfaceError unless windows [T, 28, 12] and motion [T, 70] align and T >= min_frames."""
    if windows.ndim != 3 or motion.ndim != 2 or motion.shape[1] != N_MOTION:
        raise TalkfaceError(f"{name}: expected windows [T, 28, 12] and motion [T, {N_MOTION}], "
                            f"got {windows.shape} and {motion.shape}")
    if len(windows) != len(motion):
        raise TalkfaceError(f"{name}: {len(windows)} audio windows but {len(motion)} motion frames")
    if len(motion) < min_frames:
        raise TalkfaceError(f"{name}: {len(motion)} frames, need at least {min_frames}")


def _item(windows: np.ndarray, motion: np.ndarray, start: int, length: int) -> dict[str, torch.Tensor]:
    return {
        "windows": torch.as_tensor(np.asarray(windows[start:start + length], np.float32)),  # [L, 28, 12]
        "motion": torch.as_tensor(np.asarray(motion[start:start + length], np.float32)),  # [L, 70]
    }


class LRWSequences(Dataset):
    """One random 16-frame sequence per LRW clip: frames r+1 .. r+16, r drawn from 3..7.

    `clips` is any indexable of (windows, motion) pairs, e.g. a lazy shard reader. r comes from
    numpy's global generator, which the shared training loop seeds per item
    (talkface/train/data.py), so a run is reproducible from its seed.
    """

    def __init__(self, clips: Sequence[Clip], length: int = SEQUENCE_FRAMES, offsets: tuple[int, int] = LRW_OFFSETS):
        self.clips = clips
        self.length = length
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        windows, motion = self.clips[index]
        # The latest sequence ends at frame offsets[1] + length, so T must exceed that.
        check_clip(windows, motion, self.offsets[1] + 1 + self.length, f"LRW clip {index}")
        offset = int(np.random.randint(self.offsets[0], self.offsets[1] + 1))
        return {**_item(windows, motion, offset + 1, self.length), "offset": offset}


class PersonSequences(Dataset):
    """Every overlapping 16-frame sequence of one person's clip: T - 15 items, item i = frames i .. i+15.

    Fine-tuning on 300 frames gives the original's 285 sequences (REFERENCE.md).
    """

    def __init__(self, windows: np.ndarray, motion: np.ndarray, length: int = SEQUENCE_FRAMES):
        check_clip(windows, motion, length, "person clip")
        self.windows = np.asarray(windows, np.float32)
        self.motion = np.asarray(motion, np.float32)
        self.length = length

    def __len__(self) -> int:
        return len(self.motion) - self.length + 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"sequence {index} out of range for {len(self)} sequences")
        return _item(self.windows, self.motion, index, self.length)
