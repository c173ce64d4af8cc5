"""Memory-GAN quality on a synthetic person: pretrain on synthetic LRW, fine-tune on 300 frames.

    .venv/bin/python benchmarks/bench_gan_quality.py [--window 128] [--ngf 32] [--epochs 3] [--threads 1]

Issue 7's "must show": on the person's held-out frames (never trained on), the GAN output vs the
real frames against the composited render vs the real frames:

- PSNR gain (target >= +3 dB) and SSIM of both;
- flicker: mean |frame t - frame t-1| inside the face (where the composited render differs from
  the real crop, in either frame) of the GAN output, against the same for the real clip (target:
  within 20 %);
- fine-tuning seconds per epoch of 300 frames.

The paper's setting (256 px, ngf 64, batch 1, 60 epochs) takes hours on a CPU; the defaults here
are a 128 px window, ngf 32, batch 4, lr 2e-4, 3 epochs: the numbers show the method works and
what an epoch costs, the lead re-runs at full size on a GPU. Writes benchmarks/results/gan_quality_cpu.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from talkface.benchmarking import machine_info, write_result
from talkface.gan.data import render_window, to_float
from talkface.gan.inference import load_enhancer
from talkface.gan.pairs import OUTPUT
from talkface.gan.train import GanFinetuneConfig, GanModelConfig, GanPretrainConfig, finetune
from talkface.metrics import psnr, ssim
from talkface.pipelines.gan_pretrain import pretrain_on_lrw
from talkface.synth.truth_workspace import write_truth_workspace
from talkface.synth.world import write_lrw, write_person
from talkface.train.config import TrainConfig
from talkface.workspace import Workspace

RESULTS = Path(__file__).resolve().parent / "results"
TRAIN_FRAMES = 300
VAL_FRAMES = 50
PERSON_SECONDS = (TRAIN_FRAMES + VAL_FRAMES) / 25
PERSON_SEED = 7


def flicker(frames: np.ndarray, face: np.ndarray) -> float:
    """Mean |frame t - frame t-1| over face pixels; frames [T, 3, S, S], face bool [T, S, S]."""
    step = np.abs(np.diff(frames, axis=0)).mean(axis=1)  # [T-1, S, S]
    region = face[1:] | face[:-1]
    return float(step[region].mean())


def held_out(workspace: Path) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Windows [N, 9, S, S], renders and reals [N, 3, S, S] of the clip's last VAL_FRAMES frames."""
    ws = Workspace(workspace)
    renders, reals = ws.load_array(OUTPUT), ws.load_array("window_crops.npy")
    frames = range(len(renders) - VAL_FRAMES, len(renders))
    windows = torch.stack([render_window(renders, t) for t in frames])
    return windows, to_float(renders[frames.start:]).numpy(), to_float(reals[frames.start:]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=128, choices=[64, 128, 256])
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--words", type=int, default=6, help="synthetic LRW words (2 clips each)")
    parser.add_argument("--pretrain-epochs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs over the 300 frames")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared, loaded machine OpenMP threads stall each other)")
    parser.add_argument("--work", type=Path, default=None, help="keep the data and runs here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS / "gan_quality_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_gan_quality_"))
    frame_size = args.window + args.window // 2
    model = GanModelConfig(ngf=args.ngf, ndf=64, train_key_backbone=False)
    train = TrainConfig(batch_size=args.batch, num_workers=0, log_every=25, checkpoint_every=100000,
                        image_every=None, eval_every=None)
    timings: dict[str, float] = {}
    try:
        start = time.perf_counter()
        write_lrw(work / "lrw", words=args.words, clips_per_word=2, size=frame_size, splits=("train",),
                  engine="builtin", progress=False)
        person = write_person(work / "person", seconds=PERSON_SECONDS, seed=PERSON_SEED, size=frame_size,
                              engine="builtin", progress=False)
        workspace = write_truth_workspace(person, work / "ws", window_size=args.window).root
        timings["data_s"] = time.perf_counter() - start

        start = time.perf_counter()
        pretrained = pretrain_on_lrw(GanPretrainConfig(
            lrw_root=str(work / "lrw"), cache=str(work / "cache"), run_dir=str(work / "pretrain"),
            window_size=args.window, val_split=None, epochs=args.pretrain_epochs, lr=args.lr, model=model,
            train=train))
        timings["pretrain_s"] = time.perf_counter() - start

        config = GanFinetuneConfig(pretrained=str(pretrained), run_dir=str(work / "finetune"),
                                   train_frames=TRAIN_FRAMES, val_frames=VAL_FRAMES, epochs=args.epochs, lr=args.lr,
                                   train=train)
        finetune(workspace, GanFinetuneConfig(**{**vars(config), "epochs": None, "run_dir": str(work / "warm"),
                                                 "train": TrainConfig(**{**vars(train), "steps": 1})}))
        start = time.perf_counter()  # renders are cached by the warm-up run: this times training only
        checkpoint, scores = finetune(workspace, config)
        timings["finetune_s"] = time.perf_counter() - start

        windows, renders, reals = held_out(workspace)
        output, _ = load_enhancer(checkpoint, device="cpu").enhance(windows)
        output = output.numpy()
        face = (np.abs(renders - reals).max(axis=1) > 1.5 / 255)  # [N, S, S] where the render changes the frame
        gan_flicker, real_flicker = flicker(output, face), flicker(reals, face)
        result = {
            "benchmark": "memory GAN quality on held-out frames of a synthetic person (issue 7)",
            "setting": {"window_px": args.window, "ngf": args.ngf, "levels": int(np.log2(args.window)),
                        "mapping": model.mapping, "identity_encoder": model.identity_encoder,
                        "key_backbone": "random, frozen", "batch_size": args.batch, "lr": args.lr,
                        "lambda_mask_finetune": config.loss.lambda_mask,
                        "pretrain": f"synthetic LRW, {args.words} words x 2 clips x 29 frames, "
                                    f"{args.pretrain_epochs} epoch(s)",
                        "finetune": f"first {TRAIN_FRAMES} frames, {args.epochs} epochs",
                        "held_out_frames": VAL_FRAMES},
            "psnr_gan": round(psnr(output, reals), 3),
            "psnr_render": round(psnr(renders, reals), 3),
            "ssim_gan": round(ssim(output, reals), 4),
            "ssim_render": round(ssim(renders, reals), 4),
            "flicker_gan": round(gan_flicker, 5),
            "flicker_real": round(real_flicker, 5),
            "finetune_validation": {k: round(v, 4) for k, v in scores.items()},
            "finetune_s_per_epoch_300_frames": round(timings["finetune_s"] / args.epochs, 1),
            "seconds": {k: round(v, 1) for k, v in timings.items()},
        }
        result["psnr_gain_db"] = round(result["psnr_gan"] - result["psnr_render"], 3)
        result["flicker_ratio_gan_to_real"] = round(gan_flicker / real_flicker, 3)
        result["targets_met"] = {"psnr_gain_ge_3db": result["psnr_gain_db"] >= 3.0,
                                 "ssim_improves": result["ssim_gan"] > result["ssim_render"],
                                 "flicker_within_20pct": abs(result["flicker_ratio_gan_to_real"] - 1.0) <= 0.2}
        result["machine"] = machine_info()
        write_result(args.out, result)
        for key in ("psnr_gan", "psnr_render", "psnr_gain_db", "ssim_gan", "ssim_render", "flicker_gan",
                    "flicker_real", "flicker_ratio_gan_to_real", "finetune_s_per_epoch_300_frames"):
            print(f"{key:34s} {result[key]}")
        print(f"wrote {args.out}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
