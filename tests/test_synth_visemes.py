"""The synthetic mouth articulates phones: the engine's phone timeline, visemes, coarticulation, speech variety."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from talkface.audio import SAMPLES_PER_VIDEO_FRAME
from talkface.cli import main
from talkface.config import load_config
from talkface.errors import ConfigError
from talkface.face3d.camera import Camera
from talkface.face3d.coeffs import EXPRESSION
from talkface.face3d.model import load_morphable_model
from talkface.face3d.synthetic import EXPRESSION_DIRECTIONS
from talkface.synth.motion import generate_motion, sample_head_style
from talkface.speech.phones import Phone, phones_from_json, phones_to_json
from talkface.synth.phones import phones_from_audio
from talkface.synth.speech import synthesize_utterance, utterance_for_duration, voice_for_seed
from talkface.synth.variety import ClipVariety, VarietyConfig, apply_room, draw_variety
from talkface.speech.visemes import VISEMES, articulate
from talkface.synth.world import LRW_FRAMES, lrw_speech

SR, FPS = 16000, 25
JAW, SPREAD, ROUND = (EXPRESSION_DIRECTIONS[k] for k in ("jaw_open", "lip_spread", "lip_round"))
REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RAMP = 0.012  # s: the built-in engine cross-fades 10 ms beyond a segment's ends


def letters(text: str) -> list[str]:
    """The phones the built-in engine's letter-to-sound rules give, independently: one per letter, y = i."""
    return ["i" if c == "y" else c for c in re.sub(r"[^a-z]", "", text.lower())]


def silent_outside(audio: np.ndarray, phones: list[Phone] | tuple[Phone, ...]) -> float:
    """Largest |sample| farther than RAMP from every phone."""
    t = np.arange(len(audio)) / SR
    near = np.zeros(len(audio), bool)
    for p in phones:
        near |= (t >= p.start - RAMP) & (t < p.end + RAMP)
    return float(np.abs(audio[~near]).max(initial=0.0))


def rms(audio: np.ndarray, start: float, end: float) -> float:
    return float(np.sqrt(np.mean(audio[int(start * SR) : int(end * SR)] ** 2)))


@pytest.fixture(scope="module")
def model():
    return load_morphable_model("synthetic")


def lip_gap(model, expression: np.ndarray) -> np.ndarray:
    """Inner-lip opening (px at 224) of the synthetic model's mean face with these expressions. [T]"""
    coeffs = torch.zeros(len(expression), 257)
    coeffs[:, EXPRESSION] = torch.as_tensor(expression)
    with torch.no_grad():
        marks = model(coeffs, Camera()).landmarks.numpy()
    return np.linalg.norm(marks[:, [61, 62, 63]] - marks[:, [67, 66, 65]], axis=2).mean(1)


def shown(phone: Phone, style) -> int:
    """The frame whose mouth shows the middle of `phone` (frame i shows time (i + 0.5) / FPS + lead)."""
    return int(round(((phone.start + phone.end) / 2 - style.mouth_lead) * FPS - 0.5))


def frame_log_rms(audio: np.ndarray, n: int) -> np.ndarray:
    audio = np.pad(audio, (0, max(0, n * SAMPLES_PER_VIDEO_FRAME - len(audio))))[: n * SAMPLES_PER_VIDEO_FRAME]
    return np.log(np.sqrt((audio.reshape(n, -1) ** 2).mean(1)) + 1e-3)


def best_lag(a: np.ndarray, b: np.ndarray, lags: range) -> tuple[int, dict[int, float]]:
    """The lag maximising corr(a[t], b[t + lag]); positive: a moves first."""
    n = len(a)
    r = {lag: float(np.corrcoef(a[: n - lag] if lag >= 0 else a[-lag:], b[lag:] if lag >= 0 else b[: n + lag])[0, 1])
         for lag in lags}
    return max(r, key=r.get), r


# ---------------------------------------------------------------------------------------------
# the phone timeline


def test_builtin_phone_timeline_is_the_engines():
    text = "Seven friends walk home together, slowly."
    utterance = synthesize_utterance(text, seed=0, engine="builtin")
    phones = utterance.phones
    assert [p.symbol for p in phones] == letters(text)
    assert all(a.end <= b.start + 1e-12 for a, b in zip(phones, phones[1:]))  # in order, no overlap
    # Exact: no sound away from the phones, sound in every vowel, each plosive's closure quiet.
    assert silent_outside(utterance.audio, phones) == 0.0
    vowels = [p for p in phones if p.symbol in "aeiou"]
    loudest = max(rms(utterance.audio, p.start, p.end) for p in vowels)
    assert min(rms(utterance.audio, p.start + RAMP, p.end - RAMP) for p in vowels) > 0.2 * loudest
    closures = [(p.start + RAMP, p.start + 0.025) for p in phones if p.symbol in "tk"]
    assert closures and max(rms(utterance.audio, a, b) for a, b in closures) < 0.05 * loudest
    assert utterance.phones == synthesize_utterance(text, seed=0, engine="builtin").phones


