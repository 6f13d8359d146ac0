"""ganforge-resnet: SNGAN and BigGAN keep the contract at every size they build, follow the papers'
layouts, and train through the shared loop; BigGAN's orthogonal regularisation against its formula."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import strategies as st
from torch import nn

from ganforge import DataShape, GanforgeError, TrainConfig, train
from ganforge.runs import RunDir
from ganforge.testing import check_regularizer, check_variant
from ganforge.variant import build_models
from ganforge_resnet import BigGANConfig, SNGANConfig
from ganforge_resnet.plugin import BIGGAN, ORTHOGONAL, SNGAN

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ganforge", *args], cwd=cwd, env={**os.environ, "TQDM_DISABLE": "1"},
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("side", [32, 48, 64, 128])
def test_sngan_keeps_the_contract_at_every_size(side: int) -> None:
    configs = st.builds(SNGANConfig, latent_dim=st.integers(1, 16), ch=st.integers(1, 3), conditional=st.booleans())
    check_variant(SNGAN, image_shapes=[(3, side, side), (1, side, side)], num_classes=[3, 10], configs=configs,
                  batch_sizes=st.integers(2, 4), max_examples=3)


@pytest.mark.parametrize("side", [32, 64, 128])
def test_biggan_keeps_the_contract_at_every_size(side: int) -> None:
    chunks = {32: 4, 64: 5, 128: 6}[side]
    configs = st.builds(BigGANConfig, latent_dim=st.integers(1, 4).map(lambda k: k * chunks), ch=st.integers(1, 3),
                        shared_dim=st.integers(1, 8), attention=st.sampled_from([None, side // 2, 16]))
    check_variant(BIGGAN, image_shapes=[(3, side, side)], num_classes=[2, 10], configs=configs,
                  batch_sizes=st.integers(2, 4), max_examples=3)


def test_sngan_at_32_px_has_the_papers_cifar_layout() -> None:
    # Miyato et al. 2018, table 4: G's blocks carry 256 channels, D's 128, with the optimised first block.
    g, d = build_models(SNGAN, SNGAN.make_config(), DataShape(3, 32, 32))
    convs = [m for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert g.project.out_features == 4 * 4 * 256 and {m.out_channels for m in convs[:-1]} == {256}
    assert [block.c1.out_channels for block in d.blocks()] == [128] * 4
    assert [block.down for block in d.blocks()] == [True, True, False, False] and d.blocks()[0].first
    assert all(hasattr(m, "parametrizations") for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_unsupported_sizes_say_what_fits() -> None:
    with pytest.raises(GanforgeError, match="sngan builds 32, 48, 64 or 128 px square images, not 40; pass --image-size 32"):
        build_models(SNGAN, SNGAN.make_config(), DataShape(3, 40, 40))
    with pytest.raises(GanforgeError, match=r"latent_dim 100 must be a multiple of 6"):
        build_models(BIGGAN, BIGGAN.make_config({"latent_dim": 100}), DataShape(3, 128, 128, 10))


def test_orthogonal_regularisation_against_its_formula() -> None:
    import contextlib

    from ganforge.regularizers import PhaseView

    check_regularizer(ORTHOGONAL)
    layer = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]]))
    gram = layer.weight @ layer.weight.t()
    expected = 0.5 * (gram - torch.diag(gram.diagonal())).square().sum()
    view = PhaseView("g", 0, torch.zeros(1), None, torch.zeros(1), None, None, torch.zeros(1, 1), None, None, layer,  # type: ignore[arg-type]
                     torch.Generator(), contextlib.nullcontext, lambda x: x)
    assert ORTHOGONAL.build(ORTHOGONAL.options()).penalty(view).item() == pytest.approx(expected.item())


def test_sngan_and_biggan_train_through_the_shared_loop(tmp_path: Path) -> None:
    settings = {"steps": 3, "batch_size": 8, "device": "cpu", "log_every": 1, "data": {"name": "mnist5k", "image_size": 32}}
    sngan = train(TrainConfig(variant="sngan", model={"ch": 2, "conditional": True}, out=tmp_path / "sngan",
                              precision="bf16", **settings))
    saved = json.loads((sngan.run_dir / "config.json").read_text())
    assert saved["resolved"]["data_shape"] == [1, 32, 32, 10] and saved["train"]["n_critic"] == 5
    assert saved["resolved"]["loss"] == "hinge" and saved["resolved"]["betas"] == [0.0, 0.9]
    biggan = train(TrainConfig(variant="biggan", model={"ch": 2, "attention": 16}, out=tmp_path / "biggan", **settings))
    saved = json.loads((biggan.run_dir / "config.json").read_text())
    assert [r["name"] for r in saved["resolved"]["regularizers"]] == ["ortho"]
    assert (saved["train"]["ema"], saved["train"]["n_critic"]) == (0.9999, 2)
    assert all(r["reg_ortho"] > 0 for r in RunDir(biggan.run_dir).read_metrics())


def test_sngan_is_unconditional_unless_asked(tmp_path: Path) -> None:
    proc = run_cli("train", "sngan", "--image-size", "32", "--set", "ch=2", "--steps", "1", "--batch-size", "4",
                   "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]["data_shape"] == [1, 32, 32, None]
