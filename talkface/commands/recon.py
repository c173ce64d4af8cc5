"""`talkface recon train`: train the R-Net (3D reconstruction CNN) on aligned frames + landmarks."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_config_arguments, load_command_config

DEFAULT_CONFIG = "recon.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("recon", help="3D reconstruction: train the R-Net")
    commands = group.add_subparsers(dest="recon_command", metavar="COMMAND", required=True)
    train = commands.add_parser(
        "train", help="train the R-Net from scratch, an ImageNet backbone or a checkpoint",
        description="Runs under torchrun for DistributedDataParallel; logs and checkpoints go to run_dir.",
    )
    add_config_arguments(train, DEFAULT_CONFIG)
    train.add_argument("--resume", action="store_true", help="continue from run_dir's latest checkpoint")
    train.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from talkface.recon.train import ReconConfig, train_rnet

    config = load_command_config(ReconConfig, args)
    checkpoint = train_rnet(config, resume=args.resume)
    print(f"R-Net checkpoint: {checkpoint}")
    return 0
