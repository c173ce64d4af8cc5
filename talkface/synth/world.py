"""Write synthetic data sets with ground truth: person clips and an LRW-layout word corpus.

A person clip (`write_person`) is the input the pipeline's preprocess stage expects: a talking
head video with its speech muxed in, plus the truth it was made from:

    out_dir/clip.mp4              25 fps, speech audio muxed
    out_dir/contact_sheet.png     frames with the truth landmarks dotted
    out_dir/manifest.json         provenance
    out_dir/truth/coeffs.npy      [T, 257] float32, canonical 224 px camera convention
    out_dir/truth/landmarks.npy   [T, 68, 2] float32, frame px
    out_dir/truth/transform.npy   [2, 3] float64, canonical 224 px -> frame px
    out_dir/truth/audio.wav       the speech, 16 kHz mono
    out_dir/truth/phones.json     the phones the mouth articulates: the engine's timeline, or
                                  estimated from the audio (a file, espeak-ng); see phones.py
    out_dir/truth/subject.json    seed, look, head-motion style, speech engine and text

An LRW corpus (`write_lrw`) follows LRW's layout, WORD/{train,val,test}/WORD_00001.mp4, 29
frames (1.16 s) per clip with the word spoken in the middle and context speech around it; beside
each clip, WORD_00001.txt (LRW-style metadata) and WORD_00001.npz (truth, with the phones as
phone_symbols / phone_starts / phone_ends and the clip's speech variety as JSON). The corpus's
speech varies in rate, pitch, voice, engine, noise and room (variety.py; on by default).
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from talkface.atomic import atomic_path
from talkface.audio import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS
from talkface.errors import TalkfaceError
from talkface.speech.phones import Phone, phones_to_json, shift_phones
from talkface.synth.phones import phones_from_audio
from talkface.synth.variety import ClipVariety, VarietyConfig

LRW_FRAMES = 29  # 1.16 s, as in LRW
LRW_SPLITS = ("train", "val", "test")
PERSON_KIND = "talkface synthetic person"
BATCH = 16  # frames rendered per rasterizer call

# Common English words, uppercase like LRW's labels (our own list, not LRW's vocabulary).
VOCABULARY = (
    "ABOUT", "ABSOLUTELY", "ACTUALLY", "AFTER", "AGAIN", "AGAINST", "ALREADY", "ALWAYS", "AMONG",
    "ANSWER", "AROUND", "BECAUSE", "BEFORE", "BETTER", "BETWEEN", "BUILDING", "BUSINESS", "CHANGE",
    "CHILDREN", "COUNTRY", "DECISION", "DIFFERENT", "DURING", "ECONOMY", "EVERYBODY", "EXAMPLE",
    "FAMILY", "FUTURE", "GENERAL", "GOVERNMENT", "GREAT", "HAPPEN", "HOSPITAL", "IMPORTANT", "ISSUE",
    "LEVEL", "LITTLE", "MAJORITY", "MEMBERS", "MILLION", "MONEY", "MORNING", "NUMBER", "OTHER",
    "PARTY", "PEOPLE", "PERHAPS", "POLICE", "POLITICAL", "POWER", "PROBLEM", "PUBLIC", "QUESTION",
    "REALLY", "RIGHT", "SECOND", "SEVERAL", "SOMETHING", "SPEND", "STILL", "SYSTEM", "THINGS",
    "THOUSANDS", "TODAY", "TOGETHER", "UNDER", "WATER", "WEATHER", "WESTERN", "WHETHER", "WITHOUT",
    "WOMEN", "WORLD", "YESTERDAY", "YOUNG",
)


def write_person(
    out_dir: str | Path,
    seconds: float | None = None,
    seed: int = 0,
    text: str | None = None,
    audio_path: str | Path | None = None,
    size: int = 256,
    engine: str = "auto",
    progress: bool = True,
) -> Path:
    """Write one synthetic person clip with its truth into `out_dir` (replaced as a whole, atomically).

    The speech is `audio_path` (any audio/video file), else `text` spoken in the subject's voice,
    else random sentences. `seconds` cuts or pads the speech to that length; without it the clip
    lasts as long as the speech (10 s of random sentences when neither text nor audio is given).
    """
    from talkface.synth.appearance import sample_subject

    out_dir = Path(out_dir)
    _check_person_args(out_dir, seconds, text, audio_path, size)
    samples, phones, engine_used = _person_speech(seconds, seed, text, audio_path, engine)
    subject = sample_subject(seed)
    source = "engine" if phones is not None else "audio"
    if phones is None:
        phones = phones_from_audio(samples, SAMPLE_RATE)
    with atomic_path(out_dir) as staging:
        (staging / "truth").mkdir(parents=True)
        coeffs, landmarks, transform = _render_clip(staging / "clip.mp4", subject, samples, phones, size, progress,
                                                    sheet=True)
        truth = staging / "truth"
        (truth / "phones.json").write_text(json.dumps(
            {"source": source, "engine": engine_used, "phones": phones_to_json(phones)}, indent=1))
        np.save(truth / "coeffs.npy", coeffs)
        np.save(truth / "landmarks.npy", landmarks)
        np.save(truth / "transform.npy", transform)
        from talkface.media import write_wav

        write_wav(truth / "audio.wav", samples, SAMPLE_RATE)
        source = str(audio_path) if audio_path is not None else None
        info = {**subject.to_json(), "engine": engine_used, "text": text, "audio": source}
        (truth / "subject.json").write_text(json.dumps(info, indent=2))
        _write_manifest(staging / "manifest.json", kind=PERSON_KIND, seed=seed, frames=len(coeffs), size=size,
                        seconds=len(coeffs) / VIDEO_FPS, engine=engine_used, text=text, audio=source)
    return out_dir


def _check_person_args(out_dir: Path, seconds: float | None, text: str | None, audio_path, size: int) -> None:
    if seconds is not None and not seconds > 0:
        raise TalkfaceError(f"seconds must be positive, got {seconds}")
    if text is not None and audio_path is not None:
        raise TalkfaceError("give either text or an audio file, not both")
    if text is not None and not text.strip():
        raise TalkfaceError("text is empty")
    if size < 64 or size % 2:
        raise TalkfaceError(f"frame size must be an even number of pixels >= 64, got {size}")
    if out_dir.exists() and not out_dir.is_dir():
        raise TalkfaceError("exists and is not a folder", out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and _manifest_kind(out_dir) != PERSON_KIND:
        # The folder is replaced as a whole: never delete something we did not write.
        raise TalkfaceError("folder is not empty and is not a synthetic person clip; choose a new folder", out_dir)


def _manifest_kind(folder: Path) -> str | None:
    try:
        return json.loads((folder / "manifest.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def _person_speech(seconds: float | None, seed: int, text: str | None, audio_path,
                   engine: str) -> tuple[np.ndarray, list[Phone] | None, str]:
    """Speech samples [N] at 16 kHz, a whole number of video frames long, its phones if the engine
    gave them, and the engine that made it ("file" for an audio file)."""
    from talkface.synth.speech import synthesize_utterance, utterance_for_duration

    if engine not in ("auto", "espeak", "builtin"):
        raise TalkfaceError(f"unknown speech engine {engine!r}; valid: auto, espeak, builtin")
    if audio_path is not None:
        from talkface.media import read_audio

        samples, phones, resolved = read_audio(audio_path, SAMPLE_RATE), None, "file"
    else:
        utterance = (synthesize_utterance(text, seed, SAMPLE_RATE, engine) if text is not None
                     else utterance_for_duration(10.0 if seconds is None else seconds, seed, SAMPLE_RATE, engine))
        samples, phones, resolved = utterance.audio, utterance.phones, utterance.engine
    n_frames = int(round(len(samples) / SAMPLES_PER_VIDEO_FRAME)) if seconds is None else int(round(seconds * VIDEO_FPS))
    if n_frames < 1:
        raise TalkfaceError(f"speech is too short for one video frame ({len(samples) / SAMPLE_RATE:.3f} s)")
    n = n_frames * SAMPLES_PER_VIDEO_FRAME
    return _fit_length(samples, n), None if phones is None else shift_phones(phones, 0.0, end=n / SAMPLE_RATE), resolved


def _fit_length(samples: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad to exactly n samples."""
    out = np.zeros(n, np.float32)
    out[: min(n, len(samples))] = samples[:n]
    return out


