"""The `talkface` command: one entry point whose subcommands call the pipelines.

Each command group lives in `talkface/commands/<group>.py` and exposes `register(subparsers)`.
Group modules import only argparse-level code at the top, so `talkface --help` stays fast; the
heavy imports (torch, models) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from talkface import __version__
from talkface.errors import TalkfaceError

# Only groups whose commands work are listed here.
COMMAND_GROUPS: tuple[str, ...] = (
    "talkface.commands.media",
    "talkface.commands.audio",
    "talkface.commands.bfm",
    "talkface.commands.synth",
    "talkface.commands.recon",
    "talkface.commands.preprocess",
    "talkface.commands.lrw",
    "talkface.commands.motion",
    "talkface.commands.gan",
    "talkface.commands.eval",
    "talkface.commands.person",
    "talkface.commands.demo",
    "talkface.commands.heldout",
    "talkface.commands.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talkface",
        description="Audio-driven talking-face video with personalized head pose.",
    )
    parser.add_argument("--version", action="version", version=f"talkface {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        importlib.import_module(group).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    # The library reports its choices (e.g. which morphable model `auto` picked) as INFO log lines.
    logging.basicConfig(level=logging.INFO, format="talkface: %(message)s")
    try:
        result = args.handler(args)
    except TalkfaceError as error:
        # Expected failures: one line, no traceback, non-zero exit.
        print(f"talkface: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("talkface: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
