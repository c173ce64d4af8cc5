"""`talkface eval`: score a generated video (PSNR, SSIM, LMD, pose statistics, flicker, LSE-D / LSE-C)."""

from __future__ import annotations

import argparse

from talkface.commands.common import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "eval",
        ["talkface eval out.mp4 --reference real.mp4 --out metrics.json",
         "talkface eval out.mp4 --workspace work/alice --landmarks-backend auto --syncnet --out metrics.json"],
        help="score a generated video against a reference video or a workspace's held-out frames",
        description="Computes every metric its inputs allow and writes them as JSON; see talkface/evaluation.py.",
    )
    parser.add_argument("generated", metavar="GENERATED", help="the generated video")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--reference", default=None, metavar="MP4", help="the real video, frame-aligned")
    source.add_argument("--workspace", default=None, metavar="DIR",
                        help="person workspace: its frames (or window crops, matched by size), landmarks "
                             "and coefficients from --start on are the reference")
    parser.add_argument("--start", type=int, default=None, metavar="FRAME",
                        help="first workspace frame of the reference (default: the clip's last frames, "
                             "where the held-out part is)")
    parser.add_argument("--generated-landmarks", default=None, metavar="NPY", help="[T, 68, 2] of the generated video")
    parser.add_argument("--reference-landmarks", default=None, metavar="NPY", help="[T, 68, 2] of the reference")
    parser.add_argument("--generated-motion", default=None, metavar="NPY", help="[T, 70] motion that drove it")
    parser.add_argument("--reference-motion", default=None, metavar="NPY", help="[T, 70] reference motion")
    parser.add_argument("--audio", default=None, metavar="FILE",
                        help="speech for LSE-D / LSE-C (default: the generated video's own audio track)")
    parser.add_argument("--syncnet", nargs="?", const=True, default=None, metavar="PATH",
                        help="SyncNet weights for LSE-D / LSE-C (bare flag: CHECKPOINTS_DIR/syncnet/syncnet_v2.model)")
    parser.add_argument("--landmarks-backend", choices=("none", "auto", "fan", "dlib"), default="none",
                        help="detect landmarks where no file gives them (fan: needs its weights; auto: fan when "
                             "they are there, else dlib)")
    parser.add_argument("--checkpoints-dir", default="checkpoints", metavar="DIR")
    parser.add_argument("--device", default="cpu", help="torch device for FAN and SyncNet")
    parser.add_argument("--out", required=True, metavar="JSON", help="metrics file (written atomically)")
    parser.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    import json
    import math

    from talkface.atomic import atomic_path
    from talkface.evaluation import evaluate, format_table
    from talkface.media import read_video
    from talkface.provenance import provenance

    generated = read_video(args.generated)
    ref_frames, ref_landmarks, ref_motion = _reference(args, len(generated), generated.shape[1:3])
    gen_landmarks = _landmarks(args.generated_landmarks, len(generated))
    if args.reference_landmarks is not None:
        ref_landmarks = _landmarks(args.reference_landmarks, None if ref_frames is None else len(ref_frames))
    if args.landmarks_backend != "none":
        gen_landmarks, ref_landmarks = _detect_missing(args, (generated, gen_landmarks), (ref_frames, ref_landmarks))
    if args.reference_motion is not None:
        ref_motion = _motion(args.reference_motion, None if ref_frames is None else len(ref_frames))
    weights = _syncnet_path(args)
    syncnet, audio = _sync_inputs(args, weights)
    result = evaluate(
        generated, ref_frames, generated_landmarks=gen_landmarks, reference_landmarks=ref_landmarks,
        generated_motion=None if args.generated_motion is None else _motion(args.generated_motion, len(generated)),
        reference_motion=ref_motion, audio=audio, syncnet=syncnet,
    )
    inputs = {key: getattr(args, key) for key in ("generated", "reference", "workspace", "start", "generated_landmarks",
                                                  "reference_landmarks", "generated_motion", "reference_motion",
                                                  "audio", "landmarks_backend")}
    inputs["syncnet"] = None if weights is None else str(weights)
    # JSON has no infinity: PSNR of identical videos is written as null.
    record = {"metrics": {k: v if math.isfinite(v) else None for k, v in result.items()},
              "inputs": inputs, "made": provenance()}
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    print(format_table(result))
    print(f"wrote {args.out}")
    return 0


def _reference(args: argparse.Namespace, n_generated: int, size: tuple[int, int]):
    """(frames, landmarks, motion) of the reference; each None when there is none."""
    from talkface.evaluation import check_lengths
    from talkface.media import read_video

    if args.workspace is not None:
        return _workspace_reference(args.workspace, args.start, n_generated, size)
    if args.start is not None:
        from talkface.errors import TalkfaceError

        raise TalkfaceError("--start selects workspace frames; give --workspace with it")
    if args.reference is None:
        return None, None, None
    frames = read_video(args.reference)
    check_lengths(n_generated, len(frames), "frames", args.reference)
    if tuple(frames.shape[1:3]) != tuple(size):
        from talkface.errors import TalkfaceError

        raise TalkfaceError(f"frames are {frames.shape[2]}x{frames.shape[1]}, the generated video's "
                            f"{size[1]}x{size[0]}", args.reference)
    return frames, None, None


