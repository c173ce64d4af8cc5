"""`talkface pretrain synthetic`: the general motion and GAN models from the synthetic world, in one command."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command, add_config_arguments, add_out_argument, load_command_config

SYNTHETIC_CONFIG = "pretrain_synthetic.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("pretrain", help="make the general models that `talkface person` starts from")
    commands = group.add_subparsers(dest="pretrain_command", metavar="SOURCE", required=True)
    synthetic = add_command(
        commands, "synthetic",
        ["talkface pretrain synthetic", "talkface pretrain synthetic --out data/pretrain_synthetic --set world.seed=1"],
        help="from the synthetic world (no data or weights needed; ~10 min on 2 CPU cores)",
        description="Writes a synthetic LRW, pretrains the audio-to-motion network and the GAN on it and copies "
                    "them to checkpoints/general/, where `talkface person` looks. Re-running skips finished "
                    "stages and resumes an interrupted one. On real LRW use scripts/pretrain_lrw.sh instead.",
    )
    add_out_argument(synthetic, "out", "DIR", "work folder for corpora and runs")
    add_config_arguments(synthetic, SYNTHETIC_CONFIG, "talkface.pipelines.synthetic_pretrain:PretrainSyntheticConfig",
                         "motion_pretrain.train.steps=300")
    synthetic.set_defaults(handler=_synthetic)


def _synthetic(args: argparse.Namespace) -> int:
    import time

    from talkface.pipelines.stages import summary_table
    from talkface.pipelines.synthetic_pretrain import run_pretrain_synthetic

    config = load_command_config(args)
    start = time.perf_counter()
    results = run_pretrain_synthetic(config)
    print(summary_table(results))
    print(f"general models ready in {time.perf_counter() - start:.0f} s: {config.motion_model}, {config.gan_model}; "
          "next: talkface person CLIP --person NAME")
    return 0
