"""The shared training loop: exact resume, DDP, checkpoints, NaN stops, run-directory outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import Dataset

from talkface.config import load_config
from talkface.errors import ConfigError, MissingWeightsError, TalkfaceError
from talkface.train.checkpoint import WeightsReport, latest_checkpoint, load_weights
from talkface.train.config import TrainConfig
from talkface.train.task import StepContext, Task
from talkface.train.trainer import Trainer
from talkface.train.data import EpochBatchSampler
from talkface.train.distributed import resolve_device

IN_DIM, OUT_DIM = 4, 2


class Regression(Dataset):
    """y = tanh(x W); each read adds fresh input noise from the global RNG (an 'augmentation')."""

    def __init__(self, size: int = 40):
        generator = torch.Generator().manual_seed(123)
        self.x = torch.randn(size, IN_DIM, generator=generator)
        self.y = torch.tanh(self.x @ torch.randn(IN_DIM, OUT_DIM, generator=generator))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index] + 0.05 * torch.randn(IN_DIM), "y": self.y[index]}


class MLP(nn.Module):
    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(IN_DIM, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, OUT_DIM),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 4] -> [B, 2]
        return self.layers(x)


class MLPTask(Task):
    """Regression with dropout, Adam and a step LR schedule; optionally a NaN loss at one step."""

    def __init__(self, hidden: int = 16, dropout: float = 0.3, nan_at_step: int | None = None,
                 with_model_args: bool = True):
        self.args = {"hidden": hidden, "dropout": dropout}
        self.net = MLP(**self.args)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=0.02)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=4, gamma=0.5)
        self.nan_at_step = nan_at_step
        self.with_model_args = with_model_args

    def models(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def model_args(self) -> dict[str, dict]:
        return {"net": self.args} if self.with_model_args else {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"net": self.optimizer}

    def schedulers(self) -> dict:
        return {"net": self.scheduler}

    def train_step(self, batch: dict, ctx: StepContext) -> dict[str, torch.Tensor]:
        loss = nn.functional.mse_loss(ctx.models["net"](batch["x"]), batch["y"])
        if ctx.step + 1 == self.nan_at_step:
            loss = loss * float("nan")
        ctx.optimize(loss, "net")
        return {"mse": loss}

    def images(self, batch: dict) -> dict[str, torch.Tensor]:
        prediction = torch.sigmoid(self.net(batch["x"]))  # [B, 2]
        return {"prediction": prediction[:, :1, None, None].expand(-1, 3, 4, 4)}  # [B, 3, 4, 4]

    def evaluate(self) -> dict[str, float]:
        data = Regression()
        return {"mse": nn.functional.mse_loss(self.net(data.x), data.y).item()}


class GanTask(Task):
    """A conditional GAN in miniature: D phase, G phase, an EMA of G and a non-gradient memory."""

    def __init__(self):
        self.G = nn.Sequential(nn.Linear(IN_DIM, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, OUT_DIM))
        self.D = nn.Sequential(nn.Linear(IN_DIM + OUT_DIM, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=0.01, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=0.01, betas=(0.5, 0.999))
        self.ema = {k: v.clone() for k, v in self.G.state_dict().items()}
        self.memory = torch.zeros(8, OUT_DIM)  # slot i holds the mean fake of the last step i mod 8

    def models(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def train_step(self, batch: dict, ctx: StepContext) -> dict[str, torch.Tensor]:
        x, y = batch["x"], batch["y"]
        bce = nn.functional.binary_cross_entropy_with_logits
        fake = ctx.models["G"](x)
        real_logit = ctx.models["D"](torch.cat([x, y], 1))
        fake_logit = ctx.models["D"](torch.cat([x, fake.detach()], 1))
        d_loss = bce(real_logit, torch.ones_like(real_logit)) + bce(fake_logit, torch.zeros_like(fake_logit))
        ctx.optimize(d_loss, "D")
        g_logit = self.D(torch.cat([x, fake], 1))  # unwrapped D: this loss trains G only
        g_adv = bce(g_logit, torch.ones_like(g_logit))
        g_l1 = (fake - y).abs().mean()
        ctx.optimize(g_adv + 10 * g_l1, "G")
        with torch.no_grad():
            for key, value in self.G.state_dict().items():
                self.ema[key].lerp_(value, 0.1)
            self.memory[ctx.step % len(self.memory)] = fake.mean(0)
        return {"d": d_loss, "g_adv": g_adv, "g_l1": g_l1}

    def state_dict(self) -> dict:
        return {"ema": self.ema, "memory": self.memory}

    def load_state_dict(self, state: dict) -> None:
        self.ema = {k: v.clone() for k, v in state["ema"].items()}
        self.memory = state["memory"].clone()


def train_config(**changes) -> TrainConfig:
    defaults = dict(steps=14, batch_size=8, num_workers=0, seed=7, grad_clip=0.5, log_every=3,
                    checkpoint_every=5, keep_checkpoints=2, amp="none", device="cpu")
    return TrainConfig(**{**defaults, **changes})


def parameters(task: Task) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v for name, model in task.models().items() for k, v in model.state_dict().items()}


def assert_same_parameters(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                           atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


# ------------------------------------------------------------------------------------------------
# exact resume


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_equals_uninterrupted_training(tmp_path: Path, num_workers: int) -> None:
    # 14 steps of 5 batches/epoch: the stop at step 7 is mid-epoch, so resume must skip 2 batches.
    config = train_config(num_workers=num_workers, image_every=2, eval_every=3)
    torch.manual_seed(0)
    whole = MLPTask()
    Trainer(whole, Regression(), config, tmp_path / "whole").fit()

    torch.manual_seed(0)
    Trainer(MLPTask(), Regression(), train_config(num_workers=num_workers, steps=7), tmp_path / "split").fit()
    torch.manual_seed(99)  # a fresh process: different initial weights and RNG, all overwritten by resume
    resumed = MLPTask()
    final = Trainer(resumed, Regression(), config, tmp_path / "split").fit(resume=True)

    assert final.name == "step_0000014.pt"
    assert_same_parameters(parameters(whole), parameters(resumed))
    assert resumed.scheduler.get_last_lr() == whole.scheduler.get_last_lr()
    torch.testing.assert_close(resumed.optimizer.state_dict()["state"], whole.optimizer.state_dict()["state"],
                               atol=1e-6, rtol=0)
    # the resumed run's logs continue the first run's
    stats = [json.loads(line) for line in (tmp_path / "split" / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats if "train/mse" in s] == [3, 6, 7, 9, 12, 14]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resume_on_cuda_with_bf16_autocast(tmp_path: Path) -> None:
    config = train_config(device="cuda", amp="bf16", image_every=2)
    torch.manual_seed(0)
    whole = MLPTask()
    Trainer(whole, Regression(), config, tmp_path / "whole").fit()
    torch.manual_seed(0)
    Trainer(MLPTask(), Regression(), train_config(device="cuda", amp="bf16", steps=7), tmp_path / "split").fit()
    resumed = MLPTask()
    Trainer(resumed, Regression(), config, tmp_path / "split").fit(resume=True)

    assert whole.net.layers[0].weight.device.type == "cuda"
    assert whole.net.layers[0].weight.dtype == torch.float32  # autocast, not a bf16 model
    assert_same_parameters(parameters(whole), parameters(resumed), atol=1e-5)
    assert "cuda" in torch.load(latest_checkpoint(tmp_path / "split"), weights_only=True)["rng"][0]


def test_a_different_seed_gives_a_different_run(tmp_path: Path) -> None:
    """Guard for the test above: a different seed gives a different run, so equality is meaningful."""
    torch.manual_seed(0)
    a = MLPTask()
    Trainer(a, Regression(), train_config(steps=6), tmp_path / "a").fit()
    torch.manual_seed(0)
    b = MLPTask()
    Trainer(b, Regression(), train_config(steps=6, seed=8), tmp_path / "b").fit()
    assert not torch.allclose(a.net.layers[0].weight, b.net.layers[0].weight, atol=1e-4)


def test_gan_with_two_optimisers_trains_and_resumes(tmp_path: Path) -> None:
    config = train_config(steps=10, checkpoint_every=3)
    torch.manual_seed(0)
    whole = GanTask()
    Trainer(whole, Regression(), config, tmp_path / "whole").fit()
    torch.manual_seed(0)
    Trainer(GanTask(), Regression(), train_config(steps=4, checkpoint_every=3), tmp_path / "split").fit()
    resumed = GanTask()
    Trainer(resumed, Regression(), config, tmp_path / "split").fit(resume=True)

    assert_same_parameters(parameters(whole), parameters(resumed))
    assert_same_parameters(whole.ema, resumed.ema)
    torch.testing.assert_close(whole.memory, resumed.memory, atol=1e-6, rtol=0)
    assert whole.memory.abs().sum() > 0
    stats = [json.loads(line) for line in (tmp_path / "whole" / "stats.jsonl").read_text().splitlines()]
    expected = {"train/d", "train/g_adv", "train/g_l1", "grad_norm/G", "grad_norm/D", "lr/G", "lr/D"}
    assert expected <= stats[-1].keys()


# ------------------------------------------------------------------------------------------------
# checkpoints


def test_checkpoint_is_plain_data_with_unprefixed_keys(tmp_path: Path) -> None:
    Trainer(MLPTask(), Regression(), train_config(steps=10), tmp_path).fit()
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["latest", "step_0000005.pt", "step_0000010.pt"]  # keep_checkpoints=2
    assert latest_checkpoint(tmp_path).name == "step_0000010.pt"

    checkpoint = torch.load(latest_checkpoint(tmp_path), weights_only=True)
    assert checkpoint["step"] == 10
    assert set(checkpoint["models"]["net"]) == {"layers.0.weight", "layers.0.bias", "layers.3.weight",
                                                "layers.3.bias"}
    assert checkpoint["model_args"] == {"net": {"hidden": 16, "dropout": 0.3}}
    assert checkpoint["config"]["steps"] == 10
    assert set(checkpoint["rng"][0]) == {"torch", "numpy", "python"}
    assert {"talkface", "torch", "created"} <= checkpoint["provenance"].keys()


def test_load_weights_reports_missing_and_unexpected_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    source = MLPTask()
    Trainer(source, Regression(), train_config(steps=5), tmp_path / "run").fit()
    path = latest_checkpoint(tmp_path / "run")

    class Bigger(MLP):  # the fine-tuned model adds a head
        def __init__(self):
            super().__init__(hidden=16, dropout=0.0)
            self.extra = nn.Linear(OUT_DIM, 1)

    model = Bigger()
    with caplog.at_level("WARNING"):
        report = load_weights(path, model)
    assert report == WeightsReport(missing=["extra.bias", "extra.weight"], unexpected=[], mismatched=[])
    assert "2 missing keys: extra.bias, extra.weight" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # keys older checkpoints may lack: reported, not warned about
        assert load_weights(path, model, optional=["extra.bias"]).missing == ["extra.bias", "extra.weight"]
    assert "1 missing keys: extra.weight" in caplog.text
    torch.testing.assert_close(model.layers[0].weight, source.net.layers[0].weight)

    narrower = MLP(hidden=8, dropout=0.0)
    assert load_weights(path, narrower).mismatched == ["layers.0.bias", "layers.0.weight", "layers.3.weight"]
    with pytest.raises(TalkfaceError, match="does not match"):
        load_weights(path, narrower, strict=True)
    with pytest.raises(TalkfaceError, match="no model 'G'"):
        load_weights(path, model, name="G")


def test_load_weights_rejects_missing_and_foreign_files(tmp_path: Path) -> None:
    model = MLP(hidden=16, dropout=0.0)
    with pytest.raises(MissingWeightsError, match="absent.pt"):
        load_weights(tmp_path / "absent.pt", model)
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(TalkfaceError, match="bare.pt: not a talkface checkpoint"):
        load_weights(tmp_path / "bare.pt", model)
    torch.save({"format": "talkface-checkpoint-v1", "models": {"net": Regression()}}, tmp_path / "pickled.pt")
    with pytest.raises(TalkfaceError, match="pickled.pt: not a talkface checkpoint, or a corrupt one") as error:
        load_weights(tmp_path / "pickled.pt", model)  # weights_only refuses to unpickle the object
    assert "weights_only" not in str(error.value) and "\n" not in str(error.value)  # not torch's advice
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 20)
    with pytest.raises(TalkfaceError, match="random.pt: not a talkface checkpoint, or a corrupt one") as error:
        load_weights(tmp_path / "random.pt", model)
    assert "weights_only" not in str(error.value)
    (tmp_path / "latest").write_text("step_0001020.pt\n")  # a run's pointer to its last checkpoint, given by mistake
    with pytest.raises(TalkfaceError, match="latest: not a talkface checkpoint, or a corrupt one"):
        load_weights(tmp_path / "latest", model)
    with pytest.raises(TalkfaceError, match="is a directory, not a talkface checkpoint file"):
        load_weights(tmp_path, model)


@pytest.mark.parametrize("with_model_args, expected", [
    (True, r"model 'net' was built with hidden=16 \(now 32\)"),
    (False, r"model 'net' layers.0.weight has shape \[16, 4\] in the checkpoint, \[32, 4\] in the model"),
])
def test_resume_refuses_a_different_model(tmp_path: Path, with_model_args: bool, expected: str) -> None:
    Trainer(MLPTask(with_model_args=with_model_args), Regression(), train_config(steps=2), tmp_path).fit()
    task = MLPTask(hidden=32, with_model_args=with_model_args)
    with pytest.raises(TalkfaceError, match=expected) as error:
        Trainer(task, Regression(), train_config(steps=4), tmp_path).fit(resume=True)
    assert "step_0000002.pt: cannot resume" in str(error.value) and "\n" not in str(error.value)


def test_a_fresh_run_refuses_a_used_run_directory(tmp_path: Path) -> None:
    Trainer(MLPTask(), Regression(), train_config(steps=2), tmp_path).fit()
    with pytest.raises(TalkfaceError, match="already holds checkpoints"):
        Trainer(MLPTask(), Regression(), train_config(steps=4), tmp_path).fit()


def test_optimize_names_the_valid_optimisers(tmp_path: Path) -> None:
    class Misnamed(MLPTask):
        def train_step(self, batch: dict, ctx: StepContext) -> dict[str, torch.Tensor]:
            ctx.optimize(self.net(batch["x"]).mean(), "generator")
            return {}

    with pytest.raises(ValueError, match=r"unknown optimiser 'generator' \(the task has \['net'\]\)"):
        Trainer(Misnamed(), Regression(), train_config(steps=2), tmp_path).fit()


def test_nan_loss_stops_without_saving_the_bad_step(tmp_path: Path) -> None:
    task = MLPTask(nan_at_step=9)
    with pytest.raises(TalkfaceError) as error:
        Trainer(task, Regression(), train_config(steps=12, checkpoint_every=4), tmp_path).fit()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("step 9: mse is nan; training stopped without saving this step")
    assert message.endswith("step_0000008.pt)")
    assert latest_checkpoint(tmp_path).name == "step_0000008.pt"
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt")) == ["step_0000004.pt",
                                                                               "step_0000008.pt"]


# ------------------------------------------------------------------------------------------------
# run directory


@dataclass
class StageConfig:
    """How a stage embeds the training section in its own config."""

    hidden: int = 16
    train: TrainConfig = field(default_factory=TrainConfig)


def test_run_directory_has_config_logs_and_events(tmp_path: Path) -> None:
    full = StageConfig(train=train_config(steps=6, image_every=3, eval_every=3))
    Trainer(MLPTask(), Regression(), full.train, tmp_path, full_config=full).fit()

    assert load_config(StageConfig, tmp_path / "config.yaml") == full
    assert json.loads((tmp_path / "provenance.json").read_text())["talkface"]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    stats = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    train_lines = [s for s in stats if "train/mse" in s]
    assert [s["step"] for s in train_lines] == [3, 6]
    assert {"lr/net", "grad_norm/net", "epoch", "time/steps_per_s"} <= train_lines[0].keys()
    assert [s["step"] for s in stats if "eval/mse" in s] == [3, 6]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert "images/prediction" in events.Tags()["images"]
    assert [e.step for e in events.Scalars("train/mse")] == [3, 6]


def test_train_config_is_validated_by_the_config_system(tmp_path: Path) -> None:
    (tmp_path / "stage.yaml").write_text(yaml.safe_dump({"train": {"steps": 0}}))
    with pytest.raises(ConfigError, match="steps must be at least 1"):
        load_config(StageConfig, tmp_path / "stage.yaml")
    overrides = ["train.grad_clip=1.5", "train.amp=none", "train.image_every=null"]
    config = load_config(StageConfig, None, overrides)
    assert config.train.grad_clip == 1.5 and config.train.amp == "none" and config.train.image_every is None


# ------------------------------------------------------------------------------------------------
# data order


def test_data_order_is_a_function_of_seed_and_epoch_and_shards_the_global_batch() -> None:
    def batches(sampler: EpochBatchSampler, epoch: int, start: int = 0) -> list:
        sampler.set_position(epoch, start)
        return list(sampler)

    single = EpochBatchSampler(num_items=30, batch_size=6, seed=3)
    ranks = [EpochBatchSampler(num_items=30, batch_size=3, seed=3, rank=r, world_size=2) for r in range(2)]
    assert single.batches_per_epoch == ranks[0].batches_per_epoch == 5
    for epoch in range(2):
        whole = batches(single, epoch)
        assert [a + b for a, b in zip(batches(ranks[0], epoch), batches(ranks[1], epoch))] == whole
        assert batches(single, epoch, start=3) == whole[3:]
        assert batches(EpochBatchSampler(30, 6, seed=3), epoch) == whole  # a new process agrees
    assert batches(single, 0) != batches(single, 1)
    assert sorted(i for batch in batches(single, 0) for i, _ in batch) == list(range(30))
    with pytest.raises(TalkfaceError, match="fewer than one global batch"):
        EpochBatchSampler(num_items=5, batch_size=3, seed=0, world_size=2)


# ------------------------------------------------------------------------------------------------
# two processes


DDP_SCRIPT = """
import os, sys
from pathlib import Path
import torch
sys.path.insert(0, {tests!r})
import talkface.train.trainer as trainer_module
from talkface.train.trainer import Trainer
from test_train import GanTask, MLPTask, Regression, train_config

