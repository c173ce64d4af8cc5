"""`talkface preprocess CLIP --out WORKSPACE`: a clip of a person -> a person workspace."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command, add_config_arguments, add_landmarks_argument, load_command_config

DEFAULT_CONFIG = "preprocess.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "preprocess",
        ["talkface preprocess clip.mp4 --out work/alice",
         "talkface preprocess clip.mp4 --out work/alice --frames 250 --set refine.steps=400"],
        help="frames, landmarks, alignment, 3DMM coefficients, audio and MFCC of one clip",
        description="Write (or bring up to date) a person workspace: re-running skips steps that are up to date; "
                    "a changed clip or config redoes what depends on it.",
    )
    parser.add_argument("clip", metavar="CLIP", help="video of the person (any format ffmpeg reads, with audio)")
    parser.add_argument("--out", required=True, metavar="WORKSPACE", help="workspace folder (created if absent)")
    add_landmarks_argument(parser, "")
    parser.add_argument("--frames", type=int, default=None, metavar="N", help="first N frames at 25 fps (default: config's, 300)")
    parser.add_argument("--rnet", default=None, metavar="CKPT", help="R-Net checkpoint (default: config's rnet)")
    add_config_arguments(parser, DEFAULT_CONFIG, "talkface.pipelines.preprocess:PreprocessConfig",
                         "refine.steps=400")
    parser.set_defaults(handler=_preprocess)


def _preprocess(args: argparse.Namespace) -> int:
    import dataclasses

    from talkface.errors import ConfigError
    from talkface.pipelines.preprocess import preprocess

    config = load_command_config(args)
    # Paths go in as they are, not through --set's YAML parsing (a file named "1e5" stays a name).
    if args.landmarks is not None:
        config.landmarks = dataclasses.replace(config.landmarks, backend="file", file=args.landmarks)
    if args.rnet is not None:
        config.rnet = args.rnet
    if args.frames is not None:
        try:
            config = dataclasses.replace(config, frames=args.frames)
        except ValueError as error:
            raise ConfigError(f"--frames: {error}") from None
    result = preprocess(args.clip, args.out, config)
    ran = ", ".join(f"{name} ({result.seconds[name]:.1f} s)" for name in result.ran) or "nothing (up to date)"
    print(f"{result.workspace}: ran {ran}; up to date: {', '.join(result.skipped) or 'none'}")
    return 0
