"""Personalised audio -> motion on the synthetic world: pretrain on a synthetic LRW, fine-tune on a held-out person.

    .venv/bin/python benchmarks/bench_motion_personal.py [--words 30 --clips 8 --pretrain-steps 600 ...]

1. A synthetic LRW corpus (truth-only: the speech, subjects and speech-driven motion of
   `talkface synth lrw`, blank frames, since `lrw preprocess --coeffs truth` reads only the audio
   and the ground truth), preprocessed with talkface.pipelines.lrw.
2. Pretraining (MotionTask through the shared Trainer) on its train split.
3. A held-out person (a subject seed not in the corpus) speaking for PERSON_SECONDS; the first
   part is their ~10 s workspace clip (first 300 frames trained, last 10 % validation), the rest
   is held-out speech that no stage sees.
4. On the held-out speech: LMD of the mouth landmarks (synthetic morphable model, the person's
   identity) for fine-tuned, pretrained-only and mean-expression predictions; and the pose
   statistics (per-angle std and dominant frequency) of the fine-tuned prediction against this
   person's truth and against other synthetic persons speaking the same length. "finetuned" carries
   the per-person pose calibration that fine-tuning fits (FinetuneConfig.calibrate_pose, beyond the
   paper); "finetuned_uncalibrated" is the same network with the identity calibration, and
   "finetuned_calibrated_on_training_audio" fits the gains on the (partly memorised) training
   audio instead of its time reversal, for comparison. "finetuned" also carries the person's sampled
   pose rhythm (FinetuneConfig.pose_rhythm, beyond the paper, on by default, gated by the audio's
   speech activity; seed 0); "finetuned_no_rhythm" is the same network with the rhythm off and the
   plain calibration (person_pose_calibration), and "rhythm_seeds" repeats the pose comparison of
   "finetuned" with rhythm seeds 0..N-1 (rank of the own person among all, per seed).
   "own_truth_on_other_speech" is the reference: this person's true head motion on other speech,
   ranked the same way (how often the metric can put the right person first at all).
Writes benchmarks/results/motion_personal_cpu.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from talkface.benchmarking import machine_info, write_result
from talkface.audio import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME
from talkface.face3d.coeffs import (
    ANGLES, EXPRESSION, IDENTITY, MOTION_ANGLES, MOTION_EXPRESSION, MOTION_POSE, motion_from_coeffs,
)
from talkface.face3d.model import load_morphable_model
from talkface.metrics import lmd, pose_statistics, pose_statistics_distance
from talkface.motion.activity import speech_activity
from talkface.motion.inference import predict_motion
from talkface.motion.network import fit_pose_calibration
from talkface.motion.calibration import person_pose_calibration
from talkface.motion.data import load_person, person_split
from talkface.motion.inference import motion_landmarks
from talkface.motion.losses import LossConfig
from talkface.motion.model import load_motion_model
from talkface.motion.train import FinetuneConfig, NetworkConfig, PretrainConfig, finetune, pretrain
from talkface.motion.records import read_record, split_records
from talkface.pipelines.lrw import preprocess_lrw
from talkface.synth.appearance import sample_subject
from talkface.synth.motion import generate_motion
from talkface.synth.speech import utterance_for_duration
from talkface.synth.truth_workspace import write_speech_truth_workspace
from talkface.synth.variety import VarietyConfig
from talkface.synth.world import VOCABULARY, lrw_clip_path, write_lrw_clip_without_frames
from talkface.train.config import TrainConfig

RESULT = Path(__file__).parent / "results" / "motion_personal_cpu.json"
PERSON_SEED = 987_654  # not a corpus clip's seed (those are crc32-derived, see lrw_seed)
CLIP_SECONDS = 14.0  # the person's workspace clip: 350 frames = 300 trained + the last 35 validated


def lrw_seed(word: str, split: str, index: int) -> int:
    return zlib.crc32(f"{word}/{split}/{index}".encode()) & 0x7FFFFFFF


def write_truth_lrw(root: Path, words: list[str], clips: int, engine: str, variety: VarietyConfig) -> None:
    for word in words:
        for split, count in (("train", clips), ("val", max(1, clips // 4))):
            for index in range(1, count + 1):
                write_lrw_clip_without_frames(lrw_clip_path(root, word, split, index), word,
                                              lrw_seed(word, split, index), engine, variety)


def speaking_person(seed: int, seconds: float, engine: str) -> tuple[np.ndarray, np.ndarray]:
    """(speech [N], coefficients [T, 257]) of subject `seed` talking for `seconds`."""
    speech = utterance_for_duration(seconds, seed, SAMPLE_RATE, engine)
    subject = sample_subject(seed)
    frames = int(round(seconds * 25))
    motion = generate_motion(speech.audio, SAMPLE_RATE, subject.style, seed, frames, speech.phones)
    return speech.audio, subject.coeffs(motion.expression, motion.angles, motion.translation)


def own_truth_reference(truth_stats: dict, others: list[dict], seconds: float, engine: str,
                        utterances: int = 8) -> dict:
    """Ranks of the person's own true head motion on `utterances` other stretches of speech."""
    style = sample_subject(PERSON_SEED).style
    runs = []
    for k in range(utterances):
        seed = 70_000 + k
        speech = utterance_for_duration(seconds, seed, SAMPLE_RATE, engine)
        motion = generate_motion(speech.audio, SAMPLE_RATE, style, seed, int(round(seconds * 25)), speech.phones)
        stats = pose_statistics(motion.angles)
        own = pose_statistics_distance(stats, truth_stats)
        other_distances = [pose_statistics_distance(stats, s) for s in others]
        runs.append((1 + sum(d < own for d in other_distances), own, min(other_distances)))
    return {"ranks": [r for r, _, _ in runs], "rank_1_utterances": sum(r == 1 for r, _, _ in runs),
            "mean_distance_to_own_truth": round(float(np.mean([o for _, o, _ in runs])), 4),
            "mean_nearest_other_distance": round(float(np.mean([n for _, _, n in runs])), 4)}


