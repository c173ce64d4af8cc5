"""Score a generated talking-face video against a reference: every metric its inputs allow.

`evaluate` returns one flat dict of floats (`talkface eval` writes it as JSON):

    frames                      frames compared (the shorter of the two, lengths within one frame)
    psnr, ssim                  generated vs reference frames by index (0..255 data range; PSNR of
                                the whole video's MSE, inf for identical videos; SSIM the mean of
                                per-frame skimage SSIM with its default 7x7 window)
    lmd                         mouth landmark distance, pixels (talkface.metrics.lmd)
    face_lmd                    the same over all 68 points
    {generated,reference}_pose_std_{x,y,z}    std of each Euler angle, radians
    {generated,reference}_pose_freq_{x,y,z}   its dominant frequency, Hz
    pose_stats_distance         mean |log ratio| of those statistics (0: the same head-motion style)
    {generated,reference}_flicker             mean |frame t - frame t-1|, 0..255 units
    lse_d, lse_c, sync_offset   SyncNet lip sync of the generated frames with `audio` (talkface.sync;
                                face crops around generated_landmarks when given, else whole frames)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from talkface import metrics
from talkface.errors import TalkfaceError
from talkface.face3d.coeffs import MOTION_ANGLES, N_MOTION

if TYPE_CHECKING:
    from talkface.sync import SyncNet

AXES = ("x", "y", "z")
SSIM_CHUNK = 16  # frames per SSIM call: bounds the float64 copies of long videos


def check_lengths(generated: int, reference: int, what: str, path: str | Path | None = None) -> int:
    """The number of frames to compare: lengths may differ by one frame (rounding), not more."""
    if abs(generated - reference) > 1:
        raise TalkfaceError(f"{what}: {generated} generated frames against {reference} reference frames; "
                            "they must match to within one frame",
                            path)
    return min(generated, reference)


def evaluate(
    generated: np.ndarray,
    reference: np.ndarray | None,
    *,
    generated_landmarks: np.ndarray | None = None,
    reference_landmarks: np.ndarray | None = None,
    generated_motion: np.ndarray | None = None,
    reference_motion: np.ndarray | None = None,
    audio: np.ndarray | None = None,
    syncnet: SyncNet | None = None,
) -> dict[str, float]:
    """Every metric the inputs allow (see the module doc for the keys).

    generated, reference: RGB uint8 [T, H, W, 3]; landmarks float [T, 68, 2] in their frame's pixels;
    motion float [T, 70] (64 expression, 3 angles, 3 translation); audio: 16 kHz float32 [N] of the
    generated video; syncnet: a `talkface.sync.SyncNet` (LSE needs it and the audio).
    """
    generated = _video(generated, "generated")
    result: dict[str, float] = {"frames": float(len(generated))}
    if reference is not None:
        reference = _video(reference, "reference")
        if reference.shape[1:] != generated.shape[1:]:
            raise TalkfaceError(f"frame sizes differ: generated {generated.shape[1:3]}, "
                                f"reference {reference.shape[1:3]}")
        n = check_lengths(len(generated), len(reference), "frames")
        result.update(frames=float(n), **_image_metrics(generated[:n], reference[:n]))
    if generated_landmarks is not None and reference_landmarks is not None:
        n = check_lengths(len(generated_landmarks), len(reference_landmarks), "landmarks")
        result["lmd"] = metrics.lmd(generated_landmarks[:n], reference_landmarks[:n])
        result["face_lmd"] = metrics.face_lmd(generated_landmarks[:n], reference_landmarks[:n])
    result.update(_pose_metrics(generated_motion, reference_motion))
    for name, video in (("generated", generated), ("reference", reference)):
        if video is not None and len(video) >= 2:
            result[f"{name}_flicker"] = metrics.flicker(video)
    if syncnet is not None:
        from talkface.sync import sync_scores

        if audio is None:
            raise TalkfaceError("LSE-D / LSE-C need the generated video's audio; none was given")

        scores = sync_scores(syncnet, generated, audio, generated_landmarks)
        result.update(lse_d=scores.lse_d, lse_c=scores.lse_c, sync_offset=float(scores.offset))
    return result


def _video(frames: np.ndarray, name: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise TalkfaceError(f"{name} video: expected RGB uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


def _image_metrics(generated: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of aligned uint8 videos [T, H, W, 3]."""
    total_ssim = 0.0
    for start in range(0, len(generated), SSIM_CHUNK):
        stop = min(start + SSIM_CHUNK, len(generated))
        pair = [v[start:stop].transpose(0, 3, 1, 2) for v in (generated, reference)]  # [B, 3, H, W]
        total_ssim += metrics.ssim(*pair, data_range=255.0) * (stop - start)
    return {"psnr": metrics.psnr(generated, reference, data_range=255.0), "ssim": total_ssim / len(generated)}


def _pose_metrics(generated: np.ndarray | None, reference: np.ndarray | None) -> dict[str, float]:
    """Per-angle std and dominant frequency of each motion [T, 70] given, and their distance."""
    stats = {}
    for name, motion in (("generated", generated), ("reference", reference)):
        if motion is None:
            continue
        motion = np.asarray(motion, np.float64)
        if motion.ndim != 2 or motion.shape[1] != N_MOTION:
            raise TalkfaceError(f"{name} motion: expected [T, {N_MOTION}], got {list(motion.shape)}")
        if len(motion) < 4:
            raise TalkfaceError(f"{name} motion: pose statistics need at least 4 frames, got {len(motion)}")
        stats[name] = metrics.pose_statistics(motion[:, MOTION_ANGLES])
    result = {}
    for name, s in stats.items():
        for key, short in (("std", "std"), ("frequency", "freq")):
            result.update({f"{name}_pose_{short}_{axis}": float(v) for axis, v in zip(AXES, s[key])})
    if len(stats) == 2:
        result["pose_stats_distance"] = metrics.pose_statistics_distance(stats["generated"], stats["reference"])
    return result


def format_table(result: dict[str, float]) -> str:
    """The metrics as a two-column text table."""
    width = max(len(name) for name in result)
    return "\n".join(f"{name:<{width}}  {value:10.4f}" for name, value in result.items())
