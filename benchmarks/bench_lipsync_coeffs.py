"""Held-out lip sync in coefficient space on real clips: minutes per idea, no GAN, no video.

    .venv/bin/python benchmarks/bench_lipsync_coeffs.py --general checkpoints/general/motion_lrw.pt \
        --workspaces DIR [--clips talk2,talk3] [--variants all,head] [--steps 510] [--eval-every 30]

For every clip of ../shared/real (skipped, with a note, when that folder is absent), its whole-clip
reconstruction (a `talkface preprocess` workspace under --workspaces, reused, or made as
bench_motion_real.py makes it) is split as `talkface heldout` splits it: the first 75 % is the fine-tuning
clip, whose last 10 % is its validation tail (motion/train.py person_split), the rest is held out.
Each variant fine-tunes the general model on the training frames as `motion finetune` does
(re-centred on the person, the same loss, batch 16 of 16-frame sequences), in memory, and every
--eval-every steps scores the whole clip run as one sequence (as inference runs it) on the
training frames, the validation tail and the held-out frames: expression MSE against the
frames' own reconstruction, and the mouth (bench_motion_real.Scorer: predicted expression on the
true pose, projected at 224 px): inner-lip-gap r, mouth LMD, std ratio.

Selection rules, applied to each curve afterwards (all use only the training clip):
- final: the last step, as shipped;
- val_step: the step with the lowest validation expression MSE;
- val_step_shrunk: that step's prediction shrunk toward the training frames' mean expression,
  m + a (p - m), with a in [0, 1] the least-squares gain on the validation tail.
Baselines: the training frames' mean expression (a constant), the general model as it is, and
the general model re-centred on the person (step 0 of every curve).
Writes benchmarks/results/lipsync_coeffs_cpu.json (machine named).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bench_motion_real import REAL, Scorer, reconstruct
from talkface.benchmarking import machine_info, write_result
from talkface.face3d.coeffs import MOTION_EXPRESSION
from talkface.motion.calibration import recentre_on_person
from talkface.motion.data import PersonClip, PersonSequences, load_person, person_split
from talkface.motion.losses import LossConfig, motion_loss
from talkface.motion.model import load_motion_model
from talkface.motion.network import AudioToMotion
from talkface.motion.train import trainable_parameters
from talkface.train.checkpoint import checkpoint_or_latest
from talkface.train.config import ADAM_BETAS

REPO = Path(__file__).resolve().parent.parent
RESULT = Path(__file__).parent / "results" / "lipsync_coeffs_cpu.json"
CLIPS = ("hdtf_aoc", "talk2", "talk3", "talk4", "hdtf_kh", "talk5", "talk1")
TUNE_FRACTION = 0.75  # configs/heldout.yaml train_fraction
VAL_FRACTION = 0.1  # configs/motion_finetune.yaml val_fraction
BATCH = 16


# name -> (learning rate, trainable group (motion/train.py TRAINABLE), features); "all" at 1e-4 on raw
# features is the paper's fine-tuning, "head" at 1e-3 the shipped one (configs/motion_finetune.yaml).
VARIANTS: dict[str, tuple[float, str, str]] = {
    "all": (1e-4, "all", "raw"),
    "lstm_head": (1e-3, "lstm_head", "raw"),
    "head": (1e-3, "head", "raw"),
    "all_cmn": (1e-4, "all", "cmn"),
    "all_cmvn": (1e-4, "all", "cmvn"),
    "head_cmvn": (1e-3, "head", "cmvn"),
}


def corpus_statistics(cache: Path, clips: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and std [12] of the MFCC frames the general model was trained on (its LRW cache)."""
    from talkface.motion.records import read_record, split_records

    frames = np.concatenate([_frames(read_record(p).windows) for p in split_records(cache, "train")[:clips]])
    return frames.mean(0), frames.std(0)


def _frames(windows: np.ndarray) -> np.ndarray:
    """The MFCC frames [4T, 12] of windows [T, 28, 12]: each window's own video frame (rows 12-15)."""
    return windows[:, 12:16].reshape(-1, windows.shape[-1])


