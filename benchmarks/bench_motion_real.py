"""Audio -> motion fine-tuning on real clips: does it fit its own training frames, and beat the baselines held out?

    .venv/bin/python benchmarks/bench_motion_real.py --general checkpoints/general/motion_lrw.pt \
        [--workspaces DIR] [--clips hdtf_aoc,talk3] [--variants recentred,plain] [--set epochs=60 ...]

For every clip of ../shared/real (skipped, with a note, when that folder is absent):
1. Its reconstruction: a workspace made by `talkface preprocess` (all the clip's frames, the
   built-in morphable model) under --workspaces, or one already there (any workspace with
   mfcc.npy and coeffs.npy is reused as it is).
2. The first --fraction of its frames become the fine-tuning clip (a workspace of its own, so
   fine-tuning's validation split is that clip's last 10 %); the rest is held out.
3. `finetune` (configs/motion_finetune.yaml, --set overrides) from the general model, once per
   variant: "recentred" is the shipped config, "plain" the same with `recentre: false`.
4. Scores, all from the coefficients projected with the synthetic morphable model and the clip's
   identity at the 224 px crop, each prediction's expression on the true head pose:
   - train_r: correlation of the predicted inner-lip gap (metrics.mouth_opening) with the
     reconstructed one on the frames fine-tuning trained on;
   - held-out mouth LMD (metrics.lmd) and inner-lip r on the held-out frames, for each variant,
     for the general model and for the person's mean mouth (the mean expression of the
     fine-tuning clip's frames).
Writes benchmarks/results/motion_real_cpu.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from talkface.audio import SAMPLES_PER_VIDEO_FRAME
from talkface.benchmarking import machine_info, write_result
from talkface.config import config_to_dict, load_config
from talkface.face3d.coeffs import MOTION_EXPRESSION
from talkface.face3d.model import load_morphable_model
from talkface.media import read_audio, write_wav
from talkface.metrics import lmd, mouth_opening
from talkface.motion.data import PersonClip, load_person, person_split
from talkface.motion.inference import motion_landmarks
from talkface.motion.model import load_motion_model
from talkface.motion.train import FinetuneConfig, finetune
from talkface.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
REAL = REPO.parent / "shared" / "real"
RESULT = Path(__file__).parent / "results" / "motion_real_cpu.json"
CLIPS = ("hdtf_aoc", "hdtf_kh", "talk1", "talk2", "talk3", "talk4", "talk5")
VARIANTS = {"recentred": [], "plain": ["recentre=false"]}


def reconstruct(clip: Path, workspace: Path) -> Path:
    """The clip's workspace: reused when it holds coefficients and MFCC windows, else `talkface preprocess`."""
    if (workspace / "coeffs.npy").is_file() and (workspace / "mfcc.npy").is_file():
        return workspace
    from talkface.pipelines.person import frames_with_speech
    from talkface.pipelines.preprocess import PreprocessConfig, preprocess

    config = load_config(PreprocessConfig, REPO / "configs" / "preprocess.yaml",
                         [f"frames={frames_with_speech(clip)}", "morphable_model=synthetic"])
    preprocess(clip, workspace, config, progress=False)
    return workspace


def first_frames(source: Path, frames: int, out: Path) -> Path:
    """A workspace holding the first `frames` frames of `source`'s audio, MFCC windows, coefficients and landmarks."""
    src, ws = Workspace(source), Workspace(out)
    out.mkdir(parents=True)
    write_wav(ws.path("audio.wav"), read_audio(src.path("audio.wav"))[:frames * SAMPLES_PER_VIDEO_FRAME])
    ws.save_array("mfcc.npy", np.load(src.path("mfcc.npy"))[:frames])
    ws.save_array("coeffs.npy", np.load(src.path("coeffs.npy"))[:frames])
    ws.save_array("landmarks.npy", np.load(src.path("landmarks.npy"))[:frames])
    for step in ("audio", "landmarks", "mfcc", "coeffs"):
        ws.record(step, f"first {frames} frames of {source}")
    return out


@torch.no_grad()
def predicted(checkpoint: Path, windows: np.ndarray) -> np.ndarray:
    """A checkpoint's decoded motion [T, 70] on windows [T, 28, 12], as one sequence."""
    net = load_motion_model(checkpoint)
    out, _ = net(torch.as_tensor(np.ascontiguousarray(windows))[None])
    return net.decode_prediction(out[0]).numpy()


