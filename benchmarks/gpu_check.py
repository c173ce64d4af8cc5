"""Every GPU benchmark row in one run (scripts/gpu_check.sh calls this after the CUDA tests).

    PYTHONPATH=. python benchmarks/gpu_check.py [--out JSON] [--tiny]

Rows, on the CUDA device at the paper's sizes:
    rnet_batch64     R-Net (ResNet-50, Deep3DFaceRecon's layout) inference, batch 64, bf16 autocast
    render           3D render + composite into the 256 px window (`talkface bench`'s stage; the
                     rasterizer `auto` picks: nvdiffrast when installed)
    gan_bf16         the memory GAN generator on those windows, batch 16, bf16
    end_to_end       audio -> mp4 at a 256 px window (motion, matching, render, GAN, paste-back, encoding)
    person_finetune  a whole person at paper size (configs/person.yaml: 300 frames, 256 px window,
                     800 refinement steps, 100 motion epochs), networks from scratch (the same cost as
                     from the general models); the GAN runs `gan_epochs` of its 60 and its time is
                     projected linearly to 60 (setup included, so an upper bound)
Without CUDA (or with --tiny) every row runs at tiny sizes as a smoke test of the same code, and the
rows that need CUDA (rnet_batch64, bf16) say "skipped". Writes benchmarks/results/gpu_check_<cuda|cpu>.json
with the machine named. Networks are randomly initialised and the person is synthetic: no data or weights.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from bench_recon import rnet_throughput
from talkface.benchmarking import machine_info, write_result
from talkface.config import load_config
from talkface.pipelines.bench import BFM_VERTICES, BenchConfig, run_bench
from talkface.render.rasterize import resolve_backend

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PAPER_GAN_EPOCHS = 60  # configs/gan_finetune.yaml

SIZES = {
    "paper": {"frames": 100, "window_size": 256, "frame_size": 512, "person_frames": 300, "refine_steps": 800,
              "motion_epochs": 100, "gan_epochs": 2, "morphable_model": f"synthetic:{BFM_VERTICES}", "small_nets": False},
    "tiny": {"frames": 25, "window_size": 64, "frame_size": 128, "person_frames": 40, "refine_steps": 2,
             "motion_epochs": 1, "gan_epochs": 1, "morphable_model": "synthetic", "small_nets": True},
}


def timed(run: Callable[[], Any]) -> tuple[Any, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return value, round(time.perf_counter() - start, 2)


def rnet_row(cuda: bool) -> dict[str, Any]:
    if not cuda:
        return {"skipped": "needs CUDA"}
    return {"frames_per_second": round(rnet_throughput("resnet50", "cuda", batch=64, repeats=20), 1),
            "batch_size": 64, "bf16": True}


def pipeline_rows(sizes: dict[str, Any], device: str) -> dict[str, Any]:
    """render, gan_bf16 and end_to_end from `talkface bench`'s stages."""
    config = BenchConfig(frames=sizes["frames"], window_size=sizes["window_size"], frame_size=sizes["frame_size"],
                         device=device, stages=("render", "gan", "end_to_end"))
    stages = run_bench(config, say=lambda line: print(f"  {line}"))["stages"]
    gan = stages["gan"]
    if not gan.get("bf16"):
        gan = {**gan, "note": "float32: bf16 needs CUDA"}
    rasterizer = resolve_backend("auto", torch.device(device))  # what `rasterizer: auto` ran
    return {"render": {**stages["render"], "rasterizer": rasterizer}, "gan_bf16": gan,
            "end_to_end": {**stages["end_to_end"], "rasterizer": rasterizer}}


