"""Person workspaces written straight from synthetic truth (no landmark detector, no R-Net).

`talkface preprocess` estimates landmarks, alignment and coefficients; a synthetic person
(world.write_person) or a synthetic LRW clip (world.write_lrw) already knows them. This writes the
same workspace layout (talkface/workspace.py) from that truth, so later stages can be tested
against exact answers:

- landmarks are the truth landmarks;
- the "aligned crop" of every frame is the canonical 224 px crop the truth coefficients are
  expressed in (transforms = the inverse of the truth transform), so the coefficients are exactly
  in the crop's camera, as the workspace contract asks;
- the clip window is computed from the landmarks as preprocess does (recon.window.clip_window).

`write_workspace_from_truth` does the work from arrays; `write_truth_workspace` (a person folder)
and `write_lrw_truth_workspace` (one LRW-layout clip with its .npz) only read their sources. Every
step records `truth_key` (talkface/keyed.py): the truth's content, the window size and the frames
taken, so a workspace is current for exactly the truth it was written from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from talkface.errors import TalkfaceError
from talkface.keyed import artifact_key, file_fingerprint
from talkface.workspace import STEPS, Workspace

MORPHABLE_MODEL = "synthetic"  # the synthetic world's model, recorded as the workspace's config


def truth_key(truth_file: str | Path, window_size: int, frames: int | None = None) -> str:
    """The key every step of a truth workspace records (the synthetic world is deterministic: the
    truth file's content stands for the clip's too). Never equal to a key preprocess computes."""
    return artifact_key({"truth": file_fingerprint(truth_file)["sha256"], "window_size": window_size,
                         "frames": frames})


def truth_workspace_current(out: str | Path, key: str) -> bool:
    """Whether every preprocess step of workspace `out` is current with truth key `key`."""
    ws = Workspace(out)
    return all(ws.is_current(name, key) for name in STEPS)


def write_workspace_from_truth(out: str | Path, video: np.ndarray, samples: np.ndarray, coeffs: np.ndarray,
                               landmarks: np.ndarray, transform: np.ndarray, source: str | Path,
                               key: str, window_size: int = 256) -> Workspace:
    """Workspace `out` from video uint8 [T, H, W, 3], 16 kHz samples, coeffs [T, 257], landmarks [T, 68, 2]
    (frame px) and transform [2, 3] (canonical 224 px crop -> frame px), every step recorded with `key`
    (truth_key); audio is cut or zero-padded to T frames."""
    from talkface.audio import SAMPLES_PER_VIDEO_FRAME, audio_windows
    from talkface.media import write_wav
    from talkface.recon.alignment import apply_transform, invert_transform, warp_image
    from talkface.recon.window import clip_window, write_window

    count = len(video)
    if not (len(coeffs) == len(landmarks) == count) or count == 0:
        raise TalkfaceError(f"truth does not match the video: {count} frames, coeffs {list(coeffs.shape)}, "
                            f"landmarks {list(landmarks.shape)}", source)
    to_crop = invert_transform(np.asarray(transform, np.float64))  # frame px -> canonical 224 px
    transforms = np.repeat(to_crop[None], count, axis=0)  # [T, 2, 3]
    fitted = np.zeros(count * SAMPLES_PER_VIDEO_FRAME, np.float32)  # exactly T frames, as preprocess
    fitted[: min(len(samples), len(fitted))] = samples[: len(fitted)]
    window = clip_window(landmarks, video.shape[1:3], window_size)

    ws = Workspace(out)
    ws.check_target()
    ws.root.mkdir(parents=True, exist_ok=True)
    ws.forget(list(ws.manifest["steps"]))  # every step is rewritten, derived ones (renders) are stale
    ws.save_array("frames.npy", video)
    write_wav(ws.path("audio.wav"), fitted)
    ws.save_array("mfcc.npy", audio_windows(fitted).astype(np.float32))
    ws.save_array("landmarks.npy", landmarks.astype(np.float32))
    ws.save_array("transforms.npy", transforms)
    ws.save_array("crops.npy", np.stack([warp_image(frame, to_crop, 224) for frame in video]))
    ws.save_array("crop_landmarks.npy", apply_transform(transforms, landmarks).astype(np.float32))
    ws.save_array("window_crops.npy", np.stack([window.crop(frame) for frame in video]))
    write_window(ws.root, window)
    ws.save_array("coeffs.npy", coeffs.astype(np.float32))
    ws.manifest["source"] = {"path": str(Path(source).resolve()), "kind": "synthetic truth"}
    ws.manifest["config"] = {"morphable_model": MORPHABLE_MODEL, "window_size": window_size}
    for name in STEPS:
        ws.record(name, key)
    return ws


def write_speech_truth_workspace(out: str | Path, samples: np.ndarray, coeffs: np.ndarray,
                                 key: str = "synthetic-truth") -> Workspace:
    """Workspace `out` holding what preprocess would write for the audio-to-motion stage, from truth:
    16 kHz samples (audio.wav, MFCC windows), coeffs [T, 257], and the landmarks of the coefficients
    on the synthetic model in the crop's camera (the viseme mouth puts its track in step with their
    lip gap, motion/av_offset.py); every step recorded with `key`."""
    import torch

    from talkface.audio import audio_windows
    from talkface.face3d.model import load_morphable_model
    from talkface.media import write_wav

    ws = Workspace(out)
    ws.root.mkdir(parents=True)
    write_wav(ws.path("audio.wav"), samples)
    ws.save_array("mfcc.npy", audio_windows(samples))
    ws.save_array("coeffs.npy", coeffs)
    ws.save_array("landmarks.npy", load_morphable_model(MORPHABLE_MODEL)(torch.from_numpy(coeffs)).landmarks.numpy())
    for step in ("landmarks", "mfcc", "coeffs"):
        ws.record(step, key)
    return ws


def write_truth_workspace(person: str | Path, out: str | Path, frames: int | None = None,
                          window_size: int = 256) -> Workspace:
    """Workspace `out` from the first `frames` frames (default all) of write_person's folder `person`."""
    from talkface.media import read_audio, read_video

    person = Path(person)
    truth = person / "truth"
    coeffs = np.load(truth / "coeffs.npy")
    count = len(coeffs) if frames is None else frames
    if not 1 <= count <= len(coeffs):
        raise TalkfaceError(f"has {len(coeffs)} frames; cannot take {count}", person)
    return write_workspace_from_truth(
        out, read_video(person / "clip.mp4", max_frames=count), read_audio(truth / "audio.wav"), coeffs[:count],
        np.load(truth / "landmarks.npy")[:count], np.load(truth / "transform.npy"), person,
        truth_key(truth / "coeffs.npy", window_size, frames), window_size,
    )


def write_lrw_truth_workspace(clip_mp4: str | Path, out: str | Path, window_size: int = 256) -> Workspace:
    """Workspace `out` from one synthetic LRW clip (world.write_lrw) and the truth .npz beside it."""
    from talkface.media import read_audio, read_video

    clip_mp4 = Path(clip_mp4)
    truth_path = clip_mp4.with_suffix(".npz")
    if not truth_path.is_file():
        raise TalkfaceError("has no truth .npz beside it; not a synthetic LRW clip", clip_mp4)
    with np.load(truth_path) as truth:
        coeffs, landmarks, transform = truth["coeffs"], truth["landmarks"], truth["transform"]
    video = read_video(clip_mp4, max_frames=len(coeffs))
    return write_workspace_from_truth(out, video, read_audio(clip_mp4), coeffs[: len(video)],
                                      landmarks[: len(video)], transform, clip_mp4,
                                      truth_key(truth_path, window_size), window_size)
