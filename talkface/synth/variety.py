"""Variety of the synthetic LRW's speech, so that a model trained on it is not tied to one voice.

Per clip, seeded by the clip's subject: a speaking-rate and a pitch factor on the subject's voice,
a vocal-tract length (formant) factor and breathiness; one of the available speech engines; and,
on some clips, additive noise at a random SNR and a small room's reverberation. Everything is
deterministic in the seed. The mouth is unaffected: it articulates the phones (visemes.py), so
noise and reverb change only what the audio -> motion network hears.

configs/synth_lrw.yaml is the switch (`talkface synth lrw --set enabled=false`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve, lfilter

from talkface.synth.speech import Voice, have_espeak, voice_for_seed


@dataclass(frozen=True)
class VarietyConfig:
    """configs/synth_lrw.yaml: how much each clip's speech varies."""

    enabled: bool = True
    rate: tuple[float, float] = (0.85, 1.2)  # speaking-rate factor on the subject's own rate
    pitch: tuple[float, float] = (0.85, 1.15)  # F0 factor on the subject's own pitch
    tract: tuple[float, float] = (0.94, 1.06)  # formant factor (vocal-tract length) on the subject's
    breath: tuple[float, float] = (0.0, 0.35)  # aspiration share of the voicing
    engines: tuple[str, ...] = ("builtin", "espeak")  # drawn among those installed
    noise_share: float = 0.4  # share of clips with additive noise
    snr_db: tuple[float, float] = (5.0, 30.0)  # speech-to-noise ratio of those
    reverb_share: float = 0.3  # share of clips in a reverberant room
    rt60_s: tuple[float, float] = (0.15, 0.6)  # reverberation time of those

    def __post_init__(self) -> None:
        for name in ("rate", "pitch", "tract", "breath", "snr_db", "rt60_s"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name}: expected low <= high, got [{low}, {high}]")
        if self.rate[0] <= 0 or self.pitch[0] <= 0 or self.tract[0] <= 0 or self.rt60_s[0] <= 0:
            raise ValueError("rate, pitch, tract and rt60_s must be positive")
        if not (0 <= self.breath[0] and self.breath[1] <= 1):
            raise ValueError(f"breath must lie in [0, 1], got {list(self.breath)}")
        for name in ("noise_share", "reverb_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        unknown = [e for e in self.engines if e not in ("builtin", "espeak")]
        if unknown or not self.engines:
            raise ValueError(f"engines: expected some of builtin, espeak, got {list(self.engines) or 'none'}")


@dataclass(frozen=True)
class ClipVariety:
    """What one clip drew: its voice, engine and room (None: clean, dry)."""

    voice: Voice
    engine: str
    snr_db: float | None
    rt60_s: float | None

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "voice": dataclasses.asdict(self.voice)}


def draw_variety(config: VarietyConfig, seed: int, engine: str = "auto") -> ClipVariety:
    """Clip `seed`'s draw. `engine` other than auto is kept; auto draws among config.engines installed."""
    voice = voice_for_seed(seed)
    if not config.enabled:
        return ClipVariety(voice, engine if engine != "auto" else "espeak" if have_espeak() else "builtin", None, None)
    rng = np.random.default_rng([seed, 0x7A71E7])

    def uniform(bounds: tuple[float, float]) -> float:
        return float(rng.uniform(*bounds))

    voice = dataclasses.replace(voice, rate=voice.rate * uniform(config.rate), f0=voice.f0 * uniform(config.pitch),
                                tract=voice.tract * uniform(config.tract), breath=uniform(config.breath))
    installed = [e for e in config.engines if e == "builtin" or have_espeak()]
    drawn = installed[int(rng.integers(len(installed)))] if installed else "builtin"
    noisy, reverberant = rng.random() < config.noise_share, rng.random() < config.reverb_share
    snr, rt60 = uniform(config.snr_db), uniform(config.rt60_s)  # drawn always: a share change keeps the others
    return ClipVariety(voice, drawn if engine == "auto" else engine, snr if noisy else None,
                       rt60 if reverberant else None)


def apply_room(audio: np.ndarray, variety: ClipVariety, sample_rate: int, seed: int) -> np.ndarray:
    """`audio` in the clip's room: reverberated, then with noise, peak-normalised to 0.9 if louder. float32 [N]."""
    rng = np.random.default_rng([seed, 0x800E])
    out = np.asarray(audio, np.float64)
    if variety.rt60_s is not None:
        out = fftconvolve(out, _room_response(variety.rt60_s, sample_rate, rng))[: len(out)]
    if variety.snr_db is not None:
        out = out + _noise(len(out), rng) * np.sqrt(_speech_power(out, sample_rate) / 10 ** (variety.snr_db / 10))
    peak = np.abs(out).max(initial=0.0)
    return (out * (0.9 / peak) if peak > 0.9 else out).astype(np.float32)


def _room_response(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A direct path then exponentially decaying noise (60 dB down at rt60), after a short pre-delay."""
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60)
    tail = lfilter([0.5, 0.5], [1.0], tail)  # walls absorb the highest frequencies first
    delay = int(rng.uniform(0.005, 0.02) * sample_rate)
    response = np.zeros(n + delay)
    response[0] = 1.0
    # Reverberant energy comparable to the direct sound's: a talker a metre or two from the camera.
    response[delay:] += tail * rng.uniform(0.5, 1.5) / np.sqrt((tail**2).sum())
    return response


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise with a random spectral slope between white and brown (room hum, fans, traffic)."""
    white = rng.standard_normal(n)
    pole = rng.uniform(0.0, 0.98)
    coloured = lfilter([1.0], [1.0, -pole], white)
    return coloured / np.sqrt(np.mean(coloured**2) + 1e-12)


def _speech_power(audio: np.ndarray, sample_rate: int) -> float:
    """Mean power over the 10 ms frames within 30 dB of the loudest (the speech, not its pauses)."""
    hop = sample_rate // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    power = (frames**2).mean(1)
    active = power[power > power.max(initial=0.0) * 1e-3]
    return float(active.mean()) if len(active) else 0.0
