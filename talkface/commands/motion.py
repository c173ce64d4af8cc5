"""`talkface motion ...`: pretrain on LRW, fine-tune on a person, predict expression + head pose from audio."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command, add_training_arguments, load_command_config

PRETRAIN_CONFIG = "motion_lrw.yaml"
FINETUNE_CONFIG = "motion_finetune.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("motion", help="the audio -> expression + head pose network")
    commands = group.add_subparsers(dest="motion_command", metavar="COMMAND", required=True)

    pre = add_command(commands, "pretrain",
                      ["talkface motion pretrain --set cache=data/lrw_cache --out runs/motion_lrw",
                       "torchrun --nproc_per_node 8 -m talkface motion pretrain --set epochs=20 --resume"],
                      help="pretrain on an LRW cache (talkface lrw preprocess); torchrun for DDP")
    add_training_arguments(pre, PRETRAIN_CONFIG, "talkface.motion.train:PretrainConfig", "lr=1e-4")
    pre.set_defaults(handler=_pretrain)

    fine = add_command(commands, "finetune",
                       ["talkface motion finetune work/alice --pretrained checkpoints/general/motion_lrw.pt",
                        "talkface motion finetune work/alice --set epochs=30 --out runs/alice_motion --resume"],
                       help="fine-tune the network alone on one person's workspace (talkface preprocess)")
    fine.add_argument("workspace", metavar="WORKSPACE", help="a person workspace (talkface preprocess)")
    fine.add_argument("--pretrained", default=None, metavar="CKPT", help="pretrained checkpoint (overrides the config)")
    add_training_arguments(fine, FINETUNE_CONFIG, "talkface.motion.train:FinetuneConfig", "epochs=30",
                           "WORKSPACE/motion_finetune")
    fine.set_defaults(handler=_finetune)

    predict = add_command(commands, "predict",
                          ["talkface motion predict speech.wav --checkpoint checkpoints/general/motion_lrw.pt --out motion.npy",
                           "talkface motion predict speech.wav --checkpoint work/alice/motion_finetune/checkpoints/"
                           "step_1700.pt --pose-source reference --reference work/alice --out motion.npy"],
                          help="audio -> motion.npy [T, 70] (64 expression, 3 angles, 3 translation)")
    predict.add_argument("audio", metavar="AUDIO", help="any audio or video file")
    predict.add_argument("--checkpoint", required=True, metavar="CKPT", help="a motion checkpoint (.pt)")
    predict.add_argument("--out", required=True, metavar="NPY")
    predict.add_argument("--pose-source", default="predicted", choices=["predicted", "reference", "still"])
    predict.add_argument("--reference", default=None, metavar="WORKSPACE",
                         help="person workspace whose poses 'reference' replays and 'still' holds")
    predict.add_argument("--head-motion-scale", type=float, default=1.0)
    predict.add_argument("--expression-scale", type=float, default=1.0)
    predict.add_argument("--seed", type=int, default=0,
                         help="seed of the sampled head rhythm (when the checkpoint has one); same seed, same motion")
    predict.add_argument("--chunk-frames", type=int, default=250, help="frames per network call (memory bound)")
    predict.set_defaults(handler=_predict)


def _pretrain(args: argparse.Namespace) -> int:
    from talkface.motion.train import pretrain

    config = load_command_config(args)
    checkpoint = pretrain(config, resume=args.resume)
    print(f"pretrained: {checkpoint}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    import dataclasses

    from talkface.motion.train import finetune

    config = load_command_config(args)
    if args.pretrained is not None:
        config = dataclasses.replace(config, pretrained=args.pretrained)
    checkpoint, report = finetune(args.workspace, config, resume=args.resume)
    if report is not None:
        print(f"pretrained weights: {len(report.missing)} missing, {len(report.unexpected)} unexpected, "
              f"{len(report.mismatched)} mismatched keys" + "".join(
                  f"\n  {kind}: {', '.join(keys)}" for kind, keys in vars(report).items() if keys))
    print(f"fine-tuned: {checkpoint}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from talkface.atomic import atomic_path
    from talkface.media import read_audio
    from talkface.motion.inference import predict_motion
    from talkface.motion.data import load_person
    from talkface.motion.model import load_motion_model

    model = load_motion_model(args.checkpoint)
    reference = load_person(args.reference).motion if args.reference is not None else None
    audio = read_audio(args.audio)
    motion = predict_motion(model, audio, chunk_frames=args.chunk_frames, pose_source=args.pose_source,
                            reference_motion=reference, head_motion_scale=args.head_motion_scale,
                            expression_scale=args.expression_scale, seed=args.seed)
    with atomic_path(args.out) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, motion)
    print(f"wrote {args.out}: {motion.shape[0]} frames x {motion.shape[1]}")
    return 0
