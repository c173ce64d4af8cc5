"""The compact per-clip LRW record and the cache manifest that lists them.

A cache made by `talkface lrw preprocess` holds

    CACHE/records/WORD/split/WORD_00001.npz   one record per clip (written atomically)
    CACHE/manifest.json                       every record present, by split, and how they were made
    CACHE/bad_clips.txt                       clips that failed: "source<TAB>reason", one per line

A record is an npz of
    windows   float16 [T, 28, 12]  MFCC windows, `audio_windows(audio, pad=True)`: window i is frame i
    motion    float32 [T, 70]      expression + angles + translation (`motion_from_coeffs`)
    identity  float32 [80]         the clip's mean identity coefficients (to project landmarks for LMD)
    word, split, source, coeffs    the label, the LRW split, the clip's path under the LRW root and
                                   where the coefficients came from ("recon" or "truth")
    key                            what the record was made from (talkface/keyed.py): a record is
                                   current when its key equals the one computed now
float16 halves the windows (MFCC values are O(1-100); 11 mantissa bits keep ~3 significant
digits, far finer than the network resolves). About 30 kB per 29-frame clip (uncompressed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from talkface.atomic import atomic_path
from talkface.errors import TalkfaceError

FORMAT = "talkface-lrw-record-v1"
MANIFEST = "manifest.json"
BAD_CLIPS = "bad_clips.txt"
RECORDS = "records"
COEFF_SOURCES = ("recon", "truth")
# How each coefficient source is described in the manifest, so nobody mistakes one for the other.
COEFF_SOURCE_LABELS = {
    "recon": "reconstructed from the video by talkface's 3D reconstruction (talkface preprocess)",
    "truth": "SYNTHETIC GROUND TRUTH read from the .npz beside each clip (talkface synth lrw only)",
}


@dataclass(frozen=True)
class LRWRecord:
    windows: np.ndarray  # float32 [T, 28, 12]
    motion: np.ndarray  # float32 [T, 70]
    identity: np.ndarray  # float32 [80]
    word: str
    split: str
    source: str
    coeffs: str


def record_path(cache: str | Path, source: str) -> Path:
    """CACHE/records/WORD/split/WORD_00001.npz for the clip at `source` (relative to the LRW root)."""
    return Path(cache) / RECORDS / Path(source).with_suffix(".npz")


def write_record(path: str | Path, record: LRWRecord, key: str) -> None:
    """Write one record with its key atomically: a killed run leaves either the whole record or none."""
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.savez(
                handle, format=np.str_(FORMAT), windows=record.windows.astype(np.float16),
                motion=record.motion.astype(np.float32), identity=record.identity.astype(np.float32),
                word=np.str_(record.word), split=np.str_(record.split), source=np.str_(record.source),
                coeffs=np.str_(record.coeffs), key=np.str_(key),
            )


def stored_key(path: str | Path) -> str | None:
    """The key record `path` was written with; None when there is no readable record with a key."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data["key"]) if "key" in data.files else None
    except (OSError, ValueError):
        return None


def read_record(path: str | Path) -> LRWRecord:
    """Load a record; a one-line error for a missing or foreign file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["format"]) != FORMAT:
                raise TalkfaceError(f"not a {FORMAT} record", path)
            return LRWRecord(
                windows=data["windows"].astype(np.float32), motion=data["motion"].astype(np.float32),
                identity=data["identity"].astype(np.float32), word=str(data["word"]), split=str(data["split"]),
                source=str(data["source"]), coeffs=str(data["coeffs"]),
            )
    except (OSError, KeyError, ValueError) as error:
        raise TalkfaceError(f"cannot read LRW record ({error})", path) from None


def write_manifest(cache: str | Path, coeffs: str, root: str | Path, **fields: Any) -> dict[str, Any]:
    """List every record under CACHE/records (by split) and the bad clips in CACHE/manifest.json.

    Built from the files present, so any shard's run (the last to finish) writes the whole list.
    """
    from talkface.provenance import provenance

    cache = Path(cache)
    clips: dict[str, list[dict[str, str]]] = {}
    for path in sorted((cache / RECORDS).glob("*/*/*.npz")):
        word, split = path.parent.parent.name, path.parent.name
        source = str(path.relative_to(cache / RECORDS).with_suffix(".mp4"))
        clips.setdefault(split, []).append({"record": str(path.relative_to(cache)), "word": word, "source": source})
    recorded = {c["source"] for split in clips.values() for c in split}
    bad = {source: reason for source, reason in read_bad_clips(cache).items() if source not in recorded}
    manifest = provenance(
        kind="talkface LRW motion cache", format=FORMAT, coeffs=coeffs, coeffs_label=COEFF_SOURCE_LABELS[coeffs],
        root=str(root), counts={split: len(items) for split, items in clips.items()}, clips=clips,
        bad_clips=bad, **fields,
    )
    with atomic_path(cache / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_manifest(cache: str | Path) -> dict[str, Any]:
    """CACHE/manifest.json; a one-line error saying how to make it when absent."""
    path = Path(cache) / MANIFEST
    if not path.is_file():
        raise TalkfaceError(f"no {MANIFEST}; run `talkface lrw preprocess --root LRW_ROOT --out {cache}` first",
                            Path(cache))
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise TalkfaceError("is not valid JSON; rerun `talkface lrw preprocess` to rebuild it", path) from None


def split_records(cache: str | Path, split: str) -> list[Path]:
    """Paths of the records of `split` listed in the cache manifest; an error when there are none."""
    manifest = read_manifest(cache)
    items = manifest["clips"].get(split, [])
    if not items:
        raise TalkfaceError(f"the LRW cache has no '{split}' clips (it has {manifest['counts']})", Path(cache))
    return [Path(cache) / item["record"] for item in items]


def read_bad_clips(cache: str | Path) -> dict[str, str]:
    """{source: latest reason} from CACHE/bad_clips.txt (empty when absent)."""
    path = Path(cache) / BAD_CLIPS
    if not path.is_file():
        return {}
    bad = {}
    for line in path.read_text().splitlines():
        source, _, reason = line.partition("\t")
        if source:
            bad[source] = reason
    return bad


def log_bad_clip(cache: str | Path, source: str, reason: str) -> None:
    """Append one line to CACHE/bad_clips.txt (one small O_APPEND write: safe across shards)."""
    line = f"{source}\t{' '.join(reason.split())}\n"
    with open(Path(cache) / BAD_CLIPS, "a") as handle:
        handle.write(line)
