"""68 facial landmarks per frame: detector backends and the clean-up every track goes through.

Pixel convention (the one of the whole package, README "Conventions"): x right, y down, and the
pixel in row i, column j has its centre at (j + 0.5, i + 0.5), so an image of width W spans
[0, W). Detectors report pixel-index coordinates instead (the centre of pixel j at j): every
backend converts with `to_pixel_centres` on the way in, and nothing downstream converts again.

A backend returns a raw track, float32 [T, 68, 2] in that convention, with a whole frame set to
NaN where it found no face. `clean_track` (track.py) then fills short gaps and smooths, or fails naming the
frames it cannot fill. `detect_landmarks` does both.

Backends:
  auto  fan when its weight files and package are present, else dlib (`resolve_backend`)
  fan   face-alignment 1.5.0 (S3FD detector + 2DFAN-4), weights from local files only
  dlib  dlib's HOG detector + iBUG 68-point predictor, weights from pip (dlib_landmarks.py)
  file  a .npy [T, 68, 2] written by another tool (NaN frames allowed, as above), in the
        talkface convention or, declared with convention "index", in pixel-index coordinates
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import warnings
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np

from talkface.errors import MissingWeightsError, TalkfaceError
from talkface.recon.track import N_LANDMARKS, clean_track, format_ranges, to_pixel_centres

CONVENTIONS = ("talkface", "index")  # what a landmark file's coordinates mean, see the module docstring

log = logging.getLogger(__name__)

# face-alignment 1.5.0 (face_alignment/detection/sfd/sfd_detector.py and api.py `models_urls`,
# read from the 1.5.0 wheel): the detector file is passed by path, the landmark net is looked up
# by file name in the torch hub cache, $TORCH_HOME/hub/checkpoints/.
FAN_VERSION = "1.5.0"
FAN_URL_BASE = "https://www.adrianbulat.com/downloads/python-fan/"
S3FD_FILE = "s3fd-619a316812.pth"
FAN2D_FILE = "2DFAN4-11f355bf06.pth.tar"


class LandmarkBackend(Protocol):
    def detect(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 frames [H, W, 3] -> raw track float32 [T, 68, 2], NaN frames where no face."""


def fan_weight_paths(checkpoints_dir: str | Path) -> tuple[Path, Path]:
    """(detector file, TORCH_HOME) for the fan backend; MissingWeightsError if a file is absent."""
    home = Path(checkpoints_dir) / "face_alignment"
    detector = home / S3FD_FILE
    landmark_net = home / "hub" / "checkpoints" / FAN2D_FILE
    for path, what in ((detector, "S3FD face detector"), (landmark_net, "2DFAN-4 landmark")):
        if not path.is_file():
            raise MissingWeightsError(
                path, what, f"download {FAN_URL_BASE}{path.name} on a machine with internet and place it here"
            )
    return detector, home


@contextlib.contextmanager
def _torch_home(path: Path) -> Iterator[None]:
    """Point the torch hub cache at `path` while face-alignment looks its weights up there."""
    previous = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = previous


def _import_face_alignment():
    hint = f"pip install face-alignment=={FAN_VERSION}"
    try:
        module = importlib.import_module("face_alignment")
    except ImportError:
        raise TalkfaceError(f"the 'fan' landmark backend needs the face-alignment package: {hint}") from None
    version = getattr(module, "__version__", "unknown")
    if version != FAN_VERSION:
        # Other versions look up other weight file names (e.g. 1.3's 2DFAN4-cd938726ad.zip).
        raise TalkfaceError(f"face-alignment {version} is installed, the 'fan' backend needs {FAN_VERSION}: {hint}")
    return module


