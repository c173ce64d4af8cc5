"""The two R-Net crop modes on a real clip: how far apart they are, and how much the rounded one jitters.

    .venv/bin/python benchmarks/bench_crop_modes.py [--clip ../shared/real/hdtf_aoc.mp4] [--frames 150]

Landmarks come from dlib's 68-point predictor (face_recognition_models), pixel centres moved to
ours (+0.5). For each frame both modes of talkface/recon/alignment.py map the landmarks into the
224 px crop. Reported: the distance between the modes' crop landmarks (the "0.1-1.5 crop px"
Deep3DFaceRecon's rounding costs), and the jitter of the crop: the RMS second difference over
frames of where the crop puts the 68-point centroid and its scale, i.e. how much the R-Net's input
shakes on top of the landmarks' own noise. Writes benchmarks/results/crop_modes_cpu.json.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

from talkface.benchmarking import machine_info, write_result
from talkface.media import read_video
from talkface.recon.alignment import CROP_MODES, _deep3d_align, alignment_transform, apply_transform

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "crop_modes_cpu.json"


def dlib_track(frames: np.ndarray) -> np.ndarray:
    """[T, H, W, 3] -> [T, 68, 2] in our convention (dlib's integer pixel indices + 0.5)."""
    import dlib

    models = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    track = []
    for frame in frames:
        box = max(detector(frame, 0), key=lambda rect: rect.area())
        track.append([[p.x + 0.5, p.y + 0.5] for p in predictor(frame, box).parts()])
    return np.array(track, np.float64)


def crop_landmarks(frames: np.ndarray, track: np.ndarray, mode: str) -> np.ndarray:
    """[T, 68, 2] landmarks in each frame's crop under `mode` (the transform only; no pixels needed for exact)."""
    out = []
    for frame, points in zip(frames, track):
        matrix = _deep3d_align(frame, points, 224, 102.0)[1] if mode == "deep3d" else alignment_transform(points)
        out.append(apply_transform(matrix, points))
    return np.array(out)


def jitter(points: np.ndarray) -> dict[str, float]:
    """RMS frame-to-frame second difference of the crop centroid (px) and of the landmarks' spread (px)."""
    centroid = points.mean(axis=1)  # [T, 2]
    spread = np.linalg.norm(points - centroid[:, None], axis=2).mean(axis=1)  # [T]
    second = lambda x: np.sqrt(np.mean(np.diff(x, 2, axis=0) ** 2))  # noqa: E731
    return {"centroid_px": round(float(second(centroid)), 4), "spread_px": round(float(second(spread)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=REPO.parent / "shared" / "real" / "hdtf_aoc.mp4")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    frames = read_video(args.clip, max_frames=args.frames)
    track = dlib_track(frames)
    crops = {mode: crop_landmarks(frames, track, mode) for mode in CROP_MODES}
    apart = np.linalg.norm(crops["deep3d"] - crops["exact"], axis=2)  # [T, 68]
    result = {
        "clip": args.clip.name, "frames": len(frames),
        "modes_apart_crop_px": {"mean": round(float(apart.mean()), 3), "max": round(float(apart.max()), 3)},
        "jitter": {mode: jitter(points) for mode, points in crops.items()},
        "machine": machine_info(),
    }
    print(result)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
