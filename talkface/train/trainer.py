"""The one training loop every stage reuses (docs/architecture.md, "Layers").

    trainer = Trainer(task, dataset, config.train, run_dir, full_config=config)
    final_checkpoint = trainer.fit(resume=True)

Run as one process, or under `torchrun --nproc_per_node=N` for DistributedDataParallel. Step `s`
(1-based) trains on batch `s - 1` of the deterministic order in `talkface.train.data`; a
checkpoint written after step `s` holds everything needed to continue exactly from there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm import tqdm

from talkface.atomic import atomic_path
from talkface.config import config_to_dict, save_config
from talkface.errors import TalkfaceError
from talkface.provenance import provenance
from talkface.train.checkpoint import (
    check_resumable, checkpoint_path, latest_checkpoint, read_checkpoint, unwrap, write_checkpoint,
)
from talkface.train.config import TrainConfig
from talkface.train.data import EpochBatchSampler, SeededItems, fixed_keys, to_device
from talkface.train.distributed import all_reduce_, barrier, gather_objects, setup_distributed, wrap_trainable
from talkface.train.rng import preserved_rng, rng_state, seed_everything, set_rng_state
from talkface.train.runlog import RunLog
from talkface.train.task import StepContext, Task

log = logging.getLogger(__name__)


class Trainer:
    """Runs `task` on `dataset` for `config.steps` steps, logging and checkpointing into `run_dir`."""

    def __init__(self, task: Task, dataset: Dataset, config: TrainConfig, run_dir: str | Path,
                 full_config: Any = None, collate_fn: Callable[[list[Any]], Any] | None = None):
        if full_config is not None and not dataclasses.is_dataclass(full_config):
            raise TypeError(f"full_config must be a config dataclass, got {type(full_config).__name__}")
        self.task = task
        self.dataset = dataset
        self.config = config
        self.run_dir = Path(run_dir)
        self.full_config = config if full_config is None else full_config
        self.collate_fn = collate_fn or default_collate

    # ----------------------------------------------------------------------------------------
    # the loop

    def fit(self, resume: bool = False) -> Path:
        """Train to `config.steps` (from the latest checkpoint if `resume`); return the last checkpoint."""
        self.env = env = setup_distributed(self.config.device)
        start = self._setup_task(resume)
        if start >= self.config.steps:
            log.info("%s is already at step %d of %d", self.last_checkpoint, start, self.config.steps)
            return self.last_checkpoint  # type: ignore[return-value]
        self.wrapped = {name: wrap_trainable(model, env) for name, model in self.models.items()}
        self.sampler = EpochBatchSampler(len(self.dataset), self.config.batch_size,  # type: ignore[arg-type]
                                         self.config.seed, env.rank, env.world_size)
        loader = self._loader()
        self.runlog: RunLog | None = self._open_run_dir(start) if env.is_main else None
        self.fixed_batch: Any = None
        self.sums: dict[str, torch.Tensor] = {}
        self.interval = (start, time.perf_counter())
        bar = tqdm(total=self.config.steps, initial=start, disable=not env.is_main, unit="step",
                   desc=self.run_dir.name, dynamic_ncols=True)
        try:
            self._loop(loader, start, bar)
        finally:
            bar.close()
            if self.runlog is not None:
                self.runlog.close()
        barrier(env)  # the final checkpoint exists for every rank once fit returns
        return checkpoint_path(self.run_dir, self.config.steps)

    def _setup_task(self, resume: bool) -> int:
        """Move the task to the device, restore or seed it; return the step training starts from."""
        self.last_checkpoint = latest_checkpoint(self.run_dir)
        if self.last_checkpoint is not None and not resume:
            raise TalkfaceError(f"already holds checkpoints (latest {self.last_checkpoint.name}); "
                                "resume it or choose a new run directory", self.run_dir)
        self.task.to(self.env.device)
        self.models = self.task.models()
        self.optimizers = self.task.optimizers()
        self.schedulers = self.task.schedulers()
        self._check_names()
        self.params = {
            name: [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
            for name, opt in self.optimizers.items()
        }
        return self._restore() if self.last_checkpoint is not None else self._seed_fresh()

    def _loop(self, loader: DataLoader, start: int, bar: tqdm) -> None:
        step = start
        while step < self.config.steps:
            epoch, first_batch = divmod(step, self.sampler.batches_per_epoch)
            self.sampler.set_position(epoch, first_batch)
            for batch in loader:
                values = self._train_step(to_device(batch, self.env.device), step, epoch)
                step += 1
                bar.update(1)
                self._after_step(step, values, bar)
                if step >= self.config.steps:
                    break

    def _train_step(self, batch: Any, step: int, epoch: int) -> dict[str, torch.Tensor]:
        self.step_values: dict[str, torch.Tensor] = {}
        self.optimized_losses: dict[str, torch.Tensor] = {}
        ctx = StepContext(step=step, epoch=epoch, models=self.wrapped, optimize=self.optimize,
                          device=self.env.device, rank=self.env.rank, world_size=self.env.world_size)
        with self._autocast():
            returned = self.task.train_step(batch, ctx)
        values = {key: self._scalar(key, value) for key, value in returned.items()}
        values.update(self.step_values)  # gradient norms
        self._stop_if_not_finite(step + 1, {**values, **self.optimized_losses})
        return values

    def optimize(self, loss: torch.Tensor, name: str) -> None:
        """Backward into optimiser `name`'s parameters, clip, step it and its scheduler (see StepContext)."""
        if name not in self.optimizers:
            raise ValueError(f"optimize: unknown optimiser {name!r} (the task has {sorted(self.optimizers)})")
        optimizer, params = self.optimizers[name], self.params[name]
        optimizer.zero_grad(set_to_none=True)
        with self._autocast(enabled=False):
            # inputs=: a G loss that passes through D fills no gradients of D
            loss.backward(inputs=params)
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads)
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grads_with_norm_(params, self.config.grad_clip, norm)
        optimizer.step()
        if name in self.schedulers:
            self.schedulers[name].step()
        optimizer.zero_grad(set_to_none=True)
        self.step_values[f"grad_norm/{name}"] = norm.detach().to(self.env.device, torch.float32)
        self.optimized_losses[f"the loss given to optimize({name!r})"] = loss.detach().float()

    def _after_step(self, step: int, values: dict[str, torch.Tensor], bar: tqdm) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0) + value
        config = self.config
        if step % config.log_every == 0 or step == config.steps:
            self._log_scalars(step, bar)
        if self.env.is_main and config.image_every is not None and step % config.image_every == 0:
            self._log_images(step)
        if self.env.is_main and config.eval_every is not None and step % config.eval_every == 0:
            self._log_evaluation(step)
        if step % config.checkpoint_every == 0 or step == config.steps:
            self._save(step)

    # ----------------------------------------------------------------------------------------
    # checks

    def _scalar(self, key: str, value: torch.Tensor | float) -> torch.Tensor:
        tensor = torch.as_tensor(value).detach()
        if tensor.numel() != 1:
            raise ValueError(f"train_step returned {key!r} of shape {list(tensor.shape)}; "
                             "only scalars can be logged")
        return tensor.reshape(()).to(self.env.device, torch.float32)

    def _stop_if_not_finite(self, step: int, values: dict[str, torch.Tensor]) -> None:
        # One sync per step; the all-reduce makes every rank stop together.
        if not values:
            return
        stacked = torch.stack(list(values.values()))
        bad = all_reduce_((~torch.isfinite(stacked)).float(), self.env, "max")
        if not bad.any().item():
            return
        index = int(bad.nonzero()[0, 0])
        name, value = list(values)[index], stacked[index].item()
        shown = repr(value) if not torch.isfinite(stacked[index]) else "non-finite on another process"
        raise TalkfaceError(
            f"step {step}: {name} is {shown}; training stopped without saving this step "
            f"(last checkpoint: {self.last_checkpoint or 'none'})"
        )

    def _check_names(self) -> None:
        for name in self.schedulers:
            if name not in self.optimizers:
                raise ValueError(f"scheduler {name!r} has no optimiser of that name "
                                 f"(optimisers: {sorted(self.optimizers)})")
        if not self.optimizers:
            raise ValueError("the task has no optimisers")

    # ----------------------------------------------------------------------------------------
    # logging (rank 0 writes)

    def _open_run_dir(self, start: int) -> RunLog:
        save_config(self.full_config, self.run_dir / "config.yaml")
        with atomic_path(self.run_dir / "provenance.json") as tmp:
            tmp.write_text(json.dumps(provenance(), indent=2) + "\n")
        return RunLog(self.run_dir, start)

    def _log_scalars(self, step: int, bar: tqdm) -> None:
        keys = sorted(self.sums)
        count = step - self.interval[0]
        seconds = time.perf_counter() - self.interval[1]
        sums = torch.stack([self.sums[k] for k in keys]) if keys else torch.zeros(0, device=self.env.device)
        means = (all_reduce_(sums, self.env) / (count * self.env.world_size)).tolist()
        self.sums, self.interval = {}, (step, time.perf_counter())
        if self.runlog is None:
            return
        losses = dict(zip(keys, means))
        scalars = {k if "/" in k else f"train/{k}": v for k, v in losses.items()}
        scalars.update({f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()})
        scalars["epoch"] = step / self.sampler.batches_per_epoch
        scalars["time/steps_per_s"] = count / max(seconds, 1e-9)
        self.runlog.scalars(step, scalars)
        bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items() if "/" not in k})

    def _log_images(self, step: int) -> None:
        if self.fixed_batch is None:
            items = SeededItems(self.dataset)
            batch = self.collate_fn(items.__getitems__(fixed_keys(self.config.batch_size, len(items))))
            self.fixed_batch = to_device(batch, self.env.device)
        with self._evaluating():
            images = self.task.images(self.fixed_batch)
        if self.runlog is not None:
            self.runlog.images(step, images)

    def _log_evaluation(self, step: int) -> None:
        with self._evaluating():
            results = self.task.evaluate()
        if results and self.runlog is not None:
            self.runlog.scalars(step, {f"eval/{k}": float(v) for k, v in results.items()})

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """Eval mode, no grad, and generators untouched, so logging never changes the training run."""
        modes = {module: module.training for model in self.models.values() for module in model.modules()}
        for model in self.models.values():
            model.eval()
        try:
            with torch.no_grad(), preserved_rng(self.env.device), self._autocast():
                yield
        finally:
            for module, training in modes.items():
                module.training = training

    # ----------------------------------------------------------------------------------------
    # checkpoints

    def _save(self, step: int) -> None:
        rng = gather_objects(rng_state(self.env.device), self.env)  # every rank's, for an exact resume
        if self.env.is_main:
            payload = {
                "models": {name: unwrap(model).state_dict() for name, model in self.models.items()},
                "model_args": self.task.model_args(),
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "schedulers": {name: sched.state_dict() for name, sched in self.schedulers.items()},
                "rng": rng,
                "task_state": self.task.state_dict(),
                "world_size": self.env.world_size,
                "config": config_to_dict(self.full_config),
                # through JSON: provenance holds str subclasses (torch.__version__) weights_only rejects
                "provenance": provenance(run_dir=str(self.run_dir)),
            }
            write_checkpoint(self.run_dir, step, payload, self.config.keep_checkpoints)
        self.last_checkpoint = checkpoint_path(self.run_dir, step)

    def _restore(self) -> int:
        path = self.last_checkpoint
        assert path is not None
        checkpoint = read_checkpoint(path)
        check_resumable(checkpoint, path, self.models, self.task.model_args(), self.optimizers)
        for name, model in self.models.items():
            unwrap(model).load_state_dict(checkpoint["models"][name])
        try:
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(checkpoint["optimizers"][name])
            for name, scheduler in self.schedulers.items():
                scheduler.load_state_dict(checkpoint["schedulers"][name])
        except (KeyError, ValueError) as error:
            raise TalkfaceError(f"cannot resume: optimiser/scheduler state does not fit ({error})",
                                path) from None
        self.task.load_state_dict(checkpoint["task_state"])
        self._restore_rng(checkpoint)
        self._log_config_changes(checkpoint["config"])
        if self.env.is_main:
            log.info("resuming %s at step %d", path, checkpoint["step"])
        return int(checkpoint["step"])

    def _restore_rng(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint["rng"]
        if len(states) == self.env.world_size:
            set_rng_state(states[self.env.rank], self.env.device)
            return
        log.warning("%s was written by %d processes, this run has %d: data order and random draws "
                    "will differ from an uninterrupted run",
                    self.last_checkpoint, len(states), self.env.world_size)
        seed_everything(self.config.seed + self.env.rank + checkpoint["step"])

    def _seed_fresh(self) -> int:
        # Different dropout masks per rank; the DDP broadcast makes initial weights equal anyway.
        seed_everything(self.config.seed + self.env.rank)
        return 0

    def _log_config_changes(self, saved: dict[str, Any]) -> None:
        current = _flatten(config_to_dict(self.full_config))
        before = _flatten(saved)
        changed = sorted(k for k in before.keys() | current.keys() if before.get(k) != current.get(k))
        if changed and self.env.is_main:
            log.warning("resuming with a changed config: %s",
                        ", ".join(f"{k}: {before.get(k)!r} -> {current.get(k)!r}" for k in changed))

    # ----------------------------------------------------------------------------------------
    # plumbing

    def _loader(self) -> DataLoader:
        workers = self.config.num_workers
        return DataLoader(
            SeededItems(self.dataset), batch_sampler=self.sampler, num_workers=workers,
            collate_fn=self.collate_fn, pin_memory=self.env.device.type == "cuda",
            persistent_workers=workers > 0,
            # its own generator: creating an iterator must not draw from the training RNG
            generator=torch.Generator().manual_seed(self.config.seed),
        )

    def _autocast(self, enabled: bool = True) -> contextlib.AbstractContextManager:
        if self.env.device.type == "cuda" and self.config.amp == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled)
        return contextlib.nullcontext()


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
