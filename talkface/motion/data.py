"""The audio -> motion network's data: LRW records and person workspaces as (MFCC windows, motion) clips,
and the 16-frame training sequences cut from them.

A clip is a pair of frame-aligned arrays: windows [T, 28, 12] (`audio_windows(signal, pad=True)`:
window i belongs to video frame i) and motion [T, 70] (`motion_from_coeffs`). For LRW's interior
frames 3..T-4 the padded windows equal the original's unpadded ones exactly, and only those
frames are sampled, so one convention serves pretraining and fine-tuning.

Items are dicts of float32 tensors: windows [16, 28, 12], motion [16, 70] in coefficient units
(the training step encodes the target with the model's statistics).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from talkface.errors import TalkfaceError
from talkface.face3d.coeffs import IDENTITY, N_COEFFS, N_MOTION, motion_from_coeffs
from talkface.motion.activity import speech_activity
from talkface.motion.av_offset import audio_video_offset
from talkface.motion.records import read_record
from talkface.speech.phones import Phone
from talkface.speech.recognition import RECOGNISERS, phone_track, recognise_phones
from talkface.train.data import held_out_split

SEQUENCE_FRAMES = 16  # docs/method.md: 16-frame training sequences
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

    Fine-tuning on 300 frames gives the original's 285 sequences (docs/method.md).
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


class RecordClips:
    """The (windows, motion) pairs of LRW records, read lazily (so workers share nothing big)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Clip:
        record = read_record(self.paths[index])
        return record.windows, record.motion


@dataclass(frozen=True)
class PersonClip:
    windows: np.ndarray  # float32 [T, 28, 12]
    motion: np.ndarray  # float32 [T, 70]
    identity: np.ndarray  # float32 [80]


def load_person(workspace: str | Path) -> PersonClip:
    """The workspace's MFCC windows and motion; a one-line error naming the preprocess step when absent."""
    from talkface.workspace import Workspace

    ws = Workspace(workspace)
    coeffs = np.asarray(ws.load_array("coeffs.npy"), np.float32)  # [T, 257]
    windows = np.asarray(ws.load_array("mfcc.npy"), np.float32)  # [T, 28, 12]
    if coeffs.ndim != 2 or coeffs.shape[1] != N_COEFFS or len(coeffs) != len(windows):
        raise TalkfaceError(f"coeffs.npy {coeffs.shape} and mfcc.npy {windows.shape} do not align; "
                            "rerun `talkface preprocess`", Path(workspace))
    return PersonClip(windows, motion_from_coeffs(coeffs).astype(np.float32), coeffs[:, IDENTITY].mean(0))


def person_speech_activity(workspace: str | Path, frames: int) -> np.ndarray:
    """The speech-activity gate [frames] (activity.py) of the workspace's audio.wav."""
    return _per_frame(workspace, frames, speech_activity(_person_audio(workspace)))


def person_phones(workspace: str | Path, recogniser: str = RECOGNISERS[0]) -> list[Phone]:
    """The phones `recogniser` hears in the workspace's audio.wav (speech/recognition.py)."""
    return recognise_phones(_person_audio(workspace), recogniser)


def person_av_offset(workspace: str | Path, phones: Sequence[Phone], align_frames: int) -> int:
    """The shift (frames) that puts the workspace's `phones` in step with the detected mouth of the clip's
    first `align_frames` frames (av_offset.py)."""
    from talkface.workspace import Workspace

    return audio_video_offset(phones, Workspace(workspace).load_array("landmarks.npy")[:align_frames])


def person_viseme_track(workspace: str | Path, frames: int, phones: Sequence[Phone],
                        align_frames: int = 0) -> tuple[np.ndarray, int]:
    """(viseme track [frames, 3], shift in frames) of the workspace's `phones` (`person_phones`); with
    `align_frames`, shifted into step with the detected mouth of the clip's first that many frames
    (`person_av_offset`), else not shifted."""
    shift = person_av_offset(workspace, phones, align_frames) if align_frames else 0
    return phone_track(phones, frames, shift), shift  # the phones' times need no audio: one row per frame


def in_step(person: PersonClip, shift: int) -> PersonClip:
    """`person` with frame t paired with audio window t + `shift` (`person_av_offset`'s shift: the frame
    shapes the sound that much later than the standard lead), the clip's first or last window standing in
    beyond its ends.

    A recording's sound and picture sit a few frames apart (av_offset.py); trained on the pairs as
    recorded, the network learns that recording's offset along with the speaker's mouth and carries it
    into every video it makes from new speech. Trained in step, it predicted another recording of the
    same speaker better (benchmarks/bench_cross_recording.py).
    """
    if shift == 0:
        return person
    index = np.clip(np.arange(len(person.windows)) + shift, 0, len(person.windows) - 1)
    return dataclasses.replace(person, windows=person.windows[index])


def _person_audio(workspace: str | Path) -> np.ndarray:
    from talkface.media import read_audio
    from talkface.workspace import Workspace

    path = Workspace(workspace).path("audio.wav")
    if not path.is_file():
        raise TalkfaceError("has no audio.wav; rerun `talkface preprocess`", Path(workspace))
    return read_audio(path)


def _per_frame(workspace: str | Path, frames: int, values: np.ndarray) -> np.ndarray:
    """`values` [T, ...] of the workspace's audio, checked to have one row per coefficient frame."""
    if len(values) != frames:
        raise TalkfaceError(f"audio.wav gives {len(values)} frames but the coefficients {frames}; "
                            "rerun `talkface preprocess`", Path(workspace))
    return values


def person_split(frames: int, train_frames: int, val_fraction: float) -> tuple[slice, slice]:
    """(training frames, held-out frames): the first `train_frames` not in the held-out last fraction.

    The held-out tail is at least one sequence long, and so must the training head be.
    """
    held_out = max(SEQUENCE_FRAMES, math.ceil(frames * val_fraction))
    return held_out_split(frames, train_frames, held_out, SEQUENCE_FRAMES)
