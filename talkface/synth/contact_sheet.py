"""A grid of frames with their landmarks dotted: one PNG a person can look at to judge a clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from talkface.atomic import atomic_path


def sheet_indices(n_frames: int, count: int = 12) -> np.ndarray:
    """`count` frame indices spread evenly over [0, n_frames)."""
    return np.unique(np.round(np.linspace(0, n_frames - 1, min(count, n_frames))).astype(int))


def contact_sheet(frames: np.ndarray, landmarks: np.ndarray, labels: list[str], columns: int = 4, tile: int = 192) -> np.ndarray:
    """frames uint8 [K, H, W, 3], landmarks [K, 68, 2] (frame px) -> one RGB uint8 grid image."""
    rows = -(-len(frames) // columns)
    sheet = np.full((rows * tile, columns * tile, 3), 255, np.uint8)
    for k, (frame, points, label) in enumerate(zip(frames, landmarks, labels)):
        scale = tile / max(frame.shape[:2])
        image = np.ascontiguousarray(cv2.resize(frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
                                                interpolation=cv2.INTER_AREA))
        for j, (x, y) in enumerate(points * scale):
            colour = (255, 60, 60) if 48 <= j < 68 else (60, 255, 60)  # mouth in red, the rest green
            # Continuous px -> OpenCV pixel-centre coordinates, 4 fractional bits.
            cv2.circle(image, (int(round((x - 0.5) * 16)), int(round((y - 0.5) * 16))), 16, colour, -1, cv2.LINE_AA, 4)
        cv2.putText(image, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        r, c = divmod(k, columns)
        sheet[r * tile : r * tile + image.shape[0], c * tile : c * tile + image.shape[1]] = image
    return sheet


def write_contact_sheet(path: str | Path, frames: np.ndarray, landmarks: np.ndarray, labels: list[str]) -> None:
    """Write `contact_sheet(...)` as a PNG, atomically."""
    image = contact_sheet(frames, landmarks, labels)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: cannot write PNG")
