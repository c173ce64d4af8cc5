"""`talkface bench`: per-stage frames/s and peak memory of the pipeline on this device."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command, add_config_arguments, load_command_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "bench",
        ["talkface bench", "talkface bench --set frames=50 --set stages=[render,gan] --out bench.json"],
        help="throughput and peak memory of each stage on this device (synthetic data, paper sizes)",
        description="Stages, sizes and device are the fields of BenchConfig (talkface/pipelines/bench.py): "
                    "frames, window_size, frame_size, refine_steps, device, stages.",
    )
    parser.add_argument("--out", default=None, metavar="JSON",
                        help="result file (default: benchmarks/results/pipeline_<cpu|cuda>.json)")
    add_config_arguments(parser, None, "talkface.pipelines.bench:BenchConfig", "frames=50")
    parser.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from talkface.benchmarking import write_result
    from talkface.pipelines.bench import run_bench

    result = run_bench(load_command_config(args))
    kind = "cuda" if not result["device"].startswith("CPU") else "cpu"
    out = Path(args.out) if args.out else Path("benchmarks/results") / f"pipeline_{kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_result(out, result)
    print(f"{'stage':<12}{'frames/s':>10}{'peak MiB':>10}   on {result['device']}")
    for name, stage in result["stages"].items():
        print(f"{name:<12}{stage['frames_per_second']:>10.1f}{stage['peak_memory_mib']:>10.0f}")
    print(f"wrote {out}")
    return 0
