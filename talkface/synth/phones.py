"""Phones of synthetic speech that comes without a timeline (talkface/speech/phones.py has the type).

The built-in engine (speech.py) reports its exact timeline. Audio that comes without one
(espeak-ng) gets an estimate from its spectrum (`phones_from_audio`): silence,
hiss (a fricative, `s`), weak voicing (a closure or nasal, `n`) or a vowel placed by its F1
openness and F2 spread; it cannot tell lips from tongue, so it never yields a bilabial.
"""

from __future__ import annotations

import numpy as np

from talkface.speech.phones import Phone
from talkface.synth.acoustics import speech_features

_ESTIMATE_FPS = 100  # analysis frames per second of the acoustic estimate
# Thresholds on acoustics.speech_features (energy 0..1 over -50..-10 dBFS): measured on the built-in
# engine's phones (10th-90th percentiles), vowels sit at energy 0.8-1, consonants at 0.2-0.8, silence at 0;
# only fricatives and bursts have most of their power above 3 kHz.
_SILENT, _WEAK, _HISSY = 0.2, 0.76, 0.5
_MIN_PHONE_S = 0.03  # shorter runs join their neighbour


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
