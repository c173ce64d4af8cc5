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
    real_heldout     (only with --real-clip) `talkface heldout` on a real clip at the paper's sizes
                     (configs/heldout.yaml): fine-tuned from the general motion model given, the GAN from
                     scratch (no paper-size general GAN exists without LRW) for as many of its 60 epochs as
                     fit --gan-budget-s at person_finetune's measured pace. Landmarks come from a file
                     (dlib's shape predictor is too large to carry to a GPU machine), so the mouth LMD
                     here is of the drawn landmarks; bench_heldout.py --rescore re-scores the kept videos
                     with dlib where it is installed.
--gan-set KEY=VALUE changes the person's GAN fine-tuning in person_finetune and real_heldout (e.g.
train.batch_size=8 lr=3e-4); --person-gan-epochs runs that many GAN epochs in person_finetune (60: no
projection); --video-frames makes end_to_end's video that long (its clip stays `frames`).
Without CUDA (or with --tiny) every row runs at tiny sizes as a smoke test of the same code, and the
rows that need CUDA (rnet_batch64, bf16) say "skipped". Writes benchmarks/results/gpu_check_<cuda|cpu>.json
with the machine named, after every row (a run stopped by a time limit keeps the rows it finished).
The synthetic rows' networks are randomly initialised and the person is synthetic: no data or weights.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

from bench_recon import rnet_throughput
from talkface.benchmarking import write_result
from talkface.config import load_config
from talkface.pipelines.bench import BFM_VERTICES, BenchConfig, run_bench
from talkface.pipelines.heldout import HeldoutConfig, HeldoutPaths, run_heldout
from talkface.render.rasterize import resolve_backend

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PAPER_GAN_EPOCHS = 60  # configs/gan_finetune.yaml
SMALL_GAN = ("gan.model.ngf=16", "gan.model.ndf=16", "gan.model.memory_size=256")  # a person config's tiny GAN
UNKNOWN_PACE_GAN_EPOCHS = 10  # real_heldout's GAN without person_finetune's pace: ~3 min on the H200 (17 s an epoch)

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


PIPELINE_STAGES = {"render": "render", "gan_bf16": "gan", "end_to_end": "end_to_end"}  # row -> `talkface bench` stage


def pipeline_rows(sizes: dict[str, Any], device: str, names: list[str], video_frames: int | None) -> dict[str, Any]:
    """The rows `names` of render, gan_bf16 and end_to_end from `talkface bench`'s stages."""
    config = BenchConfig(frames=sizes["frames"], window_size=sizes["window_size"], frame_size=sizes["frame_size"],
                         video_frames=video_frames, device=device,
                         stages=tuple(PIPELINE_STAGES[name] for name in names))
    stages = run_bench(config, say=lambda line: print(f"  {line}"))["stages"]
    rasterizer = resolve_backend("auto", torch.device(device))  # what `rasterizer: auto` ran
    rows = {name: {**stages[PIPELINE_STAGES[name]]} for name in names}
    for name in {"render", "end_to_end"} & set(names):
        rows[name]["rasterizer"] = rasterizer
    if "gan_bf16" in rows and not rows["gan_bf16"].get("bf16"):
        rows["gan_bf16"]["note"] = "float32: bf16 needs CUDA"
    return rows


def person_row(root: Path, sizes: dict[str, Any], device: str, gan_set: list[str]) -> dict[str, Any]:
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
        *(f"gan.{override}" for override in gan_set),
    ]
    if sizes["small_nets"]:
        overrides += ["motion.epoch_sequences=16", "motion.train.batch_size=4", "motion.network.channels=[8,16,32,32,32]",
                      "motion.network.fc_sizes=[64,32]", "motion.network.lstm_hidden=32", *SMALL_GAN,
                      "gan.val_frames=4", "gan.train_frames=8"]
    config = load_config(PersonConfig, REPO / "configs" / "person.yaml", overrides)
    workspace = root / "workspace"
    _, preprocess_s = timed(lambda: preprocess(clip / "clip.mp4", workspace, config.preprocess, progress=False))
    _, motion_s = timed(lambda: motion_finetune(workspace, config.motion))
    _, gan_s = timed(lambda: gan_finetune(workspace, config.gan))
    gan_projected = gan_s * PAPER_GAN_EPOCHS / sizes["gan_epochs"]
    return {"frames": sizes["person_frames"], "window_size": sizes["window_size"],
            "refine_steps": sizes["refine_steps"], "motion_epochs": sizes["motion_epochs"],
            "gan_epochs_run": sizes["gan_epochs"], "gan_set": gan_set, "seconds": {"preprocess": preprocess_s, "motion": motion_s,
                                                              "gan": gan_s},
            "gan_seconds_projected_60_epochs": round(gan_projected, 1),
            "total_seconds_projected": round(preprocess_s + motion_s + gan_projected, 1)}


def real_heldout_row(out: Path, clip: Path, landmarks: Path, motion_general: Path, gan_epochs: int,
                     tiny: bool, gan_set: list[str]) -> dict[str, Any]:
    """`talkface heldout` on a real clip (configs/heldout.yaml, the paper's sizes unless tiny), the GAN from scratch."""
    overrides = ["person.preprocess.landmarks.backend=file", f"person.preprocess.landmarks.file={landmarks}",
                 f"person.motion.pretrained={motion_general}", "person.gan.pretrained=null",
                 f"person.gan.epochs={gan_epochs}", *(f"person.gan.{override}" for override in gan_set)]
    if tiny:
        overrides += ["person.preprocess.window_size=64", "person.preprocess.refine.steps=2", "person.motion.epochs=1",
                      *(f"person.{override}" for override in SMALL_GAN)]
    config = load_config(HeldoutConfig, REPO / "configs" / "heldout.yaml", overrides)
    result, seconds = timed(lambda: run_heldout(clip, out, config, progress=False))
    return {"clip": clip.name, "gan_epochs": gan_epochs, "overrides": overrides, "wall_seconds": seconds,
            **{key: result[key] for key in ("frames", "train_frames", "heldout_frames", "frame_size", "reconstruction",
                                            "audio_driven", "identity", "viseme_mouth", "checks", "seconds")}}


