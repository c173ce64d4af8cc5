"""`talkface gan ...`: pretrain the memory GAN on (synthetic) LRW, fine-tune it on one person."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_config_arguments, load_command_config

PRETRAIN_CONFIG = "gan_lrw.yaml"
FINETUNE_CONFIG = "gan_finetune.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("gan", help="the memory GAN that refines composited renders into frames")
    commands = group.add_subparsers(dest="gan_command", metavar="COMMAND", required=True)

    pre = commands.add_parser("pretrain", help="pretrain on LRW-layout clips (real or `talkface synth lrw`); "
                                               "torchrun for DDP")
    add_config_arguments(pre, PRETRAIN_CONFIG)
    pre.add_argument("--resume", action="store_true", help="continue the run in run_dir from its latest checkpoint")
    pre.set_defaults(handler=_pretrain)

    fine = commands.add_parser("finetune", help="fine-tune on one person's workspace (talkface preprocess)")
    fine.add_argument("workspace", metavar="WORKSPACE")
    fine.add_argument("--pretrained", default=None, metavar="CKPT",
                      help="pretrained GAN checkpoint or run folder (overrides the config)")
    add_config_arguments(fine, FINETUNE_CONFIG)
    fine.add_argument("--resume", action="store_true")
    fine.set_defaults(handler=_finetune)


def _pretrain(args: argparse.Namespace) -> int:
    from talkface.gan.train import GanPretrainConfig
    from talkface.pipelines.gan_pretrain import pretrain_on_lrw

    checkpoint = pretrain_on_lrw(load_command_config(GanPretrainConfig, args), resume=args.resume)
    print(f"pretrained: {checkpoint}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    import dataclasses

    from talkface.gan.train import GanFinetuneConfig, finetune

    config = load_command_config(GanFinetuneConfig, args)
    if args.pretrained is not None:
        config = dataclasses.replace(config, pretrained=args.pretrained)
    checkpoint, scores = finetune(args.workspace, config, resume=args.resume)
    print("held-out frames: " + ", ".join(f"{key} {value:.4g}" for key, value in scores.items()))
    print(f"fine-tuned: {checkpoint}")
    return 0
