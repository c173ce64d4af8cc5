"""The synthetic world's speech and motion: mouth from audio alone, per-subject head style, blinks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.signal import welch

from talkface.face3d.synthetic import EXPRESSION_DIRECTIONS
from talkface.synth.motion import (
    MAX_ANGLE,
    HeadStyle,
    Motion,
    generate_motion,
    sample_head_style,
    speech_features,
)
from talkface.synth.speech import (
    have_espeak,
    random_sentence,
    speech_for_duration,
    synthesize_speech,
    voice_for_seed,
)

SR = 16000
FPS = 25
JAW, SPREAD, ROUND, BLINK = (EXPRESSION_DIRECTIONS[k] for k in ("jaw_open", "lip_spread", "lip_round", "blink"))


def frame_log_rms(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Independent energy envelope: log RMS of a 25 ms box window centred on each 40 ms frame."""
    half = SR * 25 // 2000
    centres = ((np.arange(n_frames) + 0.5) * SR / FPS).astype(int)
    return np.array([np.log(np.sqrt(np.mean(audio[max(c - half, 0) : c + half] ** 2)) + 1e-3) for c in centres])


def estimate_f0(audio: np.ndarray) -> float:
    """Median autocorrelation pitch over clearly periodic 40 ms frames."""
    frame = 640
    lags = np.arange(SR // 400, SR // 60)
    estimates = []
    for start in range(0, len(audio) - frame - lags[-1], frame):
        x = audio[start : start + frame + lags[-1]].astype(np.float64)
        head = x[:frame]
        if np.sqrt(np.mean(head**2)) < 0.05:
            continue
        ac = np.array([np.dot(head, x[lag : lag + frame]) for lag in lags])
        ac /= np.dot(head, head)
        if ac.max() > 0.6:  # voiced
            estimates.append(SR / lags[np.argmax(ac > 0.9 * ac.max())])  # first near-best lag: no octave errors
    assert len(estimates) > 10
    return float(np.median(estimates))


def pose_features(motion: Motion) -> np.ndarray:
    """log std and log dominant frequency of each angle: [6]."""
    stds = motion.angles.std(0)
    freqs = []
    for k in range(3):
        f, p = welch(motion.angles[:, k] - motion.angles[:, k].mean(), fs=FPS, nperseg=512)
        freqs.append(f[1:][np.argmax(p[1:])])
    return np.log(np.concatenate([stds, freqs]))


@pytest.fixture(scope="module")
def long_speech() -> np.ndarray:
    return speech_for_duration(80.0, seed=5, engine="builtin")


# ---------------------------------------------------------------------------------------------
# speech


def test_builtin_speech_length_range_and_determinism():
    text = "Seven friends walk home together, slowly."
    audio = synthesize_speech(text, seed=0, engine="builtin")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert 1.0 < len(audio) / SR < 4.0  # ~10 syllables at 4-6 per second
    np.testing.assert_array_equal(audio, synthesize_speech(text, seed=0, engine="builtin"))
    assert not np.array_equal(audio, synthesize_speech("Another sentence.", seed=0, engine="builtin"))


def test_builtin_pitch_follows_the_voice():
    text = "We are always here today, and maybe we will go home again."
    f0 = {}
    for seed in (0, 1):
        f0[seed] = estimate_f0(synthesize_speech(text, seed=seed, engine="builtin"))
        assert f0[seed] == pytest.approx(voice_for_seed(seed).f0, rel=0.12)
    assert abs(np.log(f0[0] / f0[1])) > 0.2  # different subjects sound different


def test_speech_for_duration_is_exact_and_has_pauses():
    for seconds in (0.0, 0.52, 6.0):
        audio = speech_for_duration(seconds, seed=3, engine="builtin")
        assert audio.shape == (round(seconds * SR),) and audio.dtype == np.float32
    energy = frame_log_rms(audio, int(6.0 * FPS))
    assert (energy < np.log(2e-3)).mean() > 0.05  # silent frames between sentences
    assert (energy > np.log(0.05)).mean() > 0.4
    np.testing.assert_array_equal(audio, speech_for_duration(6.0, seed=3, engine="builtin"))


def test_random_sentence():
    a = random_sentence(np.random.default_rng(1), n_words=6)
    assert a == random_sentence(np.random.default_rng(1), n_words=6)
    assert len(a.split()) == 6 and a.endswith(".")
    assert random_sentence(np.random.default_rng(1), language="cmn").endswith("。")
    with pytest.raises(ValueError, match="cmn"):
        random_sentence(np.random.default_rng(1), language="xx")
    with pytest.raises(ValueError, match="builtin"):
        synthesize_speech("hello", seed=0, engine="festival")


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")
def test_espeak_voices():
    mandarin = next(s for s in range(50) if voice_for_seed(s).language == "cmn")
    english = next(s for s in range(50) if voice_for_seed(s).language == "en")
    for seed in (english, mandarin):
        text = random_sentence(np.random.default_rng(seed), language=voice_for_seed(seed).language)
        audio = synthesize_speech(text, seed=seed, engine="espeak")
        assert audio.dtype == np.float32 and len(audio) > SR // 2
        assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert speech_for_duration(2.5, seed=english, engine="espeak").shape == (round(2.5 * SR),)


# ---------------------------------------------------------------------------------------------
# mouth


def test_silence_closes_the_mouth():
    speech = speech_for_duration(3.0, seed=2, engine="builtin")
    audio = np.concatenate([np.zeros(2 * SR, np.float32), speech, np.zeros(2 * SR, np.float32)])
    jaw = generate_motion(audio, SR, sample_head_style(2), seed=1).expression[:, JAW]
    assert jaw[:40].max() < 0.05 and jaw[-40:].max() < 0.05
    assert jaw[55:125].mean() > 0.2 and jaw.max() > 0.4


def test_lip_shape_follows_the_vowels():
    style = sample_head_style(0)
    mouths = {}
    for vowel, text in (("i", "bibi mimi didi, bibi mimi"), ("u", "bubu mumu dudu, bubu mumu")):
        audio = synthesize_speech(text, seed=4, engine="builtin")
        mouths[vowel] = generate_motion(audio, SR, style, seed=0).expression
    assert mouths["i"][:, SPREAD].mean() > 2 * mouths["i"][:, ROUND].mean()
    assert mouths["u"][:, ROUND].mean() > 2 * mouths["u"][:, SPREAD].mean()


def test_speech_features_shapes_and_ranges():
    audio = speech_for_duration(2.0, seed=1, engine="builtin")
    features = speech_features(audio, SR, 50)
    assert set(features) == {"energy", "openness", "spread", "hiss"}
    for name, value in features.items():
        assert value.shape == (50,) and value.dtype == np.float32, name
        assert np.isfinite(value).all()
    for name in ("energy", "openness", "hiss"):
        assert 0 <= features[name].min() and features[name].max() <= 1, name
    assert np.abs(features["spread"]).max() <= 1
    silent = speech_features(np.zeros(SR, np.float32), SR, 25)
    np.testing.assert_array_equal(silent["energy"], 0.0)


# ---------------------------------------------------------------------------------------------
# head pose and blinks


def test_subjects_have_clearly_different_head_styles(long_speech):
    other_speech = speech_for_duration(80.0, seed=6, engine="builtin")
    a, b = sample_head_style(1), sample_head_style(2)
    a1 = pose_features(generate_motion(long_speech, SR, a, seed=10))
    a2 = pose_features(generate_motion(other_speech, SR, a, seed=11))
    b1 = pose_features(generate_motion(long_speech, SR, b, seed=10))
    within, between = np.linalg.norm(a1 - a2), np.linalg.norm(a1 - b1)
    assert between > 2.5 * within, (within, between)


@pytest.mark.parametrize("subject", [1, 2, 3])
def test_pose_statistics_match_the_style(long_speech, subject):
    style = sample_head_style(subject)
    motion = generate_motion(long_speech, SR, style, seed=subject)
    stds = motion.angles.std(0)
    np.testing.assert_allclose(stds, style.amplitude, rtol=0.3)
    assert np.all(np.abs(motion.angles.mean(0) - style.bias) < 0.5 * np.array(style.amplitude))
    dominant = np.exp(pose_features(motion)[3:])
    for k in range(3):
        assert abs(dominant[k] - style.frequency[k]) < max(0.06, 0.25 * style.frequency[k]), (k, dominant, style)
    np.testing.assert_allclose(motion.translation.std(0), style.translation_amplitude, rtol=0.4)


def test_nods_follow_speech_energy_by_the_coupling(long_speech):
    energy = frame_log_rms(long_speech, int(80.0 * FPS))
    drive = gaussian_filter1d(energy, 1.5) - gaussian_filter1d(energy, 12.0)
    r = {}
    for coupling in (0.0, 0.7):
        style = dataclasses.replace(sample_head_style(4), energy_coupling=coupling)
        pitch = generate_motion(long_speech, SR, style, seed=3).angles[:, 0]
        r[coupling] = np.corrcoef(pitch, drive)[0, 1]
    assert abs(r[0.0]) < 0.15 and r[0.7] > 0.5, r


def test_blinks_at_the_style_rate():
    silence = np.zeros(150 * SR, np.float32)
    for subject in (0, 1):
        style = sample_head_style(subject)
        blink = generate_motion(silence, SR, style, seed=subject).expression[:, BLINK]
        onsets = np.flatnonzero(np.diff((blink > 0.5).astype(int)) == 1)
        assert len(onsets) / 150.0 == pytest.approx(style.blink_rate, rel=0.3)
        assert blink.max() == pytest.approx(1.0) and blink.min() == 0.0
        assert (blink > 0.1).mean() < 6 * style.blink_rate / FPS  # each blink lasts about 5 frames


def test_motion_contract_and_determinism():
    audio = speech_for_duration(4.0, seed=8, engine="builtin")
    style = sample_head_style(8)
    motion = generate_motion(audio, SR, style, seed=2)
    assert motion.expression.shape == (100, 64) and motion.angles.shape == (100, 3)
    assert motion.translation.shape == (100, 3)
    for value in (motion.expression, motion.angles, motion.translation):
        assert value.dtype == np.float32 and np.isfinite(value).all()
    assert np.abs(motion.angles).max() <= MAX_ANGLE
    assert np.abs(np.diff(motion.angles, axis=0)).max() < 0.05  # smooth: < 1.25 rad/s
    again = generate_motion(audio, SR, style, seed=2)
    for x, y in zip(dataclasses.astuple(motion), dataclasses.astuple(again)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(motion.angles, generate_motion(audio, SR, style, seed=3).angles)
    assert generate_motion(audio, SR, style, seed=2, n_frames=37).angles.shape == (37, 3)


def test_head_styles_are_deterministic_and_bounded():
    assert sample_head_style(3) == sample_head_style(3)
    styles = [sample_head_style(s) for s in range(20)]
    assert len({s.frequency for s in styles}) == 20
    for style in styles:
        assert isinstance(style, HeadStyle)
        assert all(abs(b) + 3 * a < 0.45 for a, b in zip(style.amplitude, style.bias))
        assert 0 <= style.energy_coupling < 1 and 0.04 <= style.mouth_lead <= 0.08
