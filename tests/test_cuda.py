"""The CUDA path: its defaults, every speed flag training correctly, no host sync inside a step, a captured
step computing what the eager one does, exact resume.

Skipped where PyTorch sees no CUDA device (CI has none); run on a GPU machine with
``pytest tests/test_cuda.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganforge import TrainConfig, hookimpl, load_catalog, load_run, resume, train
from ganforge.plugins import make_plugin_manager
from ganforge.runs import RunDir
from ganforge.testing import assert_states_equal
from ganforge.training import Trainer

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SETTINGS = {  # what the user passes: --precision, --compile, --set cuda_graphs=true, --set capture_step=...
    "fp32": {"precision": "fp32", "capture_step": False},
    "bf16": {"precision": "bf16", "capture_step": False},
    "fp32+capture": {"precision": "fp32", "capture_step": True},
    "bf16+capture": {"precision": "bf16", "capture_step": True},
    "bf16+compile": {"precision": "bf16", "compile": True},
    "bf16+compile+graphs": {"precision": "bf16", "compile": True, "cuda_graphs": True},
    "fp16": {"precision": "fp16"},  # loss scaling, for GPUs without bf16; never captured
}
WGAN_GP = {"loss": "wasserstein", "gradient_penalty": 10.0, "n_critic": 2}


def test_a_cuda_run_keeps_its_data_on_the_device_and_captures_its_step(tmp_path: Path) -> None:
    for variant, channels_last in (("mlp", False), ("dcgan", True)):
        trainer = Trainer(TrainConfig(variant=variant, steps=1, device="cuda", out=tmp_path / variant))
        resolved = trainer.describe()["resolved"]
        assert resolved["device"].startswith("cuda") and resolved["capture_step"] is True
        assert resolved["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
        assert resolved["channels_last"] is channels_last
        for opt in (trainer.context.opt_g, trainer.context.opt_d):
            assert opt.defaults["fused"] and opt.defaults["capturable"]
        assert trainer.batches.images.is_cuda  # the whole data set lives on the device


class SyncWatch:
    """A plugin that turns any host sync into an error between two steps, and keeps G's first weights."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.initial: list[torch.Tensor] = []

    @hookimpl
    def ganforge_train_start(self, context) -> None:
        self.initial = [p.detach().clone() for p in context.generator.parameters()]

    @hookimpl
    def ganforge_step_end(self, context, step, metrics) -> None:
        if step == self.first:
            torch.cuda.set_sync_debug_mode("error")
        elif step == self.last:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize(("variant", "setting", "extra"), [
    *(("mlp", s, {}) for s in SETTINGS),
    ("mlp", "fp32+capture", WGAN_GP), ("mlp", "bf16+capture", WGAN_GP), ("mlp", "fp16", WGAN_GP),
    ("dcgan", "bf16", {}), ("dcgan", "fp16", {}), ("dcgan", "bf16+capture", {}), ("dcgan", "bf16+compile+graphs", {}),
    ("cgan", "bf16", {}), ("cgan", "bf16+capture", {}), ("cgan", "bf16+compile+graphs", {}),
    ("cdcgan", "bf16+capture", {}),
])
def test_every_setting_trains_without_a_host_sync_per_step(tmp_path: Path, variant: str, setting: str, extra: dict) -> None:
    # Steps 6 to 29 run under sync-debug "error": a .item(), a device-to-host copy or a
    # synchronising kernel anywhere in the loop's per-step path raises. The first steps may sync
    # (compilation, CUDA-graph capture), and so may the log at the end.
    watch = SyncWatch(first=5, last=29)
    pm = make_plugin_manager()
    pm.register(watch, name="syncwatch")
    config = TrainConfig(variant=variant, steps=30, batch_size=32, device="cuda", log_every=1000, sample_every=1000,
                         checkpoint_every=1000, out=tmp_path / "run", **SETTINGS[setting], **extra)
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
    assert (labels is not None) == (variant in ("cgan", "cdcgan"))
    assert RunDir(result.run_dir).read_config()["resolved"]["precision"] == SETTINGS[setting]["precision"]


