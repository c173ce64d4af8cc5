"""How much the synthetic mouth follows loudness, against real mouths.

    .venv/bin/python benchmarks/bench_synth_mouth_loudness.py [--subjects 8 --seconds 20 --lrw-clips 60]

Correlation between the inner-lip opening (mean gap of iBUG points 61-63 / 67-65) and the frame's
log RMS energy (40 ms frames at 25 fps), at lag 0 and the best lag in -3..3 frames:
- synthetic person speech (the built-in engine, the mouth articulating its exact phones), one
  number per subject; the same audio with the phones estimated from the audio (phones.py);
- synthetic LRW clips with the default speech variety (variety.py), energy of the clip's audio
  (noise and reverb included), pooled over the clips and per clip;
- the real clips of ../shared/real (dlib's 68 landmarks on every frame at 25 fps; skipped when the
  folder or dlib is absent).
`--before FILE` adds the numbers of an earlier world, measured with the same functions (the
world before visemes drove the mouth from the energy, r ~0.88). Writes
benchmarks/results/synth_mouth_loudness_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from talkface.audio import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS
from talkface.benchmarking import machine_info, write_result
from talkface.metrics import mouth_opening, mouth_opening_over_eyes

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real"
RESULT = Path(__file__).parent / "results" / "synth_mouth_loudness_cpu.json"
LAGS = range(-3, 4)


def frame_log_rms(audio: np.ndarray, n: int) -> np.ndarray:
    hop = SAMPLES_PER_VIDEO_FRAME
    audio = np.pad(audio, (0, max(0, n * hop - len(audio))))[: n * hop]
    return np.log(np.sqrt((audio.reshape(n, hop).astype(np.float64) ** 2).mean(1)) + 1e-3)


def correlations(gap: np.ndarray, energy: np.ndarray) -> dict[str, float]:
    """r at lag 0 and the largest r over LAGS (positive lag: the mouth moves first)."""
    n = len(gap)

    def r(lag: int) -> float:
        a, b = (gap[: n - lag], energy[lag:]) if lag >= 0 else (gap[-lag:], energy[: n + lag])
        return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")

    by_lag = {lag: r(lag) for lag in LAGS}
    best = max(by_lag, key=lambda k: -np.inf if np.isnan(by_lag[k]) else by_lag[k])
    return {"lag0": round(by_lag[0], 3), "best": round(by_lag[best], 3), "best_lag": best}


def synthetic_landmarks(coeffs: np.ndarray) -> np.ndarray:
    """68 landmarks (px at 224) of the synthetic morphable model for coefficients [T, 257]."""
    from talkface.face3d.camera import Camera
    from talkface.face3d.model import load_morphable_model

    model = load_morphable_model("synthetic")
    with torch.no_grad():
        return model(torch.as_tensor(coeffs), Camera()).landmarks.numpy()


def summary(values: list[dict[str, float]]) -> dict[str, object]:
    best = [v["best"] for v in values if not np.isnan(v["best"])]
    lag0 = [v["lag0"] for v in values if not np.isnan(v["lag0"])]
    return {"best_median": round(float(np.median(best)), 3), "best_range": [round(min(best), 3), round(max(best), 3)],
            "lag0_median": round(float(np.median(lag0)), 3), "count": len(values)}


def person_speech(subjects: int, seconds: float) -> dict[str, object]:
    from talkface.synth.appearance import sample_subject
    from talkface.synth.motion import generate_motion
    from talkface.synth.speech import utterance_for_duration

    exact, estimated = [], []
    for seed in range(subjects):
        speech = utterance_for_duration(seconds, seed, SAMPLE_RATE, "builtin")
        subject = sample_subject(seed)
        energy = frame_log_rms(speech.audio, int(seconds * VIDEO_FPS))
        for phones, out in ((speech.phones, exact), (None, estimated)):
            motion = generate_motion(speech.audio, SAMPLE_RATE, subject.style, seed, len(energy), phones)
            gap = mouth_opening(synthetic_landmarks(subject.coeffs(motion.expression, motion.angles, motion.translation)))
            out.append(correlations(gap, energy))
    return {"exact_phones": {"per_subject": exact, **summary(exact)},
            "phones_from_audio": {"per_subject": estimated, **summary(estimated)}}


def lrw_clips(clips: int) -> dict[str, object]:
    from talkface.synth.appearance import sample_subject
    from talkface.synth.motion import generate_motion
    from talkface.synth.world import LRW_FRAMES, VOCABULARY, lrw_speech

    gaps, energies, per_clip = [], [], []
    for k in range(clips):
        seed = 40_000 + k
        speech = lrw_speech(VOCABULARY[k % len(VOCABULARY)], seed, "builtin")
        subject = sample_subject(seed)
        motion = generate_motion(speech.samples, SAMPLE_RATE, subject.style, seed, LRW_FRAMES, speech.phones)
        gap = mouth_opening(synthetic_landmarks(subject.coeffs(motion.expression, motion.angles, motion.translation)))
        energy = frame_log_rms(speech.samples, LRW_FRAMES)
        per_clip.append(correlations(gap, energy))
        gaps.append((gap - gap.mean()) / (gap.std() + 1e-9))
        energies.append((energy - energy.mean()) / (energy.std() + 1e-9))
    return {"pooled_standardised": correlations(np.concatenate(gaps), np.concatenate(energies)),
            "per_clip": summary(per_clip)}


def real_clips() -> dict[str, object]:
    """dlib landmarks on every 25 fps frame of each real clip; {} when the clips or dlib are missing."""
    try:
        import importlib.util

        import cv2
        import dlib
    except ImportError:
        return {}
    from talkface.media import read_audio, read_video

    clips = sorted(REAL.glob("*.mp4")) if REAL.is_dir() else []
    if not clips:
        return {}
    models = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    out = {}
    for clip in clips:
        frames = read_video(clip)
        marks, kept = [], []
        for i, frame in enumerate(frames):
            scale = 400 / max(frame.shape[:2])
            small = cv2.resize(frame, None, fx=scale, fy=scale) if scale < 1 else frame
            faces = detector(small, 1)
            if not faces:
                continue
            box = max(faces, key=lambda b: b.area())
            s = 1 / min(scale, 1.0)
            rect = dlib.rectangle(int(box.left() * s), int(box.top() * s), int(box.right() * s), int(box.bottom() * s))
            shape = predictor(frame, rect)
            marks.append([(p.x, p.y) for p in shape.parts()])
            kept.append(i)
        marks = np.asarray(marks, np.float64)
        gap = mouth_opening_over_eyes(marks)  # the same number however far the face is
        energy = frame_log_rms(read_audio(clip, SAMPLE_RATE), len(frames))[kept]
        out[clip.name] = {**correlations(gap, energy), "frames": len(frames), "detected": len(kept)}
    values = list(out.values())
    return {"per_clip": out, **summary(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--lrw-clips", type=int, default=60)
    parser.add_argument("--no-real", action="store_true", help="skip the real clips")
    parser.add_argument("--before", default=None, metavar="JSON", help="an earlier world's numbers to include")
    parser.add_argument("--result", default=str(RESULT))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    report = {
        "benchmark": "bench_synth_mouth_loudness",
        "machine": machine_info(),
        "metric": "Pearson r of the inner-lip gap (iBUG 61-63 vs 67-65) and the frame's log RMS energy (40 ms "
                  "frames, 25 fps); lag0 and the best over lags -3..3 frames",
        "setup": {"subjects": args.subjects, "seconds": args.seconds, "lrw_clips": args.lrw_clips, "engine": "builtin"},
        "synthetic_person": person_speech(args.subjects, args.seconds),
        "synthetic_lrw_with_variety": lrw_clips(args.lrw_clips),
        "real": {} if args.no_real else real_clips(),
    }
    if args.before:
        report["before"] = json.loads(Path(args.before).read_text())
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["command"] = " ".join(sys.argv)
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))
    write_result(Path(args.result), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
