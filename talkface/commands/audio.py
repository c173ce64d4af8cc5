"""`talkface audio ...`: audio features."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("audio", help="audio features")
    commands = group.add_subparsers(dest="audio_command", metavar="COMMAND", required=True)

    features = add_command(
        commands, "features", ["talkface audio features speech.wav --out windows.npy"],
        help="per-video-frame 28x12 MFCC windows of an audio or video file",
        description="Write the [T, 28, 12] float32 MFCC windows (one per 25 fps video frame) of "
        "AUDIO's soundtrack, resampled to 16 kHz mono, as .npy, with a .json record beside it.",
    )
    features.add_argument("audio", metavar="AUDIO", help="audio or video file")
    features.add_argument("--out", required=True, metavar="NPY", help="output .npy file")
    features.add_argument(
        "--no-pad", dest="pad", action="store_false",
        help="LRW pretraining convention: no 0.12 s padding, only frames 3 .. T-4",
    )
    features.set_defaults(handler=_features)


def _features(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from talkface.atomic import atomic_path
    from talkface.audio import SAMPLE_RATE, audio_windows, n_video_frames
    from talkface.errors import MediaError
    from talkface.media import read_audio
    from talkface.provenance import provenance

    signal = read_audio(args.audio, sample_rate=SAMPLE_RATE)  # [N] float32
    windows = audio_windows(signal, SAMPLE_RATE, pad=args.pad)  # [T, 28, 12]
    if len(windows) == 0:
        raise MediaError(f"audio too short for one video frame ({len(signal)} samples)", args.audio)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as file:  # a file object: np.save would append .npy to a bare name
            np.save(file, windows)
    record = provenance(
        source=str(Path(args.audio).resolve()), samples=len(signal), sample_rate=SAMPLE_RATE,
        video_frames=n_video_frames(len(signal)), pad=args.pad, shape=list(windows.shape),
    )
    with atomic_path(out.with_name(out.name + ".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    duration = len(signal) / SAMPLE_RATE
    print(f"{out}: {len(windows)} windows [T, 28, 12] for {duration:.2f} s of audio")
    return 0
