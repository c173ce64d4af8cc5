"""Speech for the synthetic world: random sentences spoken by a per-subject voice.

espeak-ng speaks them when it is installed; otherwise (and in tests) a small built-in formant
synthesiser does: a glottal pulse train with an F0 contour through vowel formant resonators,
noise bursts and fricatives for consonants, pauses between words. Both are deterministic for a
seed, and the seed picks the voice (pitch, rate, vocal-tract length, breathiness), so subjects
sound different. The built-in engine also reports its exact phone timeline (phones.py), which the
synthetic mouth articulates; espeak-ng reports none.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, lfilter, resample_poly, sosfilt

from talkface.audio import SAMPLE_RATE
from talkface.errors import TalkfaceError
from talkface.speech.phones import Phone, shift_phones

ENGINES = ("auto", "espeak", "builtin")
LANGUAGES = ("en", "cmn")

_ENGLISH_WORDS = (
    "the a one two three four five six seven eight nine ten time people year way day man woman "
    "child world life hand part place case week company system program question work government "
    "number night point home water room mother area money story fact month lot right study book "
    "eye job word business issue side kind head house service friend father power hour game line "
    "end member law car city name team minute idea kid body information back parent face others "
    "level office door health person art war history party result change morning reason research "
    "girl guy moment air teacher force education good new first last long great little own other "
    "old big high different small large next early young important few public bad same able "
    "is was have do say get make go know take see come think look want give use find tell ask "
    "seem feel try leave call keep let begin show hear play run move like live believe hold bring "
    "happen write provide sit stand lose pay meet include continue set learn lead understand watch "
    "follow stop create speak read spend grow open walk win offer remember love consider appear buy "
    "wait serve die send expect build stay fall cut reach kill remain very often always never today "
    "here there really almost quickly slowly together again still maybe perhaps and but or so because"
).split()

# Common Mandarin words (two characters mostly); espeak-ng's "cmn" voice reads them as Mandarin.
_MANDARIN_WORDS = (
    "我们 你们 他们 今天 明天 昨天 现在 时候 朋友 老师 学生 学校 工作 生活 问题 时间 "
    "事情 地方 东西 世界 国家 城市 家里 早上 晚上 中午 天气 音乐 电影 电话 电脑 手机 "
    "喜欢 知道 觉得 希望 开始 看见 听说 回来 出去 学习 休息 准备 需要 认为 发现 "
    "非常 已经 一起 可能 应该 一定 还是 但是 因为 所以 如果 虽然 特别 其实 马上 "
    "很 好 大 小 多 少 新 老 高 快 慢 吃 喝 说 看 听 走 来 去 想 做 买 卖 写 读 的 了 在 是 有"
).split()

# Vowel formants F1-F3 (Hz), adult male averages (Peterson & Barney 1952).
_VOWEL_FORMANTS = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}
# Open vowels are intrinsically louder than close ones.
_VOWEL_LEVEL = {"a": 1.0, "e": 0.9, "o": 0.9, "i": 0.8, "u": 0.8}
_FORMANT_BANDWIDTHS = (70.0, 100.0, 150.0)
_LETTER_VOWEL = {"a": "a", "e": "e", "i": "i", "y": "i", "o": "o", "u": "u"}


@dataclass(frozen=True)
class _Consonant:
    kind: str  # "plosive" (closure + burst), "fricative" (noise) or "sonorant" (voiced formants)
    band: tuple[float, float] | None = None  # noise band (Hz): place of articulation
    formants: tuple[float, ...] = ()  # sonorants (Hz)
    voiced: bool = False
    level: float = 0.3  # RMS relative to a stressed /a/


def _plosive(low: float, high: float, voiced: bool) -> _Consonant:
    return _Consonant("plosive", (low, high), voiced=voiced)


def _fricative(low: float, high: float, voiced: bool, level: float) -> _Consonant:
    return _Consonant("fricative", (low, high), voiced=voiced, level=level)


def _sonorant(f1: float, f2: float, f3: float, level: float) -> _Consonant:
    return _Consonant("sonorant", formants=(f1, f2, f3), voiced=True, level=level)


# Letter -> consonant. Burst/frication bands: labial low, velar mid, alveolar high.
_CONSONANTS = {
    "p": _plosive(400.0, 1500.0, False), "b": _plosive(400.0, 1500.0, True),
    "t": _plosive(3000.0, 6000.0, False), "d": _plosive(3000.0, 6000.0, True),
    "k": _plosive(1500.0, 3000.0, False), "g": _plosive(1500.0, 3000.0, True),
    "c": _plosive(1500.0, 3000.0, False), "q": _plosive(1500.0, 3000.0, False),
    "s": _fricative(4000.0, 7500.0, False, 0.25), "z": _fricative(4000.0, 7500.0, True, 0.2),
    "f": _fricative(1200.0, 7000.0, False, 0.12), "v": _fricative(1200.0, 7000.0, True, 0.12),
    "x": _fricative(2000.0, 5000.0, False, 0.25), "j": _fricative(2000.0, 5000.0, True, 0.2),
    "h": _fricative(500.0, 3000.0, False, 0.08),
    "m": _sonorant(250.0, 1100.0, 2200.0, 0.3), "n": _sonorant(250.0, 1500.0, 2500.0, 0.3),
    "l": _sonorant(360.0, 1300.0, 2700.0, 0.5), "r": _sonorant(420.0, 1300.0, 1600.0, 0.5),
    "w": _sonorant(290.0, 610.0, 2150.0, 0.5),
}
# Mandarin tone shapes as F0 factors at the start and end of a syllable (tones 1-4).
_TONES = ((1.15, 1.15), (0.95, 1.2), (0.9, 0.85), (1.2, 0.85))
_ROMAN = "bdgkmnlshtpfwrzxj"


@dataclass(frozen=True)
class Voice:
    """One subject's voice: the espeak-ng voice and the built-in synthesiser's parameters."""

    language: str  # one of LANGUAGES
    espeak_name: str  # espeak-ng -v argument, e.g. "en-gb+f3"
    f0: float  # mean fundamental frequency (Hz)
    rate: float  # speaking-rate factor, 1.0 = about 4-5 syllables per second
    tract: float = 1.0  # formant-frequency factor of the built-in engine: shorter vocal tract > 1
    breath: float = 0.0  # share of aspiration noise in the built-in engine's voicing (0..1)

    @property
    def espeak_speed(self) -> int:
        """Words per minute for espeak-ng -s (its default is 175)."""
        return int(round(165 * self.rate))

    @property
    def espeak_pitch(self) -> int:
        """espeak-ng -p (0-99, default 50), relative to the variant's own base pitch."""
        base = 200.0 if "+f" in self.espeak_name else 115.0
        return int(np.clip(round(50 + 60 * np.log2(self.f0 / base)), 0, 99))


