"""Speech activity per video frame: the gate that lets the sampled head rhythm move only while talking.

Beyond the paper. People move their heads while they talk and hold still in silence, so the
pose rhythm (network.py `set_pose_rhythm`) is multiplied by a gate in [0, 1] computed from the
audio itself:

    level_t  = 10 log10(mean of x^2 over video frame t's 640 samples)    (dBFS, full scale 1.0)
    voiced_t = level_t > THRESHOLD_DB
    held_t   = 1 if any of frames t-HANGOVER_FRAMES+1 .. t is voiced, else 0
    gate_t   = gate_{t-1} moved towards held_t by at most 1 / RAMP_FRAMES,   gate_{-1} = 0

So the gate is exactly 0 in silence (after the ramp down), 1 through speech and its short pauses,
and ramps linearly between the two over RAMP_FRAMES. It is causal with a two-number state, so
`SpeechGate` gives the same values for any split of the audio into chunks.
"""

from __future__ import annotations

import numpy as np

from talkface.audio import SAMPLES_PER_VIDEO_FRAME, n_video_frames

# Frames below -45 dBFS count as silence: the synthetic speech (peak-normalised to 0.9) puts its
# vowels near -15 dBFS and its floor at -50 (talkface/synth/motion.py). A recording whose noise
# floor is louder keeps the gate open, i.e. behaves like an ungated rhythm.
THRESHOLD_DB = -45.0
# 0.6 s (15 frames at 25 fps): pauses between words and short phrase breaks keep the head moving.
HANGOVER_FRAMES = 15
# 0.4 s (10 frames) linear ramp in and out, so the rhythm fades rather than switches.
RAMP_FRAMES = 10


def frame_levels_db(audio: np.ndarray, first_frame: int, frames: int) -> np.ndarray:
    """RMS level (dBFS) [frames] of video frames first_frame .. +frames of 16 kHz audio [N].

    Frame t covers samples [640 t, 640 (t + 1)), zero-extended past the end; an all-zero frame is -inf.
    """
    start = first_frame * SAMPLES_PER_VIDEO_FRAME
    block = np.zeros(frames * SAMPLES_PER_VIDEO_FRAME)
    piece = np.asarray(audio[start:start + len(block)], np.float64)
    block[:len(piece)] = piece
    power = np.square(block).reshape(frames, SAMPLES_PER_VIDEO_FRAME).mean(1)  # [frames]
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(power)


class SpeechGate:
    """The gate of the module docstring, frame block by frame block; state carried between calls."""

    def __init__(self, threshold_db: float = THRESHOLD_DB, hangover_frames: int = HANGOVER_FRAMES,
                 ramp_frames: int = RAMP_FRAMES):
        if hangover_frames < 1 or ramp_frames < 1:
            raise ValueError(f"hangover and ramp must be >= 1 frame, got {hangover_frames} and {ramp_frames}")
        self.threshold_db = threshold_db
        self.hangover_frames = hangover_frames
        self.step = 1.0 / ramp_frames
        self.since_voiced = hangover_frames  # frames since the last voiced one; start: none yet
        self.gate = 0.0

    def __call__(self, levels_db: np.ndarray) -> np.ndarray:
        """Frame levels [n] (dBFS, `frame_levels_db`) -> the next n gate values [n] float64 in [0, 1]."""
        out = np.empty(len(levels_db))
        for t, level in enumerate(levels_db):
            self.since_voiced = 0 if level > self.threshold_db else self.since_voiced + 1
            held = 1.0 if self.since_voiced < self.hangover_frames else 0.0
            self.gate = min(max(held, self.gate - self.step), self.gate + self.step)
            out[t] = self.gate
        return out


def speech_activity(audio: np.ndarray) -> np.ndarray:
    """The gate [T] of 16 kHz audio [N] over its T = n_video_frames(N) frames, in one pass."""
    frames = n_video_frames(len(audio))
    return SpeechGate()(frame_levels_db(audio, 0, frames))
