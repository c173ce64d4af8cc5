"""`talkface lrw preprocess`: LRW clips -> compact motion records for audio -> motion pretraining."""

from __future__ import annotations

import argparse

from talkface.commands.common import shipped_config


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("lrw", help="prepare the LRW corpus for pretraining")
    commands = group.add_subparsers(dest="lrw_command", metavar="COMMAND", required=True)
    pre = commands.add_parser(
        "preprocess", help="one motion record per clip (MFCC windows + expression/pose), sharded and resumable",
        description="Walk LRW_ROOT/WORD/{train,val,test}/*.mp4 and write CACHE/records/... plus CACHE/manifest.json. "
                    "Existing records are skipped, so an interrupted run continues; failing clips go to "
                    "CACHE/bad_clips.txt. Under torchrun every process takes one shard.",
    )
    pre.add_argument("--root", required=True, metavar="LRW_ROOT", help="LRW folder (or a `talkface synth lrw` one)")
    pre.add_argument("--out", required=True, metavar="CACHE", help="cache folder for records and manifest")
    pre.add_argument("--shard", default=None, metavar="i/n",
                     help="process clips k with k mod n == i (default: RANK/WORLD_SIZE under torchrun, else all)")
    pre.add_argument("--coeffs", default="recon", choices=["recon", "truth"],
                     help="recon: 3D reconstruction of each clip (default); truth: the synthetic corpus's "
                          "ground-truth coefficients (talkface synth lrw only)")
    pre.add_argument("--preprocess-config", default=None, metavar="YAML",
                     help="reconstruction settings for --coeffs recon (default: configs/preprocess.yaml)")
    pre.add_argument("--quiet", action="store_true", help="no progress bar")
    pre.set_defaults(handler=_preprocess)


def _preprocess(args: argparse.Namespace) -> int:
    from pathlib import Path

    from talkface.pipelines.lrw import parse_shard, preprocess_lrw

    shard = parse_shard(args.shard) if args.shard is not None else None
    recon_config = None
    if args.coeffs == "recon":
        from talkface.config import load_config
        from talkface.pipelines.preprocess import PreprocessConfig

        recon_config = load_config(PreprocessConfig, args.preprocess_config or shipped_config("preprocess.yaml"))
    result = preprocess_lrw(args.root, args.out, args.coeffs, shard, recon_config, progress=not args.quiet)
    print(f"shard {result.shard}: {result.written} written, {result.skipped} already done, "
          f"{result.bad} bad (see {Path(args.out) / 'bad_clips.txt'}); manifest {result.manifest}")
    return 0
