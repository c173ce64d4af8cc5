"""The R-Net's training data: aligned 224 px crops with their crop-pixel landmarks.

Data (configs/recon.yaml `data.clips`): a list of paths, each one of
  - a person workspace written by `talkface preprocess` (crops.npy + crop_landmarks.npy);
  - a clip folder with clip.mp4 and a landmarks .npy [T, 68, 2] in frame pixels (`data.landmarks`,
    default truth/landmarks.npy: the synthetic person clips of `talkface synth person`);
  - an LRW-layout clip WORD_00001.mp4 with WORD_00001.npz beside it holding `landmarks`
    (`talkface synth lrw`), or a folder searched recursively for such clips.
Clips are aligned here with the same 5-point crop as preprocess; the frames of all entries form
one set of aligned 224 px crops with their crop-pixel landmarks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from talkface.errors import TalkfaceError
from talkface.workspace import KIND as WORKSPACE_KIND


class AlignedFrames(Dataset):
    """Aligned crops uint8 [N, 224, 224, 3] + crop landmarks [N, 68, 2] -> items for the R-Net."""

    def __init__(self, crops: np.ndarray, landmarks: np.ndarray):
        if len(crops) != len(landmarks) or len(crops) == 0:
            raise TalkfaceError(f"need as many crops as landmark sets (>0), got {len(crops)} and {len(landmarks)}")
        self.crops, self.landmarks = crops, landmarks.astype(np.float32)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(np.ascontiguousarray(self.crops[index])).permute(2, 0, 1).float() / 255.0
        return {"image": image, "landmarks": torch.from_numpy(self.landmarks[index])}  # [3, 224, 224], [68, 2]

    @classmethod
    def from_folders(cls, folders: list[str], landmarks_name: str = "truth/landmarks.npy",
                     max_frames: int = 300) -> "AlignedFrames":
        if not folders:
            raise TalkfaceError("no training data: list workspaces or clip folders under data.clips")
        parts = [_read_folder(Path(folder), landmarks_name, max_frames) for folder in folders]
        return cls(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def _read_folder(folder: Path, landmarks_name: str, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(crops [T, 224, 224, 3] uint8, crop landmarks [T, 68, 2]) of one entry of data.clips."""
    manifest = folder / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("kind") == WORKSPACE_KIND:
        from talkface.workspace import Workspace

        workspace = Workspace(folder)
        return workspace.load_array("crops.npy")[:max_frames], workspace.load_array("crop_landmarks.npy")[:max_frames]
    if (folder / "clip.mp4").is_file():
        from talkface.recon.landmarks import FileLandmarks

        return _aligned_clip(folder / "clip.mp4", FileLandmarks(folder / landmarks_name).detect(), max_frames)
    lrw = [folder] if folder.suffix == ".mp4" else sorted(folder.rglob("*.mp4")) if folder.is_dir() else []
    lrw = [clip for clip in lrw if clip.with_suffix(".npz").is_file()]
    if not lrw:
        raise TalkfaceError("is neither a person workspace, a clip folder with clip.mp4, nor LRW clips with .npz "
                            "landmarks", folder)
    parts = [_aligned_clip(clip, _npz_landmarks(clip.with_suffix(".npz")), max_frames) for clip in lrw]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _npz_landmarks(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as truth:
        if "landmarks" not in truth:
            raise TalkfaceError("has no 'landmarks' array", path)
        return truth["landmarks"].astype(np.float32)


def _aligned_clip(clip: Path, track: np.ndarray, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    from talkface.media import read_video
    from talkface.recon.alignment import align_faces
    from talkface.recon.track import clean_track

    frames = read_video(clip, max_frames=max_frames)
    if len(track) < len(frames):
        raise TalkfaceError(f"has landmarks for {len(track)} frames, the clip has {len(frames)}", clip)
    faces = align_faces(frames, clean_track(track[: len(frames)], smooth_window=1))  # fill gaps, no smoothing
    return faces.crops, faces.landmarks