def calibrated_on_training_audio(net, workspace: Path, uncalibrated: np.ndarray) -> np.ndarray:
    """The uncalibrated prediction mapped by gains fitted on the forward (trained-on) training audio."""
    person = load_person(workspace)
    train, _ = person_split(len(person.motion), 300, 0.1)
    with torch.no_grad():
        out, _ = net.eval()(torch.as_tensor(person.windows[train])[None])
        pose = net.decode_prediction(out[0])[:, MOTION_POSE]
    scale, shift = fit_pose_calibration(pose, torch.as_tensor(person.motion[train][:, MOTION_POSE]))
    motion = uncalibrated.copy()
    motion[:, MOTION_POSE] = motion[:, MOTION_POSE] * scale.numpy() + shift.numpy()
    return motion


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=30)
    parser.add_argument("--clips", type=int, default=8, help="train clips per word (val: a quarter)")
    parser.add_argument("--pretrain-steps", type=int, default=600)
    parser.add_argument("--finetune-epochs", type=int, default=100, help="the paper's 100")
    parser.add_argument("--person-seconds", type=float, default=44.0, help="workspace clip + held-out speech")
    parser.add_argument("--others", type=int, default=12, help="other synthetic persons for the pose comparison")
    parser.add_argument("--rhythm-seeds", type=int, default=32, help="rhythm seeds for the rank distribution")
    parser.add_argument("--channels", default="8,16,32,32,32")
    parser.add_argument("--fc", default="128,64")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--normalize-targets", action="store_true", help="per-dimension target statistics")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--engine", default="builtin", choices=["builtin", "espeak", "auto"])
    parser.add_argument("--no-variety", action="store_true",
                        help="the corpus's speech in each subject's plain voice, clean and dry (synth/variety.py)")
    parser.add_argument("--result", default=str(RESULT))
    parser.add_argument("--workdir", default=None, help="keep intermediate files here (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_motion_personal_"))
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"{name}: {timings[name]} s", flush=True)

    start = time.perf_counter()
    words = list(VOCABULARY[:args.words])
    variety = VarietyConfig(enabled=not args.no_variety)
    write_truth_lrw(work / "lrw", words, args.clips, args.engine, variety)
    samples, coeffs = speaking_person(PERSON_SEED, args.person_seconds, args.engine)
    clip_frames = int(CLIP_SECONDS * 25)
    write_speech_truth_workspace(work / "person", samples[:clip_frames * SAMPLES_PER_VIDEO_FRAME],
                                 coeffs[:clip_frames])
    timed("synthetic_world_s", start)

    start = time.perf_counter()
    result = preprocess_lrw(work / "lrw", work / "cache", coeffs="truth", progress=False)
    timed("lrw_preprocess_s", start)

    network = NetworkConfig(channels=tuple(int(c) for c in args.channels.split(",")),
                            fc_sizes=tuple(int(c) for c in args.fc.split(",")), lstm_hidden=args.hidden)
    pre_config = PretrainConfig(
        cache=str(work / "cache"), run_dir=str(work / "pretrain"), epochs=None, network=network,
        morphable_model="synthetic", val_clips=256, normalize_targets=args.normalize_targets,
        train=TrainConfig(steps=args.pretrain_steps, batch_size=16, num_workers=0, log_every=100,
                          eval_every=max(args.pretrain_steps // 3, 1), checkpoint_every=args.pretrain_steps,
                          device="cpu"),
    )
    start = time.perf_counter()
    pretrained = pretrain(pre_config)
    timed("pretrain_s", start)

    ft_config = FinetuneConfig(
        pretrained=str(pretrained), run_dir=str(work / "finetune"), epochs=args.finetune_epochs,
        morphable_model="synthetic",  # the default pose_rhythm (on); measured off below too
        train=TrainConfig(steps=1, batch_size=16, num_workers=0, log_every=100, eval_every=500,
                          checkpoint_every=10**6, device="cpu"),
    )
    start = time.perf_counter()
    finetuned, _ = finetune(work / "person", ft_config)
    timed("finetune_s", start)

    # ---- measurement on the held-out speech (never seen by any stage)
    held_audio = samples[clip_frames * SAMPLES_PER_VIDEO_FRAME:]
    held_truth = coeffs[clip_frames:]  # [T, 257]
    truth_motion = motion_from_coeffs(held_truth)
    face = load_morphable_model("synthetic")
    identity = held_truth[0, IDENTITY]
    true_marks = motion_landmarks(face, truth_motion, identity)
    tuned = load_motion_model(finetuned)
    calibration = {"gain": tuned.pose_scale.double().numpy().round(3).tolist(),
                   "shift": tuned.pose_shift.double().numpy().round(4).tolist(),
                   "rhythm_frequency_hz": tuned.pose_rhythm_frequency.double().numpy().round(4).tolist(),
                   "rhythm_std": tuned.pose_rhythm_std.double().numpy().round(5).tolist()}
    predictions = {"finetuned": predict_motion(tuned, held_audio, bf16=False)}
    seed_predictions = [predict_motion(tuned, held_audio, bf16=False, seed=s)[:, MOTION_ANGLES] for s in range(args.rhythm_seeds)]
    activity = {"held_out_mean": round(float(speech_activity(held_audio).mean()), 4),
                "workspace_clip_mean": round(float(speech_activity(samples[:clip_frames * SAMPLES_PER_VIDEO_FRAME]).mean()), 4)}
    person = load_person(work / "person")
    train_frames, _ = person_split(len(person.motion), 300, 0.1)
    tuned.reset_pose_rhythm()
    tuned.set_pose_calibration(*person_pose_calibration(tuned, person.windows[train_frames],
                                                        person.motion[train_frames]))
    predictions["finetuned_no_rhythm"] = predict_motion(tuned, held_audio, bf16=False)
    tuned.reset_pose_calibration()
    predictions["finetuned_uncalibrated"] = predict_motion(tuned, held_audio, bf16=False)
    predictions["finetuned_calibrated_on_training_audio"] = calibrated_on_training_audio(
        tuned, work / "person", predictions["finetuned_uncalibrated"])
    predictions["pretrained_only"] = predict_motion(load_motion_model(pretrained), held_audio, bf16=False)
    person_train = coeffs[:300]
    baseline = truth_motion.copy()
    baseline[:, MOTION_EXPRESSION] = person_train[:, EXPRESSION].mean(0)  # the person's mean expression, truth pose
    predictions["mean_expression"] = baseline
    corpus = np.concatenate([read_record(p).motion[:, MOTION_EXPRESSION] for p in split_records(work / "cache", "train")])
    lrw_baseline = truth_motion.copy()
    lrw_baseline[:, MOTION_EXPRESSION] = corpus.mean(0)  # the pretraining corpus's mean expression
    predictions["lrw_mean_expression"] = lrw_baseline
    lmds = {name: lmd(motion_landmarks(face, m, identity), true_marks) for name, m in predictions.items()}
    print("LMD (224 px crop):", {k: round(v, 4) for k, v in lmds.items()}, flush=True)

    held_seconds = len(held_audio) / SAMPLE_RATE
    truth_stats = pose_statistics(held_truth[:, ANGLES])
    others = {}
    for k in range(args.others):
        seed = 5000 + k
        _, other = speaking_person(seed, held_seconds, args.engine)
        others[seed] = pose_statistics(other[:, ANGLES])
    pose = {}
    for name in ("finetuned", "finetuned_no_rhythm", "finetuned_uncalibrated",
                 "finetuned_calibrated_on_training_audio", "pretrained_only"):
        stats = pose_statistics(predictions[name][:, MOTION_ANGLES])
        own = pose_statistics_distance(stats, truth_stats)
        other_distances = {seed: pose_statistics_distance(stats, s) for seed, s in others.items()}
        pose[name] = {
            "std": stats["std"].round(4).tolist(), "frequency_hz": stats["frequency"].round(3).tolist(),
            "distance_to_own_truth": round(own, 4),
            "nearest_other_distance": round(min(other_distances.values()), 4),
            "closer_than_every_other_person": bool(own < min(other_distances.values())),
            "rank_of_own_among_persons": 1 + sum(d < own for d in other_distances.values()),
            "distance_to_each_other_person": {str(seed): round(d, 4) for seed, d in other_distances.items()},
        }
    seeds = []
    for angles in seed_predictions:
        stats = pose_statistics(angles)
        own = pose_statistics_distance(stats, truth_stats)
        other_distances = [pose_statistics_distance(stats, s) for s in others.values()]
        seeds.append({"frequency_hz": stats["frequency"].round(3).tolist(), "distance_to_own_truth": round(own, 4),
                      "nearest_other_distance": round(min(other_distances), 4),
                      "rank_of_own_among_persons": 1 + sum(d < own for d in other_distances)})
    ranks = [s["rank_of_own_among_persons"] for s in seeds]
    pose["rhythm_seeds"] = {
        "runs": seeds, "ranks": ranks, "rank_1_seeds": sum(r == 1 for r in ranks),
        "mean_distance_to_own_truth": round(float(np.mean([s["distance_to_own_truth"] for s in seeds])), 4),
        "mean_nearest_other_distance": round(float(np.mean([s["nearest_other_distance"] for s in seeds])), 4),
    }
    print(f"ranks over rhythm seeds 0..{args.rhythm_seeds - 1}:", ranks, flush=True)
    pose["own_truth_on_other_speech"] = own_truth_reference(truth_stats, list(others.values()), held_seconds,
                                                            args.engine)
    print("pose:", json.dumps(pose, indent=1), flush=True)

    report = {
        "benchmark": "bench_motion_personal",
        "machine": machine_info(),
        "note": "CPU shared with other jobs while measured (timings under load); synthetic LRW is truth-only "
                "(blank frames, --coeffs truth)",
        "setup": {
            "words": args.words, "train_clips_per_word": args.clips, "lrw_records": result.written + result.skipped,
            "pretrain_steps": args.pretrain_steps, "batch_size": 16, "finetune_epochs": args.finetune_epochs,
            "network": dataclasses.asdict(network), "person_seed": PERSON_SEED, "person_clip_s": CLIP_SECONDS,
            "normalize_targets": args.normalize_targets, "held_out_speech_s": round(held_seconds, 2), "other_persons": args.others, "engine": args.engine,
            "corpus_speech_variety": dataclasses.asdict(variety),
            "loss": dataclasses.asdict(LossConfig()),
        },
        "lmd_px_224": {k: round(v, 4) for k, v in lmds.items()},
        "lmd_baselines": "mean_expression: the person's mean over their 300 training frames; lrw_mean_expression: "
                         "the pretraining corpus's mean; both with the true pose",
        "lmd_order_holds": bool(lmds["finetuned"] < lmds["pretrained_only"] < lmds["mean_expression"]),
        "lmd_order_holds_without_rhythm": bool(
            lmds["finetuned_no_rhythm"] < lmds["pretrained_only"] < lmds["mean_expression"]),
        "pose_calibration": {**calibration, "note": "fitted by finetune (calibrate_pose: true): per pose dim "
                             "gain = true std on the 300 training frames / the net's std on the reversed "
                             "training audio, capped at 1 with the rhythm on (the rhythm carries the rest of "
                             "the variance), clamped to [0.5, 4]; rhythm: per pose dim an oscillation with "
                             "constant swing and wandering phase (0.1 rad steps per frame) at the dominant "
                             "frequency of the true training pose, its variance the leftover variance divided by the mean squared speech activity of the training "
                             "frames; the sampled rhythm is multiplied by the speech activity; both applied before "
                             "the head-motion-scale control"},
        "pose_truth": {"std": truth_stats["std"].round(4).tolist(),
                       "frequency_hz": truth_stats["frequency"].round(3).tolist()},
        "pose": pose,
        "speech_activity": {**activity, "note": "mean of the rhythm's speech-activity gate (activity.py)"},
        "timings_s": timings,
        "command": " ".join(sys.argv),
    }
    out = Path(args.result)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_result(out, report)
    print(f"wrote {out}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