_ESPEAK_ENGLISH = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc")


def voice_for_seed(seed: int) -> Voice:
    """The voice of subject `seed`: about one in five speaks Mandarin, half are female."""
    rng = np.random.default_rng([seed, 0x5EEC])
    language = "cmn" if rng.random() < 0.2 else "en"
    female = rng.random() < 0.5
    base = "cmn" if language == "cmn" else _ESPEAK_ENGLISH[rng.integers(len(_ESPEAK_ENGLISH))]
    variant = f"+f{rng.integers(1, 5)}" if female else f"+m{rng.integers(1, 8)}"
    low, high = (165.0, 260.0) if female else (85.0, 150.0)
    f0 = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    rate = float(rng.uniform(0.8, 1.25))
    # Drawn after the others, so that a seed keeps the pitch and rate it always had.
    tract = float(rng.uniform(1.08, 1.22) if female else rng.uniform(0.93, 1.05))
    return Voice(language, base + variant, f0, rate, tract, float(rng.uniform(0.0, 0.25)))


@dataclass(frozen=True)
class Utterance:
    """Speech samples and, from the built-in engine, what was said when (None from espeak-ng)."""

    audio: np.ndarray  # float32 [N] in [-1, 1]
    phones: tuple[Phone, ...] | None
    engine: str  # "builtin" or "espeak"


def have_espeak() -> bool:
    """Whether the espeak-ng executable is on PATH."""
    return shutil.which("espeak-ng") is not None


