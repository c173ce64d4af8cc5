"""`talkface convert original FILES...`: the original project's released general models -> talkface checkpoints."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command

DEFAULT_OUT = "checkpoints/general"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("convert", help="weights released by other projects -> talkface checkpoints")
    commands = group.add_subparsers(dest="convert_command", metavar="COMMAND", required=True)

    original = add_command(
        commands, "original",
        ["talkface convert original atcnet_lstm_general.pth 0_net_G.pth 0_net_D.pth 0_net_mem.pth",
         "talkface convert original 0_net_G.pth 0_net_D.pth 0_net_mem.pth --identity-encoder arcface --out general"],
        help="Yi et al.'s general models (ATC_net, N_net_G/D/mem.pth) -> motion_lrw.pt, gan_lrw.pt",
        description="Convert the original project's audio network and/or its memory GAN (generator, "
        "discriminator and memory together) into the general models `talkface person` starts from "
        "(checkpoints/README.md says where the files come from).",
    )
    original.add_argument("files", nargs="+", metavar="FILE",
                          help="atcnet_lstm_general.pth, 0_net_G.pth, 0_net_D.pth, 0_net_mem.pth (any order)")
    original.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                          help=f"where motion_lrw.pt and gan_lrw.pt go (default: {DEFAULT_OUT}, "
                          "where configs/person.yaml looks)")
    original.add_argument("--identity-encoder", choices=("learned", "arcface"), default="learned",
                          help="what fine-tuning feeds the generator instead of the original's MXNet ArcFace: "
                          "'learned' (trained during fine-tuning, no file) or 'arcface' (an arcface_torch "
                          "backbone.pth) (default: learned)")
    original.add_argument("--identity-weights", default=None, metavar="PTH",
                          help="the ArcFace backbone.pth for --identity-encoder arcface "
                          "(default: checkpoints/arcface/backbone.pth)")
    original.set_defaults(handler=_original)


def _original(args: argparse.Namespace) -> int:
    from talkface.convert.original import convert_original

    for path in convert_original(args.files, args.out, args.identity_encoder, args.identity_weights):
        print(f"wrote {path}")
    return 0