def test_phones_stay_exact_through_sentences_and_lrw_clips():
    long = utterance_for_duration(6.0, seed=3, engine="builtin")
    assert len(long.phones) > 30 and long.phones[-1].end <= 6.0
    assert silent_outside(long.audio, long.phones) == 0.0
    # Three utterances trimmed, cut and placed around the word: the phones moved with them.
    clip = lrw_speech("WATER", seed=11, engine="builtin", variety=VarietyConfig(enabled=False))
    assert clip.phone_source == "engine" and clip.samples.shape == (LRW_FRAMES * SAMPLES_PER_VIDEO_FRAME,)
    assert silent_outside(clip.samples, clip.phones) == 0.0
    word = [p.symbol for p in clip.phones if clip.span[0] - 1e-9 <= p.start < clip.span[1]]
    assert word == letters("water")
    back = phones_from_json(json.loads(json.dumps(phones_to_json(clip.phones))))
    assert [p.symbol for p in back] == [p.symbol for p in clip.phones]
    np.testing.assert_allclose([p.start for p in back], [p.start for p in clip.phones], atol=1e-4)


def test_phones_estimated_from_audio_find_the_vowels():
    speech = utterance_for_duration(10.0, seed=4, engine="builtin")
    estimate = phones_from_audio(speech.audio, SR)
    t = np.arange(0, 10.0, 0.005)

    def vowel_mask(phones) -> np.ndarray:
        mask = np.zeros(len(t), bool)
        for p in phones:
            if p.symbol in "aeiou":
                mask |= (t >= p.start) & (t < p.end)
        return mask

    true, found = vowel_mask(speech.phones), vowel_mask(estimate)
    assert (true & found).sum() > 0.8 * true.sum()  # the vowels are heard as vowels
    assert (found & ~true).sum() < 0.3 * found.sum()
    assert not [p for p in estimate if p.symbol in "pbm"]  # it cannot see the lips


# ---------------------------------------------------------------------------------------------
# visemes and coarticulation


def test_bilabials_close_the_lips_and_open_vowels_open_them(model):
    text = "Mama papa bama, pampa mapa."
    speech = synthesize_utterance(text, seed=2, engine="builtin")
    style = sample_head_style(2)
    motion = generate_motion(speech.audio, SR, style, seed=0, phones=speech.phones)
    gap = lip_gap(model, motion.expression)
    closed = [gap[shown(p, style)] for p in speech.phones if p.symbol in "pbm"]
    opened = [gap[shown(p, style)] for p in speech.phones if p.symbol == "a"]
    assert len(closed) == 11 and max(closed) < 1.0  # px at 224: the lips meet
    assert min(opened) > 4.0 and np.mean(opened) > 6.0


def test_vowel_shapes_and_anticipatory_rounding():
    style = sample_head_style(0)
    speech = synthesize_utterance("sisi susu sisi susu", seed=5, engine="builtin")
    mouth = generate_motion(speech.audio, SR, style, seed=0, phones=speech.phones).expression
    phones = speech.phones
    assert np.mean([mouth[shown(p, style), SPREAD] for p in phones if p.symbol == "i"]) > 0.3
    assert np.mean([mouth[shown(p, style), ROUND] for p in phones if p.symbol == "u"]) > 0.4
    # An /s/ before /u/ is already rounded; one before /i/ is not: the lips anticipate the vowel.
    before = {v: [mouth[shown(s, style), ROUND] for s, n in zip(phones, phones[1:])
                  if s.symbol == "s" and n.symbol == v] for v in "iu"}
    assert np.mean(before["u"]) > 0.25 > 0.1 > np.mean(before["i"])


def test_the_mouth_leads_the_sound():
    speech = utterance_for_duration(20.0, seed=7, engine="builtin")
    style = sample_head_style(7)
    assert 0.05 <= style.mouth_lead <= 0.08
    n = 20 * FPS
    jaw = generate_motion(speech.audio, SR, style, seed=0, n_frames=n, phones=speech.phones).expression[:, JAW]
    # The phones' own jaw targets, a step function at the frame times (independent of the dynamics).
    t = (np.arange(n) + 0.5) / FPS
    heard = np.zeros(n)
    for p in speech.phones:
        heard[(t >= p.start) & (t < p.end)] = VISEMES[p.symbol].target[0]
    lag, r = best_lag(jaw, heard, range(-4, 5))
    assert lag in (1, 2, 3) and r[lag] > 0.6  # 40-120 ms ahead: the lead plus anticipation
    assert r[lag] > r[-lag] + 0.1


def test_articulation_is_seeded_and_rests_in_silence():
    phones = [Phone("a", 1.0, 1.2), Phone("m", 1.2, 1.26), Phone("a", 1.26, 1.4)]
    times = np.arange(0, 3.0, 0.04)
    one = articulate(phones, times, 1.0, np.random.default_rng(0))
    np.testing.assert_array_equal(one, articulate(phones, times, 1.0, np.random.default_rng(0)))
    assert np.abs(one[times < 0.5]).max() < 0.01 and np.abs(one[times > 2.0]).max() < 0.01
    assert one[:, 0].max() > 0.5