def random_sentence(rng: np.random.Generator, n_words: int | None = None, language: str = "en") -> str:
    """A random sequence of common words, punctuated like a sentence."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    if n_words is None:
        n_words = int(rng.integers(4, 11))
    if n_words < 1:
        raise ValueError(f"a sentence needs at least one word, got n_words={n_words}")
    vocabulary = _ENGLISH_WORDS if language == "en" else _MANDARIN_WORDS
    words = [vocabulary[i] for i in rng.integers(len(vocabulary), size=n_words)]
    comma, stop, space = (",", ".", " ") if language == "en" else ("，", "。", "")
    if n_words > 5 and rng.random() < 0.5:
        at = int(rng.integers(2, n_words - 2))
        words[at] += comma
    text = space.join(words) + stop
    return text[0].upper() + text[1:]


def synthesize_speech(text: str, seed: int, sample_rate: int = SAMPLE_RATE, engine: str = "auto") -> np.ndarray:
    """Speak `text` in subject `seed`'s voice -> float32 [N] in [-1, 1] at `sample_rate`."""
    return synthesize_utterance(text, seed, sample_rate, engine).audio


def synthesize_utterance(text: str, seed: int, sample_rate: int = SAMPLE_RATE, engine: str = "auto",
                         voice: Voice | None = None) -> Utterance:
    """Speak `text` in `voice` (default: subject `seed`'s) with the phone timeline where the engine has one."""
    if engine not in ENGINES:
        raise ValueError(f"unknown speech engine {engine!r}; expected one of {', '.join(ENGINES)}")
    voice = voice or voice_for_seed(seed)
    phones: tuple[Phone, ...] | None = None
    if engine == "espeak" or (engine == "auto" and have_espeak()):
        audio, engine = _espeak(text, voice, sample_rate), "espeak"
    else:
        rng = np.random.default_rng([seed, zlib.crc32(text.encode("utf-8"))])
        audio, phones = _builtin(text, voice, sample_rate, rng)
        engine = "builtin"
    peak = np.abs(audio).max(initial=0.0)
    # Same peak level for every utterance and engine, so energy means the same thing everywhere.
    audio = (audio * (0.9 / peak) if peak > 0 else audio).astype(np.float32)
    return Utterance(audio, phones, engine)


def speech_for_duration(seconds: float, seed: int, sample_rate: int = SAMPLE_RATE, engine: str = "auto") -> np.ndarray:
    """Sentences with pauses between them, trimmed/padded to exactly round(seconds*sample_rate) samples."""
    return utterance_for_duration(seconds, seed, sample_rate, engine).audio


def utterance_for_duration(seconds: float, seed: int, sample_rate: int = SAMPLE_RATE, engine: str = "auto",
                           voice: Voice | None = None) -> Utterance:
    """speech_for_duration with its phone timeline (None unless every sentence came with one)."""
    if seconds < 0:
        raise ValueError(f"duration must be non-negative, got {seconds}")
    n = int(round(seconds * sample_rate))
    voice = voice or voice_for_seed(seed)
    rng = np.random.default_rng([seed, 0xD0A])
    parts = [np.zeros(int(rng.uniform(0.1, 0.5) * sample_rate), np.float32)]
    length = len(parts[0])
    phones: list[Phone] | None = []
    resolved = engine if engine != "auto" else "espeak" if have_espeak() else "builtin"
    while length < n:
        sentence = synthesize_utterance(random_sentence(rng, language=voice.language), seed, sample_rate, resolved,
                                        voice)
        if phones is not None and sentence.phones is not None:
            phones += shift_phones(sentence.phones, length / sample_rate, end=n / sample_rate)
        else:
            phones = None
        pause = np.zeros(int(rng.uniform(0.25, 0.7) * sample_rate), np.float32)
        parts += [sentence.audio, pause]
        length += len(sentence.audio) + len(pause)
    audio = np.concatenate(parts)[:n]
    fade = min(n, int(0.01 * sample_rate))  # no click where a word is cut
    audio[n - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return Utterance(audio, None if phones is None else tuple(phones), resolved)


def _espeak(text: str, voice: Voice, sample_rate: int) -> np.ndarray:
    if not have_espeak():
        raise TalkfaceError("espeak-ng is not installed (apt-get install espeak-ng); or use the builtin engine")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        command = ["espeak-ng", "-v", voice.espeak_name, "-s", str(voice.espeak_speed),
                   "-p", str(voice.espeak_pitch), "-w", str(wav), "--stdin"]
        done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True)
        if done.returncode != 0 or not wav.exists():
            message = done.stderr.decode(errors="replace").strip().splitlines()
            reason = message[-1] if message else "no output"
            raise TalkfaceError(f"espeak-ng failed for voice {voice.espeak_name}: {reason}")
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    ratio = Fraction(sample_rate, rate).limit_denominator(1000)
    return resample_poly(audio[:, 0], ratio.numerator, ratio.denominator).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Built-in formant synthesiser