def _render_clip(
    path: Path, subject: Any, samples: np.ndarray, phones: Sequence[Phone], size: int, progress: bool, sheet: bool,
    model: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drive `subject` with `samples` and their `phones`, write the mp4 at `path` (and a contact sheet
    beside it if `sheet`).

    Returns (coeffs [T, 257] float32, landmarks [T, 68, 2] float32, transform [2, 3]).
    """
    from tqdm import tqdm

    from talkface.media import VideoWriter
    from talkface.synth.appearance import RealFrames
    from talkface.synth.contact_sheet import sheet_indices, write_contact_sheet
    from talkface.synth.motion import generate_motion

    n_frames = len(samples) // SAMPLES_PER_VIDEO_FRAME
    motion = generate_motion(samples, SAMPLE_RATE, subject.style, subject.seed, n_frames, phones)
    coeffs = subject.coeffs(motion.expression, motion.angles, motion.translation)  # [T, 257]
    renderer = RealFrames(subject, model if model is not None else _synthetic_model(), size)
    landmarks = np.empty((n_frames, 68, 2), np.float32)
    chosen = set(sheet_indices(n_frames).tolist()) if sheet else set()
    kept: dict[int, np.ndarray] = {}
    with VideoWriter(path, fps=VIDEO_FPS, audio=(samples, SAMPLE_RATE)) as writer, \
            tqdm(total=n_frames, desc=path.name, unit="frame", disable=not progress, leave=False) as bar:
        for start in range(0, n_frames, BATCH):
            frames, landmarks[start : start + BATCH] = renderer.render(coeffs[start : start + BATCH], first_frame=start)
            for k, frame in enumerate(frames):
                writer.write(frame)
                if start + k in chosen:
                    kept[start + k] = frame
            bar.update(len(frames))
    if sheet:
        order = sorted(kept)
        write_contact_sheet(path.parent / "contact_sheet.png", np.stack([kept[i] for i in order]),
                            landmarks[order], [f"frame {i}" for i in order])
    return coeffs, landmarks, renderer.transform


def _synthetic_model() -> Any:
    from talkface.face3d.model import load_morphable_model

    return load_morphable_model("synthetic")


def _write_manifest(path: Path, **fields: Any) -> None:
    from talkface.provenance import provenance

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(provenance(**fields), indent=2))


# ---------------------------------------------------------------------------------------------
# LRW layout


def lrw_clip_path(root: str | Path, word: str, split: str, index: int) -> Path:
    """root/WORD/split/WORD_00001.mp4 (index counts from 1, as in LRW)."""
    return Path(root) / word / split / f"{word}_{index:05d}.mp4"


@dataclass(frozen=True)
class LrwSpeech:
    """One LRW clip's speech: samples [18560], the word's span (s), its phones and the variety drawn."""

    samples: np.ndarray
    span: tuple[float, float]
    phones: list[Phone]
    phone_source: str  # "engine", or "audio" where espeak-ng spoke (estimated from the clean speech)
    variety: ClipVariety

    def truth(self) -> dict[str, np.ndarray]:
        """The .npz fields that record the speech."""
        return {"word_start": np.float32(self.span[0]), "word_end": np.float32(self.span[1]),
                "phone_symbols": np.array([p.symbol for p in self.phones], dtype="<U1"),
                "phone_starts": np.array([p.start for p in self.phones], np.float64),
                "phone_ends": np.array([p.end for p in self.phones], np.float64),
                "phone_source": np.array(self.phone_source),
                "variety": np.array(json.dumps(self.variety.to_json()))}


def write_lrw_clip_without_frames(path: str | Path, word: str, seed: int, engine: str = "auto",
                                  variety: VarietyConfig = VarietyConfig()) -> None:
    """One LRW-layout clip with blank frames: the word's speech and the true coefficients (.npz).

    For the audio -> motion stage with `--coeffs truth`, which reads only the audio and the truth:
    a corpus of hundreds of clips takes seconds instead of rendering every frame.
    """
    from talkface.media import write_video
    from talkface.synth.appearance import sample_subject
    from talkface.synth.motion import generate_motion

    path = Path(path)
    speech = lrw_speech(word, seed, engine, variety)
    subject = sample_subject(seed)
    motion = generate_motion(speech.samples, SAMPLE_RATE, subject.style, seed, LRW_FRAMES, speech.phones)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, np.zeros((LRW_FRAMES, 16, 16, 3), np.uint8), audio=(speech.samples, SAMPLE_RATE))
    with atomic_path(path.with_suffix(".npz")) as tmp:
        np.savez(tmp, coeffs=subject.coeffs(motion.expression, motion.angles, motion.translation), **speech.truth())


def choose_words(words: int | Sequence[str], seed: int) -> list[str]:
    """`words` itself (checked), or that many words drawn from VOCABULARY with `seed`."""
    if isinstance(words, int):
        if not 1 <= words <= len(VOCABULARY):
            raise TalkfaceError(f"number of words must be between 1 and {len(VOCABULARY)}, got {words}")
        rng = np.random.default_rng([seed, 0x7A3D])
        return sorted(VOCABULARY[i] for i in rng.choice(len(VOCABULARY), words, replace=False))
    chosen = [w.upper() for w in words]
    bad = [w for w in chosen if not w.isalpha()]
    if bad or not chosen:
        raise TalkfaceError(f"words must be non-empty and letters only, got {bad or 'none'}")
    return chosen


def write_lrw(
    out_dir: str | Path,
    words: int | Sequence[str] = 4,
    clips_per_word: int = 2,
    seed: int = 0,
    splits: Sequence[str] = LRW_SPLITS,
    size: int = 256,
    engine: str = "auto",
    progress: bool = True,
    with_frames: bool = True,
    variety: VarietyConfig = VarietyConfig(),
) -> list[Path]:
    """Write `clips_per_word` clips per word and split in LRW's layout; existing complete clips are kept.

    Every clip has its own subject (identity, look, voice, head style), so identities far
    outnumber words; `variety` varies each clip's speech (variety.py). `with_frames=False` writes
    blank frames and only the speech and true coefficients (write_lrw_clip_without_frames: enough
    for the audio -> motion stage, ~100x faster). Returns the paths of all clips (written or kept).
    """
    from tqdm import tqdm

    unknown = [s for s in splits if s not in LRW_SPLITS]
    if unknown or not splits:
        raise TalkfaceError(f"unknown LRW split(s) {unknown or 'none'}; valid: {', '.join(LRW_SPLITS)}")
    if clips_per_word < 1:
        raise TalkfaceError(f"clips per word must be at least 1, got {clips_per_word}")
    if size < 64 or size % 2:
        raise TalkfaceError(f"frame size must be an even number of pixels >= 64, got {size}")
    out_dir = Path(out_dir)
    vocabulary = choose_words(words, seed)
    jobs = [(w, s, k) for w in vocabulary for s in splits for k in range(1, clips_per_word + 1)]
    model = None
    paths = []
    for word, split, index in tqdm(jobs, desc="synthetic LRW", unit="clip", disable=not progress):
        path = lrw_clip_path(out_dir, word, split, index)
        paths.append(path)
        if _lrw_clip_complete(path, with_frames):
            continue
        if not with_frames:
            write_lrw_clip_without_frames(path, word, _clip_seed(seed, word, split, index), engine, variety)
            continue
        model = model if model is not None else _synthetic_model()
        _write_lrw_clip(path, word, _clip_seed(seed, word, split, index), size, engine, variety, model)
    _write_manifest(out_dir / "manifest.json", kind="talkface synthetic LRW", seed=seed, words=vocabulary,
                    clips_per_word=clips_per_word, splits=list(splits), size=size if with_frames else None,
                    frames_per_clip=LRW_FRAMES, variety=dataclasses.asdict(variety))
    return paths


def _lrw_clip_complete(path: Path, with_frames: bool = True) -> bool:
    # Each file is written atomically and a clip is deterministic in its seed, so a clip missing
    # any of its files is simply made again (a frameless clip has no .txt).
    files = (path, path.with_suffix(".npz")) + ((path.with_suffix(".txt"),) if with_frames else ())
    return all(f.is_file() for f in files)


def _clip_seed(seed: int, word: str, split: str, index: int) -> int:
    """A subject seed per clip, stable whatever else is generated (so resuming reproduces it)."""
    entropy = [seed, zlib.crc32(word.encode()), LRW_SPLITS.index(split), index]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFFFFFF)


def _write_lrw_clip(path: Path, word: str, seed: int, size: int, engine: str, variety: VarietyConfig,
                    model: Any) -> None:
    from talkface.synth.appearance import sample_subject

    speech = lrw_speech(word, seed, engine, variety)
    subject = sample_subject(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    coeffs, landmarks, transform = _render_clip(path, subject, speech.samples, speech.phones, size, progress=False,
                                                sheet=False, model=model)
    with atomic_path(path.with_suffix(".npz")) as tmp:
        np.savez(tmp, coeffs=coeffs, landmarks=landmarks, transform=transform, seed=np.int64(seed), **speech.truth())
    start, end = speech.span
    with atomic_path(path.with_suffix(".txt")) as tmp:
        tmp.write_text(f"Text: {word}\nDuration: {end - start:.2f} seconds\nSpan: {start:.2f} {end:.2f}\n")


def lrw_speech(word: str, seed: int, engine: str = "auto", variety: VarietyConfig = VarietyConfig()) -> LrwSpeech:
    """1.16 s of speech [18560] with `word` centred and context speech around it, in the clip's voice and room."""
    from talkface.synth.speech import random_sentence, synthesize_utterance
    from talkface.synth.variety import apply_room, draw_variety

    drawn = draw_variety(variety, seed, engine)
    rng = np.random.default_rng([seed, 0x1A3])
    total = LRW_FRAMES * SAMPLES_PER_VIDEO_FRAME

    def say(text: str) -> tuple[np.ndarray, list[Phone] | None]:
        """The utterance with its silent ends trimmed; phones in samples of the trimmed audio / SAMPLE_RATE."""
        utterance = synthesize_utterance(text, seed, SAMPLE_RATE, drawn.engine, drawn.voice)
        loud = np.nonzero(np.abs(utterance.audio) > 0.02)[0]
        first, last = (loud[0], loud[-1] + 1) if len(loud) else (0, 0)
        phones = None if utterance.phones is None else shift_phones(utterance.phones, -first / SAMPLE_RATE)
        return utterance.audio[first:last], phones

    spoken, word_phones = say(word.lower())
    spoken = spoken[: total - 2 * SAMPLES_PER_VIDEO_FRAME]
    before, before_phones = say(random_sentence(rng, n_words=4))
    after, after_phones = say(random_sentence(rng, n_words=4))
    audio = np.zeros(total, np.float32)
    start = (total - len(spoken)) // 2
    end = start + len(spoken)
    gap_before, gap_after = (int(rng.uniform(0.0, 0.08) * SAMPLE_RATE) for _ in range(2))
    head = max(0, start - gap_before)
    audio[:head] = before[len(before) - head :] if head <= len(before) else np.pad(before, (head - len(before), 0))
    audio[start:end] = spoken
    tail = max(0, total - end - gap_after)
    audio[total - tail :] = after[:tail] if tail <= len(after) else np.pad(after, (0, tail - len(after)))
    # Where each part's sample 0 landed, and the stretch of the clip it fills.
    placed = ((before_phones, head - len(before), 0, head), (word_phones, start, start, end),
              (after_phones, total - tail, total - tail, total))
    if all(part is not None for part, *_ in placed):
        phones = [p for part, offset, lo, hi in placed
                  for p in shift_phones(part, offset / SAMPLE_RATE, lo / SAMPLE_RATE, hi / SAMPLE_RATE)]
        source = "engine"
    else:
        phones, source = phones_from_audio(audio, SAMPLE_RATE), "audio"
    if variety.enabled:
        audio = apply_room(audio, drawn, SAMPLE_RATE, seed)
    return LrwSpeech(audio, (start / SAMPLE_RATE, end / SAMPLE_RATE), phones, source, drawn)