class FanLandmarks:
    """face-alignment's S3FD + 2DFAN-4; keeps the largest face of each frame."""

    def __init__(self, checkpoints_dir: str | Path = "checkpoints", device: str = "cpu", flip_input: bool = True):
        detector, torch_home = fan_weight_paths(checkpoints_dir)
        face_alignment = _import_face_alignment()
        with _torch_home(torch_home):
            self.model = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D,
                device=device,  # its default is 'cuda'
                flip_input=flip_input,
                face_detector="sfd",
                face_detector_kwargs={"path_to_detector": str(detector)},
                compile=False,  # torch.compile costs minutes on CPU (docs/method.md, landmarks)
            )

    def detect(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        track = np.full((len(frames), N_LANDMARKS, 2), np.nan, np.float32)
        for index, frame in enumerate(frames):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "No faces were detected": reported per clip instead
                points, _, boxes = self.model.get_landmarks_from_image(frame, return_bboxes=True)
            if points:  # pixel-index coordinates, to within FAN's heatmap resolution
                areas = [(box[2] - box[0]) * (box[3] - box[1]) for box in boxes]
                track[index] = to_pixel_centres(points[int(np.argmax(areas))][:, :2])
        return track


class FileLandmarks:
    """Landmarks precomputed by another tool, as a .npy float [T, 68, 2].

    `convention` says what the file's coordinates mean: "talkface" (pixel centres at j + 0.5: what
    talkface itself writes, e.g. a workspace's landmarks.npy or the synthetic truth) or "index"
    (pixel centres at j: the raw output of FAN, dlib, OpenFace, ...), converted on loading.
    """

    def __init__(self, path: str | Path, convention: str = "talkface"):
        if convention not in CONVENTIONS:
            raise TalkfaceError(f"unknown landmark file convention {convention!r}; valid: {', '.join(CONVENTIONS)}")
        self.path = Path(path)
        self.convention = convention

    def detect(self, frames: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """Load and check the file; `frames`, when given, must have as many frames."""
        track = self._load()
        if frames is not None and len(frames) != len(track):
            raise TalkfaceError(f"has landmarks for {len(track)} frames, the clip has {len(frames)}", self.path)
        return track

    def _load(self) -> np.ndarray:
        if not self.path.is_file():
            raise TalkfaceError("landmark file not found", self.path)
        try:
            track = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise TalkfaceError(f"not a readable .npy file ({error})", self.path) from None
        if track.ndim != 3 or track.shape[1:] != (N_LANDMARKS, 2) or len(track) == 0:
            raise TalkfaceError(f"expected landmarks of shape [T, 68, 2], got {list(track.shape)}", self.path)
        if not np.issubdtype(track.dtype, np.number):
            raise TalkfaceError(f"expected numbers, got dtype {track.dtype}", self.path)
        track = track.astype(np.float32)
        missing = np.isnan(track).all(axis=(1, 2))  # a whole NaN frame means "no face"
        bad = ~np.isfinite(track).all(axis=(1, 2)) & ~missing
        if bad.any():
            raise TalkfaceError(
                f"non-finite values in frames {format_ranges(bad)} (only whole frames may be NaN)", self.path
            )
        return to_pixel_centres(track) if self.convention == "index" else track


BACKENDS = ("auto", "fan", "dlib", "file")


def resolve_backend(name: str, checkpoints_dir: str | Path = "checkpoints") -> str:
    """The backend that runs for `name`: 'auto' becomes 'fan' when its weight files and package are
    there, else 'dlib'; the choice and why are logged."""
    if name not in BACKENDS:
        raise TalkfaceError(f"unknown landmark backend {name!r}; valid backends: {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    home = Path(checkpoints_dir) / "face_alignment"
    try:
        fan_weight_paths(checkpoints_dir)
    except MissingWeightsError:
        log.info("landmarks: dlib (no FAN weights under %s)", home)
        return "dlib"
    if importlib.util.find_spec("face_alignment") is None:
        log.info("landmarks: dlib (FAN weights under %s, but face-alignment is not installed)", home)
        return "dlib"
    log.info("landmarks: FAN (weights under %s)", home)
    return "fan"


def make_landmark_backend(
    name: str,
    *,
    checkpoints_dir: str | Path = "checkpoints",
    device: str = "cpu",
    path: str | Path | None = None,
    convention: str = "talkface",
) -> LandmarkBackend:
    """Build the backend `name` ('auto' resolved first): 'fan' uses checkpoints_dir and device, 'file'
    uses path and convention."""
    name = resolve_backend(name, checkpoints_dir)
    if name == "fan":
        return FanLandmarks(checkpoints_dir, device)
    if name == "dlib":
        from talkface.recon.dlib_landmarks import DlibLandmarks

        return DlibLandmarks()
    if path is None:
        raise TalkfaceError("the 'file' landmark backend needs the path of a .npy [T, 68, 2]")
    return FileLandmarks(path, convention)


def detect_landmarks(
    backend: LandmarkBackend,
    frames: Sequence[np.ndarray],
    max_gap: int = 5,
    smooth_window: int = 5,
    smooth_order: int = 2,
) -> np.ndarray:
    """Frames (RGB uint8 [H, W, 3]) -> clean landmarks float32 [T, 68, 2]."""
    return clean_track(backend.detect(frames), max_gap, smooth_window, smooth_order)
