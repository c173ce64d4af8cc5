"""LRW preprocessing: one compact motion record per clip (talkface/motion/records.py), sharded and resumable.

    root/WORD/{train,val,test}/WORD_00001.mp4  ->  CACHE/records/WORD/split/WORD_00001.npz + manifest

Per clip: the audio track -> MFCC windows (`audio_windows(pad=True)`, window i = frame i; for the
interior frames 3..T-4 that training samples they equal the original's unpadded LRW windows,
talkface/motion/data.py) and coefficients -> motion [T, 70]. Coefficients come from
 - "recon": the person-preprocess pipeline (landmarks, alignment, R-Net + refinement) run on the
   clip in a scratch workspace;
 - "truth": the ground-truth .npz that `talkface synth lrw` writes beside each clip (synthetic only).
Clips are split over shards by their sorted position (clip k goes to shard k mod n). A record is a
keyed artifact (talkface/keyed.py) written atomically with its key: the clip (its name and size),
the coefficient source and, for "recon", the preprocess config and the R-Net's content. A record
whose key matches is skipped, so a killed run simply runs again and a changed config redoes the
records. A clip that fails is appended to bad_clips.txt and skipped; the run goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from talkface.errors import TalkfaceError
from talkface.keyed import artifact_key
from talkface.motion.records import (
    COEFF_SOURCES, LRWRecord, MANIFEST, log_bad_clip, read_manifest, record_path, stored_key, write_manifest,
    write_record,
)
from talkface.motion.data import LRW_OFFSETS, SEQUENCE_FRAMES

SPLITS = ("train", "val", "test")
# The latest training sequence ends at frame LRW_OFFSETS[1] + 16 (motion/data.py), so shorter clips are unusable.
MIN_FRAMES = LRW_OFFSETS[1] + 1 + SEQUENCE_FRAMES
MAX_FRAME_MISMATCH = 1  # audio and video lengths of one clip may differ by a rounding frame


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class LRWPreprocessResult:
    written: int
    skipped: int  # records already current
    bad: int  # clips that failed this run (see bad_clips.txt)
    shard: Shard
    manifest: Path


def parse_shard(text: str) -> Shard:
    """'i/n' -> Shard(i, n) with 0 <= i < n."""
    index, sep, count = text.partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        raise TalkfaceError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not sep or shard.count < 1 or not 0 <= shard.index < shard.count:
        raise TalkfaceError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return shard


def default_shard() -> Shard:
    """One shard per process under torchrun (its rank of the world size), else the whole set."""
    from talkface.train.distributed import torchrun_ranks

    ranks = torchrun_ranks()
    return Shard(ranks.rank, ranks.world_size)


def find_clips(root: str | Path) -> list[str]:
    """Sorted clip paths relative to `root` in LRW's layout WORD/{train,val,test}/*.mp4."""
    root = Path(root)
    if not root.is_dir():
        raise TalkfaceError("LRW root folder not found", root)
    clips = sorted(str(p.relative_to(root)) for split in SPLITS for p in root.glob(f"*/{split}/*.mp4"))
    if not clips:
        raise TalkfaceError("no clips in LRW's layout WORD/{train,val,test}/*.mp4", root)
    return clips


def shard_clips(clips: list[str], shard: Shard) -> list[str]:
    return clips[shard.index::shard.count]


def preprocess_lrw(
    root: str | Path,
    out: str | Path,
    coeffs: str = "recon",
    shard: Shard | None = None,
    recon_config: Any = None,
    progress: bool = True,
) -> LRWPreprocessResult:
    """Write the records of this shard's clips that are missing or stale, then the manifest of all records present."""
    from tqdm import tqdm

    if coeffs not in COEFF_SOURCES:
        raise TalkfaceError(f"unknown coefficient source {coeffs!r}; choose one of {', '.join(COEFF_SOURCES)}")
    root, out = Path(root), Path(out)
    settings = _record_settings(coeffs, recon_config)  # fails once, before any clip, on missing R-Net weights
    shard = shard or default_shard()
    clips = shard_clips(find_clips(root), shard)
    out.mkdir(parents=True, exist_ok=True)
    with _manifest_lock(out):
        _check_cache(out, coeffs)
        write_manifest(out, coeffs, root)  # from the start, so the cache says what it holds
    written = skipped = bad = 0
    for source in tqdm(clips, desc=f"LRW shard {shard}", unit="clip", disable=not progress):
        target = record_path(out, source)
        key = artifact_key({"clip": [source, (root / source).stat().st_size], **settings})
        if stored_key(target) == key:
            skipped += 1
            continue
        try:
            record = clip_record(root, source, coeffs, recon_config, out)
        except (TalkfaceError, ValueError, OSError) as error:
            log_bad_clip(out, source, str(error))
            target.unlink(missing_ok=True)  # a stale record made under other settings must not stay listed
            bad += 1
            continue
        write_record(target, record, key)
        written += 1
    with _manifest_lock(out):
        write_manifest(out, coeffs, root)
    return LRWPreprocessResult(written, skipped, bad, shard, out / MANIFEST)


