"""Visemes: a mouth articulating phones, with coarticulation (the synthetic world's, and real speech's guide).

Each phone class has an articulation target in the synthetic model's mouth directions (jaw open,
lip spread, lip round; talkface/face3d/synthetic.py) and a dominance per direction: how strongly
it holds that direction against its neighbours. The trajectory is the dominance-weighted mean of
the targets (Cohen & Massaro 1993, "Modeling coarticulation in synthetic visual speech"): a
phone's dominance is its strength inside it and decays exponentially outside, faster after it
than before it, so that the mouth anticipates the coming sound (rounding spreads to the
consonants before /u/). Bilabials are strong on all directions and close the lips; /h/ and the
velars are weak and take their neighbours' shape. Gaps between phones are silence (a closed
mouth); a long pause may end with an in-breath through a slightly open mouth. Loudness plays no
part: an unstressed /a/ opens as wide as a stressed one, an /m/ closes however loud it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d

from talkface.speech.phones import Phone

RATE = 200  # trajectory samples per second before it is read at the video frames
N_DIRECTIONS = 3  # jaw open, lip spread, lip round


@dataclass(frozen=True)
class Viseme:
    """A phone class's articulation: target and dominance strength per mouth direction."""

    target: tuple[float, float, float]  # jaw open, lip spread, lip round (1.0 = a full natural motion)
    strength: tuple[float, float, float]
    sharpness: float = 1.0  # factor on the dominance's decay rates: a strong phone's reach stays short


def _v(target: tuple[float, float, float], strength: tuple[float, float, float], sharpness: float = 1.0) -> Viseme:
    return Viseme(target, strength, sharpness)


# Targets from the articulatory phonetics of each class (jaw height, lip shape); strengths follow
# how constrained the lips and jaw are for it (Cohen & Massaro's bilabials vs. /h/).
_VOWELS = {
    "a": _v((0.80, 0.15, 0.00), (1.0, 1.0, 1.0)),  # open
    "e": _v((0.45, 0.45, 0.00), (1.0, 1.0, 1.0)),  # mid front, spread
    "i": _v((0.20, 0.75, 0.00), (1.0, 1.0, 1.0)),  # close front, spread
    "o": _v((0.50, 0.00, 0.60), (1.0, 1.0, 1.0)),  # mid back, rounded
    "u": _v((0.20, 0.00, 0.90), (1.0, 1.0, 1.0)),  # close back, rounded
}
# Strong phones decay faster, so that their dominance falls to a vowel's within ~35 ms of them:
# a closure holds inside the phone without flattening the vowels around it.
_BILABIAL = _v((0.00, 0.10, 0.00), (100.0, 0.3, 100.0), 8.0)  # lips pressed shut: no jaw gap, no rounding gap
_LABIODENTAL = _v((0.06, 0.15, 0.00), (10.0, 0.5, 10.0), 4.0)  # lower lip against the upper teeth
_ALVEOLAR = _v((0.12, 0.20, 0.00), (1.0, 0.4, 0.4))  # jaw raised for the tongue tip; lips free
_POSTALVEOLAR = _v((0.12, 0.00, 0.45), (1.0, 1.0, 1.5))  # English /sh zh r/ are lip-rounded
_VELAR = _v((0.22, 0.10, 0.00), (0.5, 0.3, 0.3))  # tongue back: takes the vowel's shape
_GLIDE_W = _v((0.10, 0.00, 0.90), (2.0, 2.0, 3.0))
_GLOTTAL = _v((0.30, 0.00, 0.00), (0.15, 0.15, 0.15))  # /h/: the shape of the vowel after it
CONSONANT_CLASSES = {
    "bilabial": ("pbm", _BILABIAL), "labiodental": ("fv", _LABIODENTAL), "alveolar": ("tdnlsz", _ALVEOLAR),
    "postalveolar": ("jxr", _POSTALVEOLAR), "velar": ("kgcq", _VELAR), "glide": ("w", _GLIDE_W),
    "glottal": ("h", _GLOTTAL),
}
VISEMES: dict[str, Viseme] = {**_VOWELS, **{symbol: viseme for symbols, viseme in CONSONANT_CLASSES.values()
                                             for symbol in symbols}}
