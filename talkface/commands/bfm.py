"""`talkface bfm ...`: build, check and synthesise the morphable model file BFM_model_front.mat."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command

DEFAULT_RAW_DIR = "checkpoints/BFM"
DEFAULT_MODEL = "checkpoints/BFM/BFM_model_front.mat"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("bfm", help="the 3D morphable face model (BFM or synthetic)")
    commands = group.add_subparsers(dest="bfm_command", metavar="COMMAND", required=True)

    convert = add_command(
        commands, "convert", [f"talkface bfm convert {DEFAULT_RAW_DIR} --out {DEFAULT_MODEL}"],
        help="build BFM_model_front.mat from the raw BFM files",
        description="Build the front-face model (35,709 vertices) from 01_MorphableModel.mat, "
        "Exp_Pca.bin, std_exp.txt, BFM_front_idx.mat, BFM_exp_idx.mat and facemodel_info.mat "
        "(checkpoints/README.md says where to get each).",
    )
    convert.add_argument("raw_dir", nargs="?", default=DEFAULT_RAW_DIR, metavar="RAW_DIR",
                         help=f"folder holding the raw files (default: {DEFAULT_RAW_DIR})")
    convert.add_argument("--out", default=DEFAULT_MODEL, metavar="MAT", help=f"output (default: {DEFAULT_MODEL})")
    convert.set_defaults(handler=_convert)

    synth = add_command(commands, "synth", ["talkface bfm synth --out synthetic.mat --vertices 4000"],
                        help="write the synthetic morphable model in the same format")
    synth.add_argument("--out", required=True, metavar="MAT", help="output .mat file")
    synth.add_argument("--vertices", type=int, default=4000, metavar="N", help="about N vertices (default: 4000)")
    synth.add_argument("--seed", type=int, default=0, help="seed of the random bases (default: 0)")
    synth.set_defaults(handler=_synth)

    info = add_command(commands, "info", [f"talkface bfm info {DEFAULT_MODEL}"],
                       help="validate a BFM_model_front.mat and print its sizes")
    info.add_argument("file", nargs="?", default=DEFAULT_MODEL, metavar="MAT",
                      help=f"model file (default: {DEFAULT_MODEL})")
    info.set_defaults(handler=_info)


def _convert(args: argparse.Namespace) -> int:
    from talkface.face3d.bfm import convert_bfm

    arrays = convert_bfm(args.raw_dir, args.out)
    print(f"wrote {args.out}: {_summary(arrays)}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from talkface.face3d.bfm import read_bfm
    from talkface.face3d.synthetic import write_synthetic_model

    write_synthetic_model(args.out, n_vertices=args.vertices, seed=args.seed)
    print(f"wrote {args.out}: {_summary(read_bfm(args.out))}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from talkface.face3d.bfm import read_bfm

    print(f"{args.file}: {_summary(read_bfm(args.file))}")
    return 0


def _summary(arrays: dict) -> str:
    return (
        f"{arrays['meanshape'].size // 3} vertices, {len(arrays['tri'])} triangles, "
        f"{len(arrays['frontmask2_idx'])} front vertices, {len(arrays['tri_mask2'])} front triangles, "
        f"{int(arrays['skinmask'].sum())} skin vertices"
    )
