"""A new user's loop on every real clip and speech file of ../shared/real, through the shipped scripts.

    .venv/bin/python benchmarks/bench_real_loop.py [--clips talk3 ...] [--speech speech_en_44k_stereo ...]
                                                   [--work DIR] [--pretrain]

From the repository root, as the README's "Your own person" does:
1. (--pretrain, or when checkpoints/general/ lacks them) `talkface pretrain synthetic`;
2. per clip, `scripts/finetune.sh CLIP NAME` (the CPU profile configs/person_cpu.yaml when there is
   no CUDA GPU);
3. per clip and speech file, `scripts/infer.sh SPEECH NAME OUT.mp4`, and checks of the video: 25 fps,
   an audio stream, and its frames last the speech's length within one frame (40 ms).
People and videos go under --work (default /tmp/talkface_real_loop), not into the repository.
Writes benchmarks/results/real_loop_<cpu|cuda>.json (per clip: fine-tuning seconds, frames used,
per video: seconds and checks; the machine named) and exits 1 if any step or check failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from talkface.audio import SAMPLE_RATE, VIDEO_FPS
from talkface.benchmarking import write_result
from talkface.media import count_frames, probe_video, read_audio

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real"
RESULTS = REPO / "benchmarks" / "results"
GENERAL = (REPO / "checkpoints" / "general" / "motion_lrw.pt", REPO / "checkpoints" / "general" / "gan_lrw.pt")
FRAME_SECONDS = 1 / VIDEO_FPS


def run(command: list[str], log: Path) -> tuple[int, float]:
    """Run `command` from the repository root, its output appended to `log`; (exit code, seconds)."""
    start = time.perf_counter()
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        code = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT).returncode
    return code, round(time.perf_counter() - start, 1)


def check_video(video: Path, speech: Path) -> dict[str, Any]:
    """The video contract: 25 fps, carries audio, as long as the speech within one frame."""
    info = probe_video(video)
    seconds = len(read_audio(speech)) / SAMPLE_RATE
    frames = count_frames(video)
    return {"fps": info.fps, "has_audio": info.has_audio, "frames": frames, "speech_seconds": round(seconds, 3),
            "fps_25": abs(info.fps - VIDEO_FPS) < 1e-3, "length_ok": abs(frames * FRAME_SECONDS - seconds) <= FRAME_SECONDS}


def finetuned_frames(log_text: str) -> int | None:
    """The 'fine-tuning on N frames' line of the finetune output."""
    for line in log_text.splitlines():
        if line.startswith("fine-tuning on "):
            return int(line.split()[2])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="*", default=None, help="clip names without .mp4 (default: all)")
    parser.add_argument("--speech", nargs="*", default=None, help="speech file names without .wav (default: all)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/talkface_real_loop"))
    parser.add_argument("--pretrain", action="store_true", help="run `talkface pretrain synthetic` first")
    parser.add_argument("--real", type=Path, default=REAL, help=f"the real clips and speech (default: {REAL})")
    args = parser.parse_args()
    if not args.real.is_dir():
        print(f"no real clips at {args.real}: nothing to check", file=sys.stderr)
        return 0
    clips = sorted(p for p in args.real.glob("*.mp4") if args.clips is None or p.stem in args.clips)
    speeches = sorted(p for p in args.real.glob("*.wav") if args.speech is None or p.stem in args.speech)
    args.work.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    talkface = str(bin_dir / "talkface")
    result: dict[str, Any] = {"clips": {},
                              "profile": "scripts/finetune.sh default (configs/person_cpu.yaml without a GPU)"}
    if args.pretrain or not all(path.is_file() for path in GENERAL):
        code, seconds = run([talkface, "pretrain", "synthetic"], args.work / "pretrain.log")
        result["pretrain"] = {"seconds": seconds, "ok": code == 0}
        if code:
            print(f"talkface pretrain synthetic failed: {args.work / 'pretrain.log'}", file=sys.stderr)
            return 1
    people = args.work / "people"
    failed = 0
    for clip in clips:
        log = args.work / f"{clip.stem}.log"
        log.unlink(missing_ok=True)
        people_set = ["--set", f"people_dir={people}"]
        code, seconds = run(["bash", "scripts/finetune.sh", str(clip), clip.stem, *people_set], log)
        entry: dict[str, Any] = {"finetune_seconds": seconds, "finetune_ok": code == 0,
                                 "frames": finetuned_frames(log.read_text()), "videos": {}}
        print(f"{clip.name}: finetune {'ok' if code == 0 else 'FAILED'} in {seconds:.0f} s", flush=True)
        for speech in speeches if code == 0 else []:
            out = args.work / "videos" / f"{clip.stem}__{speech.stem}.mp4"
            code, seconds = run(["bash", "scripts/infer.sh", str(speech), clip.stem, str(out), *people_set], log)
            video = {"seconds": seconds, "ok": code == 0, **(check_video(out, speech) if code == 0 else {})}
            video["pass"] = all(video.get(check) for check in ("ok", "fps_25", "has_audio", "length_ok"))
            entry["videos"][speech.stem] = video
            print(f"  {speech.name}: {'pass' if video['pass'] else 'FAIL'} ({seconds:.0f} s)", flush=True)
        entry["pass"] = entry["finetune_ok"] and all(v["pass"] for v in entry["videos"].values())
        failed += not entry["pass"]
        result["clips"][clip.stem] = entry
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = write_result(RESULTS / f"real_loop_{device}.json", result)
    print(f"{len(clips) - failed}/{len(clips)} clips passed; {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