SILENCE = _v((0.0, 0.0, 0.0), (0.6, 0.6, 0.6))
BREATH = _v((0.25, 0.0, 0.0), (1.0, 1.0, 1.0))  # a quick in-breath through the mouth before speaking

# Dominance decay (1/s): the mouth moves towards a phone ~60 ms ahead of it and leaves it faster.
# Slower decays undershoot the vowels more (an /a/ between consonants reaches less of its target).
_ANTICIPATION, _CARRY_OVER = 16.0, 28.0
_REACH_S = 0.6  # dominance is negligible (< e^-9) this far from a phone
_MUSCLE_S = 0.012  # s: the lips and jaw cannot follow faster changes
# Pauses at least this long may end with an in-breath (0.15-0.35 s before the next phone).
_BREATH_PAUSE_S, _BREATH_CHANCE = 0.45, 0.5


def articulate(phones: Sequence[Phone], frame_times: np.ndarray, gain: float,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Jaw open, lip spread and lip round at `frame_times` (s) for `phones`: float64 [T, 3].

    `gain` scales how wide the subject articulates. With `rng`, a synthetic subject's variety: each
    phone's jaw target varies by +-15 % from one utterance of it to the next and some long pauses end
    with an in-breath. Without, every phone reaches its class's target and pauses stay closed.
    """
    end = max(float(frame_times.max(initial=0.0)), max((p.end for p in phones), default=0.0)) + _REACH_S
    grid = np.arange(-_REACH_S, end, 1.0 / RATE)
    weights = np.full((len(grid), N_DIRECTIONS), 1e-6)  # a closed, neutral mouth where nothing is said
    weighted = np.zeros((len(grid), N_DIRECTIONS))
    for (start, stop), viseme, spoken in _segments(phones, end, rng):
        target = np.array(viseme.target) * gain
        if spoken and rng is not None:
            target[0] *= rng.uniform(0.85, 1.15)
        lo, hi = np.searchsorted(grid, (start - _REACH_S, stop + _REACH_S))
        t = grid[lo:hi]
        decay = viseme.sharpness * np.where(t < start, _ANTICIPATION * (start - t),
                                            np.where(t > stop, _CARRY_OVER * (t - stop), 0.0))
        dominance = np.exp(-decay)[:, None] * np.array(viseme.strength)
        weights[lo:hi] += dominance
        weighted[lo:hi] += dominance * target
    trajectory = gaussian_filter1d(weighted / weights, _MUSCLE_S * RATE, axis=0, mode="nearest")
    return np.stack([np.interp(frame_times, grid, trajectory[:, k]) for k in range(N_DIRECTIONS)], 1)


def _segments(phones: Sequence[Phone], end: float,
              rng: np.random.Generator | None) -> list[tuple[tuple[float, float], Viseme, bool]]:
    """(span, viseme, spoken) of each phone, of the gaps between them (silence) and of some in-breaths."""
    out: list[tuple[tuple[float, float], Viseme, bool]] = []
    before = -_REACH_S
    for phone in sorted(phones, key=lambda p: p.start):
        gap = phone.start - before
        if gap > 0:
            out.append(((before, phone.start), SILENCE, False))
        if rng is not None and gap >= _BREATH_PAUSE_S and rng.random() < _BREATH_CHANCE:
            lead = rng.uniform(0.15, 0.35)
            out.append(((phone.start - lead, phone.start - lead + 0.12), BREATH, False))
        out.append(((phone.start, phone.end), VISEMES[phone.symbol], True))
        before = max(before, phone.end)
    out.append(((before, end), SILENCE, False))
    return out