def person_row(root: Path, sizes: dict[str, Any], device: str) -> dict[str, Any]:
    """A whole person (preprocess, motion fine-tune, GAN fine-tune) on a synthetic clip, timed per stage."""
    from talkface.gan.train import finetune as gan_finetune
    from talkface.motion.train import finetune as motion_finetune
    from talkface.pipelines.person import PersonConfig
    from talkface.pipelines.preprocess import preprocess
    from talkface.synth.world import write_person

    clip = write_person(root / "person", seconds=sizes["person_frames"] / 25 + 0.5, seed=3, size=sizes["frame_size"],
                        engine="builtin", progress=False)
    overrides = [
        "motion.pretrained=null", "gan.pretrained=null", f"motion.run_dir={root / 'motion'}",
        f"gan.run_dir={root / 'gan'}", f"preprocess.frames={sizes['person_frames']}",
        f"preprocess.window_size={sizes['window_size']}", f"preprocess.refine.steps={sizes['refine_steps']}",
        f"preprocess.morphable_model={sizes['morphable_model']}", "preprocess.rnet=null",
        "preprocess.landmarks.backend=file", f"preprocess.landmarks.file={clip / 'truth' / 'landmarks.npy'}",
        f"preprocess.device={device}", f"motion.train.device={device}", f"gan.train.device={device}",
        f"motion.epochs={sizes['motion_epochs']}", f"gan.epochs={sizes['gan_epochs']}",
    ]
    if sizes["small_nets"]:
        overrides += ["motion.epoch_sequences=16", "motion.train.batch_size=4", "motion.network.channels=[8,16,32,32,32]",
                      "motion.network.fc_sizes=[64,32]", "motion.network.lstm_hidden=32", "gan.model.ngf=16",
                      "gan.model.ndf=16", "gan.model.memory_size=256", "gan.val_frames=4", "gan.train_frames=8"]
    config = load_config(PersonConfig, REPO / "configs" / "person.yaml", overrides)
    workspace = root / "workspace"
    _, preprocess_s = timed(lambda: preprocess(clip / "clip.mp4", workspace, config.preprocess, progress=False))
    _, motion_s = timed(lambda: motion_finetune(workspace, config.motion))
    _, gan_s = timed(lambda: gan_finetune(workspace, config.gan))
    gan_projected = gan_s * PAPER_GAN_EPOCHS / sizes["gan_epochs"]
    return {"frames": sizes["person_frames"], "window_size": sizes["window_size"],
            "refine_steps": sizes["refine_steps"], "motion_epochs": sizes["motion_epochs"],
            "gan_epochs_run": sizes["gan_epochs"], "seconds": {"preprocess": preprocess_s, "motion": motion_s,
                                                              "gan": gan_s},
            "gan_seconds_projected_60_epochs": round(gan_projected, 1),
            "total_seconds_projected": round(preprocess_s + motion_s + gan_projected, 1)}


def run(tiny: bool) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    sizes = SIZES["tiny" if tiny or not cuda else "paper"]
    device = "cuda" if cuda else "cpu"
    result: dict[str, Any] = {"device": torch.cuda.get_device_name() if cuda else "cpu",
                              "sizes": "tiny" if sizes is SIZES["tiny"] else "paper", "rows": {}}
    rows = result["rows"]
    start = time.perf_counter()
    print("gpu_check: rnet_batch64")
    rows["rnet_batch64"] = rnet_row(cuda)
    print("gpu_check: render, gan_bf16, end_to_end")
    rows.update(pipeline_rows(sizes, device))
    print("gpu_check: person_finetune")
    with tempfile.TemporaryDirectory(prefix="talkface-gpu-check-") as tmp:
        rows["person_finetune"] = person_row(Path(tmp), sizes, device)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    result["machine"] = machine_info()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="result file (default: benchmarks/results/gpu_check_<cuda|cpu>.json)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes even on CUDA (a smoke test)")
    args = parser.parse_args()
    result = run(args.tiny)
    kind = "cuda" if torch.cuda.is_available() else "cpu"
    out = args.out or RESULTS / f"gpu_check_{kind}{'_tiny' if args.tiny and kind == 'cuda' else ''}.json"
    write_result(out, result)
    for name, row in result["rows"].items():
        figure = row.get("skipped") or row.get("frames_per_second") or row.get("total_seconds_projected")
        print(f"  {name:<16} {figure}")
    print(f"wrote {out} in {result['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