def clip_record(root: Path, source: str, coeffs: str, recon_config: Any, cache: Path) -> LRWRecord:
    """The record of one clip; TalkfaceError/MediaError for an unusable clip."""
    from talkface.audio import audio_windows
    from talkface.face3d.coeffs import IDENTITY, N_COEFFS, motion_from_coeffs
    from talkface.media import read_audio

    path = root / source
    windows = audio_windows(read_audio(path))  # [T, 28, 12]
    full = _truth_coeffs(path) if coeffs == "truth" else _recon_coeffs(path, recon_config, cache)
    if full.ndim != 2 or full.shape[1] != N_COEFFS:
        raise TalkfaceError(f"coefficients have shape {full.shape}, expected [T, {N_COEFFS}]", path)
    if abs(len(full) - len(windows)) > MAX_FRAME_MISMATCH:
        raise TalkfaceError(f"{len(windows)} frames of audio but {len(full)} of coefficients", path)
    frames = min(len(full), len(windows))
    if frames < MIN_FRAMES:
        raise TalkfaceError(f"{frames} frames, training needs at least {MIN_FRAMES}", path)
    if not np.isfinite(full[:frames]).all():
        raise TalkfaceError("coefficients are not finite", path)
    word, split = Path(source).parts[0], Path(source).parts[1]
    return LRWRecord(
        windows=windows[:frames], motion=motion_from_coeffs(full[:frames]).astype(np.float32),
        identity=full[:frames, IDENTITY].mean(0).astype(np.float32), word=word, split=split,
        source=source, coeffs=coeffs,
    )


def _truth_coeffs(path: Path) -> np.ndarray:
    truth = path.with_suffix(".npz")
    if not truth.is_file():
        raise TalkfaceError("no ground-truth .npz beside the clip: --coeffs truth is for `talkface synth lrw` "
                            "corpora only; use --coeffs recon for real LRW", path)
    try:
        with np.load(truth, allow_pickle=False) as data:
            return np.asarray(data["coeffs"], np.float32)
    except (OSError, KeyError, ValueError) as error:
        raise TalkfaceError(f"unreadable ground truth ({error})", truth) from None


def _recon_coeffs(path: Path, config: Any, cache: Path) -> np.ndarray:
    """Coefficients from the person-preprocess pipeline, run in a scratch workspace deleted afterwards."""
    import dataclasses

    from talkface.pipelines.preprocess import PreprocessConfig, preprocess
    from talkface.workspace import Workspace

    config = dataclasses.replace(config or PreprocessConfig(), frames=10**6)  # the whole clip
    scratch = Path(tempfile.mkdtemp(prefix="recon-", dir=cache))
    try:
        preprocess(path, scratch / "ws", config, progress=False)
        return np.asarray(Workspace(scratch / "ws").load_array("coeffs.npy"), np.float32)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _record_settings(coeffs: str, config: Any) -> dict[str, Any]:
    """What of this run determines every record besides its clip: the coefficient source and, for
    recon, the preprocess config (less what only sets speed) and the R-Net file's content. Named R-Net
    weights that are missing fail here (once, not once per clip as a bad clip)."""
    from talkface.config import config_to_dict
    from talkface.keyed import file_fingerprint
    from talkface.pipelines.preprocess import PreprocessConfig, rnet_path

    if coeffs == "truth":
        return {"coeffs": coeffs}
    config = config or PreprocessConfig()
    rnet = rnet_path(config.rnet)
    preprocess = {k: v for k, v in config_to_dict(config).items() if k not in ("frames", "batch_size", "device")}
    return {"coeffs": coeffs, "preprocess": preprocess, "rnet": file_fingerprint(rnet)["sha256"] if rnet else None}


def _check_cache(out: Path, coeffs: str) -> None:
    """Refuse to mix coefficient sources in one cache."""
    if not (out / MANIFEST).is_file():
        return
    existing = read_manifest(out).get("coeffs")
    if existing != coeffs:
        raise TalkfaceError(f"cache holds --coeffs {existing} records; use a new --out for --coeffs {coeffs}", out)


@contextlib.contextmanager
def _manifest_lock(out: Path) -> Iterator[None]:
    # Serialises the manifest rebuild across shards: the last shard to finish lists everything.
    with open(out / ".manifest.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
