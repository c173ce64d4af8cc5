"""`talkface bench`: per-stage frames/s and peak memory of the pipeline on this device."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="throughput and peak memory of each stage on this device (synthetic data, paper sizes)")
    parser.add_argument("--out", default=None, metavar="JSON",
                        help="result file (default: benchmarks/results/pipeline_<cpu|cuda>.json)")
    # None: BenchConfig's default (talkface/pipelines/bench.py), which the help cannot show without torch.
    parser.add_argument("--frames", type=int, default=None, help="frames of clip and video (default 100)")
    parser.add_argument("--window-size", type=int, default=None, help="GAN resolution (default 256)")
    parser.add_argument("--refine-steps", type=int, default=None, help="preprocess refinement steps (default 800)")
    parser.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    parser.add_argument("--stages", nargs="+", default=None, metavar="STAGE",
                        help="preprocess motion render gan end_to_end (default: all)")
    parser.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from talkface.benchmarking import write_result
    from talkface.errors import ConfigError
    from talkface.pipelines.bench import BenchConfig, run_bench

    given = {"frames": args.frames, "window_size": args.window_size, "refine_steps": args.refine_steps,
             "device": args.device, "stages": tuple(args.stages) if args.stages else None}
    config = BenchConfig(**{k: v for k, v in given.items() if v is not None})
    if config.frames < 25 or config.window_size < 64:
        raise ConfigError("--frames must be at least 25 and --window-size at least 64")
    result = run_bench(config)
    kind = "cuda" if not result["device"].startswith("CPU") else "cpu"
    out = Path(args.out) if args.out else Path("benchmarks/results") / f"pipeline_{kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_result(out, result)
    print(f"{'stage':<12}{'frames/s':>10}{'peak MiB':>10}   on {result['device']}")
    for name, stage in result["stages"].items():
        print(f"{name:<12}{stage['frames_per_second']:>10.1f}{stage['peak_memory_mib']:>10.0f}")
    print(f"wrote {out}")
    return 0
