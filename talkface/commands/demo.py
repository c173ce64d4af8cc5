"""`talkface demo`: synthetic world -> general models -> a fine-tuned person -> demo.mp4 and a report."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command, add_config_arguments, add_out_argument, load_command_config

DEFAULT_CONFIG = "demo.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "demo", ["talkface demo", "talkface demo --out demo_out --set person.gan.epochs=5"],
        help="the whole method on synthetic data, from nothing: writes demo.mp4 and report.html",
        description="Builds a synthetic LRW and person, pretrains tiny general models, fine-tunes on the person and "
                    "generates a video for held-out speech. Needs no data or weights; re-running skips finished "
                    "stages and resumes an interrupted one.",
    )
    add_out_argument(parser, "out", "DIR", "output folder")
    add_config_arguments(parser, DEFAULT_CONFIG, "talkface.pipelines.demo:DemoConfig", "person.gan.epochs=5")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    import time

    from talkface.pipelines.demo import run_demo
    from talkface.pipelines.stages import summary_table

    config = load_command_config(args)
    start = time.perf_counter()
    results = run_demo(config)
    print(summary_table(results))
    checks = results[-1].outputs.get("checks", {})
    for check, ok in checks.items():
        print(f"  {'pass' if ok else 'FAIL'}  {check}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s: {config.out}/demo.mp4, {config.out}/report.html")
    return 0
