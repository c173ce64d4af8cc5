"""Preprocess one clip of a person into a workspace (talkface/workspace.py has the layout).

    frames ─┬─ audio ── mfcc
            └─ landmarks ── align ── coeffs (R-Net or the posed mean face, + whole-clip refinement)

Without R-Net weights (`rnet: auto` and no checkpoints/recon/epoch_20.pth, or `rnet: null`) the
whole-clip refinement fits the clip directly from its landmarks and pixels (recon/inference.py).

Each step runs only when its key (version, config, inputs) differs from the manifest's or an
output is missing; everything downstream of a redone step is redone too (its inputs' keys change).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Literal, Optional

import numpy as np

from talkface.atomic import new_folder_removed_on_error
from talkface.audio import SAMPLE_RATE
from talkface.config import config_to_dict
from talkface.errors import ConfigError, MissingWeightsError, TalkfaceError
from talkface.keyed import file_fingerprint
from talkface.recon.inference import RefineConfig
from talkface.workspace import STEPS, Workspace, step_key

log = logging.getLogger(__name__)

RNET_DEFAULT = "checkpoints/recon/epoch_20.pth"  # where `rnet: auto` looks

RNET_HELP = ("train one with `talkface recon train --config configs/recon.yaml` and name its checkpoint as the "
             "preprocess config's rnet (preprocess: --rnet CKPT; person: --set preprocess.rnet=CKPT; "
             "lrw preprocess: --set rnet=CKPT), or download Deep3DFaceRecon_pytorch's "
             "epoch_20.pth "
             "(https://github.com/sicxu/Deep3DFaceRecon_pytorch) and place it here")


@dataclass
class LandmarkConfig:
    """Where the 68 landmarks come from and how the track is cleaned (talkface.recon.landmarks)."""

    backend: Literal["auto", "fan", "dlib", "file"] = "auto"  # auto: fan when its weights are present, else dlib
    file: Optional[str] = None  # .npy [>=T, 68, 2] frame pixels, for the 'file' backend
    file_convention: Literal["talkface", "index"] = "talkface"  # the file's pixel centres at j + 0.5, or at j
    checkpoints_dir: str = "checkpoints"  # the 'fan' backend's weights live under <dir>/face_alignment
    max_gap: int = 5  # longest run of frames without a face that is interpolated
    smooth_window: int = 5
    smooth_order: int = 2


@dataclass
class PreprocessConfig:
    """configs/preprocess.yaml."""

    frames: int = 300  # the first N frames at 25 fps (the paper fine-tunes on ~300)
    window_size: int = 256  # side of the fixed per-clip window crops
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    # auto: RNET_DEFAULT when present, else direct fitting; null/"none": direct fitting; a path (Deep3DFaceRecon
    # 'net_recon' or a talkface recon run's checkpoint) must exist.
    rnet: Optional[str] = "auto"
    # R-Net crops (recon/alignment.py): "auto" = "deep3d" for a Deep3DFaceRecon checkpoint (the crops it
    # was trained on), else "exact" (the continuous map: talkface's own R-Net trains on it; direct fitting uses it)
    crop: Literal["auto", "exact", "deep3d"] = "auto"
    morphable_model: str = "auto"  # the BFM file when present, else "synthetic"; or a .mat path, or "synthetic"
    refine: RefineConfig = field(default_factory=RefineConfig)
    batch_size: int = 32  # R-Net inference batch
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames must be at least 1, got {self.frames}")
        if self.window_size < 16 or self.batch_size < 1:
            raise ValueError("window_size must be >= 16 and batch_size >= 1")


@dataclass(frozen=True)
class PreprocessResult:
    workspace: Path
    ran: list[str]  # steps computed this time
    skipped: list[str]  # steps already up to date
    seconds: dict[str, float]  # time per step that ran
    morphable_model: str  # the model the coefficients were fitted with ("auto" resolved)


def preprocess(clip: str | Path, out: str | Path, config: PreprocessConfig, progress: bool = True,
               steps: Collection[str] = tuple(STEPS)) -> PreprocessResult:
    """Bring workspace `out` up to date with `clip` under `config`; return what ran and what was skipped.

    `steps`: only these (each with the steps it needs among them); a photo has no audio, so it
    takes frames, landmarks, align and coeffs.
    """
    from talkface.face3d.model import resolve_morphable_model

    clip = Path(clip)
    # The manifest records the resolved model: infer and the GAN read it (gan/data.py).
    config = dataclasses.replace(config, morphable_model=resolve_morphable_model(config.morphable_model))
    Workspace(out).check_target()
    with new_folder_removed_on_error(out):
        return _preprocess(clip, Workspace(out), config, progress, steps)


def _preprocess(clip: Path, workspace: Workspace, config: PreprocessConfig, progress: bool,
                steps: Collection[str]) -> PreprocessResult:
    source = file_fingerprint(clip, workspace.manifest.get("source"))
    runner = _Runner(workspace, clip, config, progress, speech="audio" in steps)
    keys = runner.keys(source["sha256"])
    stale = [name for name in STEPS if name in steps and not workspace.is_current(name, keys[name])]
    # Before writing anything: the weights the stale steps need must exist.
    if "landmarks" in stale:
        _check_landmark_backend(runner.landmark_backend, config.landmarks.checkpoints_dir)
    if "coeffs" in stale and runner.rnet is None and not (config.refine.enabled and config.refine.steps > 0):
        raise ConfigError("without R-Net weights the coefficients are fitted by the whole-clip refinement; "
                          "set refine.enabled true and refine.steps > 0, or give an R-Net with --rnet")
    if stale:
        workspace.manifest["source"] = source
        workspace.manifest["config"] = config_to_dict(config)
        workspace.forget(stale)
    seconds = {}
    for name in stale:
        start = time.perf_counter()
        fields = getattr(runner, name)()
        workspace.record(name, keys[name], inputs=runner.inputs[name], config=runner.configs[name], **fields)
        seconds[name] = time.perf_counter() - start
    return PreprocessResult(workspace.root, stale, [n for n in STEPS if n in steps and n not in stale], seconds,
                            config.morphable_model)


def _check_inside(track: np.ndarray, size: tuple[int, int], path: str | Path) -> None:
    """Refuse landmarks [T, 68, 2] of frames where none of the 68 points falls inside the H x W
    frame (landmarks in another unit or of another clip): their crops would be empty."""
    from talkface.recon.track import format_ranges

    height, width = size
    with np.errstate(invalid="ignore"):  # NaN frames (no face) are neither inside nor reported
        inside = ((track >= 0) & (track < [width, height])).all(axis=2).any(axis=1)
    outside = ~inside & ~np.isnan(track).all(axis=(1, 2))
    if outside.any():
        raise TalkfaceError(f"the landmarks of frames {format_ranges(outside)} lie wholly outside the "
                            f"{width}x{height} frame (landmarks must be in frame pixels)", path)


def _check_landmark_backend(backend: str, checkpoints_dir: str) -> None:
    if backend == "fan":
        from talkface.recon.landmarks import fan_weight_paths

        fan_weight_paths(checkpoints_dir)
    elif backend == "dlib":
        from talkface.recon.dlib_landmarks import predictor_path

        predictor_path()


def rnet_path(rnet: Optional[str]) -> Optional[Path]:
    """The R-Net checkpoint `rnet` names, or None for direct fitting (auto without the default file,
    null or "none"); a named file that is missing is a MissingWeightsError."""
    if rnet is None or rnet.lower() == "none":
        return None
    if rnet == "auto":
        return Path(RNET_DEFAULT) if Path(RNET_DEFAULT).is_file() else None
    if not Path(rnet).is_file():
        raise MissingWeightsError(rnet, "R-Net", RNET_HELP + " (or set rnet to auto/null to fit without R-Net)")
    return Path(rnet)


class _Runner:
    """Computes each step's key and, when asked, its outputs."""

    def __init__(self, workspace: Workspace, clip: Path, config: PreprocessConfig, progress: bool,
                 speech: bool = True):
        self.ws, self.clip, self.config, self.progress = workspace, clip, config, progress
        self.speech = speech  # False: a photo, frames without audio
        self.configs: dict[str, Any] = {}
        self.inputs: dict[str, Any] = {}
        self.rnet = rnet_path(config.rnet)  # None: direct fitting

    def keys(self, clip_hash: str) -> dict[str, str]:
        from talkface.recon.landmarks import resolve_backend

        c = self.config
        lm = c.landmarks
        # The backend that runs, not "auto": new FAN weights (or their removal) redo the landmarks.
        self.landmark_backend = resolve_backend(lm.backend, lm.checkpoints_dir)
        landmarks = {"backend": self.landmark_backend, "max_gap": lm.max_gap, "smooth_window": lm.smooth_window,
                     "smooth_order": lm.smooth_order}
        if self.landmark_backend == "file":
            landmarks["file_convention"] = lm.file_convention
        self.configs = {
            "frames": {"frames": c.frames},
            "audio": {},
            "mfcc": {},
            "landmarks": landmarks,
            "align": {"window_size": c.window_size, "crop": self._crop_mode()},
            "coeffs": {"refine": config_to_dict(c.refine), "morphable_model": c.morphable_model,
                       "init": "direct" if self.rnet is None else "rnet"},
        }
        external: dict[str, dict[str, Any]] = {"frames": {"clip": clip_hash}, "audio": {"clip": clip_hash}}
        if self.landmark_backend == "file":
            if lm.file is None:
                raise TalkfaceError("the 'file' landmark backend needs a landmarks file (--landmarks NPY)")
            external["landmarks"] = {"file": file_fingerprint(lm.file)["sha256"]}
        self.rnet_record = None
        if self.rnet is not None:
            previous = (self.ws.step_record("coeffs") or {}).get("rnet_file")
            self.rnet_record = file_fingerprint(self.rnet, previous)
            external["coeffs"] = {"rnet": self.rnet_record["sha256"]}
        keys: dict[str, str] = {}
        for name, step in STEPS.items():  # dependency order
            self.inputs[name] = {**external.get(name, {}), **{dep: keys[dep] for dep in step.needs}}
            keys[name] = step_key(step, self.configs[name], self.inputs[name])
        return keys

    # ------------------------------------------------------------------------------------------
    # steps: each writes its outputs and returns extra manifest fields

    def frames(self) -> dict[str, Any]:
        from talkface.audio import n_video_frames
        from talkface.errors import MediaError
        from talkface.media import probe_video, read_audio, read_video

        speech_frames = self.config.frames
        if self.speech:
            if not probe_video(self.clip).has_audio:
                raise MediaError("has no audio stream: fine-tuning needs the person's speech", self.clip)
            # Frames pair with the speech: a video stream that outlasts its audio (a variable-frame-rate
            # clip whose last frame is held) would add frames with no speech behind them.
            speech_frames = n_video_frames(len(read_audio(self.clip)))
        frames = read_video(self.clip, max_frames=min(self.config.frames, speech_frames))
        if len(frames) < self.config.frames:
            raise TalkfaceError(f"has only {len(frames)} frames with speech at 25 fps, fewer than the "
                                f"{self.config.frames} asked for; set the preprocess frames to {len(frames)} "
                                f"or fewer (preprocess: --frames {len(frames)}, person: "
                                f"--set preprocess.frames={len(frames)})", self.clip)
        self.ws.save_array("frames.npy", frames)
        return {"frames": len(frames), "height": frames.shape[1], "width": frames.shape[2]}

    def audio(self) -> dict[str, Any]:
        from talkface.audio import SAMPLES_PER_VIDEO_FRAME
        from talkface.media import read_audio, write_wav

        count = len(self.ws.load_array("frames.npy", mmap=True))
        samples = read_audio(self.clip)
        fitted = np.zeros(count * SAMPLES_PER_VIDEO_FRAME, np.float32)  # exactly T frames: cut or zero-pad
        fitted[: min(len(samples), len(fitted))] = samples[: len(fitted)]
        write_wav(self.ws.path("audio.wav"), fitted)
        return {"seconds": len(fitted) / SAMPLE_RATE}

    def mfcc(self) -> dict[str, Any]:
        from talkface.audio import audio_windows
        from talkface.media import read_audio

        self.ws.require("audio")
        windows = audio_windows(read_audio(self.ws.path("audio.wav")))  # [T, 28, 12]
        self.ws.save_array("mfcc.npy", windows.astype(np.float32))
        return {}

    def landmarks(self) -> dict[str, Any]:
        from talkface.recon import landmarks as lmk
        from talkface.recon.track import clean_track, format_ranges

        frames = self.ws.load_array("frames.npy", mmap=True)
        c = self.config.landmarks
        if self.landmark_backend == "file":
            track = lmk.FileLandmarks(c.file, c.file_convention).detect()
            if len(track) < len(frames):
                raise TalkfaceError(f"has landmarks for {len(track)} frames, the workspace has {len(frames)}", c.file)
            track = track[: len(frames)]
            _check_inside(track, frames.shape[1:3], c.file)
        else:
            backend = lmk.make_landmark_backend(self.landmark_backend, checkpoints_dir=c.checkpoints_dir,
                                                device=self._device())
            track = backend.detect(frames)
        try:
            clean = clean_track(track, c.max_gap, c.smooth_window, c.smooth_order)
        except TalkfaceError as error:  # "no face found in ..." names frames; the user needs the file too
            source = c.file if self.landmark_backend == "file" else self.clip
            raise TalkfaceError(str(error), source if error.path is None else None) from None
        self.ws.save_array("landmarks.npy", clean)
        missing = np.isnan(track).all(axis=(1, 2))
        return {"frames_without_face": format_ranges(missing) if missing.any() else ""}

    def align(self) -> dict[str, Any]:
        from talkface.recon.alignment import align_faces
        from talkface.recon.window import clip_window, write_window

        frames = self.ws.load_array("frames.npy", mmap=True)
        landmarks = self.ws.load_array("landmarks.npy")
        faces = align_faces(frames, landmarks, mode=self.configs["align"]["crop"])
        window = clip_window(landmarks, frames.shape[1:3], self.config.window_size)
        self.ws.save_array("transforms.npy", faces.transforms)
        self.ws.save_array("crops.npy", faces.crops)
        self.ws.save_array("crop_landmarks.npy", faces.landmarks)
        self.ws.save_array("window_crops.npy", np.stack([window.crop(frame) for frame in frames]))
        write_window(self.ws.root, window)
        return {}

    def coeffs(self) -> dict[str, Any]:
        from talkface.face3d.model import load_morphable_model
        from talkface.recon.inference import fit_clip
        from talkface.recon.model import load_rnet

        if self.rnet is None:
            log.info("coeffs: no R-Net weights, fitting the clip directly from the mean face (%d refinement steps)",
                     self.config.refine.steps)
        else:
            log.info("coeffs: R-Net %s, then the whole-clip refinement", self.rnet)
        rnet = None if self.rnet is None else load_rnet(self.rnet)
        model = load_morphable_model(self.config.morphable_model)
        coeffs = fit_clip(self.ws.load_array("crops.npy"), self.ws.load_array("crop_landmarks.npy"), rnet, model,
                          self.config.refine, batch_size=self.config.batch_size, device=self._device(),
                          progress=self.progress, transforms=self.ws.load_array("transforms.npy"))
        self.ws.save_array("coeffs.npy", coeffs)
        return {"rnet_file": self.rnet_record, "init": "direct" if self.rnet is None else "rnet",
                "morphable_model": self.config.morphable_model}

    def _crop_mode(self) -> str:
        from talkface.recon.model import is_deep3d_checkpoint

        if self.config.crop != "auto":
            return self.config.crop
        return "deep3d" if self.rnet is not None and is_deep3d_checkpoint(self.rnet) else "exact"

    def _device(self) -> str:
        from talkface.train.distributed import resolve_device

        return resolve_device(self.config.device).type  # "cuda" or "cpu", as the landmark backends take it

