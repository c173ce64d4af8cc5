"""Motion for the synthetic world: phone-driven mouth, per-subject head-motion style, blinks.

The audio -> motion network must learn this mapping. The mouth articulates the phones of the
speech (visemes.py: targets per phone class with coarticulation, not the loudness), leading the
sound by the subject's 40-80 ms; the phones are the speech engine's timeline, or estimated from
the audio when it has none (phones.py). The head follows the subject's style (rhythm, amplitude,
bias) with nods coupled to speech energy; what the audio cannot explain stays small. All outputs
are float32, one row per 25 fps frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from talkface.audio import VIDEO_FPS
from talkface.face3d.coeffs import N_EXPRESSION
from talkface.face3d.synthetic import EXPRESSION_DIRECTIONS
from talkface.synth.acoustics import speech_features
from talkface.speech.phones import Phone
from talkface.speech.visemes import articulate
from talkface.synth.phones import phones_from_audio

MAX_ANGLE = 0.35  # rad; angles are soft-clipped to this bound

_JAW = EXPRESSION_DIRECTIONS["jaw_open"]
_SPREAD = EXPRESSION_DIRECTIONS["lip_spread"]
_ROUND = EXPRESSION_DIRECTIONS["lip_round"]
_SMILE = EXPRESSION_DIRECTIONS["smile"]
_BROW = EXPRESSION_DIRECTIONS["brow_raise"]
_BLINK = EXPRESSION_DIRECTIONS["blink"]
_NAMED = sorted(EXPRESSION_DIRECTIONS.values())

# Nod drive: band-pass of the energy envelope (~0.3-2.5 Hz), divided by its std on speech
# (measured 0.14-0.23 over builtin and espeak-ng subjects).
_NOD_FAST, _NOD_SLOW, _NOD_SCALE = 1.5, 12.0, 0.2
_BLINK_SHAPE = np.array([0.4, 1.0, 0.75, 0.4, 0.15], np.float32)  # fast close, slower reopening
_BLINK_REFRACTORY = 0.4  # s between blinks at least


@dataclass(frozen=True)
class HeadStyle:
    """One subject's motion style: head rhythm/amplitude/bias, nods, blinks, mouth idiosyncrasies."""

    amplitude: tuple[float, float, float]  # std of each angle (rad): pitch, yaw, roll
    frequency: tuple[float, float, float]  # dominant rhythm per angle (Hz)
    bias: tuple[float, float, float]  # mean angle (rad)
    energy_coupling: float  # correlation of the pitch (nods) with the speech-energy drive
    translation_amplitude: tuple[float, float, float]  # std of x, y, z translation
    blink_rate: float  # blinks per second
    mouth_gain: float = 1.0  # how wide this subject opens and shapes the mouth
    mouth_lead: float = 0.06  # s by which the mouth moves before the sound
    smile_bias: float = 0.0  # resting smile
    brow_rate: float = 0.25  # chance of a brow raise on a stressed syllable


@dataclass
class Motion:
    """Per-frame expression and pose, rows at 25 fps."""

    expression: np.ndarray  # [T, 64]
    angles: np.ndarray  # [T, 3] rad: pitch, yaw, roll
    translation: np.ndarray  # [T, 3]


def sample_head_style(seed: int) -> HeadStyle:
    """Subject `seed`'s style; ranges are wide (x3-4) so subjects clearly differ."""
    rng = np.random.default_rng([seed, 0x57E1])

    def log_uniform(low: tuple[float, ...], high: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(float(v) for v in np.exp(rng.uniform(np.log(low), np.log(high))))

    return HeadStyle(
        amplitude=log_uniform((0.025, 0.03, 0.015), (0.09, 0.11, 0.05)),
        frequency=log_uniform((0.2, 0.1, 0.12), (0.7, 0.45, 0.5)),
        bias=tuple(float(v) for v in rng.uniform((-0.08, -0.1, -0.05), (0.08, 0.1, 0.05))),
        energy_coupling=float(rng.uniform(0.1, 0.6)),
        translation_amplitude=log_uniform((0.01, 0.01, 0.02), (0.04, 0.04, 0.08)),
        blink_rate=float(rng.uniform(0.15, 0.5)),  # 9-30 blinks a minute
        mouth_gain=float(rng.uniform(0.8, 1.2)),
        mouth_lead=float(rng.uniform(0.05, 0.08)),
        smile_bias=float(rng.uniform(0.0, 0.25)),
        brow_rate=float(rng.uniform(0.1, 0.5)),
    )


def generate_motion(
    audio: np.ndarray, sample_rate: int, style: HeadStyle, seed: int, n_frames: int | None = None,
    phones: Sequence[Phone] | None = None,
) -> Motion:
    """Expression [T,64], angles [T,3], translation [T,3] for `audio` spoken by a subject of `style`.

    The mouth articulates `phones` (the speech engine's timeline, s from the audio's start); without
    them, phones estimated from the audio (phones.phones_from_audio).
    """
    if n_frames is None:
        n_frames = int(round(len(audio) / sample_rate * VIDEO_FPS))
    # One generator per part, so that e.g. the blinks of a seed do not depend on the speech.
    mouth_rng, smile_rng, brow_rng, blink_rng, face_rng, head_rng, shift_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, 0x3071]).spawn(7))
    heard = speech_features(audio, sample_rate, n_frames)
    if phones is None:
        phones = phones_from_audio(audio, sample_rate)
    expression = np.zeros((n_frames, N_EXPRESSION), np.float32)
    _mouth(expression, phones, style, mouth_rng)
    expression[:, _SMILE] = style.smile_bias + 0.05 * _smooth_noise(n_frames, 2.0 * VIDEO_FPS, smile_rng)
    expression[:, _BROW] = _brow_raises(heard["energy"], style.brow_rate, brow_rng)
    expression[:, _BLINK] = _blinks(n_frames, style.blink_rate, blink_rng)
    others = [k for k in range(N_EXPRESSION) if k not in _NAMED]
    # Speech-independent small deformations: the part of the face the audio cannot explain.
    expression[:, others] = 0.03 * _smooth_noise((n_frames, len(others)), 0.5 * VIDEO_FPS, face_rng)
    angles = _head_angles(heard["energy"], style, head_rng)
    translation = np.stack(
        [a * _smooth_noise(n_frames, 0.6 * VIDEO_FPS, shift_rng) for a in style.translation_amplitude], 1)
    return Motion(expression.astype(np.float32), angles.astype(np.float32), translation.astype(np.float32))


