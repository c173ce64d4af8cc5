"""Self-describing checkpoints: written atomically, read with weights_only=True only.

A run keeps `run_dir/checkpoints/step_0000100.pt` files (the newest K) and a `latest` text file
naming the newest one. A checkpoint is a dict of tensors and plain data:

    format, step, models {name: state_dict without DDP/compile prefixes}, model_args {name: kwargs},
    optimizers, schedulers, rng [one state per rank], task_state, world_size, config, provenance
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from talkface.atomic import atomic_path
from talkface.errors import MissingWeightsError, TalkfaceError

FORMAT = "talkface-checkpoint-v1"
LATEST = "latest"
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile

log = logging.getLogger(__name__)


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step_{step:07d}.pt"


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP / torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


def strip_wrapper_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    """State-dict keys without `module.` / `_orig_mod.` prefixes (from checkpoints saved elsewhere)."""
    stripped = {}
    for key, value in state.items():
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        stripped[key] = value
    return stripped


def write_checkpoint(run_dir: str | Path, step: int, payload: dict[str, Any], keep: int) -> Path:
    """Write step `step` atomically, point `latest` at it, and delete all but the newest `keep`."""
    _check_plain(payload, "checkpoint")
    path = checkpoint_path(run_dir, step)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "step": step, **payload}, tmp)
    with atomic_path(checkpoint_dir(run_dir) / LATEST) as tmp:
        tmp.write_text(path.name + "\n")
    for old in sorted(checkpoint_dir(run_dir).glob("step_*.pt"))[:-keep]:
        old.unlink()
    return path


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint `latest` names, or None for a run without checkpoints."""
    pointer = checkpoint_dir(run_dir) / LATEST
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if not path.is_file():
        raise TalkfaceError(f"names {path.name}, which does not exist", pointer)
    return path


def checkpoint_or_latest(source: str | Path, how_to_make: str) -> Path:
    """A checkpoint file as given, or the latest checkpoint of a run folder (an error naming `how_to_make` if none)."""
    source = Path(source)
    if not source.is_dir():
        return source
    latest = latest_checkpoint(source)
    if latest is None:
        raise TalkfaceError(f"run folder has no checkpoints; {how_to_make} first", source)
    return latest