def normalised(windows: np.ndarray, train: slice, kind: str,
               corpus: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """The clip's windows with the training frames' per-coefficient mean (cmn) or mean and std (cmvn)
    mapped onto the corpus's: a speaker and channel normalisation fitted on the training frames only."""
    if kind == "raw":
        return windows
    frames = _frames(windows[train])
    mean, std = frames.mean(0), frames.std(0)
    scale = corpus[1] / std if kind == "cmvn" else np.ones_like(std)
    return ((windows - mean) * scale + corpus[0]).astype(np.float32)


@torch.no_grad()
def whole_clip(net: AudioToMotion, windows: np.ndarray) -> np.ndarray:
    """Decoded motion [T, 70] of the whole clip as one sequence (inference's view)."""
    net.eval()
    out, _ = net(torch.as_tensor(windows)[None])
    net.train()
    return net.decode_prediction(out[0]).numpy()


def shrink_gain(prediction: np.ndarray, truth: np.ndarray, mean: np.ndarray) -> float:
    """Least-squares a in [0, 1] of truth - mean ~ a (prediction - mean), over expression [T, 64]."""
    p, y = prediction - mean, truth - mean
    denominator = float((p * p).sum())
    return 0.0 if denominator <= 0 else float(np.clip((p * y).sum() / denominator, 0.0, 1.0))


class ClipScores:
    """Scores of a [T, 70] prediction on the clip's train / val / held-out frames."""

    def __init__(self, person: PersonClip, parts: dict[str, slice]):
        self.person, self.parts, self.scorer = person, parts, Scorer(person)

    def __call__(self, motion: np.ndarray) -> dict[str, dict[str, float]]:
        return {part: self.scorer(motion[frames], self.person.motion[frames]) for part, frames in self.parts.items()}


def curve(general: Path, person: PersonClip, train: slice, lr: float, group: str, steps: int,
          eval_every: int, seed: int, score: Callable[[np.ndarray], dict]) -> list[dict[str, Any]]:
    """Fine-tune a fresh copy of the general model; the whole-clip prediction's scores every eval_every steps."""
    return finetune_curve(fresh_copy(general, person, train, seed), person, train, lr, group, steps, eval_every, seed,
                          score)


def fresh_copy(general: Path, person: PersonClip, train: slice, seed: int) -> AudioToMotion:
    """The general model re-centred on the training frames, as `motion finetune` starts from it."""
    torch.manual_seed(seed)
    net = load_motion_model(general).train()
    net.reset_pose_calibration()
    net.reset_pose_rhythm()
    recentre_on_person(net, person.windows[train], person.motion[train])
    return net


def finetune_curve(net: AudioToMotion, person: PersonClip, train: slice, lr: float, group: str, steps: int,
                   eval_every: int, seed: int, score: Callable[[np.ndarray], dict]) -> list[dict[str, Any]]:
    """Fine-tune `net` in place on the training frames; the whole-clip prediction's scores every eval_every steps."""
    optimiser = torch.optim.Adam(trainable_parameters(net, group), lr=lr, betas=ADAM_BETAS)
    dataset = PersonSequences(person.windows[train], person.motion[train])
    rng = np.random.default_rng(seed)
    loss = LossConfig()
    points = []
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            prediction = whole_clip(net, person.windows)
            points.append({"step": step, "prediction": prediction, "scores": score(prediction)})
        if step == steps:
            break
        items = [dataset[i] for i in rng.integers(0, len(dataset), BATCH)]
        windows = torch.stack([item["windows"] for item in items])
        motion = torch.stack([item["motion"] for item in items])
        out, _ = net(windows)
        terms = motion_loss(out, net.encode_target(motion), **vars(loss))
        optimiser.zero_grad()
        terms["total"].backward()
        optimiser.step()
    return points


def select(points: list[dict[str, Any]], person: PersonClip, train: slice, val: slice,
           score: Callable[[np.ndarray], dict]) -> dict[str, Any]:
    """The three selection rules' held-out scores (see the module docstring)."""
    best = min(points, key=lambda p: p["scores"]["val"]["expression_mse"])
    mean = person.motion[train, MOTION_EXPRESSION].mean(0)
    gain = shrink_gain(best["prediction"][val, MOTION_EXPRESSION], person.motion[val, MOTION_EXPRESSION], mean)
    shrunk = best["prediction"].copy()
    shrunk[:, MOTION_EXPRESSION] = mean + gain * (shrunk[:, MOTION_EXPRESSION] - mean)
    return {"final": {"step": points[-1]["step"], **points[-1]["scores"]},
            "val_step": {"step": best["step"], **best["scores"]},
            "val_step_shrunk": {"step": best["step"], "gain": round(gain, 3), **score(shrunk)}}


def bench_clip(name: str, workspaces: Path, general: Path, variants: list[str], steps: int, eval_every: int,
               seed: int, corpus: tuple[np.ndarray, np.ndarray] | None) -> dict[str, Any]:
    person = load_person(reconstruct(REAL / f"{name}.mp4", workspaces / name))
    frames = len(person.motion)
    tune = int(TUNE_FRACTION * frames)
    train, val = person_split(tune, tune, VAL_FRACTION)
    parts = {"train": train, "val": val, "held_out": slice(tune, frames)}
    score = ClipScores(person, parts)
    mean = np.repeat(person.motion[train].mean(0, keepdims=True), frames, 0)
    result: dict[str, Any] = {"frames": frames, "parts": {k: [v.start, v.stop] for k, v in parts.items()},
                              "mean_expression": score(mean),
                              "general": score(whole_clip(load_motion_model(general), person.windows))}
    for variant in variants:
        lr, group, features = VARIANTS[variant]
        start = time.perf_counter()
        clip = replace(person, windows=normalised(person.windows, train, features, corpus))
        points = curve(general, clip, train, lr, group, steps, eval_every, seed, score)
        result.setdefault("recentred_general", points[0]["scores"])
        result[variant] = {"lr": lr, "trainable": group, "features": features, "seconds": round(time.perf_counter() - start, 1),
                           **select(points, person, train, val, score),
                           "curve": [{"step": p["step"], **{part: {k: p["scores"][part][k] for k in
                                     ("expression_mse", "mouth_r", "mouth_lmd")} for part in parts}}
                                     for p in points]}
        print(name, variant, {rule: (result[variant][rule]["step"], result[variant][rule]["held_out"]["mouth_lmd"],
                                     result[variant][rule]["held_out"]["mouth_r"])
                              for rule in ("final", "val_step", "val_step_shrunk")}, flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--general", default=str(REPO / "checkpoints" / "general" / "motion_lrw.pt"))
    parser.add_argument("--workspaces", required=True, help="whole-clip workspaces, reused or made here")
    parser.add_argument("--corpus", default=None, help="the general model's LRW cache (for cmn / cmvn variants)")
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {sorted(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=510, help="the CPU profile's 30 epochs of 17 batches")
    parser.add_argument("--eval-every", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="")
    parser.add_argument("--result", default=str(RESULT))
    args = parser.parse_args()
    torch.set_num_threads(1)
    result_path = Path(args.result)
    report = {"benchmark": "bench_lipsync_coeffs", "command": " ".join(sys.argv), "note": args.note,
              "machine": machine_info(), "clips": {}}
    if not REAL.is_dir():
        report["skipped"] = f"{REAL} is absent"
        write_result(result_path, report)
        print(report["skipped"])
        return 0
    general = checkpoint_or_latest(args.general, "talkface motion pretrain")
    corpus = corpus_statistics(Path(args.corpus)) if args.corpus else None
    for name in args.clips.split(","):
        report["clips"][name] = bench_clip(name, Path(args.workspaces), general, args.variants.split(","),
                                           args.steps, args.eval_every, args.seed, corpus)
        write_result(result_path, report)  # finished clips survive an interrupted run
    return 0


if __name__ == "__main__":
    sys.exit(main())