writes = []
write = trainer_module.write_checkpoint
def recording_write(run_dir, step, payload, keep):
    writes.append(step)
    return write(run_dir, step, payload, keep)
trainer_module.write_checkpoint = recording_write

out = Path(sys.argv[1])
torch.manual_seed(0)
mlp = MLPTask(dropout=0.0)
Trainer(mlp, Regression(), train_config(steps=6, batch_size=4, checkpoint_every=3), out / "mlp").fit()
torch.manual_seed(0)
whole = GanTask()
Trainer(whole, Regression(), train_config(steps=6, batch_size=4), out / "gan_whole").fit()
torch.manual_seed(0)
Trainer(GanTask(), Regression(), train_config(steps=4, batch_size=4), out / "gan").fit()
resumed = GanTask()
Trainer(resumed, Regression(), train_config(steps=6, batch_size=4), out / "gan").fit(resume=True)
rank = int(os.environ["RANK"])
torch.save({{"mlp": mlp.net.state_dict(), "G": whole.G.state_dict(), "D": whole.D.state_dict(),
            "resumed_G": resumed.G.state_dict(), "resumed_D": resumed.D.state_dict(),
            "writes": writes}}, out / f"rank{{rank}}.pt")
"""


def test_two_process_gloo_run(tmp_path: Path) -> None:
    script = tmp_path / "ddp_script.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    # only rank 0 writes: mlp steps 3, 6; gan_whole 5, 6; gan 4, then resumed 5, 6
    assert ranks[0]["writes"] == [3, 6, 5, 6, 4, 5, 6] and ranks[1]["writes"] == []
    for key in ("mlp", "G", "D", "resumed_G", "resumed_D"):
        assert_same_parameters(ranks[0][key], ranks[1][key], atol=0)
    # resuming under DDP restores each rank's own RNG (the GAN's dropout masks differ per rank)
    for name in ("G", "D"):
        assert_same_parameters(ranks[0][name], ranks[0][f"resumed_{name}"])

    checkpoint = torch.load(latest_checkpoint(tmp_path / "mlp"), weights_only=True)
    assert not any(k.startswith("module.") for k in checkpoint["models"]["net"])
    assert checkpoint["world_size"] == 2 and len(checkpoint["rng"]) == 2
    stats = (tmp_path / "mlp" / "stats.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in stats] == [3, 6]  # one writer

    # 2 processes x batch 4 (gradients averaged) == 1 process x batch 8, item for item
    torch.manual_seed(0)
    single = MLPTask(dropout=0.0)
    config = train_config(steps=6, batch_size=8, checkpoint_every=3)
    Trainer(single, Regression(), config, tmp_path / "single").fit()
    assert_same_parameters(ranks[0]["mlp"], dict(single.net.state_dict()), atol=1e-5)


def test_device_names_resolve_and_a_resolved_device_resolves_to_itself(monkeypatch):
    """'cuda:N' and torch.devices are accepted: inference hands the device it resolved on to the GAN loader."""
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "auto:0", "cpu:1"):
        with pytest.raises(TalkfaceError, match="valid: auto, cpu, cuda, cuda:N"):
            resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(TalkfaceError, match="'cuda:0' was requested but no CUDA device"):
        resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # two GPUs, as far as resolve_device can tell
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == resolve_device(str(resolve_device("auto"))) == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=1) == resolve_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    with pytest.raises(TalkfaceError, match="only 2 GPU"):
        resolve_device("cuda:2")
    with pytest.raises(TalkfaceError, match="local rank 2 has no GPU"):
        resolve_device("auto", local_rank=2)