def _mouth(expression: np.ndarray, phones: Sequence[Phone], style: HeadStyle, rng: np.random.Generator) -> None:
    """Jaw, lip spread and round from the phones' visemes; the mouth shapes a sound `mouth_lead` before it is heard."""
    n = len(expression)
    frame_times = (np.arange(n) + 0.5) / VIDEO_FPS + style.mouth_lead
    jitter = 0.01 * _smooth_noise((n, 3), 2.0, rng)  # small, speech-independent
    mouth = articulate(phones, frame_times, style.mouth_gain, rng) + jitter
    # No direction goes below rest: a negative jaw or rounding would part the lips too.
    expression[:, [_JAW, _SPREAD, _ROUND]] = np.maximum(mouth, 0.0)


def _head_angles(energy: np.ndarray, style: HeadStyle, rng: np.random.Generator) -> np.ndarray:
    """Bias + amplitude x (rhythm mixed with the speech drive), soft-clipped to +-MAX_ANGLE. [T, 3]"""
    n = len(energy)
    drive = (gaussian_filter1d(energy, _NOD_FAST, mode="nearest")
             - gaussian_filter1d(energy, _NOD_SLOW, mode="nearest")) / _NOD_SCALE
    # Nods (pitch) follow speech by the style's coupling; yaw and roll only weakly.
    couplings = (style.energy_coupling, style.energy_coupling / 3, style.energy_coupling / 3)
    angles = np.empty((n, 3))
    for k in range(3):
        c = couplings[k]
        free = _rhythm(n, style.frequency[k], rng)
        raw = style.bias[k] + style.amplitude[k] * (np.sqrt(1 - c * c) * free + c * drive)
        angles[:, k] = MAX_ANGLE * np.tanh(raw / MAX_ANGLE)
    return angles


def _rhythm(n: int, frequency: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance quasi-periodic signal peaking at `frequency`: drifting partials plus smooth noise. [T]"""
    t = np.arange(n) / VIDEO_FPS
    weights = np.array([1.0, 0.45, 0.25])
    ratios = np.array([1.0, rng.uniform(1.7, 2.3), rng.uniform(2.7, 3.3)])
    phases = rng.uniform(0, 2 * np.pi, 3)
    # Phase random walk: ~1 rad of drift per 10 s, so the rhythm is not a pure tone.
    drift = np.cumsum(rng.standard_normal((n, 3)) * 0.06, axis=0)
    partials = np.sin(2 * np.pi * t[:, None] * frequency * ratios + phases + drift) @ weights
    partials /= np.sqrt((weights**2).sum() / 2)
    noise = _smooth_noise(n, VIDEO_FPS / (2 * np.pi * frequency), rng)
    return np.sqrt(0.8) * partials + np.sqrt(0.2) * noise


def _smooth_noise(shape: int | tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise with unit variance (sigma in frames) along axis 0."""
    white = rng.standard_normal(shape)
    # A Gaussian kernel of sum 1 has squared norm ~1/(2 sqrt(pi) sigma); undo that loss of variance.
    return gaussian_filter1d(white, sigma, axis=0, mode="wrap") * np.sqrt(2 * np.sqrt(np.pi) * sigma)


def _brow_raises(energy: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Brief brow raises on some stressed syllables (prominent energy peaks). [T]"""
    n = len(energy)
    peaks, _ = find_peaks(gaussian_filter1d(energy, 1.0), height=0.6, prominence=0.15, distance=6)
    brow = np.zeros(n)
    bump = np.hanning(11)  # ~0.4 s
    for peak in peaks[rng.random(len(peaks)) < rate]:
        start = peak - 6  # the brows rise slightly before the stressed syllable
        lo, hi = max(0, start), min(n, start + len(bump))
        brow[lo:hi] += rng.uniform(0.3, 0.7) * bump[lo - start : hi - start]
    return np.minimum(brow, 1.0)


def _blinks(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Blink 0->1->0 over 5 frames at `rate` per second (mean interval 1/rate, a refractory gap). [T]"""
    blink = np.zeros(n)
    mean_gap = max(1.0 / rate - _BLINK_REFRACTORY, 0.05)
    t = rng.uniform(0, 1.0 / rate)
    while t * VIDEO_FPS < n:
        start = int(t * VIDEO_FPS)
        stop = min(n, start + len(_BLINK_SHAPE))
        blink[start:stop] = np.maximum(blink[start:stop], _BLINK_SHAPE[: stop - start])
        t += _BLINK_REFRACTORY + rng.exponential(mean_gap)
    return blink
