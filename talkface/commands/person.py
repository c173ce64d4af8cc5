"""`talkface person CLIP --person NAME` makes a person; `talkface infer AUDIO --person NAME --out OUT.mp4` animates one.

`talkface person` runs the whole person's fine-tuning (preprocess, motion, GAN); `talkface motion
finetune` and `talkface gan finetune` fine-tune one network on a workspace.
"""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command, add_config_arguments, add_landmarks_argument, load_command_config

PERSON_CONFIG = "person.yaml"
INFER_CONFIG = "infer.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    person = add_command(
        subparsers, "person",
        ["talkface person clip.mp4 --person alice",
         "talkface person clip.mp4 --person alice --config configs/person_cpu.yaml --set gan.epochs=30",
         "talkface person photo.jpg --person bob"],
        help="make a person from one clip (or a photo): preprocess, fine-tune motion and GAN (resumable)",
        description="Makes PEOPLE_DIR/NAME, which `talkface infer --person NAME` animates. Every step is skipped "
                    "when done, resumed when interrupted, redone when its config changed.",
    )
    person.add_argument("clip", metavar="CLIP", help="~10 s video of the person speaking (with audio), or a photo")
    person.add_argument("--person", required=True, metavar="NAME", help="the person's name (a folder under people_dir)")
    add_landmarks_argument(person, "preprocess.")
    add_config_arguments(person, PERSON_CONFIG, "talkface.pipelines.person:PersonConfig", "gan.epochs=30")
    person.set_defaults(handler=_person)

    infer = add_command(
        subparsers, "infer",
        ["talkface infer speech.wav --person alice --out out.mp4",
         "talkface infer speech.wav --person alice --out face.mp4 --pose-source still --output face "
         "--set enhance=false"],
        help="a video of a fine-tuned person saying AUDIO",
    )
    infer.add_argument("audio", metavar="AUDIO", help="speech (any audio or video file)")
    infer.add_argument("--person", required=True, metavar="NAME", help="a person `talkface person` made")
    infer.add_argument("--out", required=True, metavar="OUT.mp4")
    infer.add_argument("--pose-source", choices=["predicted", "reference", "still"], default=None,
                       help="head pose: predicted from the audio, replayed from the clip, or held still")
    infer.add_argument("--head-motion-scale", type=float, default=None, metavar="S",
                       help="scale of the head's motion around its mean pose (1: as predicted)")
    infer.add_argument("--output", choices=["full", "face"], default=None,
                       help="the whole frame (default) or the face window crop")
    infer.add_argument("--seed", type=int, default=None, help="seed of the sampled head rhythm")
    add_config_arguments(infer, INFER_CONFIG, "talkface.pipelines.infer:InferConfig", "paste=poisson")
    infer.set_defaults(handler=_infer)


def _person(args: argparse.Namespace) -> int:
    import dataclasses

    from talkface.pipelines.person import finetune_person, stage_figures
    from talkface.pipelines.stages import summary_table

    config = load_command_config(args)
    if args.landmarks is not None:
        landmarks = dataclasses.replace(config.preprocess.landmarks, backend="file", file=args.landmarks)
        config.preprocess = dataclasses.replace(config.preprocess, landmarks=landmarks)
    results = finetune_person(args.clip, args.person, config)
    print(summary_table(results, stage_figures))
    print(f"person {args.person!r} is ready: talkface infer AUDIO --person {args.person} --out OUT.mp4")
    return 0


def _infer(args: argparse.Namespace) -> int:
    import dataclasses

    from talkface.audio import VIDEO_FPS
    from talkface.errors import ConfigError
    from talkface.pipelines.infer import generate

    config = load_command_config(args)
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