def load_weight_file(path: str | Path, what: str, where_to_get: str) -> dict[str, Any]:
    """torch.load(weights_only=True) of a dict, with one-line errors naming the file.

    `what` names the weights ("R-Net", "ArcFace", ...) and `where_to_get` tells a user who lacks
    the file how to obtain it.
    """
    path = Path(path)
    if path.is_dir():
        raise TalkfaceError(f"is a directory, not a {what} checkpoint file", path)
    if not path.is_file():
        raise MissingWeightsError(path, what, where_to_get)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    # What torch.load raises on bytes that are not a checkpoint depends on the bytes: KeyError and
    # IndexError come from short text files (a run's `latest` pointer among them).
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, IndexError) as error:
        raise TalkfaceError(f"not a {what} checkpoint, or a corrupt one ({_reason(error)})", path) from None
    if not isinstance(loaded, dict):
        raise TalkfaceError(f"not a {what} checkpoint (a {type(loaded).__name__}, expected a dict)", path)
    return loaded


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a talkface checkpoint with weights_only=True; a one-line error for anything else."""
    checkpoint = load_weight_file(path, "talkface", "give the path of a run's checkpoints/step_*.pt")
    if checkpoint.get("format") != FORMAT:
        raise TalkfaceError(f"not a talkface checkpoint (expected format {FORMAT!r})", path)
    return checkpoint


def _reason(error: Exception) -> str:
    """What torch.load found wrong, without its advice to load with weights_only=False (which
    would run whatever code the file holds: never the right advice for a file that is not ours)."""
    text = " ".join(str(error).split())
    unpickler = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\s*Check the documentation|$)", text)
    if unpickler:
        return unpickler.group(1).strip() or type(error).__name__
    first = re.split(r"(?<=\.)\s", text, maxsplit=1)[0]  # the first sentence
    return first.rstrip(".") if first and "weights_only" not in first else type(error).__name__


@dataclass(frozen=True)
class WeightsReport:
    """What `load_weights` could not match."""

    missing: list[str]  # in the model, not in the checkpoint: left as initialised
    unexpected: list[str]  # in the checkpoint, not in the model: ignored
    mismatched: list[str]  # in both with different shapes: left as initialised


def load_weights(path: str | Path, model: nn.Module, name: str | None = None,
                 strict: bool = False, optional: Sequence[str] = ()) -> WeightsReport:
    """Load only the weights of model `name` (default: the checkpoint's only model) into `model`.

    For fine-tuning from another run: optimiser, step and RNG are ignored. Keys that do not
    match are logged and returned; with `strict=True` any of them is an error. `optional` keys
    (buffers that older checkpoints lack) are returned as missing but not logged.
    """
    checkpoint = read_checkpoint(path)
    models = checkpoint["models"]
    if name is None:
        if len(models) != 1:
            raise TalkfaceError(f"holds models {sorted(models)}; say which one to load", path)
        (name,) = models
    if name not in models:
        raise TalkfaceError(f"has no model {name!r} (it holds {sorted(models)})", path)
    source = strip_wrapper_prefixes(models[name])
    target = unwrap(model).state_dict()
    mismatched = sorted(k for k in source.keys() & target.keys() if source[k].shape != target[k].shape)
    report = WeightsReport(
        missing=sorted(target.keys() - source.keys()),
        unexpected=sorted(source.keys() - target.keys()),
        mismatched=mismatched,
    )
    problems = {k: v for k, v in vars(report).items() if v}
    if strict and problems:
        detail = "; ".join(f"{kind}: {_some(keys)}" for kind, keys in problems.items())
        raise TalkfaceError(f"model {name!r} does not match ({detail})", path)
    unwrap(model).load_state_dict({k: v for k, v in source.items() if k not in mismatched}, strict=False)
    for kind, keys in problems.items():
        keys = [key for key in keys if kind != "missing" or key not in optional]
        if keys:
            log.warning("%s: model %r: %d %s keys: %s", path, name, len(keys), kind, ", ".join(keys))
    return report


def check_resumable(checkpoint: Mapping[str, Any], path: Path, models: Mapping[str, nn.Module],
                    model_args: Mapping[str, Any], optimizers: Mapping[str, Any]) -> None:
    """Refuse to resume into models or optimisers that differ from the checkpoint's; name the difference."""

    def refuse(problem: str) -> None:
        raise TalkfaceError(f"cannot resume from this checkpoint: {problem}", path)

    if sorted(checkpoint["models"]) != sorted(models):
        refuse(f"it holds models {sorted(checkpoint['models'])}, the task has {sorted(models)}")
    if sorted(checkpoint["optimizers"]) != sorted(optimizers):
        refuse(f"it holds optimisers {sorted(checkpoint['optimizers'])}, the task has {sorted(optimizers)}")
    for name, model in models.items():
        saved_args, args = checkpoint["model_args"].get(name), model_args.get(name)
        if saved_args is not None and args is not None and saved_args != args:
            changed = sorted(k for k in saved_args.keys() | args.keys() if saved_args.get(k) != args.get(k))
            refuse(f"model {name!r} was built with " + ", ".join(
                f"{k}={saved_args.get(k)!r} (now {args.get(k)!r})" for k in changed))
        saved, current = checkpoint["models"][name], unwrap(model).state_dict()
        if saved.keys() != current.keys():
            extra, lacking = sorted(saved.keys() - current.keys()), sorted(current.keys() - saved.keys())
            refuse(f"model {name!r} parameters differ (only in the checkpoint: {_some(extra)}; "
                   f"only in the model: {_some(lacking)})")
        for key, tensor in saved.items():
            if tensor.shape != current[key].shape:
                refuse(f"model {name!r} {key} has shape {list(tensor.shape)} in the checkpoint, "
                       f"{list(current[key].shape)} in the model")


# exact types: a str subclass such as torch.__version__ (TorchVersion) is a pickled class
def _some(keys: list[str], shown: int = 5) -> str:
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "") or "none"


_PLAIN = (type(None), bool, int, float, str, torch.dtype, torch.device)


def _check_plain(value: Any, where: str) -> None:
    """Fail at save time, not at resume, on anything weights_only=True loading would reject."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: key {key!r} is not a str or int")
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, (torch.Tensor, torch.Size)):
        return
    elif type(value) in (list, tuple):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
    elif type(value) not in _PLAIN:
        raise TypeError(f"{where} is a {type(value).__name__}, which a weights_only checkpoint cannot hold")


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str, path: str | Path) -> None:
    """load_state_dict(strict=True), with missing / unexpected / mis-shaped keys in one line."""
    expected = module.state_dict()
    problems = {
        "missing": sorted(expected.keys() - state.keys()),
        "unexpected": sorted(state.keys() - expected.keys()),
        "wrong shape": sorted(k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape),
    }
    if any(problems.values()):
        detail = "; ".join(f"{kind}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for kind, keys in problems.items() if keys)
        raise TalkfaceError(f"weights do not match the {what} ({detail})", path)
    module.load_state_dict(state, strict=True)
