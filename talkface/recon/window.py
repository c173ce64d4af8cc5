"""The clip window: one fixed square of the frame, resampled for the GAN, and its file window.json.

Preprocess fits one window per clip from its landmarks (`clip_window`) and writes it into the
workspace (`write_window`); the background animation, paste-back and evaluation read it back
(`read_window`). window.json holds {x0, y0, size, out_size} and, for readers of the file alone,
`transform` (frame px -> window-crop px).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from talkface.atomic import atomic_path
from talkface.errors import TalkfaceError
from talkface.recon.alignment import RESCALE_FACTOR, TARGET_SIZE, five_points, pos_fit

WINDOW_FILE = "window.json"


@dataclass(frozen=True)
class Window:
    """A fixed square of the frame, resampled to out_size x out_size (background and paste-back)."""

    x0: int
    y0: int
    size: int  # side in frame pixels
    out_size: int  # side of the resampled crop

    @property
    def transform(self) -> np.ndarray:
        """float64 [2, 3], frame pixels -> window-crop pixels."""
        zoom = self.out_size / self.size
        return np.array([[zoom, 0.0, -zoom * self.x0], [0.0, zoom, -zoom * self.y0]])

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """uint8 [H, W, 3] -> uint8 [out_size, out_size, 3] (one resize of a plain slice)."""
        region = frame[self.y0 : self.y0 + self.size, self.x0 : self.x0 + self.size]
        shrink = self.size > self.out_size
        return cv2.resize(region, (self.out_size, self.out_size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def clip_window(
    landmarks: np.ndarray,
    frame_size: tuple[int, int],
    out_size: int = 256,
    target_size: int = TARGET_SIZE,
    rescale_factor: float = RESCALE_FACTOR,
) -> Window:
    """One fixed window for a whole clip from its landmarks [T, 68, 2]; frame_size is (height, width).

    The original cropped every frame with frame 0's R-Net alignment (centre t, side 224 s / 102
    frame pixels). We take the median of t and s over the clip instead: one badly detected first
    frame no longer shifts the window, and the head stays centred where it spends the clip.
    The square is rounded to whole pixels, shrunk to fit the frame if needed, and moved inside it.
    """
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2) or not np.isfinite(landmarks).all():
        raise ValueError(f"expected finite landmarks [T, 68, 2], got {list(landmarks.shape)}")
    height, width = frame_size
    translation, scale = pos_fit(five_points(landmarks))
    centre = np.median(translation, axis=0)
    size = int(min(max(1, round(float(np.median(scale)) * target_size / rescale_factor)), height, width))
    x0 = int(np.clip(round(centre[0] - size / 2), 0, width - size))
    y0 = int(np.clip(round(centre[1] - size / 2), 0, height - size))
    return Window(x0, y0, size, out_size)


def write_window(folder: str | Path, window: Window) -> None:
    """Write `window` to FOLDER/window.json, atomically."""
    with atomic_path(Path(folder) / WINDOW_FILE) as tmp:
        tmp.write_text(json.dumps({"x0": window.x0, "y0": window.y0, "size": window.size,
                                   "out_size": window.out_size, "transform": window.transform.tolist()}))


def read_window(folder: str | Path) -> Window:
    """The Window in FOLDER/window.json; a one-line error naming the file when it is missing or malformed."""
    path = Path(folder) / WINDOW_FILE
    try:
        layout = json.loads(path.read_text())
        return Window(int(layout["x0"]), int(layout["y0"]), int(layout["size"]), int(layout["out_size"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TalkfaceError(f"is not a readable clip window ({type(error).__name__}: {error}); "
                            "rerun `talkface preprocess`", path) from None
