"""Phones: what is said when, the timeline a mouth articulates (visemes.py).

A phone's symbol is one of a small inventory shared by every source of phones: a vowel `a e i o u`
or a consonant letter (the synthetic world's built-in speech engine speaks exactly these; the
recogniser for real speech, recognition.py, maps its English phones onto them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

VOWELS = frozenset("aeiou")
CONSONANTS = frozenset("bcdfghjklmnpqrstvwxz")
SYMBOLS = VOWELS | CONSONANTS


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
