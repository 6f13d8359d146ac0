"""The CUDA path: its defaults, every speed flag training correctly, no host sync inside a step, exact resume.

Skipped where PyTorch sees no CUDA device (CI has none); run on a GPU machine with
``pytest tests/test_cuda.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganforge import TrainConfig, hookimpl, load_catalog, load_run, resume, train
from ganforge.plugins import make_plugin_manager
from ganforge.runs import RunDir
from ganforge.testing import assert_states_equal
from ganforge.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SETTINGS = {  # what the user passes: --precision, --compile / --no-compile, --set cuda_graphs=true
    "fp32": {"precision": "fp32", "compile": False},
    "bf16": {"precision": "bf16", "compile": False},
    "bf16+compile": {"precision": "bf16", "compile": True},
    "bf16+compile+graphs": {"precision": "bf16", "compile": True, "cuda_graphs": True},
}


def test_cuda_runs_default_to_bf16_autocast_compile_and_fused_adam(tmp_path: Path) -> None:
    for variant, channels_last in (("mlp", False), ("dcgan", True)):
        trainer = Trainer(TrainConfig(variant=variant, steps=1, device="cuda", out=tmp_path / variant))
        resolved = trainer.describe()["resolved"]
        assert resolved["device"].startswith("cuda") and resolved["compile"] is True
        assert resolved["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
        assert resolved["channels_last"] is channels_last
        assert trainer.opt_g.defaults["fused"] and trainer.opt_d.defaults["fused"]
        assert trainer.images.is_cuda  # the whole data set lives on the device


class SyncWatch:
    """A plugin that turns any host sync into an error between two steps, and keeps G's first weights."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.initial: list[torch.Tensor] = []

    @hookimpl
    def ganforge_train_start(self, trainer) -> None:
        self.initial = [p.detach().clone() for p in trainer.generator.parameters()]

    @hookimpl
    def ganforge_step_end(self, trainer, step, metrics) -> None:
        if step == self.first:
            torch.cuda.set_sync_debug_mode("error")
        elif step == self.last:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize(("variant", "setting"), [
    *(("mlp", s) for s in SETTINGS),
    ("dcgan", "bf16"), ("dcgan", "bf16+compile+graphs"),
    ("cgan", "bf16"), ("cgan", "bf16+compile+graphs"),
])
def test_every_setting_trains_without_a_host_sync_per_step(tmp_path: Path, variant: str, setting: str) -> None:
    # Steps 6 to 29 run under sync-debug "error": a .item(), a device-to-host copy or a
    # synchronising kernel anywhere in the loop's per-step path raises. The first steps may sync
    # (compilation, CUDA-graph capture), and so may the log at the end.
    watch = SyncWatch(first=5, last=29)
    pm = make_plugin_manager()
    pm.register(watch, name="syncwatch")
    config = TrainConfig(variant=variant, steps=30, batch_size=32, device="cuda", log_every=1000, sample_every=1000,
                         checkpoint_every=1000, out=tmp_path / "run", **SETTINGS[setting])
    try:
        result = train(config, load_catalog(pm))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.status == "completed" and result.step == 30
    assert all(torch.isfinite(torch.tensor(v)) for k, v in result.metrics.items() if k != "step")
    loaded = load_run(result.run_dir, device="cuda")
    moved = [not torch.equal(a, b) for a, b in zip(watch.initial, loaded.generator.parameters(), strict=True)]
    assert all(moved), "every generator weight should have been trained"
    images, labels = loaded.sample(64)
    assert images.is_cuda and torch.isfinite(images).all() and images.abs().max() <= 1
    assert (labels is not None) == (variant == "cgan")
    assert RunDir(result.run_dir).read_config()["resolved"]["precision"] == SETTINGS[setting]["precision"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resuming_on_cuda_continues_exactly(tmp_path: Path, precision: str) -> None:
    settings = {"variant": "mlp", "batch_size": 32, "device": "cuda", "precision": precision, "compile": False,
                "ema": 0.9, "ema_start": 10, "log_every": 5, "checkpoint_every": 10}
    straight = train(TrainConfig(steps=30, out=tmp_path / "a", **settings))
    half = train(TrainConfig(steps=15, out=tmp_path / "b", **settings))
    resumed = resume(half.run_dir, steps=30)
    a = RunDir(straight.run_dir).load_checkpoint("last")
    b = RunDir(resumed.run_dir).load_checkpoint("last")
    for key in ("generator", "discriminator", "opt_g", "opt_d", "ema", "rng"):
        assert_states_equal(a[key], b[key], key)
