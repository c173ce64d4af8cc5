"""Background frames whose own mouths look like the mouth drawn over them (beyond the original).

The person's fine-tuned GAN draws partly the real mouth of the background frame behind each output
frame, not only the rendered one (docs/method.md, "Compositing and paste-back"). Pose matching
picks those frames for their head pose alone, so on new speech their mouths said other words and
pull the output's mouth off the speech. Here the pose-matched plan is moved, frame by frame, to
frames at most `radius` away from it whose reconstructed mouth opening is nearest the drawn one,
along a path that, like the plan between keyframes, moves at most one clip frame per output frame
(forwards, backwards or holding): the background still plays as real motion, never jumps. Where
the plan holds its frame (a still head, silence: keyframes.py), the path holds too.

A Viterbi search over the offsets -radius..radius from the plan: the cost of a path is the sum of
|clip mouth - drawn mouth| over its frames, in units of the clip mouth's std.
"""

from __future__ import annotations

import numpy as np


def mouth_matched_path(planned: np.ndarray, clip_mouth: np.ndarray, drawn_mouth: np.ndarray,
                       radius: int) -> np.ndarray:
    """Background indices int64 [T] near `planned` [T] (indices into the clip's M frames) whose mouth
    openings clip_mouth [M] follow drawn_mouth [T]; consecutive indices differ by at most 1 where
    the plan allows it (a step of the plan larger than 1 may be taken as it is), and by 0 where the
    plan holds."""
    planned = np.asarray(planned, np.int64)
    clip_mouth, drawn_mouth = np.asarray(clip_mouth, np.float64), np.asarray(drawn_mouth, np.float64)
    if radius < 0 or planned.ndim != 1 or drawn_mouth.shape != planned.shape:
        raise ValueError(f"need radius >= 0 and planned, drawn_mouth of one length [T]; got radius {radius}, "
                         f"{list(planned.shape)}, {list(drawn_mouth.shape)}")
    if radius == 0 or len(planned) == 0:
        return planned.copy()
    offsets = np.arange(-radius, radius + 1)
    frames = planned[:, None] + offsets[None, :]  # [T, K] candidate clip frames
    inside = (frames >= 0) & (frames < len(clip_mouth))
    scale = clip_mouth.std() + 1e-9
    mismatch = np.abs(clip_mouth[np.clip(frames, 0, len(clip_mouth) - 1)] - drawn_mouth[:, None]) / scale
    mismatch[~inside] = np.inf  # [T, K]
    cost, back = mismatch[0].copy(), np.zeros(frames.shape, np.int64)
    for t in range(1, len(planned)):
        step = np.abs(frames[t][:, None] - frames[t - 1][None, :])  # [K now, K before]
        allowed = step == 0 if planned[t] == planned[t - 1] else step <= 1
        reach = np.where(allowed, cost[None, :], np.inf)
        if not np.isfinite(reach).any():  # the plan itself jumps here: so may the path
            reach = np.broadcast_to(cost, reach.shape)
        back[t] = reach.argmin(axis=1)
        cost = reach[np.arange(len(offsets)), back[t]] + mismatch[t]
    path = np.empty(len(planned), np.int64)
    path[-1] = int(cost.argmin())
    for t in range(len(planned) - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return frames[np.arange(len(planned)), path]
