"""`talkface media`: inspect a clip and normalise it to the 25 fps mp4 the pipeline expects."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("media", help="inspect and normalise audio/video files")
    commands = group.add_subparsers(dest="media_command", metavar="SUBCOMMAND", required=True)

    info = add_command(commands, "info", ["talkface media info clip.mov"],
                       help="print size, frame rate, duration, 25 fps frame count and audio")
    info.add_argument("file", help="a video or audio file")
    info.set_defaults(handler=run_info)

    convert = add_command(
        commands, "convert", ["talkface media convert clip.mov --out clip.mp4 --max-frames 300"],
        help="resample a video to 25 fps and re-encode it as H.264 mp4, keeping its audio",
    )
    convert.add_argument("input", help="any video ffmpeg reads")
    convert.add_argument("--out", required=True, metavar="MP4", help="the .mp4 to write (written atomically)")
    convert.add_argument("--max-frames", type=int, default=None, metavar="N",
                         help="keep only the first N frames at 25 fps (the audio is cut to match)")
    convert.set_defaults(handler=run_convert)


def run_info(args: argparse.Namespace) -> int:
    from pathlib import Path

    from talkface import media
    from talkface.audio import SAMPLE_RATE, VIDEO_FPS
    from talkface.errors import MediaError

    path = Path(args.file)
    kinds = media.stream_kinds(path)
    if not kinds:
        raise MediaError("no audio or video stream", path)
    print(f"file:     {path} ({path.stat().st_size / 1e6:.2f} MB)")
    if "video" in kinds:
        video = media.probe_video(path)
        duration = "unknown" if video.duration_s is None else f"{video.duration_s:.2f} s"
        print(f"video:    {video.width}x{video.height}, {video.fps:g} fps (source), {duration}")
        print(f"frames:   {media.count_frames(path)} at {VIDEO_FPS:g} fps")
    else:
        print("video:    none")
    if "audio" in kinds:
        audio = media.probe_audio(path)
        seconds = len(media.read_audio(path)) / SAMPLE_RATE
        print(f"audio:    {audio.sample_rate} Hz, {audio.channels}, {seconds:.3f} s")
    else:
        print("audio:    none")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from talkface import media
    from talkface.audio import VIDEO_FPS
    from talkface.errors import TalkfaceError

    if args.max_frames is not None and args.max_frames < 1:
        raise TalkfaceError(f"--max-frames must be at least 1, got {args.max_frames}")
    info = media.probe_video(args.input)
    audio_seconds = None if args.max_frames is None else args.max_frames / VIDEO_FPS
    with media.VideoWriter(args.out, audio=args.input if info.has_audio else None,
                           audio_seconds=audio_seconds) as writer:
        for frame in media.iter_video_frames(args.input, max_frames=args.max_frames):
            writer.write(frame)
    print(f"wrote {args.out}: {writer.frames_written} frames at {VIDEO_FPS:g} fps, "
          f"audio {'kept' if info.has_audio else 'none'}")
    return 0
