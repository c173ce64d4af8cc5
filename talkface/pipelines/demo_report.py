"""The demo's report: what it made, measured against the synthetic truth and the baselines.

    report.png    frames (composited render / GAN output / ground truth), predicted vs true head
                  pose and mouth opening over the held-out speech
    report.html   that figure, demo.mp4, the metrics against their baselines, time per stage
    metrics.json  the same numbers

Checks: mouth LMD of the fine-tuned prediction below the pretrained-only model's and the person's
mean expression's (against the held-out frames reconstructed like the clip, see motion_metrics);
the GAN's PSNR and SSIM on held-out frames of the clip above the composited render's.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from talkface.atomic import atomic_path
from talkface.audio import VIDEO_FPS
from talkface.face3d.coeffs import (
    EXPRESSION, IDENTITY, MOTION_ANGLES, MOTION_EXPRESSION, expression_on_pose, motion_from_coeffs,
)
from talkface.metrics import flicker, lmd, pose_statistics, pose_statistics_distance
from talkface.pipelines.stages import StageBook

ANGLE_NAMES = ("pitch", "yaw", "roll")
INNER_LIPS = (62, 66)  # upper and lower inner-lip midpoints of the 68-point layout
PANELS = 4  # sample frames shown


def write_report(config: Any, paths: Any, book: StageBook, pretrained_motion: str) -> dict[str, Any]:
    """Measure, draw and write report.png, report.html and metrics.json; the metrics."""
    held = _heldout(config, paths)
    metrics = {"motion": motion_metrics(held, pretrained_motion), "gan": book.outputs("person")["gan"]["validation"],
               "video": video_metrics(held), "seconds": {name: stage.get("seconds") for name, stage in
                                                         book.record["stages"].items()}}
    metrics["checks"] = checks(metrics)
    _draw(held, paths.report_image)
    with atomic_path(paths.metrics) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    with atomic_path(paths.report) as tmp:
        tmp.write_text(_html(metrics, paths))
    return {"report": str(paths.report), "checks": metrics["checks"]}


def _heldout(config: Any, paths: Any) -> dict[str, Any]:
    """Everything the report compares, on the held-out speech (frames after the clip)."""
    from talkface.face3d.model import load_morphable_model
    from talkface.media import read_audio, read_video
    from talkface.background.animation import load_target
    from talkface.workspace import Workspace

    kept = dict(np.load(paths.report_frames))
    truth = np.load(paths.person_clip / "truth" / "coeffs.npy")[config.world.clip_frames:]  # [T, 257]
    reconstructed = np.asarray(Workspace(paths.heldout_workspace).load_array("coeffs.npy"))  # [T, 257]
    count = min(len(truth), len(reconstructed), len(kept["motion"]))
    workspace = Workspace(paths.people / config.name)
    video = read_video(paths.person_clip / "clip.mp4")[config.world.clip_frames:][:count]
    crop = load_target(workspace.root).window.crop
    train = np.asarray(workspace.load_array("coeffs.npy"))  # the person's clip as preprocess fitted it
    return {
        "count": count, "face": load_morphable_model("synthetic"),
        "true_motion": motion_from_coeffs(truth[:count]).astype(np.float32), "true_identity": truth[0, IDENTITY],
        "reconstructed_motion": motion_from_coeffs(reconstructed[:count]).astype(np.float32),
        "identity": train[:, IDENTITY].mean(0), "train_expression": train[:, EXPRESSION].mean(0),
        "motion": kept["motion"][:count], "render": kept["render"][:count], "output": kept["output"][:count],
        "truth_frames": np.stack([crop(frame) for frame in video]), "audio": read_audio(paths.heldout_audio),
    }


def motion_metrics(held: dict[str, Any], pretrained_checkpoint: str) -> dict[str, float]:
    """Mouth LMD of the fine-tuned, pretrained-only and mean-expression predictions; pose statistics.

    Two references. "lmd_*": the held-out frames reconstructed by the same preprocess as the
    training clip (the paper's LMD compares landmarks found by one detector in both videos, so a
    bias of the reconstruction is shared, as a detector's would be). "truth_lmd_*": the synthetic
    truth, which also charges each prediction with the reconstruction's bias (fine-tuning learns
    the person as preprocess sees them). Every prediction's expression is drawn on the reference's
    own head pose, as the mean-expression baseline is: a head turned differently changes the
    projected mouth's shape, and the mouth alone is scored here (pose has its own statistics).
    """
    from talkface.motion.inference import motion_landmarks, predict_motion
    from talkface.motion.model import load_motion_model

    count, face = held["count"], held["face"]
    pretrained = predict_motion(load_motion_model(pretrained_checkpoint), held["audio"], bf16=False)[:count]
    predictions = {"finetuned": held["motion"], "pretrained": pretrained, "mean_expression": None}
    result = {}
    for prefix, reference, identity in (("lmd", held["reconstructed_motion"], held["identity"]),
                                        ("truth_lmd", held["true_motion"], held["true_identity"])):
        marks = motion_landmarks(face, reference, identity)
        for name, predicted_motion in predictions.items():
            motion = expression_on_pose(reference, held["train_expression"] if predicted_motion is None
                                        else predicted_motion[:, MOTION_EXPRESSION])
            result[f"{prefix}_{name}"] = lmd(motion_landmarks(face, motion, identity), marks)
    predicted, true = (pose_statistics(held[key][:, MOTION_ANGLES]) for key in ("motion", "true_motion"))
    return {**result, "pose_statistics_distance": pose_statistics_distance(predicted, true),
            **{f"pose_std_{n}_deg": float(np.degrees(v)) for n, v in zip(ANGLE_NAMES, predicted["std"])},
            **{f"true_pose_std_{n}_deg": float(np.degrees(v)) for n, v in zip(ANGLE_NAMES, true["std"])}}


def video_metrics(held: dict[str, Any]) -> dict[str, float]:
    """Frame-to-frame flicker of the output faces, the composited render and the real clip (window crops)."""
    return {"flicker_output": flicker(held["output"]), "flicker_render": flicker(held["render"]),
            "flicker_real": flicker(held["truth_frames"])}


def checks(metrics: dict[str, Any]) -> dict[str, bool]:
    """What the demo must show: fine-tuning beats both motion baselines, the GAN beats its input render."""
    motion, gan = metrics["motion"], metrics["gan"]
    result = {"mouth lmd: fine-tuned < pretrained-only and < the person's mean expression":
              motion["lmd_finetuned"] < min(motion["lmd_pretrained"], motion["lmd_mean_expression"])}
    if "psnr_gan" in gan and "psnr_render" in gan:
        result["gan: psnr and ssim above the composited render's"] = \
            gan["psnr_gan"] > gan["psnr_render"] and gan.get("ssim_gan", 1.0) > gan.get("ssim_render", 0.0)
    return result


def _draw(held: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = held["count"]
    picks = np.linspace(0, count - 1, PANELS + 2).round().astype(int)[1:-1]
    figure = plt.figure(figsize=(12, 12), constrained_layout=True)
    grid = figure.add_gridspec(5, PANELS)
    rows = (("composited render", held["render"]), ("GAN output", held["output"]), ("ground truth", held["truth_frames"]))
    for row, (label, images) in enumerate(rows):
        for column, index in enumerate(picks):
            axis = figure.add_subplot(grid[row, column])
            axis.imshow(images[index])
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(label)
            if row == 0:
                axis.set_title(f"frame {index} ({index / VIDEO_FPS:.2f} s)")
    seconds = np.arange(count) / VIDEO_FPS
    pose = figure.add_subplot(grid[3, :])
    predicted, true = (np.degrees(held[key][:, MOTION_ANGLES]) for key in ("motion", "true_motion"))  # [T, 3]
    for k, name in enumerate(ANGLE_NAMES):
        line, = pose.plot(seconds, predicted[:, k], label=f"{name} predicted")
        pose.plot(seconds, true[:, k], "--", color=line.get_color(), label=f"{name} true")
    pose.set_ylabel("head angle (deg)")
    pose.legend(ncol=3, fontsize=8)
    from talkface.motion.inference import motion_landmarks

    mouth = figure.add_subplot(grid[4, :])
    for label, motion, style in (("predicted", held["motion"], "-"), ("reconstructed", held["reconstructed_motion"], ":"),
                                 ("true", held["true_motion"], "--")):
        mouth.plot(seconds, _mouth_opening(motion_landmarks(held["face"], motion, held["identity"])), style, label=label)
    mouth.set_ylabel("inner-lip gap (px)")
    mouth.set_xlabel("held-out speech (s)")
    mouth.legend(fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=80)
    plt.close(figure)


def _mouth_opening(marks: np.ndarray) -> np.ndarray:
    upper, lower = INNER_LIPS
    return np.linalg.norm(marks[:, lower] - marks[:, upper], axis=-1)


def _html(metrics: dict[str, Any], paths: Any) -> str:
    image = base64.b64encode(Path(paths.report_image).read_bytes()).decode()
    rows = [(f"{section}: {name}", value) for section in ("motion", "gan", "video")
            for name, value in metrics[section].items()]
    table = "".join(f"<tr><td>{html.escape(n)}</td><td>{v:.4g}</td></tr>" for n, v in rows)
    checks = "".join(f"<li>{'&#10004;' if ok else '&#10008;'} {html.escape(n)}</li>" for n, ok in metrics["checks"].items())
    times = "".join(f"<tr><td>{html.escape(n)}</td><td>{s if s is not None else '-'}</td></tr>"
                    for n, s in metrics["seconds"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>talkface demo</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}td{{padding:2px 12px}}
table{{border-collapse:collapse}}tr:nth-child(odd){{background:#f2f2f2}}</style></head><body>
<h1>talkface demo: a synthetic person saying speech it never heard</h1>
<video src="{Path(paths.video).name}" controls width="512"></video>
<h2>Against the baselines</h2><ul>{checks}</ul>
<img src="data:image/png;base64,{image}" style="width:100%">
<h2>Metrics</h2><p>Motion figures are on the held-out speech; GAN figures on the clip's held-out frames
(PSNR in dB, the composited render is the GAN's input); LMD in pixels of the 224 px crop, against
the held-out frames as preprocess reconstructs them (lmd_*) and against the synthetic truth (truth_lmd_*).</p>
<table>{table}</table>
<h2>Time per stage (s)</h2><table>{times}</table>
</body></html>
"""
