"""`talkface lrw preprocess`: LRW clips -> compact motion records for audio -> motion pretraining."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command, add_config_arguments, load_command_config

PREPROCESS_CONFIG = "preprocess.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("lrw", help="prepare the LRW corpus for pretraining")
    commands = group.add_subparsers(dest="lrw_command", metavar="COMMAND", required=True)
    pre = add_command(
        commands, "preprocess",
        ["talkface lrw preprocess data/lrw --out data/lrw_cache",
         "talkface lrw preprocess data/synth/lrw --out data/lrw_cache --coeffs truth",
         "torchrun --nproc_per_node 8 -m talkface lrw preprocess data/lrw --out data/lrw_cache --set refine.steps=400"],
        help="one motion record per clip (MFCC windows + expression/pose), sharded and resumable",
        description="Walk LRW_ROOT/WORD/{train,val,test}/*.mp4 and write CACHE/records/... plus CACHE/manifest.json. "
                    "A record already made from the same clip with the same settings is kept, so an interrupted run "
                    "continues; one made otherwise is redone; failing clips go to "
                    "CACHE/bad_clips.txt. Under torchrun every process takes one shard. With --coeffs recon each "
                    "clip is reconstructed with the preprocess config (--config, --set).",
    )
    pre.add_argument("root", metavar="LRW_ROOT", help="LRW folder (or a `talkface synth lrw` one)")
    pre.add_argument("--out", required=True, metavar="CACHE", help="cache folder for records and manifest")
    pre.add_argument("--shard", default=None, metavar="i/n",
                     help="process clips k with k mod n == i (default: RANK/WORLD_SIZE under torchrun, else all)")
    pre.add_argument("--coeffs", default="recon", choices=["recon", "truth"],
                     help="recon: 3D reconstruction of each clip (default); truth: the synthetic corpus's "
                          "ground-truth coefficients (talkface synth lrw only)")
    add_config_arguments(pre, PREPROCESS_CONFIG, "talkface.pipelines.preprocess:PreprocessConfig", "refine.steps=400")
    pre.add_argument("--quiet", action="store_true", help="no progress bar")
    pre.set_defaults(handler=_preprocess)


def _preprocess(args: argparse.Namespace) -> int:
    from pathlib import Path

    from talkface.pipelines.lrw import parse_shard, preprocess_lrw

    shard = parse_shard(args.shard) if args.shard is not None else None
    recon_config = load_command_config(args) if args.coeffs == "recon" else None
    result = preprocess_lrw(args.root, args.out, args.coeffs, shard, recon_config, progress=not args.quiet)
    print(f"shard {result.shard}: {result.written} written, {result.skipped} already done, "
          f"{result.bad} bad (see {Path(args.out) / 'bad_clips.txt'}); manifest {result.manifest}")
    return 0