class Scorer:
    """Mouth scores of predicted motion against a clip's reconstructed motion (expression only)."""

    def __init__(self, person: PersonClip, morphable_model: str = "synthetic"):
        self.face = load_morphable_model(morphable_model)
        self.identity = person.identity

    def landmarks(self, motion: np.ndarray) -> np.ndarray:
        return motion_landmarks(self.face, motion, self.identity)

    def __call__(self, prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        motion = truth.copy()
        motion[:, MOTION_EXPRESSION] = prediction[:, MOTION_EXPRESSION]  # the true head pose: only the mouth is scored
        marks, true_marks = self.landmarks(motion), self.landmarks(truth)
        opening, true_opening = mouth_opening(marks), mouth_opening(true_marks)
        r = float(np.corrcoef(opening, true_opening)[0, 1]) if opening.std() > 1e-9 else 0.0
        return {"mouth_r": round(r, 3), "mouth_lmd": round(lmd(marks, true_marks), 4),
                "opening_std_ratio": round(float(opening.std() / true_opening.std()), 3),
                "expression_mse": round(float(np.square(prediction[:, MOTION_EXPRESSION] - truth[:, MOTION_EXPRESSION]).mean()), 5)}


def bench_clip(name: str, workspaces: Path, work: Path, general: Path, fraction: float,
               variants: dict[str, list[str]], overrides: list[str]) -> dict:
    start = time.perf_counter()
    source = reconstruct(REAL / f"{name}.mp4", workspaces / name)
    person = load_person(source)
    frames = len(person.motion)
    tune_frames = int(round(frames * fraction))
    clip = first_frames(source, tune_frames, work / name / "clip")
    base = load_config(FinetuneConfig, REPO / "configs" / "motion_finetune.yaml", overrides)
    train, val = person_split(tune_frames, base.train_frames, base.val_fraction)
    held = slice(tune_frames, frames)
    score = Scorer(person)
    result = {"frames": frames, "trained_frames": train.stop, "validation_frames": [val.start, val.stop],
              "held_out_frames": [held.start, held.stop], "reconstruct_s": round(time.perf_counter() - start, 1)}
    mean = np.repeat(person.motion[:tune_frames].mean(0, keepdims=True), frames, 0)
    result["mean_mouth"] = {"held_out": score(mean[held], person.motion[held])}
    general_motion = predicted(general, person.windows)
    result["general"] = {"train": score(general_motion[train], person.motion[train]),
                         "held_out": score(general_motion[held], person.motion[held])}
    for variant, extra in variants.items():
        config = load_config(FinetuneConfig, REPO / "configs" / "motion_finetune.yaml",
                             [*overrides, *extra, f"pretrained={general}", f"run_dir={work / name / variant}",
                              "train.device=cpu", "train.log_every=1000"])
        start = time.perf_counter()
        final, _ = finetune(clip, config)
        seconds = time.perf_counter() - start
        # Windows of the whole clip as one sequence, as inference runs them (the LSTM starts at frame 0).
        motion = predicted(final, person.windows)
        result[variant] = {"train": score(motion[train], person.motion[train]),
                           "held_out": score(motion[held], person.motion[held]), "finetune_s": round(seconds, 1),
                           "overrides": extra}
        print(name, variant, result[variant], flush=True)
    lmds = {k: v["held_out"]["mouth_lmd"] for k, v in result.items() if isinstance(v, dict) and "held_out" in v}
    result["held_out_lmd"] = lmds
    print(name, "held-out mouth LMD", lmds, flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--general", default=str(REPO / "checkpoints" / "general" / "motion_lrw.pt"),
                        help="the general motion model (a checkpoint or a pretraining run folder)")
    parser.add_argument("--workspaces", default=None, help="clip workspaces, reused or made here (default: temp)")
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {sorted(VARIANTS)}")
    parser.add_argument("--fraction", type=float, default=0.75, help="the fine-tuning clip's share of each clip")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="motion_finetune.yaml override")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="")
    parser.add_argument("--result", default=str(RESULT))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"benchmark": "bench_motion_real", "machine": machine_info(), "command": " ".join(sys.argv),
              "note": args.note, "general": args.general, "fraction": args.fraction, "clips": {}}
    if not REAL.is_dir():
        print(f"skipped: {REAL} is absent")
        report["skipped"] = f"{REAL} is absent"
        write_result(Path(args.result), report)
        return 0
    from talkface.train.checkpoint import checkpoint_or_latest

    general = checkpoint_or_latest(args.general, "talkface motion pretrain")
    report["finetune_config"] = config_to_dict(load_config(FinetuneConfig, REPO / "configs" / "motion_finetune.yaml",
                                                           args.overrides))
    variants = {v: VARIANTS[v] for v in args.variants.split(",")}
    work = Path(tempfile.mkdtemp(prefix="bench_motion_real_"))
    workspaces = Path(args.workspaces) if args.workspaces else work / "workspaces"
    try:
        for name in args.clips.split(","):
            if not (REAL / f"{name}.mp4").is_file():
                report["clips"][name] = {"skipped": "clip absent"}
                continue
            report["clips"][name] = bench_clip(name, workspaces, work, general, args.fraction, variants,
                                               args.overrides)
            write_result(Path(args.result), report)  # finished clips survive an interrupted run
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["summary"] = summary(report["clips"], list(variants))
    write_result(Path(args.result), report)
    print(report["summary"])
    return 0


def summary(clips: dict, variants: list[str]) -> dict:
    done = {k: v for k, v in clips.items() if "skipped" not in v}
    out = {}
    for variant in variants:
        out[variant] = {
            "train_r": {k: v[variant]["train"]["mouth_r"] for k, v in done.items()},
            "clips_train_r_at_least_0.8": sum(v[variant]["train"]["mouth_r"] >= 0.8 for v in done.values()),
            "clips_beating_mean_and_general_held_out": sum(
                v["held_out_lmd"][variant] < min(v["held_out_lmd"]["mean_mouth"], v["held_out_lmd"]["general"])
                for v in done.values()),
            "clips": len(done),
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