def _workspace_reference(root: str, start: int | None, count: int, size: tuple[int, int]):
    """frames [start, start + count) of a workspace, at the generated video's frame size."""
    import numpy as np

    from talkface.errors import TalkfaceError
    from talkface.face3d.coeffs import motion_from_coeffs
    from talkface.recon.window import read_window
    from talkface.workspace import Workspace

    ws = Workspace(root)
    frames = ws.load_array("frames.npy", mmap=True)  # [T, H, W, 3]
    start = len(frames) - count if start is None else start
    if start < 0 or start + count > len(frames) + 1:  # one frame short is within the rounding allowance
        raise TalkfaceError(f"has {len(frames)} frames; frames {start}..{start + count - 1} are not all there", root)
    span = slice(start, start + count)
    landmarks = ws.load_array("landmarks.npy")[span] if ws.path("landmarks.npy").is_file() else None
    crops = ws.load_array("window_crops.npy", mmap=True) if ws.path("window_crops.npy").is_file() else None
    if tuple(frames.shape[1:3]) == tuple(size):
        frames = np.asarray(frames[span])
    elif crops is not None and tuple(crops.shape[1:3]) == tuple(size):
        frames = np.asarray(crops[span])
        if landmarks is not None:  # frame pixels -> window-crop pixels
            transform = read_window(ws.root).transform  # [2, 3]
            landmarks = (landmarks @ transform[:, :2].T + transform[:, 2]).astype(np.float32)
    else:
        raise TalkfaceError(f"frames are {frames.shape[2]}x{frames.shape[1]}, the generated video is "
                            f"{size[1]}x{size[0]}: neither the frames nor the window crops match", root)
    coeffs = ws.load_array("coeffs.npy")[span] if ws.path("coeffs.npy").is_file() else None
    return frames, landmarks, None if coeffs is None else motion_from_coeffs(np.asarray(coeffs, np.float32))


def _landmarks(path: str | None, n_frames: int | None):
    """A [T, 68, 2] landmark file, short no-face gaps filled; its length checked against its video."""
    from talkface.evaluation import check_lengths
    from talkface.recon.landmarks import FileLandmarks
    from talkface.recon.track import fill_gaps

    if path is None:
        return None
    track = fill_gaps(FileLandmarks(path).detect())
    if n_frames is not None:
        check_lengths(n_frames, len(track), "video frames and landmarks", path)
    return track


def _motion(path: str, n_frames: int | None):
    """A finite [T, 70] motion file (64 expression, 3 angles, 3 translation), T checked against its video's."""
    from pathlib import Path

    import numpy as np

    from talkface.errors import TalkfaceError
    from talkface.evaluation import check_lengths
    from talkface.face3d.coeffs import N_MOTION

    if not Path(path).is_file():
        raise TalkfaceError("motion file not found", path)
    try:
        motion = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise TalkfaceError(f"not a readable .npy file ({error})", path) from None
    if motion.ndim != 2 or motion.shape[1] != N_MOTION or not np.issubdtype(motion.dtype, np.number):
        raise TalkfaceError(f"expected motion of shape [T, {N_MOTION}], got {motion.dtype} {list(motion.shape)}", path)
    if not np.isfinite(motion).all():
        raise TalkfaceError(f"{int((~np.isfinite(motion).all(axis=1)).sum())} of its {len(motion)} frames are not "
                            "finite (NaN or inf); motion statistics need finite values", path)
    if n_frames is not None:
        check_lengths(n_frames, len(motion), "video frames and motion", path)
    return motion.astype(np.float32)


def _detect_missing(args: argparse.Namespace, *sides):
    """Landmarks for each (frames, landmarks) side that has frames but no landmarks, with one detector."""
    from talkface.recon.landmarks import detect_landmarks, make_landmark_backend

    backend = None
    found = []
    for frames, landmarks in sides:
        if frames is not None and landmarks is None:
            backend = backend or make_landmark_backend(args.landmarks_backend, checkpoints_dir=args.checkpoints_dir,
                                                       device=args.device)
            landmarks = detect_landmarks(backend, list(frames))
        found.append(landmarks)
    return found


def _syncnet_path(args: argparse.Namespace):
    """The SyncNet weights --syncnet names (bare: the checkpoints folder's), or None."""
    from pathlib import Path

    if args.syncnet is True:
        from talkface.sync import SYNCNET_PATH

        return Path(args.checkpoints_dir) / SYNCNET_PATH.relative_to("checkpoints")
    return None if args.syncnet is None else Path(args.syncnet)


def _sync_inputs(args: argparse.Namespace, weights):
    """(SyncNet, 16 kHz audio) when there are SyncNet weights to use, else (None, None)."""
    if weights is None:
        return None, None
    from talkface.errors import MediaError
    from talkface.media import read_audio, stream_kinds
    from talkface.sync import load_syncnet

    source = args.audio or args.generated
    if args.audio is None and "audio" not in stream_kinds(source):
        raise MediaError("has no audio track for LSE-D / LSE-C; give the speech with --audio", source)
    return load_syncnet(weights, args.device), read_audio(source)
