"""The audio -> motion network, its loss, training sequences and streamed inference."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from talkface.audio import SAMPLE_RATE, audio_windows, n_video_frames
from talkface.errors import TalkfaceError
from talkface.motion.activity import HANGOVER_FRAMES, RAMP_FRAMES, SpeechGate, frame_levels_db, speech_activity
from talkface.motion.inference import PoseRhythm, apply_controls, ping_pong_indices, predict_motion
from talkface.motion.losses import motion_loss
from talkface.face3d.coeffs import MOTION_EXPRESSION, MOTION_POSE, MOTION_TRANSLATION_Z
from talkface.metrics import dominant_frequency
from talkface.motion.network import (
    POSE_GAIN_RANGE, RHYTHM_PHASE_STEP_STD, AudioToMotion, fit_pose_calibration, motion_statistics,
)
from talkface.motion.calibration import (
    RHYTHM_FFT_POINTS, choose_recogniser, person_pose_calibration, person_pose_rhythm, person_viseme_mouth,
    reversed_speech_windows, viseme_cross_validation_error,
)
from talkface.motion.model import CALIBRATION_KEYS, MODEL, RHYTHM_KEYS, VISEME_KEYS, load_motion_model
from talkface.speech.recognition import viseme_track
from talkface.synth.speech import speech_for_duration
from talkface.motion.train import BestWeights, trainable_parameters
from talkface.train.checkpoint import write_checkpoint
from talkface.motion.data import LRWSequences, PersonSequences

TINY = dict(channels=(4, 8, 8, 8, 16), fc_sizes=(32, 16), lstm_hidden=16, lstm_layers=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(seed: int = 0) -> AudioToMotion:
    torch.manual_seed(seed)
    return AudioToMotion(**TINY).eval()


def noise_audio(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


# --- network -----------------------------------------------------------------------------------

def test_paper_size_network_shapes_and_parameter_count():
    model = AudioToMotion()
    assert model.flat_features == 12288
    assert model.lstm.hidden_size == 256 and model.lstm.num_layers == 3
    windows = torch.randn(2, 5, 28, 12)
    assert model.encoder(windows.reshape(10, 1, 28, 12)).flatten(1).shape == (10, 12288)
    motion, (h, c) = model(windows)
    assert motion.shape == (2, 5, 70) and h.shape == c.shape == (3, 2, 256)
    count = sum(p.numel() for p in model.parameters())
    print(f"AudioToMotion paper size: {count:,} parameters")
    # convs 2,138,688 + BN 2,432 + FCs 25,692,416 + LSTM 1,579,008 + head 17,990
    assert count == 29_430_534


def test_constructor_args_rebuild_the_model_with_its_statistics():
    model = tiny_model()
    model.set_target_statistics(torch.linspace(-1, 1, 70), torch.linspace(0.5, 2, 70))
    rebuilt = AudioToMotion(**model.constructor_args())
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    windows = torch.randn(1, 4, 28, 12)
    torch.testing.assert_close(rebuilt.decode_prediction(rebuilt(windows)[0]),
                               model.decode_prediction(model(windows)[0]))


def test_target_encoding_shifts_translation_z_and_round_trips():
    model = tiny_model()
    motion = torch.randn(3, 70)
    target = model.encode_target(motion)
    # docs/method.md: the target's translation z is shifted by -0.5, nothing else changes by default.
    torch.testing.assert_close(target[:, MOTION_TRANSLATION_Z], motion[:, MOTION_TRANSLATION_Z] - 0.5)
    torch.testing.assert_close(target[:, :MOTION_TRANSLATION_Z], motion[:, :MOTION_TRANSLATION_Z])
    torch.testing.assert_close(model.decode_prediction(target), motion)
    mean, std = motion_statistics(motion)
    model.set_target_statistics(mean, std)
    normalised = model.encode_target(motion)
    torch.testing.assert_close(normalised.mean(0), torch.zeros(70), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.decode_prediction(normalised), motion)


def test_recurrence_stays_float32_under_bf16_autocast():
    model = tiny_model()
    windows = torch.randn(1, 6, 28, 12)
    with torch.no_grad():
        reference, _ = model(windows)
        with torch.autocast("cpu", torch.bfloat16):
            first, state = model(windows[:, :3])
            second, _ = model(windows[:, 3:], state)
    assert state[0].dtype == state[1].dtype == first.dtype == torch.float32
    torch.testing.assert_close(torch.cat([first, second], 1), reference, atol=0.05, rtol=0.05)


# --- pose calibration --------------------------------------------------------------------------

def calibrated_model(seed: int = 0) -> AudioToMotion:
    model = tiny_model(seed)
    model.set_pose_calibration(torch.linspace(0.5, 3.0, 6), torch.linspace(-0.2, 0.3, 6))
    return model


def test_calibration_restores_a_shrunken_pose_exactly():
    rng = np.random.default_rng(0)
    true = torch.as_tensor(rng.normal(0.1, 0.05, (300, 6)), dtype=torch.float32)  # [N, 6]
    shrink = torch.tensor([0.4, 0.5, 0.3, 0.6, 0.45, 0.55])
    motion = torch.as_tensor(rng.standard_normal((300, 70)), dtype=torch.float32)
    motion[:, MOTION_POSE] = 0.02 + shrink * (true - true.mean(0))  # the MSE net's swing, off-centre
    model = tiny_model()
    model.set_pose_calibration(*fit_pose_calibration(motion[:, MOTION_POSE], true))
    torch.testing.assert_close(model.pose_scale, 1 / shrink)
    calibrated = model.calibrate_pose(motion)
    torch.testing.assert_close(calibrated[:, MOTION_POSE], true, atol=1e-5, rtol=0)
    torch.testing.assert_close(calibrated[:, MOTION_EXPRESSION], motion[:, MOTION_EXPRESSION], atol=0, rtol=0)


def test_best_weights_keep_the_lowest_validation_error():
    best, first, second = BestWeights(), tiny_model(0), tiny_model(1)
    best.offer(first, 0.5)
    best.offer(second, 0.7)
    torch.testing.assert_close(best.state["head.weight"], first.head.weight)
    best.offer(second, 0.1)
    assert best.expression_mse == 0.1
    torch.testing.assert_close(best.state["head.weight"], second.head.weight)


def test_head_only_fine_tuning_updates_the_output_layer_alone():
    model = tiny_model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(trainable_parameters(model, "head"), lr=1e-2)
    out, _ = model(torch.randn(2, 16, 28, 12))
    out.square().mean().backward()
    optimizer.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k]) and "running" not in k
               and "num_batches" not in k}
    assert changed == {"head.weight", "head.bias"}
    assert all(p.grad is None for p in model.lstm.parameters())  # frozen: no gradient computed
    with pytest.raises(TalkfaceError):
        trainable_parameters(model, "everything")


def test_calibration_gain_is_clamped():
    true = torch.randn(100, 6)
    scale, _ = fit_pose_calibration(torch.cat([1e-3 * true[:, :3], 10 * true[:, 3:]], 1), true)
    torch.testing.assert_close(scale, torch.tensor([POSE_GAIN_RANGE[1]] * 3 + [POSE_GAIN_RANGE[0]] * 3))


def test_identity_calibration_by_default_leaves_motion_unchanged():
    model = tiny_model()
    motion = torch.randn(7, 70)
    torch.testing.assert_close(model.calibrate_pose(motion), motion, atol=0, rtol=0)
    changed = calibrated_model()
    assert not torch.allclose(changed.calibrate_pose(motion), motion)
    changed.reset_pose_calibration()
    torch.testing.assert_close(changed.calibrate_pose(motion), motion, atol=0, rtol=0)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        changed.set_pose_calibration(torch.ones(70), torch.zeros(70))


def write_model_checkpoint(run_dir, model: AudioToMotion, drop: tuple[str, ...] = ()):
    state = {k: v for k, v in model.state_dict().items() if k not in drop}
    return write_checkpoint(run_dir, 1, {"models": {MODEL: state}, "model_args": {MODEL: model.constructor_args()}},
                            keep=1)


def test_calibration_survives_a_checkpoint_round_trip(tmp_path):
    model = calibrated_model()
    loaded = load_motion_model(write_model_checkpoint(tmp_path / "run", model))
    torch.testing.assert_close(loaded.pose_scale, model.pose_scale)
    torch.testing.assert_close(loaded.pose_shift, model.pose_shift)
    audio = noise_audio(1.0)
    np.testing.assert_array_equal(predict_motion(loaded, audio), predict_motion(model, audio))


def test_rhythm_survives_a_checkpoint_round_trip(tmp_path):
    model = rhythm_model()
    loaded = load_motion_model(write_model_checkpoint(tmp_path / "run", model))
    torch.testing.assert_close(loaded.pose_rhythm_frequency, model.pose_rhythm_frequency, atol=0, rtol=0)
    torch.testing.assert_close(loaded.pose_rhythm_std, model.pose_rhythm_std, atol=0, rtol=0)
    audio = noise_audio(1.0)
    np.testing.assert_array_equal(predict_motion(loaded, audio, seed=4), predict_motion(model, audio, seed=4))


def test_checkpoint_without_calibration_loads_as_identity(tmp_path):
    old = write_model_checkpoint(tmp_path / "old", viseme_model(), drop=CALIBRATION_KEYS + RHYTHM_KEYS + VISEME_KEYS)
    loaded = load_motion_model(old)
    assert (loaded.pose_scale == 1).all() and (loaded.pose_shift == 0).all() and not loaded.has_pose_rhythm
    assert not loaded.has_viseme_mouth
    # A viseme mouth fitted before the word recogniser existed was fitted on the phone decoder's track.
    before_words = load_motion_model(write_model_checkpoint(tmp_path / "before_words", viseme_model(),
                                                            drop=("viseme_recogniser",)))
    assert before_words.has_viseme_mouth and before_words.viseme_recogniser_name == "phones"
    with pytest.raises(TalkfaceError, match="missing .'head.bias'"):
        load_motion_model(write_model_checkpoint(tmp_path / "broken", calibrated_model(), drop=("head.bias",)))


def test_reversed_speech_windows_reverse_frames_and_window_time():
    windows = np.random.default_rng(0).standard_normal((5, 28, 12)).astype(np.float32)
    reversed_windows = reversed_speech_windows(windows)
    np.testing.assert_array_equal(reversed_windows[0, 0], windows[4, 27])
    np.testing.assert_array_equal(reversed_windows[1, 3], windows[3, 24])
    np.testing.assert_array_equal(reversed_speech_windows(reversed_windows), windows)


def test_person_calibration_maps_the_pose_on_reversed_speech_onto_the_truth():
    model = tiny_model()
    windows = audio_windows(noise_audio(2.0))  # [50, 28, 12]
    with torch.no_grad():
        reversed_pose = model.decode_prediction(
            model(torch.from_numpy(reversed_speech_windows(windows))[None])[0][0])[:, MOTION_POSE]  # [50, 6]
    gain = torch.tensor([2.0, 1.5, 3.0, 0.8, 1.0, 2.5])
    motion = np.zeros((50, 70), np.float32)
    motion[:, MOTION_POSE] = (0.1 + gain * reversed_pose).numpy()  # statistics ignore the frame order
    scale, shift = person_pose_calibration(model, windows, motion)
    torch.testing.assert_close(scale, gain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(shift, torch.full((6,), 0.1), atol=1e-5, rtol=0)


# --- viseme mouth ------------------------------------------------------------------------------

def viseme_model(weight: float = 0.5) -> AudioToMotion:
    model = calibrated_model()
    generator = torch.Generator().manual_seed(0)
    model.set_viseme_mouth(0.3 * torch.randn(3, 64, generator=generator), 0.1 * torch.randn(64, generator=generator),
                           weight)
    return model


def test_viseme_blend_mixes_the_expression_and_keeps_the_pose():
    model = viseme_model(0.25)
    motion, track = torch.randn(7, 70), torch.rand(7, 3)
    blended = model.blend_visemes(motion, track)
    visemes = model.viseme_bias + track @ model.viseme_map  # [7, 64]
    torch.testing.assert_close(blended[:, MOTION_EXPRESSION], 0.75 * motion[:, MOTION_EXPRESSION] + 0.25 * visemes)
    torch.testing.assert_close(blended[:, MOTION_POSE], motion[:, MOTION_POSE], atol=0, rtol=0)
    assert model.has_viseme_mouth and not tiny_model().has_viseme_mouth
    model.reset_viseme_mouth()
    torch.testing.assert_close(model.blend_visemes(motion, track), motion, atol=0, rtol=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.set_viseme_mouth(torch.zeros(3, 64), torch.zeros(64), 1.5)


def test_the_viseme_mouths_recogniser_is_kept_in_the_checkpoint_and_used_by_inference(tmp_path):
    model = viseme_model(1.0)
    assert model.viseme_recogniser_name == "words"  # the default
    model.set_viseme_mouth(model.viseme_map, model.viseme_bias, 1.0, "phones")
    loaded = load_motion_model(write_model_checkpoint(tmp_path / "run", model))
    assert loaded.viseme_recogniser_name == "phones"
    audio = speech_for_duration(2.0, seed=3, engine="builtin")
    frames = n_video_frames(len(audio))
    heard = {name: viseme_track(audio, frames, name) for name in ("words", "phones")}
    assert not np.allclose(heard["words"], heard["phones"])
    expression = predict_motion(loaded, audio)[:, MOTION_EXPRESSION]  # weight 1: the viseme mouth alone
    expected = (model.viseme_bias + torch.from_numpy(heard["phones"]) @ model.viseme_map).numpy()
    np.testing.assert_allclose(expression, expected, atol=1e-5, rtol=0)
    model.reset_viseme_mouth()
    assert model.viseme_recogniser_name == "words"
    with pytest.raises(ValueError, match="unknown recogniser 'spectrogram'"):
        model.set_viseme_mouth(model.viseme_map, model.viseme_bias, 1.0, "spectrogram")


def test_person_viseme_mouth_recovers_a_linear_mouth():
    rng = np.random.default_rng(0)
    track = rng.uniform(0, 1, (200, 3))
    true_map, true_bias = rng.normal(0, 0.3, (3, 64)), rng.normal(0, 0.1, 64)
    expression = true_bias + track @ true_map
    mapping, bias = person_viseme_mouth(track, expression)
    predicted = bias.double().numpy() + track @ mapping.double().numpy()
    assert min(np.corrcoef(predicted[:, k], expression[:, k])[0, 1] for k in range(64)) > 0.999
    shrink = np.linalg.norm(mapping.numpy()) / np.linalg.norm(true_map)
    assert 0.8 < shrink < 1.0  # the ridge pulls the map toward zero, a little
    mapping, bias = person_viseme_mouth(track, expression, ridge_per_frame=0.0)
    np.testing.assert_allclose(mapping.numpy(), true_map, atol=1e-5)
    np.testing.assert_allclose(bias.numpy(), true_bias, atol=1e-5)


def test_the_recogniser_whose_viseme_mouth_predicts_the_person_best_is_chosen():
    rng = np.random.default_rng(1)
    heard = rng.uniform(0, 1, (120, 3))  # what the mouth follows
    misheard = np.clip(heard + rng.normal(0, 0.4, heard.shape), 0, 1)  # the same speech, heard worse
    expression = 0.05 + heard @ rng.normal(0, 0.3, (3, 64)) + rng.normal(0, 0.02, (120, 64))
    chosen, errors = choose_recogniser({"words": misheard, "phones": heard}, expression)
    assert chosen == "phones" and errors["phones"] < 0.5 * errors["words"]
    # The error is out of sample: the blocks are predicted from the other frames, so a track of
    # noise does worse than the mean expression (whose error is the expression's variance).
    noise = rng.uniform(0, 1, (120, 3))
    assert viseme_cross_validation_error(noise, expression) > expression.var(0).mean()
    assert choose_recogniser({"noise": noise, "phones": heard}, expression)[0] == "phones"
    # The first is kept unless another is better by more than the margin: a near-tie is noise.
    errors = choose_recogniser({"words": misheard, "phones": heard}, expression)[1]
    near_tie = 1 - 0.5 * errors["phones"] / errors["words"]
    assert choose_recogniser({"words": misheard, "phones": heard}, expression, margin=near_tie)[0] == "words"


def test_chunked_inference_with_a_viseme_mouth_equals_whole_and_blends_the_recognised_phones(tmp_path):
    model = viseme_model()
    audio = speech_for_duration(3.0, seed=2, engine="builtin")
    frames = n_video_frames(len(audio))
    whole = predict_motion(model, audio, chunk_frames=frames)
    for chunk in (1, 7, 25):
        np.testing.assert_allclose(predict_motion(model, audio, chunk_frames=chunk), whole, atol=1e-5, rtol=0)
    track = torch.from_numpy(viseme_track(audio, frames))
    assert track[:, 0].max() > 0.3  # the recogniser heard open vowels
    plain = viseme_model(0.0)
    expected = model.blend_visemes(torch.from_numpy(predict_motion(plain, audio)), track).numpy()
    np.testing.assert_allclose(whole, expected, atol=1e-5, rtol=0)
    loaded = load_motion_model(write_model_checkpoint(tmp_path / "run", model))
    np.testing.assert_array_equal(predict_motion(loaded, audio), whole)


# --- pose rhythm -------------------------------------------------------------------------------

RHYTHM = (torch.full((6,), 0.3), torch.full((6,), 0.01))  # 0.3 Hz, std 0.01


def rhythm_model(seed: int = 0) -> AudioToMotion:
    model = calibrated_model(seed)
    model.set_pose_rhythm(*RHYTHM)
    return model


def test_dominant_frequency_finds_each_series_peak():
    t = np.arange(300) / 25.0
    series = np.stack([np.sin(2 * np.pi * f * t + 1.0) for f in (0.2, 0.45, 1.3)], 1)  # 12 s, [300, 3]
    np.testing.assert_allclose(dominant_frequency(series, fft_points=RHYTHM_FFT_POINTS), [0.2, 0.45, 1.3], atol=0.01)
    # Without the padding: the clip's own bins, 1/12 Hz apart, the nearest within half a bin.
    bins = dominant_frequency(series) * 12
    np.testing.assert_allclose(bins, np.round(bins), atol=1e-9)
    np.testing.assert_allclose(bins / 12, [0.2, 0.45, 1.3], atol=1 / 24)


def test_sampled_rhythm_has_the_fitted_frequency_and_a_steady_swing():
    frequency, std = np.array([0.2, 0.3, 0.4, 0.5, 0.6, 0.7]), np.linspace(1.0, 2.0, 6)
    series = PoseRhythm(frequency, std, seed=1).sample(60_000)  # [T, 6], 40 min
    np.testing.assert_allclose(series.std(0), std, rtol=0.02)
    assert (np.abs(series) <= np.sqrt(2) * std + 1e-12).all()  # constant envelope
    from scipy.signal import welch

    bins, power = welch(series, fs=25, nperseg=1024, axis=0)  # [F], [F, 6]; 0.024 Hz bins, averaged
    np.testing.assert_allclose(bins[power.argmax(0)], frequency, atol=25 / 1024)
    # The phase wanders by steps of RHYTHM_PHASE_STEP_STD: at f = 0 the lag-L autocorrelation of
    # sin(phase) is E[cos(phase step sum)] = exp(-L s^2 / 2).
    lag = 25
    still = PoseRhythm(np.zeros(6), np.ones(6), seed=2).sample(20_000)  # [T, 6]
    correlation = (still[:-lag] * still[lag:]).mean() / (still ** 2).mean()
    assert abs(correlation - np.exp(-lag * RHYTHM_PHASE_STEP_STD ** 2 / 2)) < 0.1


def test_rhythm_is_off_by_default_and_seeded_when_on():
    audio = noise_audio(2.0)
    model = calibrated_model()
    assert not model.has_pose_rhythm
    plain = predict_motion(model, audio)
    np.testing.assert_array_equal(predict_motion(model, audio, seed=5), plain)  # off: the seed changes nothing
    on = rhythm_model()
    first = predict_motion(on, audio, seed=1)
    np.testing.assert_array_equal(predict_motion(on, audio, seed=1), first)
    assert not np.allclose(predict_motion(on, audio, seed=2)[:, MOTION_POSE], first[:, MOTION_POSE])
    np.testing.assert_array_equal(first[:, MOTION_EXPRESSION], plain[:, MOTION_EXPRESSION])  # only the pose moves
    assert np.abs(first[:, MOTION_POSE] - plain[:, MOTION_POSE]).max() > 0.005  # std 0.01: swings up to 0.014
    on.reset_pose_rhythm()
    np.testing.assert_array_equal(predict_motion(on, audio, seed=1), plain)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        on.set_pose_rhythm(torch.zeros(6, 2), torch.zeros(6))


def test_person_rhythm_takes_the_variance_the_prediction_lacks():
    model = tiny_model()
    windows = audio_windows(noise_audio(12.0))  # [300, 28, 12]
    with torch.no_grad():
        forward = model.decode_prediction(model(torch.from_numpy(windows)[None])[0][0])[:, MOTION_POSE]  # [300, 6]
        reversed_pose = model.decode_prediction(
            model(torch.from_numpy(reversed_speech_windows(windows))[None])[0][0])[:, MOTION_POSE]
    residual = PoseRhythm(np.full(6, 0.5), np.full(6, 0.1), seed=0).sample(len(windows))  # [300, 6]
    residual = torch.as_tensor(residual, dtype=torch.float32) * torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    motion = np.zeros((len(windows), 70), np.float32)
    motion[:, MOTION_POSE] = (0.1 + forward + residual).numpy()
    scale, shift, frequency, std = person_pose_rhythm(model, windows, motion)
    assert (scale <= 1).all()
    # The rhythm oscillates at the true pose's dominant frequency.
    expected = dominant_frequency(motion[:, MOTION_POSE], fft_points=RHYTHM_FFT_POINTS)
    torch.testing.assert_close(frequency, torch.from_numpy(expected).float())
    assert ((frequency[:3] - 0.5).abs() < 0.1).all()  # 12 s of one draw
    # Prediction variance (on reversed speech) plus the rhythm's variance = the true variance.
    total = (scale * reversed_pose.std(0, unbiased=False)).square().numpy() + std.square().numpy()
    np.testing.assert_allclose(total, motion[:, MOTION_POSE].var(0), rtol=1e-3, atol=1e-9)
    torch.testing.assert_close(shift + scale * reversed_pose.mean(0), torch.as_tensor(motion[:, MOTION_POSE].mean(0)),
                               atol=1e-5, rtol=0)
    # Gated by a speech activity of mean square 0.64, the rhythm's own variance is 1 / 0.64 as large.
    gated_std = person_pose_rhythm(model, windows, motion, np.full(len(windows), 0.8))[3]
    torch.testing.assert_close(gated_std, std / 0.8, rtol=1e-5, atol=1e-9)


def test_wrong_window_shape_is_rejected():
    with pytest.raises(ValueError, match="28, 12"):
        tiny_model()(torch.zeros(1, 2, 12, 28))


# --- loss --------------------------------------------------------------------------------------

def test_loss_matches_a_hand_computation():
    prediction = torch.zeros(1, 3, 70)
    target = torch.zeros(1, 3, 70)
    prediction[0, :, 0] = torch.tensor([1.0, 2.0, 4.0])  # expression dim 0
    prediction[0, :, 64] = torch.tensor([0.0, 3.0, 3.0])  # pose dim 0 (an angle)
    target[0, :, 64] = 1.0
    terms = motion_loss(prediction, target)
    expression_mse = (1 + 4 + 16) / (3 * 64)
    pose_mse = (1 + 4 + 4) / (3 * 6)
    pose_smooth = 3.0**2 + 0.0**2  # summed over frames and dims, averaged over the batch of 1
    expression_smooth = 1.0**2 + 2.0**2
    assert terms["expression"].item() == pytest.approx(expression_mse)
    assert terms["pose"].item() == pytest.approx(pose_mse)
    assert terms["pose_smooth"].item() == pytest.approx(pose_smooth)
    assert terms["expression_smooth"].item() == pytest.approx(expression_smooth)
    total = expression_mse + 0.2 * pose_mse + 0.01 * pose_smooth + 1e-4 * expression_smooth
    assert terms["total"].item() == pytest.approx(total)
    reweighted = motion_loss(prediction, target, pose_weight=1.0, pose_smooth_weight=0.0,
                             expression_smooth_weight=0.0)
    assert reweighted["total"].item() == pytest.approx(expression_mse + pose_mse)


def test_smoothness_is_averaged_over_the_batch():
    prediction = torch.zeros(2, 2, 70)
    prediction[0, 1, 64] = 2.0  # one step of 2 in the first sequence, none in the second
    assert motion_loss(prediction, prediction.clone())["pose_smooth"].item() == pytest.approx(4.0 / 2)


def test_gradients_reach_every_parameter():
    model = tiny_model().train()
    prediction, _ = model(torch.randn(2, 4, 28, 12))
    motion_loss(prediction, torch.randn(2, 4, 70))["total"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_tiny_model_learns_window_energy():
    """Expression dim 0 = each frame's log loudness: the network must read it from the MFCC windows."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    gains = rng.uniform(0.05, 1.0, (4, 8)).astype(np.float32)  # [B, T] per-frame loudness
    audio = rng.standard_normal((4, 8 * 640)).astype(np.float32) * np.repeat(gains, 640, axis=1)
    windows = torch.from_numpy(np.stack([audio_windows(a) for a in audio]))  # [4, 8, 28, 12]
    windows = (windows - windows.mean()) / windows.std()
    motion = torch.zeros(4, 8, 70)
    motion[..., 0] = torch.from_numpy(np.log(gains))
    motion[..., MOTION_TRANSLATION_Z] = 0.5
    model = AudioToMotion(**TINY).train()
    target = model.encode_target(motion)
    # What ignoring the audio can reach: the best constant prediction.
    constant = motion_loss(target.mean((0, 1), keepdim=True).expand_as(target), target)["total"].item()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        loss = motion_loss(model(windows)[0], target)["total"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    print(f"loss {first:.4g} -> {last:.4g}; best constant prediction {constant:.4g}")
    assert last < first / 10
    assert last < constant / 4


# --- training sequences ------------------------------------------------------------------------

def indexed_clip(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A clip whose windows and motion both carry their frame number."""
    windows = np.broadcast_to(np.arange(frames, dtype=np.float32)[:, None, None], (frames, 28, 12)).copy()
    motion = np.zeros((frames, 70), np.float32)
    motion[:, 0] = np.arange(frames)
    return windows, motion


def test_lrw_sequences_take_16_frames_after_an_offset_of_3_to_7():
    clips = [indexed_clip(29)] * 200
    np.random.seed(1)
    dataset = LRWSequences(clips)
    offsets = []
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["windows"].shape == (16, 28, 12) and item["motion"].shape == (16, 70)
        first = item["offset"] + 1  # frames r+1 .. r+16, as the original
        np.testing.assert_array_equal(item["motion"][:, 0], np.arange(first, first + 16))
        np.testing.assert_array_equal(item["windows"][:, 0, 0], np.arange(first, first + 16))
        offsets.append(item["offset"])
    assert set(offsets) == {3, 4, 5, 6, 7}


def test_lrw_sequences_are_deterministic_given_numpys_seed():
    clips = [indexed_clip(29)] * 50

    def offsets(dataset: LRWSequences) -> list[int]:
        return [dataset[i]["offset"] for i in range(len(dataset))]

    dataset = LRWSequences(clips)  # the global numpy generator, seeded per item by the trainer
    np.random.seed(3)
    first = offsets(dataset)
    np.random.seed(3)
    assert offsets(dataset) == first
    np.random.seed(4)
    assert offsets(dataset) != first


def test_lrw_clip_too_short_or_misaligned_is_a_clear_error():
    with pytest.raises(TalkfaceError, match="LRW clip 0: 20 frames, need at least 24"):
        LRWSequences([indexed_clip(20)])[0]
    windows, motion = indexed_clip(29)
    with pytest.raises(TalkfaceError, match="29 audio windows but 28 motion frames"):
        LRWSequences([(windows, motion[:-1])])[0]


def test_padded_windows_equal_the_originals_unpadded_lrw_windows():
    # The sequences index frame-aligned padded windows; LRW's original used unpadded ones.
    audio = noise_audio(29 / 25)
    unpadded = audio_windows(audio, pad=False)  # frames 3 .. T-4
    np.testing.assert_array_equal(audio_windows(audio, pad=True)[3:3 + len(unpadded)], unpadded)


def test_person_sequences_are_every_overlapping_window():
    dataset = PersonSequences(*indexed_clip(300))
    assert len(dataset) == 285
    for index in (0, 137, 284):
        np.testing.assert_array_equal(dataset[index]["motion"][:, 0], np.arange(index, index + 16))
    with pytest.raises(IndexError):
        dataset[285]
    assert len(PersonSequences(*indexed_clip(16))) == 1
    with pytest.raises(TalkfaceError, match="15 frames, need at least 16"):
        PersonSequences(*indexed_clip(15))


# --- inference ---------------------------------------------------------------------------------

@pytest.mark.parametrize("calibrated", [False, True])
def test_chunked_inference_equals_whole_sequence(calibrated: bool):
    model = calibrated_model() if calibrated else tiny_model()
    audio = noise_audio(2.5)
    frames = n_video_frames(len(audio))
    model.train()
    whole = predict_motion(model, audio, chunk_frames=frames)  # runs in eval mode, then restores
    assert model.training
    model.eval()
    assert whole.shape == (frames, 70) and whole.dtype == np.float32
    with torch.no_grad():
        decoded = model.decode_prediction(model(torch.from_numpy(audio_windows(audio))[None])[0])[0]
        direct = model.calibrate_pose(decoded).numpy()
    np.testing.assert_allclose(whole, direct, atol=1e-5, rtol=0)
    for chunk in (1, 7, 25, frames + 10):
        np.testing.assert_allclose(predict_motion(model, audio, chunk_frames=chunk), whole, atol=1e-5, rtol=0)


def speech_with_a_pause() -> np.ndarray:
    """1.2 s of noise (-20 dBFS), 1.6 s of silence, 1.2 s of noise: 100 frames."""
    silence = np.zeros(int(1.6 * SAMPLE_RATE), np.float32)
    return np.concatenate([noise_audio(1.2), silence, noise_audio(1.2, seed=1)])


def test_chunked_inference_with_rhythm_equals_whole_sequence():
    model = rhythm_model()
    audio = speech_with_a_pause()
    frames = n_video_frames(len(audio))
    whole = predict_motion(model, audio, chunk_frames=frames, seed=3)
    model.reset_pose_rhythm()
    plain = predict_motion(model, audio, chunk_frames=frames)
    model.set_pose_rhythm(*RHYTHM)
    # The rhythm is the same sampled series whatever the chunking (one stream, carried phase),
    # times the speech-activity gate (its state carried too).
    expected_rhythm = PoseRhythm(RHYTHM[0].numpy(), RHYTHM[1].numpy(), 3).sample(frames)
    gate = speech_activity(audio)[:, None]  # [T, 1]
    assert gate.min() == 0 and gate.max() == 1
    np.testing.assert_allclose(whole[:, MOTION_POSE] - plain[:, MOTION_POSE], gate * expected_rhythm, atol=1e-5, rtol=0)
    for chunk in (1, 7, 25, frames + 10):
        np.testing.assert_allclose(predict_motion(model, audio, chunk_frames=chunk, seed=3), whole, atol=1e-5, rtol=0)


def test_speech_gate_ramps_holds_through_pauses_and_is_zero_in_silence():
    loud, quiet = -20.0, -np.inf
    levels = np.array([quiet] * 5 + [loud] * 20 + [quiet] * 8 + [loud] * 5 + [quiet] * 40)
    gate = SpeechGate()(levels)
    assert (gate[:5] == 0).all()
    np.testing.assert_allclose(gate[5:5 + RAMP_FRAMES], np.arange(1, RAMP_FRAMES + 1) / RAMP_FRAMES, atol=1e-12)
    assert (gate[5 + RAMP_FRAMES:38 + HANGOVER_FRAMES - 1] == 1).all()  # an 8-frame pause is held
    fall = gate[38 + HANGOVER_FRAMES - 1:]
    np.testing.assert_allclose(fall[:RAMP_FRAMES], 1 - np.arange(1, RAMP_FRAMES + 1) / RAMP_FRAMES, atol=1e-12)
    assert (fall[RAMP_FRAMES:] == 0).all()
    streamed = SpeechGate()
    np.testing.assert_array_equal(np.concatenate([streamed(levels[:7]), streamed(levels[7:30]), streamed(levels[30:])]),
                                  gate)


def test_frame_levels_are_rms_dbfs_per_video_frame():
    audio = np.concatenate([np.full(640, 0.1), np.zeros(640), np.full(320, 1.0)]).astype(np.float32)
    levels = frame_levels_db(audio, 0, 3)  # the last frame is zero-extended: RMS sqrt(1/2)
    np.testing.assert_allclose(levels[[0, 2]], [-20.0, 10 * np.log10(0.5)], atol=1e-6)
    assert levels[1] == -np.inf
    np.testing.assert_array_equal(frame_levels_db(audio, 2, 1), levels[2:])


def test_rhythm_leaves_the_head_still_in_silence():
    model = rhythm_model()
    silent = np.zeros(2 * SAMPLE_RATE, np.float32)
    audio = speech_with_a_pause()
    on, on_silent = predict_motion(model, audio, seed=1), predict_motion(model, silent, seed=1)
    model.reset_pose_rhythm()
    off, off_silent = predict_motion(model, audio), predict_motion(model, silent)
    np.testing.assert_array_equal(on_silent, off_silent)
    gate = speech_activity(audio)
    np.testing.assert_array_equal(on[gate == 0], off[gate == 0])
    assert np.abs(on[gate == 1][:, MOTION_POSE] - off[gate == 1][:, MOTION_POSE]).max() > 0.005


def test_inference_memory_does_not_grow_with_audio_length():
    model = tiny_model()
    longest_chunk = []
    model.register_forward_hook(lambda module, args, output: longest_chunk.append(args[0].shape[1]))

    def peak_bytes(seconds: float) -> int:
        audio = noise_audio(seconds)
        tracemalloc.start()
        predict_motion(model, audio, chunk_frames=50)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    short, long = peak_bytes(10), peak_bytes(60)
    print(f"peak traced memory: 10 s {short / 1e6:.2f} MB, 60 s {long / 1e6:.2f} MB")
    assert long < 1.5 * short
    assert max(longest_chunk) == 50


def test_silent_audio_gives_finite_motion():
    motion = predict_motion(tiny_model(), np.zeros(SAMPLE_RATE, np.float32))
    assert motion.shape == (25, 70) and np.isfinite(motion).all()


def test_audio_shorter_than_a_frame_is_a_one_line_error():
    with pytest.raises(TalkfaceError, match="too short for one video frame") as error:
        predict_motion(tiny_model(), np.zeros(319, np.float32))
    assert "\n" not in str(error.value)
    assert predict_motion(tiny_model(), np.zeros(320, np.float32)).shape == (1, 70)


def test_pose_sources():
    model = tiny_model()
    audio = noise_audio(2.0)  # 50 frames
    reference = np.random.default_rng(1).standard_normal((20, 70)).astype(np.float32)
    predicted = predict_motion(model, audio)

    still = predict_motion(model, audio, pose_source="still", reference_motion=reference)
    np.testing.assert_allclose(still[:, MOTION_POSE], np.broadcast_to(reference[:, MOTION_POSE].mean(0), (50, 6)), atol=1e-6)
    np.testing.assert_array_equal(still[:, MOTION_EXPRESSION], predicted[:, MOTION_EXPRESSION])
    assert (predict_motion(model, audio, pose_source="still")[:, MOTION_POSE] == 0).all()

    replay = predict_motion(model, audio, pose_source="reference", reference_motion=reference)
    np.testing.assert_array_equal(replay[:20, MOTION_POSE], reference[:, MOTION_POSE])  # forth
    np.testing.assert_array_equal(replay[20:38, MOTION_POSE], reference[18:0:-1, MOTION_POSE])  # back, no repeated ends
    np.testing.assert_array_equal(replay[38:50, MOTION_POSE], reference[:12, MOTION_POSE])  # forth again
    np.testing.assert_array_equal(ping_pong_indices(1, 3), [0, 0, 0])


def test_calibration_is_applied_before_the_head_motion_scale():
    model = calibrated_model()
    audio = noise_audio(2.0)
    predicted = predict_motion(model, audio)
    with torch.no_grad():
        raw = model.decode_prediction(model(torch.from_numpy(audio_windows(audio))[None])[0][0])
    np.testing.assert_allclose(predicted, model.calibrate_pose(raw).numpy(), atol=1e-5, rtol=0)
    doubled = predict_motion(model, audio, head_motion_scale=2.0)
    centre = predicted[:, MOTION_POSE].mean(0)
    np.testing.assert_allclose(doubled[:, MOTION_POSE] - centre, 2 * (predicted[:, MOTION_POSE] - centre), atol=1e-5)


def test_scales():
    model = tiny_model()
    audio = noise_audio(2.0)
    reference = np.random.default_rng(1).standard_normal((20, 70)).astype(np.float32)
    predicted = predict_motion(model, audio)

    frozen = predict_motion(model, audio, head_motion_scale=0.0)
    np.testing.assert_allclose(frozen[:, MOTION_POSE], np.broadcast_to(predicted[:, MOTION_POSE].mean(0), (50, 6)), atol=1e-6)
    frozen_ref = predict_motion(model, audio, pose_source="reference", reference_motion=reference,
                                head_motion_scale=0.0)
    reference_mean = np.broadcast_to(reference[:, MOTION_POSE].mean(0), (50, 6))
    np.testing.assert_allclose(frozen_ref[:, MOTION_POSE], reference_mean, atol=1e-6)

    doubled = apply_controls(predicted, head_motion_scale=2.0, expression_scale=0.5)
    centre = predicted[:, MOTION_POSE].mean(0)
    np.testing.assert_allclose(doubled[:, MOTION_POSE] - centre, 2 * (predicted[:, MOTION_POSE] - centre), atol=1e-5)
    np.testing.assert_allclose(doubled[:, MOTION_EXPRESSION], 0.5 * predicted[:, MOTION_EXPRESSION])


def test_bad_controls_are_clear_errors():
    motion = np.zeros((5, 70), np.float32)
    with pytest.raises(TalkfaceError, match="choose one of predicted, reference, still"):
        apply_controls(motion, pose_source="dance")
    with pytest.raises(TalkfaceError, match="needs the reference"):
        apply_controls(motion, pose_source="reference")
    with pytest.raises(TalkfaceError, match=r"reference motion must be \[T, 70\]"):
        apply_controls(motion, reference_motion=np.zeros((5, 257)))
