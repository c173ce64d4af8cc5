"""The held-out evaluation's outputs: heldout.json, contact_sheet.png and report.md (pipelines/heldout.py).

The contact sheet has one row per sampled held-out frame: the real frame, the composited render of
its own reconstruction, the GAN output on that render, and the fine-tuned audio-driven frame, all
in the held-out clip's window, with their landmarks dotted (mouth red): the real frame's and the
audio-driven frame's as the landmark backend found them, the render's and GAN's as drawn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkface.atomic import atomic_path

COLUMNS = ("real", "render", "GAN", "audio")
# The figures of each audio-driven variant shown in the report's table, with their headings.
VARIANT_COLUMNS = (("lmd", "mouth LMD (px)"), ("lmd_224", "LMD @224"), ("mouth_open_r", "lip-gap r"),
                   ("psnr", "PSNR"), ("ssim", "SSIM"), ("pose_stats_distance", "pose-stats dist"),
                   ("frames_without_face", "no face"))
VARIANT_NAMES = {"finetuned": "fine-tuned (audio-driven)", "mean_expression": "baseline: mean expression",
                 "general": "baseline: general model", "still": "baseline: first frame held",
                 "own_expression": "ceiling: the frames' own expression"}
OFF_IMAGE = -1.0e4  # landmarks of a frame without a face are drawn outside the tile


def write_report(paths: Any, result: dict[str, Any], sheet: dict[str, Any], tile: int = 192) -> None:
    """heldout.json, contact_sheet.png and report.md under the evaluation's folder."""
    write_sheet(paths.sheet, sheet, tile)
    with atomic_path(paths.results) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    with atomic_path(paths.report) as tmp:
        tmp.write_text(markdown(result, paths))


def sheet_image(sheet: dict[str, Any], tile: int = 192) -> np.ndarray:
    """RGB uint8 grid: rows of real | render | GAN | audio-driven at `sheet['rows']` held-out frames."""
    from talkface.recon.alignment import apply_transform
    from talkface.synth.contact_sheet import contact_sheet, sheet_indices

    window = sheet["window"]
    audio_marks = sheet["audio_landmarks"]
    frames, marks, labels = [], [], []
    for index in sheet_indices(len(sheet["real"]), sheet["rows"]):
        audio = window.crop(np.asarray(sheet["audio"][index]))
        audio_points = np.full((68, 2), OFF_IMAGE) if audio_marks is None else \
            apply_transform(window.transform, audio_marks[index])
        frames += [sheet["real"][index], sheet["render"][index], sheet["gan"][index], audio]
        marks += [sheet["real_landmarks"][index], sheet["render_landmarks"][index], sheet["render_landmarks"][index],
                  audio_points]
        labels += [f"real {sheet['offset'] + index}", *COLUMNS[1:]]
    return contact_sheet(np.stack(frames), np.stack(marks), labels, columns=len(COLUMNS), tile=tile)


def write_sheet(path: Path, sheet: dict[str, Any], tile: int = 192) -> None:
    image = sheet_image(sheet, tile)
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise OSError(f"{path}: cannot encode PNG")
        tmp.write_bytes(data.tobytes())


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def markdown(result: dict[str, Any], paths: Any) -> str:
    """The report: the split, the audio-driven variants against each other, the GAN protocol, checks."""
    lines = [f"# Held-out evaluation of {Path(result['clip']).name}", "",
             f"{result['frames']} frames at 25 fps ({result['frame_size'][1]}x{result['frame_size'][0]}): fine-tuned "
             f"on the first {result['train_frames']}, scored on the last {result['heldout_frames']}. Landmarks: "
             f"`{result['landmarks']}`; morphable model: `{result['morphable_model']}`; coefficients "
             f"initialised by `{result['fit_init']}` (direct: the posed mean face; rnet: R-Net).", "",
             "## Audio-driven held-out frames against the real ones", "",
             "| | " + " | ".join(h for _, h in VARIANT_COLUMNS) + " |",
             "|---" * (len(VARIANT_COLUMNS) + 1) + "|"]
    for name, figures in result["audio_driven"].items():
        lines.append(f"| {VARIANT_NAMES[name]} | " + " | ".join(_number(figures.get(k)) for k, _ in VARIANT_COLUMNS)
                     + " |")
    recon = result["reconstruction"]
    lines += ["", "Mouth LMD: landmarks found in the generated and in the real frames by the same backend, frame px "
              "(and scaled to the 224 px aligned face); PSNR / SSIM in the person's window; pose-statistics distance "
              "of the rendered head pose against the person's training clip (0: the same style).", "",
              "## The GAN on the held-out frames' own reconstruction (the paper's protocol)", "",
              "| | PSNR (dB) | SSIM |", "|---|---|---|",
              f"| GAN output | {_number(recon['psnr_gan'])} | {_number(recon['ssim_gan'])} |",
              f"| composited render | {_number(recon['psnr_render'])} | {_number(recon['ssim_render'])} |", "",
              f"Identity of the reconstruction (neutral face shapes, RMS vertex distance): spread over the training "
              f"frames {_number(result['identity']['train_spread_mm'])} mm, the held-out frames' own fit "
              f"{_number(result['identity']['heldout_change_mm'])} mm from it.", "",
              f"Viseme mouth (docs/method.md): phones heard as {result['viseme_mouth']['recogniser']}, blended in at "
              f"weight {result['viseme_mouth']['weight']:g} (0: the network alone).", "",
              "## Checks", ""]
    lines += [f"- {'pass' if ok else 'FAIL'}: {name}" for name, ok in result["checks"].items()]
    lines += ["", f"![real, render, GAN, audio-driven]({Path(paths.sheet).name})", "",
              "Time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items()), ""]
    return "\n".join(lines)