@pytest.mark.parametrize("variant", ["mlp", "dcgan", "cgan"])
def test_a_captured_step_trains_like_the_eager_one(tmp_path: Path, variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same kernels in the same order with the same random numbers: the graph changes when they
    # launch, not what they compute. cuDNN's default convolution algorithms need not be
    # deterministic, which would make two eager runs differ too.
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    runs = {}
    for capture in (False, True):
        runs[capture] = train(TrainConfig(variant=variant, steps=12, batch_size=32, device="cuda", precision="fp32",
                                          capture_step=capture, out=tmp_path / str(capture)))
    eager, captured = (RunDir(runs[c].run_dir).load_checkpoint("last") for c in (False, True))
    for key in ("generator", "discriminator"):
        for name, value in eager[key].items():
            torch.testing.assert_close(captured[key][name], value, rtol=1e-4, atol=1e-5,
                                       msg=lambda m, where=f"{key}.{name}": f"{where}: {m}")


class HalveLearningRates:
    """A plugin that halves both learning rates after one step, as a schedule would."""

    def __init__(self, at: int) -> None:
        self.at = at

    @hookimpl
    def ganforge_step_end(self, context, step, metrics) -> None:
        if step == self.at:
            for opt in (context.opt_g, context.opt_d):
                opt.param_groups[0]["lr"] /= 2


def test_a_learning_rate_changed_by_a_hook_reaches_the_captured_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # Capture bakes a float learning rate into the graph; the change after step 6 must re-capture it.
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    weights = {}
    for name, capture, halve in (("eager", False, True), ("captured", True, True), ("constant", True, False)):
        pm = make_plugin_manager()
        if halve:
            pm.register(HalveLearningRates(at=6), name="halve")
        result = train(TrainConfig(variant="mlp", steps=12, batch_size=32, device="cuda", precision="fp32",
                                   capture_step=capture, out=tmp_path / name), load_catalog(pm))
        weights[name] = RunDir(result.run_dir).load_checkpoint("last")["generator"]
        if name == "captured":
            assert "opt_g.lr 0.0002 -> 0.0001, opt_d.lr 0.0002 -> 0.0001 after step 6" in capsys.readouterr().err
    for key, value in weights["eager"].items():
        torch.testing.assert_close(weights["captured"][key], value, rtol=1e-4, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")
    assert any(not torch.allclose(weights["constant"][k], v, rtol=1e-4, atol=1e-5) for k, v in weights["eager"].items())


@pytest.mark.parametrize("setting", ["fp32", "bf16", "fp32+capture", "bf16+capture"])
def test_resuming_on_cuda_continues_exactly(tmp_path: Path, setting: str) -> None:
    # A resumed captured run replays from step 19 (three eager warm-up steps after the resume), the
    # straight one from step 4: the weights still agree bit for bit.
    settings = {"variant": "mlp", "batch_size": 32, "device": "cuda", "ema": 0.9, "ema_start": 10, "log_every": 5,
                "checkpoint_every": 10, **SETTINGS[setting]}
    straight = train(TrainConfig(steps=30, out=tmp_path / "a", **settings))
    half = train(TrainConfig(steps=15, out=tmp_path / "b", **settings))
    resumed = resume(half.run_dir, steps=30)
    a = RunDir(straight.run_dir).load_checkpoint("last")
    b = RunDir(resumed.run_dir).load_checkpoint("last")
    for key in ("generator", "discriminator", "opt_g", "opt_d", "ema", "rng"):
        assert_states_equal(a[key], b[key], key)


def test_more_processes_than_gpus_is_one_clear_line(tmp_path: Path) -> None:
    n = torch.cuda.device_count() + 1
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n),
                           "-m", "ganforge", "train", "mlp", "--device", "cuda", "--steps", "2"],
                          cwd=tmp_path, env={**os.environ, "TQDM_DISABLE": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert (f"ganforge: error: torchrun started {n} processes on this node, which has {n - 1} CUDA device(s); "
            f"pass --nproc-per-node {n - 1} or fewer, or --device cpu") in proc.stderr
