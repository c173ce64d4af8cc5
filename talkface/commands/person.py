"""`talkface finetune CLIP --name NAME` and `talkface infer --person NAME --audio AUDIO --out OUT.mp4`."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_config_arguments, load_command_config

FINETUNE_CONFIG = "person.yaml"
INFER_CONFIG = "infer.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    fine = subparsers.add_parser(
        "finetune", help="make a person from one clip: preprocess, fine-tune motion and GAN (resumable)",
        description="Every step is skipped when done, resumed when interrupted, redone when its config changed.",
    )
    fine.add_argument("clip", metavar="CLIP", help="~10 s video of the person speaking (with audio)")
    fine.add_argument("--name", required=True, help="the person's name (a folder under people_dir)")
    fine.add_argument("--landmarks", default=None, metavar="NPY",
                      help="use these landmarks [T, 68, 2] instead of detecting them: frame pixels, pixel (i, j) "
                           "centred at (j+0.5, i+0.5), or at (j, i) with "
                           "--set preprocess.landmarks.file_convention=index")
    add_config_arguments(fine, FINETUNE_CONFIG)
    fine.set_defaults(handler=_finetune)

    infer = subparsers.add_parser("infer", help="a video of a fine-tuned person saying AUDIO")
    infer.add_argument("--person", required=True, metavar="NAME")
    infer.add_argument("--audio", required=True, metavar="AUDIO", help="speech (any audio or video file)")
    infer.add_argument("--out", required=True, metavar="OUT.mp4")
    infer.add_argument("--pose-source", choices=["predicted", "reference", "still"], default=None,
                       help="head pose: predicted from the audio, replayed from the clip, or held still")
    infer.add_argument("--head-motion-scale", type=float, default=None)
    infer.add_argument("--output", choices=["full", "face"], default=None,
                       help="the whole frame (default) or the face window crop")
    infer.add_argument("--seed", type=int, default=None, help="seed of the sampled head rhythm")
    add_config_arguments(infer, INFER_CONFIG)
    infer.set_defaults(handler=_infer)


def _finetune(args: argparse.Namespace) -> int:
    import dataclasses

    from talkface.pipelines.person import PersonConfig, finetune_person, stage_figures
    from talkface.pipelines.stages import summary_table

    config = load_command_config(PersonConfig, args)
    if args.landmarks is not None:
        landmarks = dataclasses.replace(config.preprocess.landmarks, backend="file", file=args.landmarks)
        config.preprocess = dataclasses.replace(config.preprocess, landmarks=landmarks)
    results = finetune_person(args.clip, args.name, config)
    print(summary_table(results, stage_figures))
    print(f"person {args.name!r} is ready: talkface infer --person {args.name} --audio AUDIO --out OUT.mp4")
    return 0


def _infer(args: argparse.Namespace) -> int:
    import dataclasses

    from talkface.audio import VIDEO_FPS
    from talkface.errors import ConfigError
    from talkface.pipelines.infer import InferConfig, generate

    config = load_command_config(InferConfig, args)
    flags = {"pose_source": args.pose_source, "head_motion_scale": args.head_motion_scale,
             "output": args.output, "seed": args.seed}
    try:
        config = dataclasses.replace(config, **{k: v for k, v in flags.items() if v is not None})
    except ValueError as error:
        raise ConfigError(str(error)) from None
    result = generate(args.person, args.audio, args.out, config)
    seconds = sum(result.seconds.values())
    print(f"wrote {result.path}: {result.frames} frames ({result.frames / VIDEO_FPS:.2f} s) in {seconds:.1f} s "
          f"({result.frames / max(seconds, 1e-9):.1f} frames/s)")
    return 0
