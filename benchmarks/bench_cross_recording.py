"""Audio -> mouth on another recording of the same speaker: does fine-tuning in step with the clip help?

    .venv/bin/python benchmarks/bench_cross_recording.py --general checkpoints/general/motion_lrw.pt \
        --workspaces DIR [--seeds 0 1] [--steps 1020]

hdtf_aoc.mp4 and talk3.mp4 of ../shared/real (skipped, with a note, when that folder is absent) are
two recordings of one speaker whose sound and picture sit at different offsets (motion/av_offset.py:
the word track's jaw follows each clip's detected lip gap best at +1 and -1 frames from the standard
lead). A held-out split of one clip cannot tell whether the network should learn its recording's
offset, since the held-out frames share it; the other recording can. For each direction and seed the
general model is fine-tuned on the whole source clip as `motion finetune` does (CPU profile: 1020
steps of batch 16), once on its frames as recorded ("as_recorded", what fine-tuning does by default) and
once on the pairs the offset puts in step (window t + k with frame t, motion/data.py `in_step`, what
fine-tuning does with `in_step: true`: "in_step"), and predicts the target clip from its audio at
the standard lead, as inference hears new speech. Scores: mouth LMD at 224 px and the inner-lip
gap's r against the target's own reconstruction (bench_motion_real.Scorer), beside the source's
mean expression. Whole-clip workspaces as bench_motion_real.py makes them.
Writes benchmarks/results/cross_recording_cpu.json (machine named).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench_lipsync_coeffs import finetune_curve, fresh_copy, whole_clip
from bench_motion_real import REAL, Scorer, reconstruct
from bench_viseme_mouth import with_expression
from talkface.benchmarking import machine_info, write_result
from talkface.face3d.coeffs import MOTION_EXPRESSION
from talkface.motion.data import in_step, load_person, person_av_offset, person_phones
from talkface.motion.train import OFFSET_RECOGNISER

RESULT = Path(__file__).parent / "results" / "cross_recording_cpu.json"
SPEAKER = ("hdtf_aoc", "talk3")  # ../shared/real/README.md: the same speaker


def offset(workspace: Path, frames: int) -> int:
    """The clip's audio-video offset on all its frames (the word track, as fine-tuning finds it)."""
    return person_av_offset(workspace, person_phones(workspace, OFFSET_RECOGNISER), frames)


def direction(source: Path, target: Path, general: Path, seeds: list[int], steps: int) -> dict[str, Any]:
    clip, other = load_person(source), load_person(target)
    k = offset(source, len(clip.motion))
    scorer = Scorer(other)
    mean = np.repeat(clip.motion[:, MOTION_EXPRESSION].mean(0)[None], len(other.motion), 0)
    result: dict[str, Any] = {"source_offset": k, "mean_of_source": scorer(with_expression(other, mean), other.motion)}
    for name, pairs in (("as_recorded", clip), ("in_step", in_step(clip, k))):
        result[name] = {}
        for seed in seeds:
            every = slice(0, len(pairs.motion))
            net = fresh_copy(general, pairs, every, seed)
            finetune_curve(net, pairs, every, 1e-4, "all", steps, steps, seed, lambda _: {})
            predicted = whole_clip(net, other.windows)[:, MOTION_EXPRESSION]
            result[name][f"seed_{seed}"] = scorer(with_expression(other, predicted), other.motion)
            print(source.name, "->", target.name, name, seed, result[name][f"seed_{seed}"], flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--general", type=Path, default=Path("checkpoints/general/motion_lrw.pt"))
    parser.add_argument("--workspaces", type=Path, default=Path("/tmp/talkface_real_workspaces"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=1020)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    if not REAL.is_dir():
        print(f"skipped: {REAL} is absent", file=sys.stderr)
        return 0
    workspaces = [reconstruct(REAL / f"{name}.mp4", args.workspaces / name) for name in SPEAKER]
    directions = {f"{a.name}_to_{b.name}": direction(a, b, args.general, args.seeds, args.steps)
                  for a, b in (workspaces, workspaces[::-1])}
    write_result(args.out, {"benchmark": "cross_recording", "steps": args.steps, "directions": directions,
                            "machine": machine_info()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
