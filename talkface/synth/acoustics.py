"""Frame-wise acoustic cues of speech: energy, F1 openness and F2 spread.

The head's nods and brow raises follow the energy (motion.py); when no phone timeline comes with
the audio (a user's file, espeak-ng), phones.py reads phone classes from these cues.
"""

from __future__ import annotations

import numpy as np

from talkface.audio import VIDEO_FPS

# Energy envelope: RMS level in dBFS mapped linearly from the floor (0) to the top (1). Speech is
# peak-normalised to 0.9, so vowels sit near -15 dBFS (~0.85) and silence at 0.
_FLOOR_DB = -50.0
_RANGE_DB = 40.0
_WINDOW_S = 0.025
# Spectral cues. Openness: share of the F1 region (150-850 Hz) above 650 Hz (open vowels have a high F1:
# /a/ 730 Hz, /o/ 570, /e/ 530, /i u/ ~300).
# Spread: log ratio of the F2/F3 band to the band just below it: front, spread vowels /i e/ have
# a high F2 (~1.8-2.3 kHz), /a o u/ a low one (Peterson & Barney 1952). Measured on both engines:
# /i/ ~ +2..+5, /e/ ~ +1.5..+2.5, /a/ ~ -3, /o u/ ~ -4..-0.5; -1 is the neutral point.
# Hiss: share of the power above 3 kHz (fricatives and bursts; vowels have little there).
_F1_LOW, _F1_HIGH, _F1_SPLIT = 150.0, 850.0, 650.0
_LOW_BAND, _HIGH_BAND = (600.0, 1400.0), (1400.0, 3000.0)
_SPREAD_NEUTRAL, _SPREAD_WIDTH = -1.0, 1.5
_HISS_FROM = 3000.0


def speech_features(
    audio: np.ndarray, sample_rate: int, n_frames: int, offset_s: float = 0.0, fps: float = VIDEO_FPS
) -> dict[str, np.ndarray]:
    """Per frame at `fps` (25 ms window centred at (i+0.5)/fps + offset_s seconds), float32 [T] each:
    energy (0 silence .. 1 loud), openness (F1 band share, 0..1), spread (+1 spread .. -1 round),
    hiss (share of the power above 3 kHz, 0..1)."""
    audio = np.asarray(audio, np.float64)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape [N], got {audio.shape}")
    window = max(2, int(round(_WINDOW_S * sample_rate)))
    centres = np.round(((np.arange(n_frames) + 0.5) / fps + offset_s) * sample_rate).astype(np.int64)
    starts = centres - window // 2
    # Zeros (silence) wherever a window reaches outside the audio.
    left = max(0, -int(starts.min(initial=0)))
    right = max(0, int(starts.max(initial=0)) + window - len(audio))
    padded = np.pad(audio, (left, right))
    frames = np.lib.stride_tricks.sliding_window_view(padded, window)[starts + left]  # [T, window]
    hann = np.hanning(window)
    power_mean = (frames**2 * hann).sum(1) / hann.sum()
    level_db = 10 * np.log10(power_mean + 1e-12)
    energy = np.clip((level_db - _FLOOR_DB) / _RANGE_DB, 0.0, 1.0)

    n_fft = int(2 ** np.ceil(np.log2(window)))
    spectrum = np.abs(np.fft.rfft(frames * hann, n_fft)) ** 2  # [T, n_fft/2+1]
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)

    def band(low: float, high: float) -> np.ndarray:
        return spectrum[:, (freqs >= low) & (freqs < high)].sum(1) + 1e-12

    openness = band(_F1_SPLIT, _F1_HIGH) / band(_F1_LOW, _F1_HIGH)
    spread = np.tanh((np.log(band(*_HIGH_BAND) / band(*_LOW_BAND)) - _SPREAD_NEUTRAL) / _SPREAD_WIDTH)
    hiss = band(_HISS_FROM, sample_rate / 2 + 1) / band(0.0, sample_rate / 2 + 1)
    return {name: value.astype(np.float32) for name, value in
            (("energy", energy), ("openness", openness), ("spread", spread), ("hiss", hiss))}
