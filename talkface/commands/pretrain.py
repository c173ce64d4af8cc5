"""`talkface pretrain synthetic`: the general motion and GAN models from the synthetic world, in one command."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_config_arguments, load_command_config

SYNTHETIC_CONFIG = "pretrain_synthetic.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("pretrain", help="make the general models that `talkface finetune` starts from")
    commands = group.add_subparsers(dest="pretrain_command", metavar="SOURCE", required=True)
    synthetic = commands.add_parser(
        "synthetic", help="from the synthetic world (no data or weights needed; ~10 min on 2 CPU cores)",
        description="Writes a synthetic LRW, pretrains the audio-to-motion network and the GAN on it and copies "
                    "them to checkpoints/general/, where `talkface finetune` looks. Re-running skips finished "
                    "stages and resumes an interrupted one. On real LRW use scripts/pretrain_lrw.sh instead.",
    )
    synthetic.add_argument("--out", default=None, metavar="DIR",
                           help="work folder for corpora and runs (default: the config's, data/pretrain_synthetic)")
    add_config_arguments(synthetic, SYNTHETIC_CONFIG)
    synthetic.set_defaults(handler=_synthetic)


def _synthetic(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from talkface.pipelines.stages import summary_table
    from talkface.pipelines.synthetic_pretrain import PretrainSyntheticConfig, run_pretrain_synthetic

    config = load_command_config(PretrainSyntheticConfig, args)
    if args.out is not None:
        config = dataclasses.replace(config, out=args.out)
    start = time.perf_counter()
    results = run_pretrain_synthetic(config)
    print(summary_table(results))
    print(f"general models ready in {time.perf_counter() - start:.0f} s: {config.motion_model}, {config.gan_model}; "
          "next: talkface finetune CLIP --name NAME")
    return 0
