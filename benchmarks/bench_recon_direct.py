"""Direct fitting (no R-Net weights) against R-Net + refinement, on the synthetic world and on real clips.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_recon_direct.py [--work DIR] [--frames T]
        [--steps 400 800 1600] [--real-landmarks DIR]

Synthetic world (bench_recon.py's recipe): a small resnet18 R-Net trained from scratch on two
synthetic training people; the held-out person (seed 7, truth landmarks) is preprocessed with it
and the 800-step refinement; the same crops are then fitted directly from the posed mean face for
each step count. Scores: 68-landmark error at 224 px against the truth, Pearson r of the mouth
expression directions against the truth, seconds.

Real clips (`--real-landmarks DIR`: one <clip>.npy of 68-point frame-pixel landmarks per clip of
../shared/real, e.g. dlib's): `talkface preprocess` without R-Net and with the synthetic model, then
the reprojection error against those landmarks (px at 224) and identity constancy: the RMS vertex
distance (mm) between the neutral face shapes (identity only) fitted to two clips of the same
speaker (hdtf_aoc, talk3), against the same distance between different speakers' clips; with
--chunks K also the spread of identities fitted to K chunks of each clip on their own.
Writes benchmarks/results/recon_direct_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recon import MOUTH, clip, score, train  # noqa: E402  (the synthetic recipe, one copy)

from talkface.benchmarking import machine_info, write_result  # noqa: E402
from talkface.config import load_config  # noqa: E402
from talkface.face3d.camera import Camera  # noqa: E402
from talkface.face3d.coeffs import IDENTITY, N_EXPRESSION, N_IDENTITY  # noqa: E402
from talkface.face3d.model import load_morphable_model  # noqa: E402
from talkface.pipelines.preprocess import PreprocessConfig, preprocess  # noqa: E402
from talkface.recon.inference import RefineConfig, fit_clip, keypoints_2d  # noqa: E402
from talkface.workspace import Workspace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real"
MM_PER_UNIT = 100.0  # the model's units are decimetres
SAME_SPEAKER = {("hdtf_aoc", "talk3")}  # the real clips' notes: one speaker in two clips


def config(frames: int, landmarks: Path, rnet: str | None, steps: int) -> PreprocessConfig:
    return load_config(PreprocessConfig, ROOT / "configs" / "preprocess.yaml", [
        "morphable_model=synthetic", f"frames={frames}", "landmarks.backend=file", f"landmarks.file={landmarks}",
        f"rnet={rnet if rnet else 'null'}", f"refine.steps={steps}",
    ])


def synthetic(work: Path, args: argparse.Namespace, out: Path) -> dict:
    training = [clip(work, 101 + k, 4.0) for k in range(2)]
    held_out = clip(work, 7, args.frames / 25 + 0.04)
    checkpoint, _ = train(work, training, 60)  # resumed (no time) when --work already holds it
    landmarks = held_out / "truth" / "landmarks.npy"
    model = load_morphable_model("synthetic")
    start = time.perf_counter()
    preprocess(held_out / "clip.mp4", work / "ws_rnet", config(args.frames, landmarks, str(checkpoint), 800), False)
    ws = Workspace(work / "ws_rnet")
    rows = {"rnet_plus_refinement_800": {**score(ws.root, held_out, ws.load_array("coeffs.npy"), model),
                                         "seconds_preprocess": round(time.perf_counter() - start, 1)}}
    crops, crop_landmarks, transforms = (ws.load_array(name) for name in
                                         ("crops.npy", "crop_landmarks.npy", "transforms.npy"))
    setup = {"held_out_seed": 7, "frames": args.frames, "rnet": "resnet18, 60 steps from scratch on two 4 s "
             "synthetic people (bench_recon.py)", "landmarks": "truth"}
    for steps in args.steps:  # each row is saved as it comes: a long run keeps what it finished
        start = time.perf_counter()
        coeffs = fit_clip(crops, crop_landmarks, None, model, RefineConfig(steps=steps), progress=False,
                          transforms=transforms)
        rows[f"direct_{steps}"] = {**score(ws.root, held_out, coeffs, model),
                                   "seconds_fit": round(time.perf_counter() - start, 1)}
        save(out, "synthetic", {"setup": setup, "results": rows, "summary": summary(rows)})
    return {"setup": setup, "results": rows, "summary": summary(rows)}


def summary(rows: dict) -> dict:
    """Each direct fit relative to R-Net + refinement: landmark error ratio and mean mouth r ratio."""
    base = rows["rnet_plus_refinement_800"]

    def mouth_r(row: dict) -> float:
        return float(np.mean([row["mouth_expression_correlation"][n]["r"] for n in MOUTH]))

    return {name: {"landmark_error_ratio": round(row["landmark_error_px_224"] / base["landmark_error_px_224"], 3),
                   "mean_mouth_r": round(mouth_r(row), 4), "mean_mouth_r_ratio": round(mouth_r(row) / mouth_r(base), 4)}
            for name, row in rows.items()}


def real(work: Path, landmark_dir: Path, steps: int, chunks: int) -> dict:
    model = load_morphable_model("synthetic")
    rows, identities = {}, {}
    for path in sorted(landmark_dir.glob("*.npy")):
        frames = len(np.load(path))
        start = time.perf_counter()
        result = preprocess(REAL / f"{path.stem}.mp4", work / f"real_{path.stem}",
                            config(frames, path, None, steps), progress=False)
        ws = Workspace(result.workspace)
        coeffs = ws.load_array("coeffs.npy")
        target = ws.load_array("crop_landmarks.npy")
        predicted = keypoints_2d(model, torch.from_numpy(coeffs), Camera()).numpy()
        error = np.linalg.norm(predicted - target, axis=-1)
        identities[path.stem] = coeffs[0, IDENTITY]
        rows[path.stem] = {"frames": frames, "landmark_error_px_224": round(float(error.mean()), 3),
                           "inner_lip_error_px_224": round(float(error[:, 60:68].mean()), 3),
                           "seconds_preprocess": round(time.perf_counter() - start, 1)}
        if chunks > 1:  # each chunk fitted on its own: how far apart its identities land
            crops, transforms = ws.load_array("crops.npy"), ws.load_array("transforms.npy")
            parts = np.array_split(np.arange(frames), chunks)
            chunk_ids = [fit_clip(crops[p], target[p], None, model, RefineConfig(steps=steps), progress=False,
                                  transforms=transforms[p])[0, IDENTITY] for p in parts]
            rows[path.stem]["chunk_identity_rms_mm"] = round(identity_spread(model, np.stack(chunk_ids)), 3)
    names = sorted(identities)
    pairs = {f"{a}~{b}": round(identity_distance(model, identities[a], identities[b]), 3)
             for i, a in enumerate(names) for b in names[i + 1:]}
    return {"setup": {"landmarks": "dlib 68-point (face_recognition_models), +0.5 px", "steps": steps,
                      "chunks": chunks, "morphable_model": "synthetic",
                      "same_speaker": sorted(f"{a}~{b}" for a, b in SAME_SPEAKER)},
            "clips": rows, "identity_rms_mm_between_clips": pairs}


def identity_shapes(model, identity: np.ndarray) -> np.ndarray:
    """Neutral shapes [K, N, 3] (model units) of identity rows [K, 80]."""
    ids = torch.from_numpy(np.asarray(identity, np.float32).reshape(-1, N_IDENTITY))
    return model.shape(ids, torch.zeros(len(ids), N_EXPRESSION)).detach().numpy()


def identity_spread(model, identity: np.ndarray) -> float:
    """RMS distance (mm) of the neutral shapes of identity rows [K, 80] from their mean shape."""
    shapes = identity_shapes(model, identity)
    return float(np.sqrt(((shapes - shapes.mean(axis=0)) ** 2).sum(-1).mean()) * MM_PER_UNIT)


def identity_distance(model, a: np.ndarray, b: np.ndarray) -> float:
    """RMS vertex distance (mm) between the neutral shapes of two identities [80]."""
    shapes = identity_shapes(model, np.stack([a, b]))
    return float(np.sqrt(((shapes[0] - shapes[1]) ** 2).sum(-1).mean()) * MM_PER_UNIT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=None, help="folder for clips and runs (default: a temporary folder)")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--steps", type=int, nargs="+", default=[800, 400, 1600], help="direct-fit step counts")
    parser.add_argument("--real-landmarks", default=None, help="folder of <clip>.npy landmarks of ../shared/real clips")
    parser.add_argument("--real-steps", type=int, default=800)
    parser.add_argument("--chunks", type=int, default=0, help="also fit each clip in this many chunks (0: no)")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recon_direct_cpu.json"))
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_recon_direct_"))
    out = Path(args.out)
    if not args.skip_synthetic:
        save(out, "synthetic", synthetic(work, args, out))
    if args.real_landmarks:
        save(out, "real", real(work, Path(args.real_landmarks), args.real_steps, args.chunks))
    print(out.read_text())


def save(out: Path, name: str, section: dict) -> None:
    """Write one section (with the machine and its load now) into `out`, keeping the others."""
    results = json.loads(out.read_text()) if out.is_file() else {}
    results[name] = {**section, "machine": machine_info()}
    write_result(out, results)


if __name__ == "__main__":
    main()
