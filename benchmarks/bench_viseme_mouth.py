"""The viseme mouth on real clips, in coefficient space (docs/method.md, "Viseme mouth").

    .venv/bin/python benchmarks/bench_viseme_mouth.py --general checkpoints/general/motion_lrw.pt \
        --workspaces DIR [--clips hdtf_aoc,talk2,talk3] [--steps 1020]

For every clip of ../shared/real (skipped, with a note, when that folder is absent), its whole-clip
reconstruction (a `talkface preprocess` workspace under --workspaces, reused or made as
bench_motion_real.py makes it) and the viseme track of its audio by each recogniser
(speech/recognition.py RECOGNISERS: words aligned, phones decoded), "recognisers" 1 and 2 per track:

1. lead: r of the track's jaw-open with the reconstructed inner-lip gap (bench_motion_real.Scorer,
   true pose) with the track shifted by -1, 0 (as shipped: the mouth one frame ahead) and +1 frames;
2. four-fold blocks: each quarter of the clip predicted from the other three by the person's mean
   expression, the re-centred general model, and the viseme mouth alone at ridge penalties 0, 0.01
   (shipped) and 0.1 per frame; held-out mouth r and LMD over all four quarters;
3. the `talkface heldout` split: the first 75 % fine-tuned as `motion finetune` does (all weights,
   lr 1e-4, --steps at batch 16: the CPU profile's 1020), its last 10 % the validation tail; the
   network alone, its blend with the viseme mouth at each fixed weight, and the weight the
   validation tail picks (as fine-tuning picks it); training-frame and held-out mouth r and LMD
   beside the person's mean expression and the general model (raw and re-centred); with the track
   of the recogniser fine-tuning picks on the training frames (calibration.choose_recogniser).
   "aligned" (as shipped): the viseme mouth fitted on the tracks put in step with the training
   frames' detected mouth (motion/av_offset.py, "offset_on_training_frames"); "unaligned": fitted
   at the standard lead, as before. Either way the held-out frames are heard at the standard lead,
   as inference hears new speech.
Writes benchmarks/results/viseme_mouth_cpu.json (machine named).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench_lipsync_coeffs import CLIPS, TUNE_FRACTION, VAL_FRACTION, curve, whole_clip
from bench_motion_real import REAL, Scorer, reconstruct
from talkface.benchmarking import machine_info, write_result
from talkface.config import load_config
from talkface.face3d.coeffs import MOTION_EXPRESSION
from talkface.metrics import mouth_opening
from talkface.motion import calibration
from talkface.motion.data import PersonClip, load_person, person_phones, person_split, person_viseme_track
from talkface.motion.model import load_motion_model
from talkface.motion.train import FinetuneConfig
from talkface.speech.recognition import RECOGNISERS
from talkface.train.checkpoint import checkpoint_or_latest

REPO = Path(__file__).resolve().parent.parent
RESULT = Path(__file__).parent / "results" / "viseme_mouth_cpu.json"
RIDGES = (0.0, 0.01, 0.1)
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # every blend scored; fine-tuning picks among its viseme_weights only
SHIPPED_WEIGHTS = load_config(FinetuneConfig, REPO / "configs" / "motion_finetune.yaml").viseme_weights


def with_expression(person: PersonClip, expression: np.ndarray) -> np.ndarray:
    motion = person.motion.copy()
    motion[:, MOTION_EXPRESSION] = expression
    return motion


def viseme_expression(track: np.ndarray, expression: np.ndarray, train: np.ndarray | slice,
                      ridge: float = calibration.VISEME_RIDGE_PER_FRAME, heard: np.ndarray | None = None) -> np.ndarray:
    """The viseme mouth [T, 64] fitted on the `train` frames of `track` at penalty `ridge` per frame, of the
    track `heard` (default: `track`)."""
    mapping, bias = calibration.person_viseme_mouth(track[train], expression[train], ridge)
    return bias.numpy() + (track if heard is None else heard) @ mapping.numpy()


def lead_correlations(person: PersonClip, track: np.ndarray, scorer: Scorer) -> dict[str, float]:
    gap = mouth_opening(scorer.landmarks(person.motion))
    return {f"shift_{shift:+d}": round(float(np.corrcoef(np.roll(track[:, 0], shift), gap)[0, 1]), 3)
            for shift in (-1, 0, 1)}


def four_fold(person: PersonClip, track: np.ndarray, general: np.ndarray, scorer: Scorer) -> dict[str, Any]:
    """Held-out scores over the four quarters, each predicted from the other three."""
    frames = len(person.motion)
    expression = person.motion[:, MOTION_EXPRESSION]
    edges = np.linspace(0, frames, 5).astype(int)
    names = ["mean_expression", "recentred_general"] + [f"visemes_ridge_{r:g}" for r in RIDGES]
    predictions = {name: np.zeros_like(expression) for name in names}
    for k in range(4):
        test = np.arange(edges[k], edges[k + 1])
        train = np.setdiff1d(np.arange(frames), test)
        mean = expression[train].mean(0)
        predictions["mean_expression"][test] = mean
        predictions["recentred_general"][test] = (general - general[train].mean(0) + mean)[test]
        for ridge in RIDGES:
            predictions[f"visemes_ridge_{ridge:g}"][test] = viseme_expression(track, expression, train, ridge)[test]
    return {name: scorer(with_expression(person, e), person.motion) for name, e in predictions.items()}


def heldout_split(person: PersonClip, tracks: dict[str, np.ndarray], aligned: dict[str, np.ndarray],
                  general_path: Path, general: np.ndarray, scorer: Scorer, steps: int) -> dict[str, Any]:
    """The `talkface heldout` split, the viseme mouth fitted on the `aligned` tracks as fine-tuning fits it
    and, for comparison ("unaligned"), on the tracks at the standard lead; held out heard at the standard lead."""
    frames = len(person.motion)
    tune = int(TUNE_FRACTION * frames)
    train, val = person_split(tune, tune, VAL_FRACTION)
    parts = {"train": train, "held_out": slice(tune, frames)}
    expression = person.motion[:, MOTION_EXPRESSION]
    mean = expression[train].mean(0)
    network = curve(general_path, person, train, 1e-4, "all", steps, steps, 0, lambda _: {})[-1]["prediction"]
    network = network[:, MOTION_EXPRESSION]
    result: dict[str, Any] = {"parts": {k: [v.start, v.stop] for k, v in parts.items()},
                              "validation": [val.start, val.stop]}
    baselines = {"mean_expression": np.repeat(mean[None], frames, 0), "general": general,
                 "recentred_general": general - general[train].mean(0) + mean}
    for name, e in baselines.items():
        result[name] = {part: scorer(with_expression(person, e)[f], person.motion[f]) for part, f in parts.items()}
    for fitted, variant in ((aligned, "aligned"), (tracks, "unaligned")):
        result[variant] = blends(person, fitted, tracks, network, train, val, parts, scorer)
    result["shipped"] = result["aligned"]["shipped"]
    return result


def blends(person: PersonClip, fitted: dict[str, np.ndarray], heard: dict[str, np.ndarray], network: np.ndarray,
           train: slice, val: slice, parts: dict[str, slice], scorer: Scorer) -> dict[str, Any]:
    """The recogniser and blend weight fine-tuning picks with the viseme mouth fitted on the `fitted` tracks
    (training frames, the validation tail scored on them too), and every blend's scores with the held-out
    frames heard as inference hears them (`heard`); training frames scored as fitted."""
    expression = person.motion[:, MOTION_EXPRESSION]
    recogniser, cross_validated = calibration.choose_recogniser({k: t[train] for k, t in fitted.items()},
                                                                expression[train])
    as_fitted = viseme_expression(fitted[recogniser], expression, train)
    as_heard = viseme_expression(fitted[recogniser], expression, train, heard=heard[recogniser])
    val_mse = {w: float(np.square((1 - w) * network[val] + w * as_fitted[val] - expression[val]).mean())
               for w in WEIGHTS}
    picked = min(SHIPPED_WEIGHTS, key=val_mse.__getitem__)
    result: dict[str, Any] = {"recogniser": recogniser,
                              "recogniser_cross_validated_mse": {k: round(e, 5) for k, e in cross_validated.items()},
                              "validation_mse": {f"{w:g}": round(e, 5) for w, e in val_mse.items()},
                              "picked_weight": picked}
    for w in WEIGHTS:
        scores = {}
        for part, frames in parts.items():
            visemes = as_fitted if part == "train" else as_heard
            motion = with_expression(person, (1 - w) * network + w * visemes)
            scores[part] = scorer(motion[frames], person.motion[frames])
        result[f"blend_{w:g}"] = scores
    result["shipped"] = result[f"blend_{picked:g}"]
    return result


def bench_clip(name: str, workspaces: Path, general_path: Path, steps: int) -> dict[str, Any]:
    workspace = reconstruct(REAL / f"{name}.mp4", workspaces / name)
    person = load_person(workspace)
    frames = len(person.motion)
    tune = int(TUNE_FRACTION * frames)
    tracks, aligned, offsets = {}, {}, {}
    for r in RECOGNISERS:
        phones = person_phones(workspace, r)  # heard once, read at the standard lead and in step
        tracks[r] = person_viseme_track(workspace, frames, phones)[0]
        aligned[r], offsets[r] = person_viseme_track(workspace, frames, phones, tune)
    scorer = Scorer(person)
    general = whole_clip(load_motion_model(general_path), person.windows)[:, MOTION_EXPRESSION]
    result = {"frames": frames,
              "recognisers": {recogniser: {"lead": lead_correlations(person, track, scorer),
                                           "offset_on_training_frames": offsets[recogniser],
                                           "four_fold": four_fold(person, track, general, scorer)}
                              for recogniser, track in tracks.items()},
              "heldout_split": heldout_split(person, tracks, aligned, general_path, general, scorer, steps)}
    split = result["heldout_split"]
    for variant in ("aligned", "unaligned"):
        v = split[variant]
        held_out = {k: split[k]["held_out"]["mouth_lmd"] for k in ("mean_expression", "general")}
        print(name, variant, "offsets", offsets, v["recogniser"], "picked", v["picked_weight"],
              "held-out LMD shipped", v["shipped"]["held_out"]["mouth_lmd"], "network",
              v["blend_0"]["held_out"]["mouth_lmd"], held_out, "train r shipped", v["shipped"]["train"]["mouth_r"],
              "network", v["blend_0"]["train"]["mouth_r"], flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--general", default=str(REPO / "checkpoints" / "general" / "motion_lrw.pt"))
    parser.add_argument("--workspaces", required=True, help="whole-clip workspaces, reused or made here")
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--steps", type=int, default=1020, help="fine-tuning steps: the CPU profile's 60 epochs")
    parser.add_argument("--note", default="")
    parser.add_argument("--result", default=str(RESULT))
    args = parser.parse_args()
    torch.set_num_threads(1)
    report: dict[str, Any] = {"benchmark": "bench_viseme_mouth", "command": " ".join(sys.argv), "note": args.note,
                              "machine": machine_info(), "clips": {}}
    if not REAL.is_dir():
        report["skipped"] = f"{REAL} is absent"
        write_result(Path(args.result), report)
        print(report["skipped"])
        return 0
    general = checkpoint_or_latest(args.general, "talkface pretrain synthetic")
    for name in args.clips.split(","):
        report["clips"][name] = bench_clip(name, Path(args.workspaces), general, args.steps)
        write_result(Path(args.result), report)  # finished clips survive an interrupted run
    return 0


if __name__ == "__main__":
    sys.exit(main())
