"""Seeded stand-ins for the original project's released files, shared by the fixture script and the tests.

tests/data/make_original_fixtures.py builds the original modules (from a checkout of the reference
code outside this repository), records each state dict's key names, shapes and aliases in
tests/data/original/manifest.json, fills them with `fill_state` and stores the reference's outputs
for `fixture_inputs`. The tests rebuild the very same files from the manifest alone, so the
repository holds no large weights (the original's audio network and the memory's ResNet-18 are
~25M and ~12M parameters at any size) and needs no reference code.

The fill rule keeps activations in a sane range for every layer kind: weights N(0, 1/fan_in),
biases N(0, 0.1), normalisation scales 1 + N(0, 0.1), running variances U(0.5, 1.5); the memory's
keys and values are unit rows, its ages and frame indices random integers (-1: never written).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATA = Path(__file__).parent / "data" / "original"
MANIFEST = DATA / "manifest.json"
SEED = 13
MEMORY_BUFFERS = ("mem_key", "mem_value", "mem_age", "mem_index")
WINDOW_SIZE = 256  # the generator has 8 fixed levels: 256 px is its smallest input
AUDIO_FRAMES = 8
MEMORY_QUERIES = 3
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])[:, None, None]
IMAGENET_STD = np.array([0.229, 0.224, 0.225])[:, None, None]


def _fill(name: str, shape: list[int], dtype: str, rng: np.random.Generator) -> torch.Tensor:
    if dtype.startswith("torch.int"):
        return torch.zeros(shape, dtype=getattr(torch, dtype.split(".")[1]))
    leaf = name.rsplit(".", 1)[-1]
    if name == "mem_key" or name == "mem_value":
        rows = rng.standard_normal(shape)
        values = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    elif name == "mem_age":
        values = rng.integers(0, 100, shape)
    elif name == "mem_index":
        values = rng.integers(-1, 1000, shape)
    elif leaf == "running_var":
        values = rng.uniform(0.5, 1.5, shape)
    elif len(shape) >= 2:
        values = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    elif leaf == "weight":  # 1-d: a normalisation layer's scale
        values = 1.0 + 0.1 * rng.standard_normal(shape)
    else:
        values = 0.1 * rng.standard_normal(shape)
    return torch.tensor(values, dtype=torch.float32)


def fill_state(entry: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """A state dict with the manifest entry's keys {name: [shape, dtype]}; an alias gets its source's tensor."""
    rng = np.random.default_rng(seed)
    state = {}
    for name in sorted(entry["tensors"]):
        shape, dtype = entry["tensors"][name]
        state[name] = _fill(name, shape, dtype, rng)
    for alias, source in entry.get("aliases", {}).items():
        state[alias] = state[source]
    return state


def original_files(manifest: dict[str, Any], seed: int = SEED) -> dict[str, Any]:
    """{file name: the object the original saved in it}, rebuilt from the manifest."""
    files = {}
    for index, (kind, entry) in enumerate(sorted(manifest["files"].items())):
        state = fill_state(entry, seed + index)
        if kind == "mem":  # the original's Memory_Network file: the module's state and four buffers
            files[entry["file"]] = {"mem_model": {k: v for k, v in state.items() if k not in MEMORY_BUFFERS},
                                    **{k: state[k] for k in MEMORY_BUFFERS}}
        else:
            files[entry["file"]] = state
    return files


def write_original_files(folder: Path, manifest: dict[str, Any] | None = None, seed: int = SEED) -> dict[str, Path]:
    """Save the stand-in files under `folder`; {kind: path}."""
    manifest = load_manifest() if manifest is None else manifest
    folder.mkdir(parents=True, exist_ok=True)
    files = original_files(manifest, seed)
    paths = {}
    for kind, entry in manifest["files"].items():
        paths[kind] = folder / entry["file"]
        torch.save(files[entry["file"]], paths[kind])
    return paths


def load_manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text())


def fixture_inputs(seed: int = SEED) -> dict[str, np.ndarray]:
    """The fixed inputs, in the original's conventions (window frames stacked t-2, t-1, t)."""
    rng = np.random.default_rng(seed + 100)
    identity = rng.standard_normal((1, 512))
    # renders of different colour and contrast, so that the queries pick different memory slots
    tint = rng.uniform(0, 1, (MEMORY_QUERIES, 3, 1, 1))
    contrast = np.linspace(0.1, 1.0, MEMORY_QUERIES)[:, None, None, None]
    noise = rng.uniform(-0.5, 0.5, (MEMORY_QUERIES, 3, WINDOW_SIZE, WINDOW_SIZE))
    renders = np.clip(tint + contrast * noise, 0, 1)
    return {
        "mfcc": rng.standard_normal((1, AUDIO_FRAMES, 28, 12)).astype(np.float32),  # [B, T, 28, 12]
        "window": rng.uniform(-1, 1, (1, 9, WINDOW_SIZE, WINDOW_SIZE)).astype(np.float32),  # [-1, 1]
        "identity": (identity / np.linalg.norm(identity)).astype(np.float32),  # [1, 512], unit norm
        "pair": rng.uniform(-1, 1, (1, 12, WINDOW_SIZE, WINDOW_SIZE)).astype(np.float32),  # window + image
        "render": renders.astype(np.float32),  # [0, 1]
    }


def crop_frames() -> list[np.ndarray]:
    """The crop test's frames: skimage's astronaut (512 x 512), then seeded noise frames of 720 x 1280 and 180 x 240."""
    from skimage.data import astronaut

    rng = np.random.default_rng(SEED + 200)
    return [astronaut(), rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8),
            rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)]


def imagenet_normalised(images: np.ndarray) -> np.ndarray:
    """The original's `resnet_input`: [B, 3, H, W] in [0, 1] -> ImageNet-normalised."""
    return ((images - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)