def test_mouth_opening_barely_follows_loudness(model):
    """Real mouths: inner-lip gap vs frame energy r ~0.2-0.5; the energy-driven world had 0.88-0.93."""
    speech = utterance_for_duration(12.0, seed=6, engine="builtin")
    motion = generate_motion(speech.audio, SR, sample_head_style(6), seed=0, phones=speech.phones)
    gap = lip_gap(model, motion.expression)
    _, r = best_lag(gap, frame_log_rms(speech.audio, len(gap)), range(-3, 4))
    assert 0.1 < max(r.values()) < 0.7, r


# ---------------------------------------------------------------------------------------------
# variety


def test_variety_is_deterministic_and_varies():
    config = VarietyConfig()
    draws = [draw_variety(config, seed, "builtin") for seed in range(40)]
    assert draws[3] == draw_variety(config, 3, "builtin")
    rates = np.array([d.voice.rate / voice_for_seed(s).rate for s, d in enumerate(draws)])
    pitches = np.array([d.voice.f0 / voice_for_seed(s).f0 for s, d in enumerate(draws)])
    assert 0.85 <= rates.min() and rates.max() <= 1.2 and rates.std() > 0.05
    assert 0.85 <= pitches.min() and pitches.max() <= 1.15
    assert 8 <= sum(d.snr_db is not None for d in draws) <= 24  # ~40 %
    assert 4 <= sum(d.rt60_s is not None for d in draws) <= 20  # ~30 %
    one = lrw_speech("MONEY", seed=21)
    again = lrw_speech("MONEY", seed=21)
    np.testing.assert_array_equal(one.samples, again.samples)
    assert one.phones == again.phones and one.variety == again.variety
    plain = draw_variety(VarietyConfig(enabled=False), 3, "builtin")
    assert plain == ClipVariety(voice_for_seed(3), "builtin", None, None)


def test_slower_voice_stretches_the_phones():
    text = "Together again."
    voice = voice_for_seed(0)
    normal = synthesize_utterance(text, 0, SR, "builtin", voice).phones
    slow = synthesize_utterance(text, 0, SR, "builtin", dataclasses.replace(voice, rate=voice.rate * 0.8)).phones
    ratio = (slow[-1].end - slow[0].start) / (normal[-1].end - normal[0].start)
    assert ratio == pytest.approx(1 / 0.8, rel=0.1)


def test_room_noise_has_the_drawn_snr_and_reverb_a_tail():
    speech = utterance_for_duration(4.0, seed=9, engine="builtin")
    speech = dataclasses.replace(speech, audio=np.concatenate([speech.audio, np.zeros(SR // 2, np.float32)]))
    voice = voice_for_seed(9)
    noisy = apply_room(speech.audio, ClipVariety(voice, "builtin", 10.0, None), SR, seed=9)
    noise = noisy.astype(np.float64) - speech.audio  # peak 0.9 already: no renormalisation
    # SNR over the speech's 10 ms frames within 30 dB of its loudest (pauses do not count).
    power = (speech.audio[: len(speech.audio) // 160 * 160].astype(np.float64).reshape(-1, 160) ** 2).mean(1)
    snr = 10 * np.log10(power[power > 1e-3 * power.max()].mean() / np.mean(noise**2))
    assert snr == pytest.approx(10.0, abs=0.5)
    dry_end = speech.phones[-1].end + RAMP
    wet = apply_room(speech.audio, ClipVariety(voice, "builtin", None, 0.5), SR, seed=9)
    assert rms(speech.audio, dry_end, dry_end + 0.1) == 0.0 < rms(wet, dry_end, dry_end + 0.1)
    np.testing.assert_array_equal(wet, apply_room(speech.audio, ClipVariety(voice, "builtin", None, 0.5), SR, seed=9))


def test_variety_config_file_and_switch(tmp_path):
    shipped = load_config(VarietyConfig, REPO_CONFIGS / "synth_lrw.yaml")
    assert shipped == VarietyConfig()
    bad = tmp_path / "bad.yaml"
    bad.write_text("enabled: true\nsnr: [5, 10]\n")
    with pytest.raises(ConfigError, match="snr"):
        load_config(VarietyConfig, bad)
    with pytest.raises(ConfigError, match="rate"):
        load_config(VarietyConfig, None, ["rate=[1.2, 0.8]"])
    out = tmp_path / "lrw"
    assert main(["synth", "lrw", "--out", str(out), "--words", "1", "--clips", "1", "--splits", "train",
                 "--size", "64", "--engine", "builtin", "--set", "enabled=false"]) == 0
    truth = np.load(next(out.glob("*/train/*.npz")))
    drawn = json.loads(str(truth["variety"]))
    assert drawn["snr_db"] is None and drawn["rt60_s"] is None and str(truth["phone_source"]) == "engine"
    assert len(truth["phone_symbols"]) == len(truth["phone_starts"]) > 5
