"""ganforge-dcgan: the contract, the Radford et al. design, sizing from data, a real CLI run."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import strategies as st
from torch import nn

from ganforge import DataShape, GanforgeError, TrainConfig, load_catalog, resume, train
from ganforge.runs import RunDir
from ganforge.testing import assert_states_equal, check_variant
from ganforge_dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator
from ganforge_dcgan.plugin import DCGAN

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`


def test_contract_over_drawn_configs_shapes_and_channels() -> None:
    configs = st.builds(DCGANConfig, latent_dim=st.integers(1, 16), base_width=st.integers(1, 8),
                        spectral_norm=st.booleans())
    shapes = [(c, s, s) for c in (1, 3, 4) for s in (8, 16, 28, 32)]
    check_variant(DCGAN, image_shapes=shapes, configs=configs, max_examples=20)


def test_contract_at_the_default_sizes() -> None:
    check_variant(DCGAN, max_examples=4)


@pytest.mark.parametrize(("side", "start", "widths"), [(28, 7, [128, 64]), (32, 4, [256, 128, 64]), (64, 4, [512, 256, 128, 64])])
def test_sized_from_the_data(side: int, start: int, widths: list[int]) -> None:
    g = DCGANGenerator(DCGANConfig(), DataShape(3, side, side))
    convs = [m for m in g.net if isinstance(m, nn.ConvTranspose2d)]
    assert convs[0].kernel_size == (start, start)
    assert [c.out_channels for c in convs] == [*widths, 3]
    assert g(torch.randn(2, 100)).shape == (2, 3, side, side)


def test_radford_design() -> None:
    g = DCGANGenerator(DCGANConfig(), DataShape(1, 32, 32))
    d = DCGANDiscriminator(DCGANConfig(), DataShape(1, 32, 32))
    layers = list(g.net)
    assert isinstance(layers[-1], nn.Tanh) and isinstance(layers[-2], nn.ConvTranspose2d)  # no BN on the output
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 3
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in d.modules())
    d_layers = list(d.net)
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)  # no BN after the first conv
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    strides = [c.stride for c in d.modules() if isinstance(c, nn.Conv2d)]
    assert strides[:-1] == [(2, 2)] * 3 and strides[-1] == (1, 1)
    weights = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(weights.std().item() - 0.02) < 0.002 and abs(weights.mean().item()) < 0.001
    gains = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(gains.mean().item() - 1.0) < 0.01


def test_spectral_norm_replaces_batch_norm_in_d() -> None:
    d = DCGANDiscriminator(DCGANConfig(spectral_norm=True), DataShape(3, 32, 32))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(hasattr(m, "parametrizations") for m in convs)
    stored = torch.cat([m.parametrizations.weight.original.flatten() for m in convs])
    assert abs(stored.std().item() - 0.02) < 0.002


@pytest.mark.parametrize(("shape", "depth", "message"), [
    (DataShape(1, 30, 30), None, "cannot reach 30x30"),
    (DataShape(1, 28, 32), None, "square images"),
    (DataShape(1, 28, 28), 3, "cannot reach 28x28 with depth 3"),
])
def test_unsupported_sizes_say_what_fits(shape: DataShape, depth, message: str) -> None:
    with pytest.raises(GanforgeError, match=message):
        DCGANGenerator(DCGANConfig(depth=depth), shape)


def test_found_through_installed_entry_point_metadata() -> None:
    # The real metadata of the installed distribution, not an import by name.
    points = [ep for ep in importlib.metadata.entry_points(group="ganforge") if ep.name == "dcgan"]
    assert len(points) == 1 and points[0].dist.name == "ganforge-dcgan" and points[0].value == "ganforge_dcgan.plugin"
    entry = load_catalog().variants.entry("dcgan")
    assert entry.plugin == "dcgan" and entry.value is DCGAN


def test_trains_through_the_shared_loop_from_the_cli(tmp_path: Path) -> None:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, "-m", "ganforge", "train", "dcgan", "--steps", "6", "--batch-size", "16",
                           "--out", "run", "--set", "base_width=8", "--set", "log_every=3"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["plugin"] == "dcgan" and saved["model"]["base_width"] == 8
    assert [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [3, 6]
    proc = subprocess.run([sys.executable, "-m", "ganforge", "sample", "run", "--n", "4", "--out", "s.png"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and (tmp_path / "s.png").stat().st_size > 0


def test_resume_is_exact_with_batch_norm_and_channels_last(tmp_path: Path) -> None:
    def settings(out: Path, steps: int) -> TrainConfig:
        return TrainConfig(variant="dcgan", model={"base_width": 4}, steps=steps, batch_size=8, device="cpu",
                           log_every=2, out=out, ema=0.9)

    straight = train(settings(tmp_path / "a", 8))
    resume(train(settings(tmp_path / "b", 4)).run_dir, steps=8)
    a = RunDir(straight.run_dir).load_checkpoint()
    b = RunDir(tmp_path / "b").load_checkpoint()
    for key in ("generator", "discriminator", "opt_g", "opt_d", "ema"):
        assert_states_equal(a[key], b[key], key)
    assert "discriminator.net.3.running_mean" in {f"discriminator.{k}" for k in a["discriminator"]}
