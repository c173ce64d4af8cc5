"""`talkface recon train`: train the R-Net (3D reconstruction CNN) on aligned frames + landmarks."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command, add_training_arguments, load_command_config

DEFAULT_CONFIG = "recon.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("recon", help="3D reconstruction: train the R-Net")
    commands = group.add_subparsers(dest="recon_command", metavar="COMMAND", required=True)
    train = add_command(
        commands, "train",
        ["talkface recon train --set data.clips=[data/synth/person] --out runs/recon",
         "torchrun --nproc_per_node 8 -m talkface recon train --config configs/recon.yaml --resume"],
        help="train the R-Net from scratch, an ImageNet backbone or a checkpoint",
        description="Runs under torchrun for DistributedDataParallel; logs and checkpoints go to the run folder (--out).",
    )
    add_training_arguments(train, DEFAULT_CONFIG, "talkface.recon.train:ReconConfig", "train.steps=5000")
    train.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from talkface.recon.train import train_rnet

    config = load_command_config(args)
    checkpoint = train_rnet(config, resume=args.resume)
    print(f"R-Net checkpoint: {checkpoint}")
    return 0
