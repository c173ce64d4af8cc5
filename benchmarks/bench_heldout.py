"""Held-out scores on real clips and on the synthetic world (`talkface heldout`, issue 12's "must show").

    .venv/bin/python benchmarks/bench_heldout.py CLIP [CLIP ...] [--synthetic DEMO_OUT] \
        [--config configs/heldout.yaml] [--set key=value ...] [--work DIR] [--out results/heldout_real.json] \
        [--threads N]

Each clip is fine-tuned on its first frames (300, or 75 % of a shorter clip) and its remaining
frames are generated from their own audio and scored: mouth LMD (the same landmark backend on the
generated and the real frames) against the person's mean expression, the general model and the
first frame held still; GAN PSNR / SSIM against the composited render on the held-out frames' own
reconstruction; pose statistics; the reconstruction's identity. `--synthetic DEMO_OUT` adds the
demo's synthetic person (`talkface demo`: its 16 s clip, 300 frames fine-tuned, 100 scored), through
the same landmark detector and fitting, so the two can be compared.

Results are merged into the output JSON clip by clip (run one clip per call on a busy machine);
every entry names the machine, the config overrides and the time it took.

`--rescore RUN NAME` re-scores a finished held-out folder (heldout.json, heldout_arrays.npz, videos/)
whose generated frames were scored by the landmarks the renderer drew (the 'file' landmark backend,
as on a GPU machine that cannot carry dlib's 100 MB model: benchmarks/gpu_check.py's real_heldout):
dlib runs on its generated videos and the mouth figures and checks are recomputed, into --out as NAME.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from talkface.benchmarking import machine_info, write_result
from talkface.config import load_config
from talkface.pipelines.heldout import CEILING, HeldoutConfig, rescore, run_heldout
from talkface.recon.landmarks import make_landmark_backend
from talkface.threads import configure_threads

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", metavar="CLIP")
    parser.add_argument("--synthetic", default=None, metavar="DEMO_OUT",
                        help="also the synthetic person of a finished `talkface demo --out DEMO_OUT`")
    parser.add_argument("--config", default=str(REPO / "configs" / "heldout.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--work", default="/tmp/talkface_heldout", help="one output folder per clip under here")
    parser.add_argument("--out", default=str(RESULTS / "heldout_real.json"))
    parser.add_argument("--table", action="store_true", help="print the recorded results as a markdown table and stop")
    parser.add_argument("--rescore", nargs=2, default=None, metavar=("RUN", "NAME"),
                        help="re-score a held-out folder's videos with dlib and record it as NAME")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default as the CLI: OMP_NUM_THREADS if set, else the idle cores)")
    args = parser.parse_args()
    configure_threads(args.threads)  # as `talkface heldout` does: two jobs must not oversubscribe two cores
    if args.table:
        print(table(json.loads(Path(args.out).read_text())))
        return
    if args.rescore is not None:
        run, name = Path(args.rescore[0]), args.rescore[1]
        result = rescore(run, make_landmark_backend("dlib"))
        result["rescored"]["machine"] = machine_info()
        record = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {"clips": {}}
        record["clips"][name] = result
        write_result(args.out, record)
        print(f"{name}: {json.dumps(result['checks'])}")
        return
    runs = [(Path(clip).stem, Path(clip)) for clip in args.clips]
    if args.synthetic is not None:  # the same detector and fitting as a real clip: the two compare
        runs.append(("synthetic", Path(args.synthetic) / "world" / "person" / "clip.mp4"))
    out = Path(args.out)
    for name, clip in runs:
        config = load_config(HeldoutConfig, args.config, args.overrides)
        start = time.perf_counter()
        result = run_heldout(clip, Path(args.work) / name, config)
        record = json.loads(out.read_text()) if out.is_file() else {"clips": {}}
        record["clips"][name] = {**result, "config": args.config, "overrides": args.overrides,
                                 "wall_seconds": round(time.perf_counter() - start, 1), "machine": machine_info()}
        write_result(out, record)
        print(f"{name}: {json.dumps(result['checks'])}")


def table(record: dict) -> str:
    """One markdown row per clip: mouth LMD at 224 px of the fine-tuned model and each baseline, the GAN."""
    rows = ["| clip | frames fine-tuned / scored | mouth LMD @224: fine-tuned / mean expr. / general / first frame "
            "| own expression (ceiling) | lip-gap r: fine-tuned / ceiling | GAN vs render PSNR (dB) | SSIM "
            "| held-out identity (mm) | viseme mouth: recogniser, weight | fine-tune motion + GAN (s) |", "|---" * 11 + "|"]
    for name, clip in record["clips"].items():
        driven = clip["audio_driven"]
        lmd = " / ".join(_fmt(driven.get(v, {}).get("lmd_224"), 2)
                         for v in ("finetuned", "mean_expression", "general", "still"))
        recon = clip["reconstruction"]
        rows.append(f"| {name} | {clip['train_frames']} / {clip['heldout_frames']} | {lmd} "
                    f"| {_fmt(driven.get(CEILING, {}).get('lmd_224'), 2)} "
                    f"| {_fmt(driven['finetuned'].get('mouth_open_r'), 2)} / "
                    f"{_fmt(driven.get(CEILING, {}).get('mouth_open_r'), 2)} "
                    f"| {_fmt(recon['psnr_gan'], 1)} vs {_fmt(recon['psnr_render'], 1)} "
                    f"| {_fmt(recon['ssim_gan'], 3)} vs {_fmt(recon['ssim_render'], 3)} "
                    f"| {_fmt(clip['identity']['heldout_change_mm'], 2)} "
                    f"| {_viseme_mouth(clip)} "
                    f"| {clip['seconds']['finetune_motion']:.0f} + {clip['seconds']['finetune_gan']:.0f} |")
    return "\n".join(rows)


def _viseme_mouth(clip: dict) -> str:
    mouth = clip.get("viseme_mouth")  # recorded since d97296a
    return "-" if mouth is None else f"{mouth['recogniser']}, {mouth['weight']:g}"


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
