"""`talkface gan ...`: pretrain the memory GAN on (synthetic) LRW, fine-tune it on one person."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command, add_training_arguments, load_command_config

PRETRAIN_CONFIG = "gan_lrw.yaml"
FINETUNE_CONFIG = "gan_finetune.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("gan", help="the memory GAN that refines composited renders into frames")
    commands = group.add_subparsers(dest="gan_command", metavar="COMMAND", required=True)

    pre = add_command(commands, "pretrain",
                      ["talkface gan pretrain --set lrw_root=data/lrw --out runs/gan_lrw",
                       "torchrun --nproc_per_node 8 -m talkface gan pretrain --set train.batch_size=4 --resume"],
                      help="pretrain on LRW-layout clips (real or `talkface synth lrw`); torchrun for DDP")
    add_training_arguments(pre, PRETRAIN_CONFIG, "talkface.gan.train:GanPretrainConfig", "train.steps=50000")
    pre.set_defaults(handler=_pretrain)

    fine = add_command(commands, "finetune",
                       ["talkface gan finetune work/alice --pretrained checkpoints/general/gan_lrw.pt",
                        "talkface gan finetune work/alice --set epochs=30 --out runs/alice_gan --resume"],
                       help="fine-tune the GAN alone on one person's workspace (talkface preprocess)")
    fine.add_argument("workspace", metavar="WORKSPACE", help="a person workspace (talkface preprocess)")
    fine.add_argument("--pretrained", default=None, metavar="CKPT",
                      help="pretrained GAN checkpoint or run folder (overrides the config)")
    add_training_arguments(fine, FINETUNE_CONFIG, "talkface.gan.train:GanFinetuneConfig", "epochs=30",
                           "WORKSPACE/gan_finetune")
    fine.set_defaults(handler=_finetune)


def _pretrain(args: argparse.Namespace) -> int:
    from talkface.pipelines.gan_pretrain import pretrain_on_lrw

    checkpoint = pretrain_on_lrw(load_command_config(args), resume=args.resume)
    print(f"pretrained: {checkpoint}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    import dataclasses

    from talkface.gan.train import finetune

    config = load_command_config(args)
    if args.pretrained is not None:
        config = dataclasses.replace(config, pretrained=args.pretrained)
    checkpoint, scores = finetune(args.workspace, config, resume=args.resume)
    print("held-out frames: " + ", ".join(f"{key} {value:.4g}" for key, value in scores.items()))
    print(f"fine-tuned: {checkpoint}")
    return 0
