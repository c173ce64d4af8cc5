"""Phones: what is said when, the timeline the synthetic mouth articulates (visemes.py).

A phone's symbol is a sound of the built-in speech engine (speech.py): a vowel `a e i o u` or a
consonant letter. The built-in engine reports its exact timeline. Audio that comes without one
(a user's file, espeak-ng) gets an estimate from its spectrum (`phones_from_audio`): silence,
hiss (a fricative, `s`), weak voicing (a closure or nasal, `n`) or a vowel placed by its F1
openness and F2 spread; it cannot tell lips from tongue, so it never yields a bilabial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from talkface.synth.acoustics import speech_features

VOWELS = frozenset("aeiou")
CONSONANTS = frozenset("bcdfghjklmnpqrstvwxz")
SYMBOLS = VOWELS | CONSONANTS

_ESTIMATE_FPS = 100  # analysis frames per second of the acoustic estimate
# Thresholds on acoustics.speech_features (energy 0..1 over -50..-10 dBFS): measured on the built-in
# engine's phones (10th-90th percentiles), vowels sit at energy 0.8-1, consonants at 0.2-0.8, silence at 0;
# only fricatives and bursts have most of their power above 3 kHz.
_SILENT, _WEAK, _HISSY = 0.2, 0.76, 0.5
_MIN_PHONE_S = 0.03  # shorter runs join their neighbour


@dataclass(frozen=True)
class Phone:
    """One spoken sound: its symbol and its span in seconds."""

    symbol: str
    start: float
    end: float

    def __post_init__(self) -> None:
        if self.symbol not in SYMBOLS:
            raise ValueError(f"unknown phone {self.symbol!r}")
        if not self.end > self.start:
            raise ValueError(f"phone {self.symbol!r} ends ({self.end}) before it starts ({self.start})")


def shift_phones(phones: Iterable[Phone], offset: float, start: float = -np.inf, end: float = np.inf) -> list[Phone]:
    """The phones moved by `offset` s, cut to [start, end); phones left with no length are dropped."""
    moved = []
    for phone in phones:
        a, b = max(phone.start + offset, start), min(phone.end + offset, end)
        if b > a:
            moved.append(Phone(phone.symbol, a, b))
    return moved


def phones_to_json(phones: Sequence[Phone]) -> list[list[Any]]:
    """[[symbol, start_s, end_s], ...] with times rounded to 0.1 ms."""
    return [[p.symbol, round(p.start, 4), round(p.end, 4)] for p in phones]


def phones_from_json(rows: Sequence[Sequence[Any]]) -> list[Phone]:
    return [Phone(str(symbol), float(start), float(end)) for symbol, start, end in rows]


def phones_from_audio(audio: np.ndarray, sample_rate: int) -> list[Phone]:
    """A phone timeline estimated from the spectrum alone (see the module docstring)."""
    n = int(np.ceil(len(audio) / sample_rate * _ESTIMATE_FPS))
    cues = speech_features(audio, sample_rate, n, offset_s=-0.5 / _ESTIMATE_FPS, fps=_ESTIMATE_FPS)
    labels = np.where(cues["energy"] < _SILENT, "", np.where(cues["hiss"] > _HISSY, "s",
                      np.where(cues["energy"] < _WEAK, "n", _vowels(cues["openness"], cues["spread"]))))
    runs = _runs(list(labels))
    phones = []
    for label, a, b in runs:
        if label and (b - a) / _ESTIMATE_FPS < _MIN_PHONE_S and phones and phones[-1].end == a / _ESTIMATE_FPS:
            label = phones[-1].symbol  # a blip: part of the phone before it
        if not label:
            continue
        start, end = a / _ESTIMATE_FPS, min(b / _ESTIMATE_FPS, len(audio) / sample_rate)
        if phones and phones[-1].symbol == label and phones[-1].end == start:
            start = phones.pop().start
        if end > start:
            phones.append(Phone(label, start, end))
    return phones


def _vowels(openness: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """The nearest of the five vowels by F2 spread (front /i e/ vs. back /a o u/) and F1 openness.

    Openness medians on the built-in engine: /i/ 0.01, /e/ 0.17; /u/ 0.07, /o/ 0.57, /a/ 0.96.
    """
    front = np.where(openness < 0.05, "i", "e")
    back = np.where(openness < 0.3, "u", np.where(openness < 0.87, "o", "a"))
    return np.where(spread > 0.0, front, back)


def _runs(labels: list[str]) -> list[tuple[str, int, int]]:
    """(label, first, end) of each run of equal labels."""
    runs, first = [], 0
    for k in range(1, len(labels) + 1):
        if k == len(labels) or labels[k] != labels[first]:
            runs.append((labels[first], first, k))
            first = k
    return runs
