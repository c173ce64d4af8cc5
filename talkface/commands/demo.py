"""`talkface demo`: synthetic world -> general models -> a fine-tuned person -> demo.mp4 and a report."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_config_arguments, load_command_config

DEFAULT_CONFIG = "demo.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="the whole method on synthetic data, from nothing: writes demo.mp4 and report.html",
        description="Builds a synthetic LRW and person, pretrains tiny general models, fine-tunes on the person and "
                    "generates a video for held-out speech. Needs no data or weights; re-running skips finished "
                    "stages and resumes an interrupted one.",
    )
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder (default: the config's, demo_out)")
    add_config_arguments(parser, DEFAULT_CONFIG)
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from talkface.pipelines.demo import DemoConfig, run_demo
    from talkface.pipelines.stages import summary_table

    config = load_command_config(DemoConfig, args)
    if args.out is not None:
        config = dataclasses.replace(config, out=args.out)
    start = time.perf_counter()
    results = run_demo(config)
    print(summary_table(results))
    checks = results[-1].outputs.get("checks", {})
    for check, ok in checks.items():
        print(f"  {'pass' if ok else 'FAIL'}  {check}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s: {config.out}/demo.mp4, {config.out}/report.html")
    return 0