def keep_heldout(out: Path, archive: Path) -> None:
    """The run's report, scores and generated videos in one tar (what --rescore reads)."""
    paths = HeldoutPaths(out)
    with tarfile.open(archive, "w") as tar:
        for path in (paths.results, paths.report, paths.sheet, paths.arrays, *sorted(paths.videos.glob("*.mp4"))):
            tar.add(path, arcname=str(path.relative_to(out)))


def gan_epochs_within(budget_s: float, person: dict[str, Any] | None) -> int:
    """As many of the paper's GAN epochs as fit `budget_s` at person_finetune's pace (10 when it has none)."""
    if person is None or "seconds" not in person:
        return UNKNOWN_PACE_GAN_EPOCHS
    per_epoch = person["seconds"]["gan"] / person["gan_epochs_run"]
    return int(min(PAPER_GAN_EPOCHS, max(1, budget_s // per_epoch)))


def run(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    tiny = args.tiny or not cuda
    sizes = dict(SIZES["tiny" if tiny else "paper"])
    if args.person_gan_epochs is not None:
        sizes["gan_epochs"] = args.person_gan_epochs
    device = "cuda" if cuda else "cpu"
    result: dict[str, Any] = {"device": torch.cuda.get_device_name() if cuda else "cpu",
                              "sizes": "tiny" if tiny else "paper", "rows": {}}
    rows = result["rows"]
    start = time.perf_counter()

    def record(names: list[str], new_rows: Callable[[], dict[str, Any]]) -> None:
        """Run and write rows; a row that fails records its error and the next rows still run."""
        print(f"gpu_check: {', '.join(names)}")
        try:
            rows.update(new_rows())
        except Exception as error:  # noqa: BLE001 - one broken path must not cost the other rows
            traceback.print_exc()
            rows.update({name: {"error": f"{type(error).__name__}: {error}"} for name in names})
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        write_result(out, result)

    if "rnet_batch64" in args.rows:
        record(["rnet_batch64"], lambda: {"rnet_batch64": rnet_row(cuda)})
    pipeline = [name for name in args.rows if name in PIPELINE_STAGES]
    if pipeline:
        record(pipeline, lambda: pipeline_rows(sizes, device, pipeline, args.video_frames))
    if "person_finetune" in args.rows:
        with tempfile.TemporaryDirectory(prefix="talkface-gpu-check-") as tmp:
            record(["person_finetune"], lambda: {"person_finetune": person_row(Path(tmp), sizes, device, args.gan_set)})
    if args.real_clip is not None:
        epochs = args.gan_epochs or (1 if tiny else
                                     gan_epochs_within(args.gan_budget_s, rows.get("person_finetune")))
        with tempfile.TemporaryDirectory(prefix="talkface-gpu-check-heldout-") as tmp:
            record(["real_heldout"], lambda: {"real_heldout": real_heldout_row(
                Path(tmp), args.real_clip, args.real_landmarks, args.motion_general, epochs, tiny, args.gan_set)})
            if args.keep is not None and HeldoutPaths(Path(tmp)).results.is_file():
                keep_heldout(Path(tmp), args.keep)
    return result


ROWS = ("rnet_batch64", "render", "gan_bf16", "end_to_end", "person_finetune")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="result file (default: benchmarks/results/gpu_check_<cuda|cpu>.json)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes even on CUDA (a smoke test)")
    parser.add_argument("--rows", nargs="*", choices=ROWS, default=list(ROWS), help="the synthetic rows to run")
    parser.add_argument("--real-clip", type=Path, default=None, help="also the real_heldout row on this clip")
    parser.add_argument("--real-landmarks", type=Path, default=None,
                        help="the clip's 68 landmarks per 25 fps frame [T, 68, 2] .npy (e.g. a preprocessed "
                             "workspace's landmarks.npy)")
    parser.add_argument("--motion-general", type=Path, default=Path("checkpoints/general/motion_lrw.pt"))
    parser.add_argument("--gan-budget-s", type=float, default=120.0,
                        help="real_heldout's GAN epochs: as many of 60 as fit this at person_finetune's pace")
    parser.add_argument("--gan-epochs", type=int, default=None, help="real_heldout's GAN epochs (overrides the budget)")
    parser.add_argument("--gan-set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override of the person's GAN fine-tuning (gan_finetune.yaml keys; repeatable)")
    parser.add_argument("--person-gan-epochs", type=int, default=None,
                        help="person_finetune's GAN epochs (default 2 at paper size, projected to 60)")
    parser.add_argument("--video-frames", type=int, default=None, help="end_to_end's video length in frames")
    parser.add_argument("--keep", type=Path, default=None, help="real_heldout's report, scores and videos as a tar")
    args = parser.parse_args()
    if args.real_clip is not None and args.real_landmarks is None:
        parser.error("--real-clip needs --real-landmarks")
    kind = "cuda" if torch.cuda.is_available() else "cpu"
    out = args.out or RESULTS / f"gpu_check_{kind}{'_tiny' if args.tiny and kind == 'cuda' else ''}.json"
    result = run(args, out)
    for name, row in result["rows"].items():
        figure = (row.get("skipped") or row.get("error") or row.get("frames_per_second")
                  or row.get("total_seconds_projected") or row.get("checks"))
        print(f"  {name:<16} {figure}")
    print(f"wrote {out} in {result['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
