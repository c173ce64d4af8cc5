"""Where does a new-speech video's mouth come from: the mouth drawn, or the background frames' own?

    .venv/bin/python benchmarks/bench_mouth_source.py --people DIR --pairs talk5=SPEECH.wav ...
                                                      [--sources predicted reference still predicted:render]

For each fine-tuned person (bench_real_loop.py's WORK/people) and speech file, the inference
pipeline (pipelines/infer.py `generate`) makes the video once per source: a head-pose source
(`--pose-source`: predicted, reference, still), and 'predicted:render', the predicted pose without
the GAN (the composited render pasted back). The video's mouth is read as the real loop reads it
(dlib landmarks, the inner-lip gap of their 3D fit turned to the front: recon/frontal_mouth.py),
and set against
- drawn: the expression that was rendered, on the person's identity, read the same way;
- background: the background frames' own reconstructed expressions (the real frame behind each
  output frame), read the same way;
- phones: the jaw of the phones heard in the speech (bench_real_loop's moves-with-speech check).
Beside them, "pose_error_deg": the mean |angle| between the background frames' own head poses
and the predicted ones, and how much each moves ("head_std_deg", "head_speed_deg": what choosing
frames for their mouths, infer's mouth_match_radius, costs).
A least-squares fit of the standardised video gap on the standardised drawn and background gaps
gives each one's weight ("beta_"). Videos go under --work; updates
benchmarks/results/mouth_source_cpu.json after each video.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from talkface.benchmarking import machine_info, write_result

from bench_real_loop import commit  # noqa: E402  (one copy of the commit stamp)

RESULT = Path(__file__).resolve().parent / "results" / "mouth_source_cpu.json"
SOURCES = ("predicted", "reference", "still", "predicted:render")


def mouth_sources(people: Path, name: str, speech: Path, source: str, out: Path,
                  mouth_match_radius: int | None = None) -> dict[str, Any]:
    """The video of `speech` by person `name` from `source`, and what its mouth follows."""
    from talkface.background.animation import load_target, mouth_openings
    from talkface.face3d.coeffs import MOTION_ANGLES, motion_from_coeffs
    from talkface.face3d.model import load_morphable_model
    from talkface.media import read_audio, read_video
    from talkface.pipelines.infer import InferConfig, generate
    from talkface.pipelines.person_folder import load_person_book
    from talkface.recon.dlib_landmarks import DlibLandmarks
    from talkface.recon.frontal_mouth import frontal_mouth_opening
    from talkface.speech.recognition import viseme_track

    pose, _, stage = source.partition(":")
    config = InferConfig(people_dir=str(people), pose_source=pose, enhance=stage != "render")
    if mouth_match_radius is not None:
        config = replace(config, mouth_match_radius=mouth_match_radius)
    result = generate(name, speech, out, config, progress=False)
    model = load_morphable_model(load_person_book(people, name).record["morphable_model"])
    target = load_target(people / name)
    clip, drawn = mouth_openings(target, result.motion, model)  # as infer's mouth matching reads them
    gaps = {"video": frontal_mouth_opening(DlibLandmarks().detect(list(read_video(out))), model),
            "drawn": drawn, "background": clip[result.background_indices],
            "phones": viseme_track(read_audio(speech), result.frames)[:, 0]}
    matched = motion_from_coeffs(target.coeffs)[result.background_indices, MOTION_ANGLES]  # the frames' own poses
    pose_error = float(np.degrees(np.abs(matched - result.motion[:, MOTION_ANGLES]).mean()))
    return {**weights(gaps), "distinct_backgrounds": int(len(np.unique(result.background_indices))),
            "pose_error_deg": round(pose_error, 2), **head_motion(matched, result.motion[:, MOTION_ANGLES]),
            "mouth_match_radius": config.mouth_match_radius,
            "frames": result.frames, "frames_without_face": int(np.isnan(gaps["video"]).sum())}


def head_motion(shown: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """How much the head moves: the std over time and the mean frame-to-frame change of the pose angles
    [T, 3] shown (the background frames' own) and predicted, in degrees, averaged over the three angles."""
    def moves(angles: np.ndarray) -> tuple[float, float]:
        degrees = np.degrees(angles)
        return round(float(degrees.std(0).mean()), 3), round(float(np.abs(np.diff(degrees, axis=0)).mean()), 3)

    (std, speed), (predicted_std, predicted_speed) = moves(shown), moves(predicted)
    return {"head_std_deg": std, "head_speed_deg": speed,
            "predicted_head_std_deg": predicted_std, "predicted_head_speed_deg": predicted_speed}


def weights(gaps: dict[str, np.ndarray]) -> dict[str, float]:
    """r of the video gap with each other gap, and its least-squares weights on drawn and background."""
    found = np.isfinite(gaps["video"])
    z = {k: standardised(v[found]) for k, v in gaps.items()}
    scores = {f"r_video_{k}": correlation(z["video"], z[k]) for k in ("drawn", "background", "phones")}
    scores.update(r_drawn_phones=correlation(z["drawn"], z["phones"]),
                  r_background_phones=correlation(z["background"], z["phones"]))
    design = np.stack([z["drawn"], z["background"]], axis=1)
    beta = np.linalg.lstsq(design, z["video"], rcond=None)[0]
    return {**scores, "beta_drawn": round(float(beta[0]), 3), "beta_background": round(float(beta[1]), 3)}


def standardised(values: np.ndarray) -> np.ndarray:
    """Zero mean, unit std; all zeros for a constant (a still background's mouth)."""
    spread = values.std()
    return (values - values.mean()) / spread if spread > 1e-9 else np.zeros_like(values)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of standardised series (0 where one is constant)."""
    return round(float(np.mean(a * b)), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=Path, required=True, help="bench_real_loop.py's WORK/people")
    parser.add_argument("--pairs", nargs="+", required=True, help="NAME=SPEECH.wav")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--work", type=Path, default=Path("/tmp/talkface_mouth_source"))
    parser.add_argument("--result", type=Path, default=RESULT)
    parser.add_argument("--mouth-match-radius", type=int, default=None, help="infer's mouth_match_radius "
                        "(default: InferConfig's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    for pair in args.pairs:
        name, _, speech = pair.partition("=")
        for source in args.sources:
            out = args.work / f"{name}__{Path(speech).stem}__{source.replace(':', '_')}.mp4"
            scores = mouth_sources(args.people, name, Path(speech), source, out, args.mouth_match_radius)
            report = json.loads(args.result.read_text()) if args.result.is_file() else {}
            report.setdefault("videos", {}).setdefault(f"{name}={Path(speech).stem}", {})[source] = \
                {**scores, "commit": commit()}
            report["machine"] = machine_info()
            write_result(args.result, report)
            print(name, Path(speech).stem, source, scores, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
