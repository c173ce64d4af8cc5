"""3D reconstruction on the synthetic world: accuracy against ground truth, and preprocess throughput.

    .venv/bin/python benchmarks/bench_recon.py [--work DIR] [--train-steps N] [--frames T]

1. Writes synthetic person clips: training subjects (seeds 101..) and one held-out subject (seed 7).
2. Trains a small R-Net (resnet18 backbone) from scratch on the training clips' frames + truth
   landmarks with `talkface recon train`'s code path (the shared Trainer).
3. Runs `talkface preprocess` on the held-out clip with its truth landmarks (--landmarks), that
   R-Net, and the whole-clip refinement; times every step.
4. Scores the coefficients: mean 68-landmark reprojection error at 224 px against the truth
   landmarks (R-Net alone and after refinement), Pearson r of the mouth expression directions
   with the truth, and the largest change of an identity coefficient across frames.
5. R-Net inference throughput (frames/s, batch 64) for resnet50 (the public layout) and resnet18,
   on CPU and on CUDA when present.
Writes benchmarks/results/recon_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from talkface.benchmarking import machine_info, write_result
from talkface.config import load_config
from talkface.face3d.camera import Camera
from talkface.face3d.coeffs import EXPRESSION, IDENTITY
from talkface.face3d.model import load_morphable_model
from talkface.face3d.synthetic import EXPRESSION_DIRECTIONS
from talkface.pipelines.preprocess import PreprocessConfig, preprocess
from talkface.recon.alignment import apply_transform
from talkface.recon.inference import keypoints_2d, predict_coeffs
from talkface.recon.model import ReconNet, load_rnet
from talkface.recon.train import ReconConfig, train_rnet
from talkface.synth.world import write_person
from talkface.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
MOUTH = ("jaw_open", "lip_spread", "lip_round")


def clip(work: Path, seed: int, seconds: float) -> Path:
    folder = work / f"person_{seed}_{seconds:g}s"
    if not (folder / "truth" / "landmarks.npy").is_file():
        write_person(folder, seconds=seconds, seed=seed, engine="builtin", progress=False)
    return folder


def train(work: Path, folders: list[Path], steps: int) -> tuple[Path, float]:
    overrides = [
        f"run_dir={work / 'rnet_run'}", "morphable_model=synthetic", "model.backbone=resnet18",
        f"data.clips=[{', '.join(str(f) for f in folders)}]", f"train.steps={steps}", "train.batch_size=8",
        "train.num_workers=0", "train.log_every=10", f"train.checkpoint_every={steps}", "lr=1e-3",
    ]
    config = load_config(ReconConfig, ROOT / "configs" / "recon.yaml", overrides)
    start = time.perf_counter()
    checkpoint = train_rnet(config, resume=True)
    return checkpoint, time.perf_counter() - start


def score(workspace: Path, truth: Path, coeffs: np.ndarray, model) -> dict:
    ws = Workspace(workspace)
    transforms = ws.load_array("transforms.npy")
    truth_landmarks = np.load(truth / "truth" / "landmarks.npy")[: len(coeffs)]
    target = apply_transform(transforms, truth_landmarks.astype(np.float64))  # [T, 68, 2] crop px
    predicted = keypoints_2d(model, torch.from_numpy(coeffs), Camera()).numpy()
    truth_coeffs = np.load(truth / "truth" / "coeffs.npy")[: len(coeffs)]
    correlations = {}
    for name in MOUTH:
        column = EXPRESSION.start + EXPRESSION_DIRECTIONS[name]
        correlations[name] = {"r": float(np.corrcoef(coeffs[:, column], truth_coeffs[:, column])[0, 1]),
                              "truth_std": float(truth_coeffs[:, column].std())}
    return {
        "landmark_error_px_224": float(np.linalg.norm(predicted - target, axis=-1).mean()),
        "mouth_expression_correlation": correlations,
        "identity_max_change_across_frames": float(np.ptp(coeffs[:, IDENTITY], axis=0).max()),
    }


def rnet_throughput(backbone: str, device: str, batch: int = 64, repeats: int = 3) -> float:
    net = ReconNet(backbone=backbone).to(device).eval()
    images = torch.rand(batch, 3, 224, 224, device=device)
    context = torch.autocast("cuda", torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), context:
        net(images)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            net(images)
        if device == "cuda":
            torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=None, help="folder for clips and runs (default: a temporary folder)")
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument("--train-clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--throughput-only", action="store_true", help="only the R-Net inference throughput")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results: dict = {"machine": machine_info()}
    if not args.throughput_only:
        work = Path(args.work or tempfile.mkdtemp(prefix="bench_recon_"))
        results.update(accuracy(work, args))
    results["rnet_inference_frames_per_s_batch64"] = {
        f"{backbone}_{dev}": round(rnet_throughput(backbone, dev, repeats=1 if dev == "cpu" else 20), 1)
        for backbone in ("resnet50", "resnet18") for dev in sorted({"cpu", device})
    }
    out = ROOT / "benchmarks" / "results" / f"recon_{device}.json"
    write_result(out, results)
    print(json.dumps(results, indent=2))
    print(f"wrote {out}")


def accuracy(work: Path, args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    training = [clip(work, 101 + k, 4.0) for k in range(args.train_clips)]
    held_out = clip(work, 7, args.frames / 25 + 0.04)
    synth_seconds = time.perf_counter() - start
    checkpoint, train_seconds = train(work, training, args.train_steps)
    config = load_config(PreprocessConfig, ROOT / "configs" / "preprocess.yaml", [
        "morphable_model=synthetic", f"frames={args.frames}", "landmarks.backend=file",
        f"landmarks.file={held_out / 'truth' / 'landmarks.npy'}", f"rnet={checkpoint}",
    ])
    result = preprocess(held_out / "clip.mp4", work / "workspace", config, progress=False)
    model = load_morphable_model("synthetic")
    ws = Workspace(work / "workspace")
    rnet_only = predict_coeffs(load_rnet(checkpoint), ws.load_array("crops.npy")).numpy()
    total = sum(result.seconds.values())
    without_landmarks = total - result.seconds.get("landmarks", 0.0)
    return {
        "setup": {"train_clips": args.train_clips, "train_frames": 100 * args.train_clips,
                  "train_steps": args.train_steps, "train_batch": 8, "backbone": "resnet18",
                  "held_out_seed": 7, "frames": args.frames, "refine": json.loads(json.dumps(vars(config.refine)))},
        "seconds": {"synthesise_clips": round(synth_seconds, 1), "train_rnet": round(train_seconds, 1),
                    **{f"preprocess_{k}": round(v, 2) for k, v in result.seconds.items()}},
        "preprocess_frames_per_s": {
            "landmarks_from_file_included": round(args.frames / total, 2),
            "landmarks_excluded": round(args.frames / without_landmarks, 2),
            "excluding_coeffs_step": round(args.frames / (total - result.seconds["coeffs"]), 2),
        },
        "rnet_only": score(work / "workspace", held_out, rnet_only, model),
        "rnet_plus_refinement": score(work / "workspace", held_out, ws.load_array("coeffs.npy"), model),
    }


if __name__ == "__main__":
    main()
