"""A landmark track, float32 [T, 68, 2]: the package's pixel convention and the clean-up every track goes through.

Pixel convention (README "Conventions"): x right, y down, and the pixel in row i, column j has its
centre at (j + 0.5, i + 0.5). Detectors report pixel-index coordinates (the centre of pixel j at
j); `to_pixel_centres` converts them once, on the way in. A raw track has a whole frame set to NaN
where no face was found; `clean_track` fills short gaps and smooths, or fails naming the frames.
The detector backends are in landmarks.py and dlib_landmarks.py.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import savgol_filter

from talkface.errors import TalkfaceError

N_LANDMARKS = 68
INDEX_TO_CENTRES = 0.5  # pixel-index coordinates (centre of pixel j at j) + this = talkface's (at j + 0.5)


def to_pixel_centres(points: np.ndarray) -> np.ndarray:
    """Pixel-index coordinates (pixel j centred at j, as FAN, dlib and most tools report) -> talkface's."""
    return points + INDEX_TO_CENTRES


def frame_ranges(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index of every run of True in a bool [T]."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(first), int(end) - 1) for first, end in zip(edges[::2], edges[1::2])]


def format_ranges(mask: np.ndarray, limit: int = 20) -> str:
    """'3, 12-40, 77' for the True runs of a bool [T]; long lists are cut after `limit` runs."""
    runs = frame_ranges(mask)
    text = [str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    return ", ".join(text) + (f", ... ({len(runs) - limit} more)" if len(runs) > limit else "")


def fill_gaps(track: np.ndarray, max_gap: int = 5) -> np.ndarray:
    """Fill runs of at most `max_gap` NaN frames of a [T, 68, 2] track; fail listing longer ones.

    Inner gaps are interpolated linearly between the frames around them; a gap at the start or
    the end of the clip takes the nearest detected frame.
    """
    missing = np.isnan(track).any(axis=(1, 2))
    if missing.all():
        raise TalkfaceError(f"no face found in any of the {len(track)} frames")
    if not missing.any():
        return track.copy()
    too_long = np.zeros_like(missing)
    for first, last in frame_ranges(missing):
        if last - first + 1 > max_gap:
            too_long[first : last + 1] = True
    if too_long.any():
        raise TalkfaceError(
            f"no face found in {int(missing.sum())} of {len(track)} frames; frames {format_ranges(too_long)} are "
            f"gaps longer than {max_gap} frames that cannot be interpolated"
        )
    found = np.flatnonzero(~missing)
    flat = track.reshape(len(track), -1)  # [T, 136]
    filled = np.stack([np.interp(np.arange(len(track)), found, column[found]) for column in flat.T], axis=1)
    return filled.reshape(track.shape).astype(np.float32)


def smooth_track(track: np.ndarray, window: int = 5, order: int = 2) -> np.ndarray:
    """Savitzky-Golay filter along time (axis 0) of a gap-free track, [T, 68, 2] landmarks or [T, 4] boxes.

    Why this filter: the whole clip is known, so a zero-phase (centred) filter adds no lag, and a
    local quadratic fit keeps the peaks of fast motion that a moving average flattens. Window 5 /
    order 2 at 25 fps passes motion up to ~6 Hz at -3 dB (syllable-rate mouth motion is 4-5 Hz)
    and cuts white jitter's standard deviation to 0.70x; window 7 would start at 4 Hz and soften
    lip closures. Edges are fitted, not padded, so the first and last frames are not pulled.
    """
    window = min(window, len(track) - (len(track) + 1) % 2)  # the longest odd window that fits
    if window <= order:
        return track.copy()
    # In float64: scipy 1.17 filters a float32 input in float32, whose least-squares fit then moves
    # a still track at ~200 px by a few ulps (1.5e-4 px) instead of leaving it exactly in place.
    return savgol_filter(track.astype(np.float64), window, order, axis=0, mode="interp").astype(np.float32)


def clean_track(track: np.ndarray, max_gap: int = 5, smooth_window: int = 5, smooth_order: int = 2) -> np.ndarray:
    """Raw [T, 68, 2] with NaN frames -> gap-filled, smoothed float32 [T, 68, 2]."""
    return smooth_track(fill_gaps(track, max_gap), smooth_window, smooth_order)
