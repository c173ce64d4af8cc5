"""`talkface synth ...`: write synthetic data with ground truth (person clips, LRW-layout corpus)."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command, add_config_arguments, load_command_config

DEFAULT_PERSON_DIR = "data/synth/person"
DEFAULT_LRW_DIR = "data/synth/lrw"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("synth", help="write synthetic talking-head data with ground truth")
    commands = group.add_subparsers(dest="synth_command", metavar="KIND", required=True)

    person = add_command(commands, "person", ["talkface synth person --out data/synth/alice --seed 3 --seconds 10"],
                         help="one person clip (clip.mp4 + truth/) like a user's ~10 s video")
    person.add_argument("--out", default=DEFAULT_PERSON_DIR, metavar="DIR",
                        help=f"output folder (default: {DEFAULT_PERSON_DIR})")
    person.add_argument("--seconds", type=float, default=None, metavar="S",
                        help="clip length (default: the speech's length; 10 s of random sentences without --text/--audio)")
    person.add_argument("--seed", type=int, default=0, metavar="N", help="subject seed: identity, look, voice, head style")
    speech = person.add_mutually_exclusive_group()
    speech.add_argument("--text", default=None, help="sentence the subject speaks (default: random sentences)")
    speech.add_argument("--audio", default=None, metavar="WAV", help="drive the mouth with this audio (any audio/video file)")
    person.add_argument("--size", type=int, default=256, metavar="PX", help="frame side in pixels (default: 256)")
    _add_engine(person)
    person.set_defaults(handler=_person)

    lrw = add_command(commands, "lrw", ["talkface synth lrw --out data/synth/lrw --words 8 --set enabled=false"],
                      help="a word corpus in LRW's layout: WORD/{train,val,test}/WORD_00001.mp4")
    lrw.add_argument("--out", default=DEFAULT_LRW_DIR, metavar="DIR", help=f"output folder (default: {DEFAULT_LRW_DIR})")
    lrw.add_argument("--words", type=int, default=4, metavar="W", help="number of words from the built-in vocabulary (default: 4)")
    lrw.add_argument("--clips", type=int, default=2, metavar="C", help="clips per word and split (default: 2)")
    lrw.add_argument("--seed", type=int, default=0, metavar="N")
    lrw.add_argument("--splits", nargs="+", default=["train", "val", "test"], choices=["train", "val", "test"])
    lrw.add_argument("--size", type=int, default=256, metavar="PX", help="frame side in pixels (default: 256, as LRW)")
    _add_engine(lrw)
    # the speech's variety
    add_config_arguments(lrw, "synth_lrw.yaml", "talkface.synth.variety:VarietyConfig", "noise_share=0.0")
    lrw.set_defaults(handler=_lrw)


def _add_engine(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", default="auto", choices=["auto", "espeak", "builtin"],
                        help="speech synthesiser (default: espeak-ng when installed, else built-in)")


def _person(args: argparse.Namespace) -> int:
    from talkface.synth.world import write_person

    out = write_person(args.out, seconds=args.seconds, seed=args.seed, text=args.text, audio_path=args.audio,
                       size=args.size, engine=args.engine)
    print(f"wrote {out / 'clip.mp4'} (truth in {out / 'truth'}, preview {out / 'contact_sheet.png'})")
    return 0


def _lrw(args: argparse.Namespace) -> int:
    from talkface.synth.world import write_lrw

    variety = load_command_config(args)
    paths = write_lrw(args.out, words=args.words, clips_per_word=args.clips, seed=args.seed, splits=tuple(args.splits),
                      size=args.size, engine=args.engine, variety=variety)
    print(f"{len(paths)} clips in {args.out}")
    return 0
