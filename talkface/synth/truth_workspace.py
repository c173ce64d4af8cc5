"""A person workspace written straight from a synthetic person's truth (no landmark detector, no R-Net).

`talkface preprocess` estimates landmarks, alignment and coefficients; a synthetic person
(world.write_person) already knows them. This writes the same workspace layout
(talkface/workspace.py) from that truth, so later stages can be tested against exact answers:

- landmarks are the truth landmarks;
- the "aligned crop" of every frame is the canonical 224 px crop the truth coefficients are
  expressed in (transforms = the inverse of truth/transform.npy), so the coefficients are exactly
  in the crop's camera, as the workspace contract asks;
- the clip window is computed from the landmarks as preprocess does (recon.alignment.clip_window).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from talkface.atomic import atomic_path
from talkface.errors import TalkfaceError
from talkface.workspace import STEPS, Workspace

TRUTH_KEY = "synthetic-truth"  # recorded as every step's key: never equal to a key preprocess computes


def write_truth_workspace(person: str | Path, out: str | Path, frames: int | None = None,
                          window_size: int = 256) -> Workspace:
    """Workspace `out` from the first `frames` frames (default all) of write_person's folder `person`."""
    from talkface.audio import SAMPLES_PER_VIDEO_FRAME, audio_windows
    from talkface.media import read_audio, read_video, write_wav
    from talkface.recon.alignment import apply_transform, clip_window, invert_transform, warp_image

    person = Path(person)
    truth = person / "truth"
    coeffs = np.load(truth / "coeffs.npy")
    count = len(coeffs) if frames is None else frames
    if not 1 <= count <= len(coeffs):
        raise TalkfaceError(f"has {len(coeffs)} frames; cannot take {count}", person)
    video = read_video(person / "clip.mp4", max_frames=count)  # uint8 [T, H, W, 3]
    landmarks = np.load(truth / "landmarks.npy")[:count]  # [T, 68, 2] frame px
    to_crop = invert_transform(np.load(truth / "transform.npy"))  # frame px -> canonical 224 px
    transforms = np.repeat(to_crop[None], count, axis=0)  # [T, 2, 3]
    samples = read_audio(truth / "audio.wav")[: count * SAMPLES_PER_VIDEO_FRAME]
    window = clip_window(landmarks, video.shape[1:3], window_size)

    ws = Workspace(out)
    ws.check_target()
    ws.root.mkdir(parents=True, exist_ok=True)
    ws.save_array("frames.npy", video)
    write_wav(ws.path("audio.wav"), samples)
    ws.save_array("mfcc.npy", audio_windows(samples).astype(np.float32))
    ws.save_array("landmarks.npy", landmarks.astype(np.float32))
    ws.save_array("transforms.npy", transforms)
    ws.save_array("crops.npy", np.stack([warp_image(frame, to_crop, 224) for frame in video]))
    ws.save_array("crop_landmarks.npy", apply_transform(transforms, landmarks).astype(np.float32))
    ws.save_array("window_crops.npy", np.stack([window.crop(frame) for frame in video]))
    with atomic_path(ws.path("window.json")) as tmp:
        tmp.write_text(json.dumps({"x0": window.x0, "y0": window.y0, "size": window.size,
                                   "out_size": window.out_size, "transform": window.transform.tolist()}))
    ws.save_array("coeffs.npy", coeffs[:count].astype(np.float32))
    ws.manifest["source"] = {"path": str(person.resolve()), "kind": "synthetic truth"}
    for name in STEPS:
        ws.record(name, TRUTH_KEY)
    return ws