@dataclass(frozen=True)
class _Segment:
    start: float  # s
    duration: float  # s
    level: float  # target RMS before the utterance is peak-normalised
    voiced: float  # share of the glottal source (0..1); the rest is noise
    formants: tuple[float, ...] = ()  # resonators for the voiced part (Hz)
    band: tuple[float, float] | None = None  # band-pass for the noise part (Hz)
    f0: tuple[float, float] | None = None  # F0 factors at start and end (vowels only)


def _words(text: str) -> list[list[tuple[str, int | None]] | None]:
    """Words as (unit, tone) pairs, a unit being a consonant letter or a vowel run; None for a pause.

    A CJK character becomes a consonant and a toned vowel chosen from its code point.
    """
    words: list[list[tuple[str, int | None]] | None] = []
    for token in re.findall(r"[a-z]+|[\u4e00-\u9fff]+|[,;，；]", text.lower()):
        if token in ",;，；":
            words.append(None)
        elif "\u4e00" <= token[0] <= "\u9fff":
            word: list[tuple[str, int | None]] = []
            for code in map(ord, token):
                word += [(_ROMAN[code % len(_ROMAN)], None), ("aeiou"[(code // len(_ROMAN)) % 5], code % 4)]
            words.append(word)
        else:
            words.append([(unit, None) for unit in re.findall(r"[aeiouy]{1,2}|[b-df-hj-np-tv-xz]", token)])
    return words


def _plan(text: str, voice: Voice, rng: np.random.Generator) -> tuple[list[_Segment], list[Phone], float]:
    """Lay out segments in time; returns them, the phones they make and the total duration (s)."""
    segments: list[_Segment] = []
    phones: list[Phone] = []
    scale = 1.0 / voice.rate
    t = 0.08
    for word in _words(text):
        if word is None:
            t += rng.uniform(0.12, 0.25)
            continue
        stressed = True  # English: stress on the first syllable
        for unit, tone in word:
            if unit[0] in _LETTER_VOWEL:
                first = len(segments)
                t = _vowel(segments, unit, tone, stressed, t, scale, rng)
                phones += [Phone(_LETTER_VOWEL[letter], seg.start, seg.start + seg.duration)
                           for letter, seg in zip(unit, segments[first:])]
                stressed = False
            else:
                start = t
                t = _consonant(segments, _CONSONANTS[unit], t, scale, rng)
                phones.append(Phone(unit, start, t))
        t += rng.uniform(0.0, 0.06) * scale  # words run together, with short gaps sometimes
    return segments, phones, t + 0.08


def _vowel(segments: list[_Segment], letters: str, tone: int | None, stressed: bool, t: float, scale: float,
           rng: np.random.Generator) -> float:
    """Append a vowel (two letters: a glide between two vowels) starting at t; return the time after it."""
    prominent = stressed or tone is not None
    f0 = _TONES[tone] if tone is not None else (1.12, 1.04) if stressed else (1.0, 0.96)
    duration = scale * (rng.uniform(0.13, 0.17) if prominent else rng.uniform(0.08, 0.11))
    for letter in letters:
        vowel = _LETTER_VOWEL[letter]
        level = _VOWEL_LEVEL[vowel] * (1.0 if prominent else 0.7)
        segments.append(_Segment(t, duration / len(letters), level, 1.0, _VOWEL_FORMANTS[vowel], None, f0))
        t += duration / len(letters)
    return t


def _consonant(segments: list[_Segment], spec: _Consonant, t: float, scale: float,
               rng: np.random.Generator) -> float:
    """Append one consonant's segments starting at t; return the time after it."""
    if spec.kind == "plosive":
        closure = scale * rng.uniform(0.03, 0.05)
        if spec.voiced:  # a weak voice bar during the closure
            segments.append(_Segment(t, closure, 0.04, 1.0, (250.0,)))
        burst = scale * 0.02
        segments.append(_Segment(t + closure, burst, spec.level, 0.0, (), spec.band))
        return t + closure + burst
    if spec.kind == "fricative":
        duration = scale * rng.uniform(0.07, 0.1)
        segments.append(_Segment(t, duration, spec.level, 0.4 if spec.voiced else 0.0, (250.0,), spec.band))
        return t + duration
    duration = scale * rng.uniform(0.05, 0.08)
    segments.append(_Segment(t, duration, spec.level, 1.0, spec.formants))
    return t + duration


def _builtin(text: str, voice: Voice, sample_rate: int,
             rng: np.random.Generator) -> tuple[np.ndarray, tuple[Phone, ...]]:
    """The utterance's samples (float32 [N], not normalised) and its phones."""
    segments, phones, total = _plan(text, voice, rng)
    n = int(round(total * sample_rate))
    glottal = _glottal_source(segments, voice, total, n, sample_rate, rng)
    noise = rng.standard_normal(n)
    if voice.breath > 0:  # aspiration: turbulent airflow through the glottis, mixed into the voicing
        glottal = (1 - voice.breath) * glottal / _rms(glottal) + voice.breath * rng.standard_normal(n)
    out = np.zeros(n)
    for seg in segments:
        ramp = min(0.02, seg.duration / 2)
        a = max(0, int((seg.start - ramp / 2) * sample_rate))
        b = min(n, int((seg.start + seg.duration + ramp / 2) * sample_rate))
        warm = min(a, int(0.01 * sample_rate))  # let resonators ring in before the segment
        sound = np.zeros(b - a + warm)
        if seg.voiced > 0:
            voiced = glottal[a - warm : b]
            for formant, bandwidth in zip(seg.formants, _FORMANT_BANDWIDTHS):
                voiced = lfilter(*_resonator(formant * voice.tract, bandwidth, sample_rate), voiced)
            sound += seg.voiced * voiced / _rms(voiced)
        if seg.voiced < 1 and seg.band is not None:
            hiss = sosfilt(_band_pass(*seg.band, sample_rate), noise[a - warm : b])
            sound += (1 - seg.voiced) * hiss / _rms(hiss)
        out[a:b] += seg.level * sound[warm:] * _envelope(b - a, int(ramp * sample_rate))
    return out.astype(np.float32), tuple(phones)


def _glottal_source(segments: list[_Segment], voice: Voice, total: float, n: int, sample_rate: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Pulse train following the F0 contour, spectrally shaped for the formant cascade."""
    knots_t, knots_f = [0.0], [1.0]
    for seg in segments:
        if seg.f0 is not None:
            knots_t += [seg.start, seg.start + seg.duration]
            knots_f += list(seg.f0)
    t = np.arange(n) / sample_rate
    declination = np.linspace(1.08, 0.92, n)  # F0 falls over an utterance
    wander = 1 + 0.01 * rng.standard_normal(n).cumsum() / np.sqrt(np.arange(1, n + 1))  # slow ~1 % drift
    f0 = voice.f0 * np.interp(t, knots_t + [total], knots_f + [1.0]) * declination * wander
    phase = np.cumsum(f0 / sample_rate)
    pulses = np.zeros(n)
    pulses[1:][np.diff(np.floor(phase)) > 0] = 1.0
    # A leaky integrator (a pole near 0 Hz) and two differences: a source rising ~6 dB/octave
    # above ~50 Hz. Through the cascade below this gives /i/ a strong F2 region relative to its F1
    # skirt and /a/ the opposite, as in natural vowels and in espeak-ng's voices, so the spectral
    # lip cue of motion.py means the same for both engines.
    r = np.exp(-np.pi * 100.0 / sample_rate)
    flow = lfilter([1.0], [1.0, -r], pulses)
    return np.diff(flow, n=2, prepend=[0.0, 0.0])


@lru_cache(maxsize=256)
def _resonator(frequency: float, bandwidth: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-pole resonator with unit gain at 0 Hz (a cascade then gives natural formant levels)."""
    r = np.exp(-np.pi * bandwidth / sample_rate)
    a = np.array([1.0, -2 * r * np.cos(2 * np.pi * frequency / sample_rate), r * r])
    return np.array([a.sum()]), a


@lru_cache(maxsize=64)
def _band_pass(low: float, high: float, sample_rate: int) -> np.ndarray:
    nyquist = sample_rate / 2
    return butter(2, [low / nyquist, min(high, 0.95 * nyquist) / nyquist], btype="band", output="sos")


def _envelope(n: int, ramp: int) -> np.ndarray:
    """Flat envelope with raised-cosine ends; overlapping neighbours cross-fade to a constant sum."""
    env = np.ones(n)
    ramp = min(ramp, n // 2)
    if ramp > 0:
        rise = np.sin(np.linspace(0, np.pi / 2, ramp)) ** 2
        env[:ramp] = rise
        env[n - ramp :] = rise[::-1]
    return env


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x))) + 1e-9
