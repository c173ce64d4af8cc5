"""The `dlib` landmark backend: one face tracked through a clip with weights that pip installs.

dlib's HOG face detector finds the face, the 68-point iBUG shape predictor (the model file of the
`face_recognition_models` package) places the landmarks. Through a clip:

1. boxes: the largest face of the first frame that has one, then in each frame the detection that
   overlaps the previous box most (IoU). The detector first searches a region around the previous
   box, rescaled so the face is `face_size` px there (small faces are upsampled, large ones cost no
   more than small ones), and the whole frame only when that region has no match. A face lost for
   more than `patience` frames is looked for afresh (the largest again).
2. the boxes are smoothed over time within each run of detected frames (zero-phase, so they do not
   lag): the shape predictor starts from its box, and a jittering box makes jittering landmarks.
   The mouth points themselves are not smoothed here; each frame's lips come from its own pixels.
3. landmarks: the shape predictor on a patch around each smoothed box, resampled so the box is at
   least `predictor_size` px: dlib rounds its points to whole pixels, so a small face would be
   quantized to a good fraction of a lip opening.

Frames where the tracked face is not found stay NaN; `talkface.recon.track.clean_track` fills
short gaps and names the frames of longer ones.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from talkface.errors import MissingWeightsError, TalkfaceError
from talkface.recon.track import N_LANDMARKS, frame_ranges, smooth_track, to_pixel_centres

PREDICTOR_PACKAGE = "face_recognition_models"
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


def predictor_path() -> Path:
    """The 68-point shape predictor file inside the installed face_recognition_models package.

    Found without importing the package: its __init__ imports pkg_resources, which recent
    setuptools no longer provide.
    """
    spec = importlib.util.find_spec(PREDICTOR_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TalkfaceError(f"the 'dlib' landmark backend needs its model package: pip install {PREDICTOR_PACKAGE}")
    path = Path(spec.submodule_search_locations[0]) / "models" / PREDICTOR_FILE
    if not path.is_file():
        raise MissingWeightsError(path, "dlib 68-point shape predictor", f"reinstall {PREDICTOR_PACKAGE}")
    return path


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise TalkfaceError("the 'dlib' landmark backend needs dlib: pip install dlib-bin") from None
    return dlib


@dataclass(frozen=True)
class TrackerSettings:
    """How the face is followed; the defaults detect every frame of the clips in benchmarks/bench_landmarks.py."""

    face_size: float = 120.0  # face box side in the rescaled search region, px (HOG's window is 80 px)
    search_margin: float = 0.6  # the region around the previous box, in box sides on each side
    region_threshold: float = -0.4  # detector score offset inside the region: the prior vouches for weak faces
    min_iou: float = 0.2  # a detection with less overlap with the previous box is another face
    patience: int = 25  # frames without the face before the largest face is looked for again
    box_window: int = 9  # Savitzky-Golay window (frames) of the box smoothing, order 2
    predictor_size: float = 200.0  # smallest box side the shape predictor sees, px


class DlibLandmarks:
    """dlib HOG detector + iBUG 68-point shape predictor, one face tracked through the frames."""

    def __init__(self, settings: TrackerSettings | None = None):
        dlib = _import_dlib()
        self.settings = settings or TrackerSettings()
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(predictor_path()))
        self._rectangle = dlib.rectangle

    def detect(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 frames [H, W, 3] -> float32 [T, 68, 2] (talkface pixel convention), NaN frames where no face."""
        boxes = smooth_boxes(self.track_boxes(frames), self.settings.box_window)
        track = np.full((len(frames), N_LANDMARKS, 2), np.nan, np.float32)
        for index in np.flatnonzero(np.isfinite(boxes).all(axis=1)):
            track[index] = self.landmarks_in_box(frames[index], boxes[index])
        return track

    # ------------------------------------------------------------------------------------------
    # boxes: (left, top, right, bottom) in pixel-index coordinates (pixel j centred at j), as dlib's

    def track_boxes(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """The tracked face's box in each frame, float64 [T, 4], NaN rows where it was not found."""
        boxes = np.full((len(frames), 4), np.nan)
        prior, lost = None, 0
        for index, frame in enumerate(frames):
            if prior is not None and lost > self.settings.patience:
                prior = None
            box = self._find(frame, prior)
            if box is None:
                lost += 1
                continue
            boxes[index], prior, lost = box, box, 0
        return boxes

    def _find(self, frame: np.ndarray, prior: np.ndarray | None) -> np.ndarray | None:
        if prior is None:
            found = self.detect_faces(frame)
            return max(found, key=box_area) if found else None
        match = _best_match(self._detect_around(frame, prior), prior, self.settings.min_iou)
        if match is None:
            match = _best_match(self.detect_faces(frame), prior, self.settings.min_iou)
        return match

    def detect_faces(self, frame: np.ndarray) -> list[np.ndarray]:
        """All faces of a whole frame; upsampled once when none is found (faces under ~80 px)."""
        for upsample in (0, 1):
            rects, _, _ = self.detector.run(frame, upsample, 0.0)
            if rects:
                return [_box(rect) for rect in rects]
        return []

    def _detect_around(self, frame: np.ndarray, prior: np.ndarray) -> list[np.ndarray]:
        """Faces in the region around `prior`, searched at the scale where the prior is `face_size` px."""
        s = self.settings
        side = box_side(prior)
        grow = s.search_margin * side
        height, width = frame.shape[:2]
        x0, y0 = max(0, int(prior[0] - grow)), max(0, int(prior[1] - grow))
        x1, y1 = min(width, int(np.ceil(prior[2] + grow)) + 1), min(height, int(np.ceil(prior[3] + grow)) + 1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return []
        scale = s.face_size / side
        region = frame[y0:y1, x0:x1]
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        rects, _, _ = self.detector.run(np.ascontiguousarray(region), 0, s.region_threshold)
        # index coordinates through a resize: (j + 0.5) / scale - 0.5 (cv2 samples at pixel centres)
        return [(_box(rect) + 0.5) / scale - 0.5 + np.array([x0, y0, x0, y0]) for rect in rects]

    # ------------------------------------------------------------------------------------------
    # landmarks

    def landmarks_in_box(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The 68 points of the face in `box` (float, index coordinates), as float32 [68, 2] pixel centres.

        The frame is resampled by a similarity that puts the box on whole pixels of a patch where it
        is at least `predictor_size` px, so the predictor's whole-pixel output is finer than a pixel.
        """
        side = box_side(box)
        scale = max(1.0, self.settings.predictor_size / side)
        pad = int(np.ceil(0.3 * side * scale))  # context around the box: the predictor reads pixels outside it
        box_px = int(round(side * scale))
        corner = (box[:2] + box[2:]) / 2 - side / 2  # a square box of the same centre
        origin = corner - pad / scale  # frame index coordinates of patch pixel (0, 0)
        affine = np.array([[scale, 0.0, -scale * origin[0]], [0.0, scale, -scale * origin[1]]])
        patch_size = box_px + 2 * pad + 1
        patch = cv2.warpAffine(frame, affine, (patch_size, patch_size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        shape = self.predictor(patch, self._rectangle(pad, pad, pad + box_px, pad + box_px))
        points = np.array([[p.x, p.y] for p in shape.parts()], np.float64) / scale + origin
        return to_pixel_centres(points).astype(np.float32)


def box_side(box: np.ndarray) -> float:
    """Mean of a box's width and height, px."""
    return float((box[2] - box[0] + box[3] - box[1]) / 2)


def box_area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, width) * max(0.0, height)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def _best_match(found: list[np.ndarray], prior: np.ndarray, min_iou: float) -> np.ndarray | None:
    scored = [(box_iou(box, prior), box) for box in found]
    best = max(scored, key=lambda item: item[0], default=(0.0, None))
    return best[1] if best[0] >= min_iou else None


def _box(rect) -> np.ndarray:
    return np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float64)


def smooth_boxes(boxes: np.ndarray, window: int) -> np.ndarray:
    """Savitzky-Golay smoothing (order 2) of [T, 4] boxes within each run of found (finite) frames."""
    smoothed = boxes.copy()
    for first, last in frame_ranges(np.isfinite(boxes).all(axis=1)):
        smoothed[first : last + 1] = smooth_track(boxes[first : last + 1], window, 2)
    return smoothed
