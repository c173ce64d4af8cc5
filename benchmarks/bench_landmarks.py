"""The dlib landmark backend (the `auto` default without FAN weights): accuracy and misses.

    .venv/bin/python benchmarks/bench_landmarks.py [--work DIR] [--seconds S] [--real DIR]

1. Synthetic world: person clips of several subjects (talkface synth person, through mp4), the
   backend on every frame; error against the truth landmarks in pixels of the canonical 224 px
   crop (frame error / the clip's canonical -> frame scale), all 68 points and the mouth (48-67),
   raw and after `clean_track`; Pearson r of the inner-lip gap (points 62-66) with the truth's, and
   the lag (frames) where their cross-correlation peaks: 0 when the smoothing does not lag the lips.
2. Real clips: every .mp4 of ../shared/real (25 fps, as preprocess reads them): frames without the
   face (must be none), wall and CPU ms per frame for the whole backend (detection, tracking,
   landmarks; CPU time is what a quiet machine's wall time would be), face size.
Writes benchmarks/results/landmarks_cpu.json, naming the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from talkface.benchmarking import machine_info, write_result
from talkface.media import read_video
from talkface.recon.dlib_landmarks import DlibLandmarks
from talkface.recon.track import clean_track, format_ranges
from talkface.synth.world import write_person

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (7, 11, 23)
MOUTH = slice(48, 68)


def inner_lip_gap(track: np.ndarray) -> np.ndarray:
    """Distance between the inner lips' middle points (62 upper, 66 lower), [T]."""
    return np.linalg.norm(track[:, 62] - track[:, 66], axis=-1)


def peak_lag(found: np.ndarray, truth: np.ndarray, most: int = 5) -> int:
    """The shift in frames (positive: `found` late) where found and truth correlate best."""
    def r(lag: int) -> float:
        a, b = (found[lag:], truth[: len(truth) - lag]) if lag >= 0 else (found[:lag], truth[-lag:])
        return float(np.corrcoef(a, b)[0, 1])
    return max(range(-most, most + 1), key=r)


def synthetic(backend: DlibLandmarks, work: Path, seconds: float) -> dict:
    per_subject = {}
    for seed in SEEDS:
        folder = work / f"person_{seed}_{seconds:g}s"
        if not (folder / "truth" / "landmarks.npy").is_file():
            write_person(folder, seconds=seconds, seed=seed, size=256, engine="builtin", progress=False)
        frames = read_video(folder / "clip.mp4")
        truth = np.load(folder / "truth" / "landmarks.npy")[: len(frames)]
        transform = np.load(folder / "truth" / "transform.npy")
        scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))  # frame px per canonical px
        raw = backend.detect(frames)
        found = np.isfinite(raw).all(axis=(1, 2))
        clean = clean_track(raw)
        result = {"frames": len(frames), "frame_size": list(frames.shape[1:3]), "face_scale": round(scale, 3),
                  "missing_frames": int((~found).sum())}
        for name, track in (("raw", raw[found]), ("clean", clean[found])):
            error = np.linalg.norm(track - truth[found], axis=-1) / scale  # [T, 68] px at 224
            result[f"error_224_all_{name}"] = round(float(error.mean()), 3)
            result[f"error_224_mouth_{name}"] = round(float(error[:, MOUTH].mean()), 3)
        result["inner_lip_gap_r"] = round(float(np.corrcoef(inner_lip_gap(clean), inner_lip_gap(truth))[0, 1]), 3)
        result["inner_lip_gap_lag_frames"] = peak_lag(inner_lip_gap(clean), inner_lip_gap(truth))
        per_subject[str(seed)] = result
    summary = {key: round(float(np.mean([r[key] for r in per_subject.values()])), 3)
               for key in next(iter(per_subject.values())) if key.startswith(("error", "inner_lip_gap_r"))}
    return {"subjects": per_subject, "mean": summary}


def real(backend: DlibLandmarks, folder: Path) -> dict:
    clips = {}
    for path in sorted(folder.glob("*.mp4")):
        frames = read_video(path)
        start, cpu = time.perf_counter(), time.process_time()
        track = backend.detect(frames)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        missing = ~np.isfinite(track).all(axis=(1, 2))
        boxes = backend.track_boxes(frames[:10])
        clips[path.name] = {
            "frames_25fps": len(frames), "frame_size": list(frames.shape[1:3]),
            "missing_frames": int(missing.sum()), "missing_at": format_ranges(missing),
            "ms_per_frame": round(1000 * seconds / len(frames), 1),
            "cpu_ms_per_frame": round(1000 * cpu / len(frames), 1),
            "face_box_px": round(float(np.nanmean(boxes[:, 2] - boxes[:, 0])), 1),
        }
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=None, help="folder for the synthetic clips (default: a temporary one)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each synthetic clip")
    parser.add_argument("--real", default=str(ROOT.parent / "shared" / "real"), help="folder of real .mp4 clips")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "landmarks_cpu.json"))
    args = parser.parse_args()
    backend = DlibLandmarks()
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        result = {"backend": "dlib (HOG detector + iBUG 68-point predictor, face_recognition_models 0.3.0)",
                  "synthetic": synthetic(backend, work, args.seconds)}
    real_folder = Path(args.real)
    result["real"] = real(backend, real_folder) if real_folder.is_dir() else "absent"
    if isinstance(result["real"], dict):
        clips = result["real"].values()
        result["real_summary"] = {"clips": len(clips), "missing_frames": sum(c["missing_frames"] for c in clips),
                                  "ms_per_frame_median": float(np.median([c["ms_per_frame"] for c in clips])),
                                  "cpu_ms_per_frame_median": float(np.median([c["cpu_ms_per_frame"] for c in clips]))}
    machine = machine_info()
    machine["load_average_1m_before"] = load_before
    machine["note"] = ("2-core CPU shared with other jobs: wall ms/frame is an upper bound when the load average "
                       "exceeds 2 (cpu_ms_per_frame is the process's own CPU time); one process, OMP_NUM_THREADS=1")
    result["machine"] = machine
    print(write_result(args.out, result))


if __name__ == "__main__":
    main()
