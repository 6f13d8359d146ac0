"""ganforge-stylegan2: the contract at 32 to 128 px, the paper's operations against their definitions,
the reference implementation's sizes, and training, resuming and sampling through the shared loop."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import strategies as st
from PIL import Image

from ganforge import DataShape, GanforgeError, TrainConfig, get_variant, resume, train
from ganforge.runs import RunDir
from ganforge.testing import ContractViolation, assert_states_equal, check_regularizer, check_variant
from ganforge.variant import build_models
from ganforge_stylegan2 import StyleGAN2Config
from ganforge_stylegan2.networks import MinibatchStd, SynthesisNetwork
from ganforge_stylegan2.ops import EqualLinear, modulated_conv2d
from ganforge_stylegan2.plugin import PATH_LENGTH, STYLEGAN2
from ganforge_stylegan2.regularizers import path_lengths

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

TINY = {"latent_dim": 16, "w_dim": 16, "channel_base": 128, "channel_max": 16, "mapping_layers": 2}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ganforge", *args], cwd=cwd, env={**os.environ, "TQDM_DISABLE": "1"},
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("side", [32, 64, 128])
def test_stylegan2_keeps_the_contract(side: int) -> None:
    configs = st.builds(StyleGAN2Config, latent_dim=st.integers(1, 16), w_dim=st.integers(2, 16),
                        channel_base=st.sampled_from([64, 256]), channel_max=st.integers(2, 8),
                        mapping_layers=st.integers(1, 3), conditional=st.booleans(), style_mixing=st.sampled_from([0.0, 0.9]),
                        mbstd_group=st.integers(1, 4))
    check_variant(STYLEGAN2, image_shapes=[(3, side, side), (1, side, side)], num_classes=[3, 10], configs=configs,
                  batch_sizes=st.integers(2, 6), max_examples=3)


def test_a_d_that_sees_its_batch_must_say_so() -> None:
    undeclared = dataclasses.replace(STYLEGAN2, discriminator_sees_batch=False)
    with pytest.raises(ContractViolation, match="changes with the other images in its batch"):
        check_variant(undeclared, image_shapes=[(3, 32, 32)], configs=st.just(StyleGAN2Config(**TINY)), max_examples=1)


def test_the_parameter_counts_at_256_px_are_the_reference_implementations() -> None:
    # NVlabs/stylegan2-ada-pytorch (training/networks.py at d72cc7d), instantiated at 256 px with
    # 8 mapping layers, z and w of 512, channel_max 512, D's resnet architecture: config F's channels
    # (channel_base 32768) give G 30,034,338 and D 28,864,129 parameters; StyleGAN2-ADA's paper256
    # (channel_base 16384) 24,767,458 and 24,001,089.
    for base, g_count, d_count in ((32768, 30_034_338, 28_864_129), (16384, 24_767_458, 24_001_089)):
        with torch.device("meta"):
            g, d = build_models(STYLEGAN2, STYLEGAN2.make_config({"channel_base": base}), DataShape(3, 256, 256))
        assert (sum(p.numel() for p in g.parameters()), sum(p.numel() for p in d.parameters())) == (g_count, d_count)


def test_a_demodulated_convolution_keeps_unit_variance() -> None:
    # Karras et al. 2020, section 2.2: with i.i.d. unit-variance inputs, demodulation scales each output
    # channel's weights to unit norm, so the outputs have unit expected variance whatever the style.
    torch.manual_seed(0)
    x = torch.randn(16, 64, 16, 16)
    weight = torch.randn(32, 64, 3, 3)
    styles = torch.rand(16, 64) * 3 + 0.1
    out = modulated_conv2d(x, weight, styles)[:, :, 1:-1, 1:-1]  # away from the zero padding
    assert out.var().item() == pytest.approx(1.0, abs=0.03)
    assert modulated_conv2d(x, weight, styles, demodulate=False).var().item() > 10


def test_the_mapping_networks_learning_rate_multiplier() -> None:
    # Adam's first step moves every stored weight by lr; the layer scales stored weights by lr_mul/sqrt(fan_in),
    # so its effective weights move by lr * lr_mul / sqrt(fan_in): a hundredth of a plain layer's.
    for lr_mul in (1.0, 0.01):
        layer = EqualLinear(16, 8, lr_mul=lr_mul)
        before = layer.weight.detach() * layer.weight_gain
        opt = torch.optim.Adam(layer.parameters(), lr=0.01)
        layer(torch.randn(4, 16)).square().sum().backward()
        opt.step()
        moved = (layer.weight.detach() * layer.weight_gain - before).abs()
        # float32 rounds the stored weights (about 1 / lr_mul in size) to within a part in a thousand here
        assert moved.max().item() == pytest.approx(0.01 * lr_mul / 16 ** 0.5, rel=1e-2)


def test_minibatch_standard_deviation() -> None:
    x = torch.zeros(4, 2, 2, 2)
    x[0], x[1], x[2], x[3] = 0.0, 2.0, 4.0, 6.0  # one group of 4: every feature has std sqrt(5)
    out = MinibatchStd(4)(x)
    assert out.shape == (4, 3, 2, 2) and torch.allclose(out[:, 2], torch.full((4, 2, 2), 5 ** 0.5), atol=1e-4)
    two = MinibatchStd(2)(x)  # groups {0, 2} and {1, 3}: std 2 each
    assert torch.allclose(two[:, 2], torch.full((4, 2, 2), 2.0), atol=1e-4)
    assert MinibatchStd(4)(torch.randn(6, 2, 2, 2)).shape == (6, 3, 2, 2)  # 6 images: groups of 3


def test_truncation_psi_zero_draws_the_average_image_for_every_z() -> None:
    torch.manual_seed(0)
    g, _ = build_models(STYLEGAN2, StyleGAN2Config(**TINY), DataShape(3, 32, 32))
    g.train()
    g(torch.randn(64, 16))  # training forwards track the average w
    g.eval()
    with torch.no_grad(), g.truncated(0.0):
        images = g(torch.randn(5, 16))
    assert torch.allclose(images, images[:1].expand_as(images), atol=1e-5)
    with torch.no_grad(), g.truncated(1.0):
        assert not torch.allclose(g(torch.randn(2, 16))[0], g(torch.randn(2, 16))[1], atol=1e-3)


def test_path_length_against_a_slow_reference() -> None:
    # The batched gradient gives each image's J^T y because the images do not interact; the reference
    # differentiates one image at a time.
    torch.manual_seed(0)
    synthesis = SynthesisNetwork(StyleGAN2Config(**TINY), DataShape(3, 16, 16))
    ws = torch.randn(3, synthesis.num_ws, 16, requires_grad=True)
    fast = path_lengths(synthesis, ws, torch.Generator().manual_seed(1))
    slow = []
    noise = torch.Generator().manual_seed(1)
    torch.manual_seed(2)
    state = torch.get_rng_state()
    images = synthesis(ws, "const")
    y = torch.randn(images.shape, generator=noise) / 16
    for i in range(3):
        w = ws[i:i + 1].detach().requires_grad_(True)
        (grad,) = torch.autograd.grad((synthesis(w, "const") * y[i:i + 1]).sum(), w)
        slow.append(grad.square().sum(2).mean(1).sqrt())
    torch.set_rng_state(state)
    reference = torch.cat(slow)
    const = path_lengths(lambda w, mode: synthesis(w, "const"), ws, torch.Generator().manual_seed(1))
    torch.testing.assert_close(const, reference, rtol=1e-4, atol=1e-6)
    assert fast.shape == (3,) and torch.isfinite(fast).all()


def test_the_path_length_term_keeps_the_contract() -> None:
    check_regularizer(PATH_LENGTH)  # on the small StyleGAN2 pair its spec names


def test_the_path_length_term_names_the_networks_it_is_made_for() -> None:
    with pytest.raises(GanforgeError, match="needs a generator with StyleGAN's styles"):
        check_regularizer(PATH_LENGTH, models=lambda: build_models(
            get_variant("mlp"), get_variant("mlp").make_config({"latent_dim": 8}), DataShape(1, 8, 8)))


def photos(folder: Path, n: int = 40) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def config(out: Path, folder: Path, **overrides) -> TrainConfig:
    settings = {"variant": "stylegan2", "model": TINY, "steps": 8, "batch_size": 8, "device": "cpu", "log_every": 4,
                "checkpoint_every": 4, "out": out / "run",
                "data": {"name": "image-folder", "data_dir": str(folder), "image_size": 32}}
    return TrainConfig.model_validate({**settings, **overrides})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return photos(tmp_path / "photos")


def test_the_recipe_follows_the_papers_auto_configuration(folder: Path, tmp_path: Path) -> None:
    result = train(config(tmp_path / "x", folder, steps=2))
    saved = json.loads((result.run_dir / "config.json").read_text())
    resolved = saved["resolved"]
    assert [(r["name"], r["interval"]) for r in resolved["regularizers"]] == [("r1", 16), ("path-length", 4)]
    assert resolved["regularizers"][0]["gamma"] == pytest.approx(0.0002 * 32 ** 2 / 8)
    assert resolved["augment"]["name"] == "ada"  # 40 images: far under 50,000
    assert saved["train"]["ema_kimg"] == pytest.approx(8 * 10 / 32)
    assert resolved["ema_decay"] == pytest.approx(0.5 ** (8 / 2500))
    assert (resolved["loss"], resolved["lr_g"], resolved["betas"]) == ("nonsaturating", 0.0025, [0.0, 0.99])


def test_a_stylegan2_run_resumes_exactly(folder: Path, tmp_path: Path) -> None:
    # Noise inputs, style mixing, ADA, lazy R1 and path length all draw random numbers.
    straight = train(config(tmp_path / "a", folder, steps=8))
    half = train(config(tmp_path / "b", folder, steps=4))
    resumed = resume(half.run_dir, steps=8)
    a, b = (RunDir(r.run_dir).load_checkpoint("last") for r in (straight, resumed))
    for key in ("generator", "discriminator", "opt_g", "opt_d", "ema", "rng", "terms"):
        assert_states_equal(a[key], b[key], key)


def test_sample_with_psi_and_the_mixing_and_interpolation_grids(folder: Path, tmp_path: Path) -> None:
    train(config(tmp_path, folder, steps=2))
    for args, size in ((["--psi", "0.7", "--n", "4"], 2), (["--mix", "3"], 4), (["--interpolate", "5", "--n", "10"], 5)):
        proc = run_cli("sample", "run", *args, "--out", f"{args[0][2:]}.png", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        with Image.open(tmp_path / f"{args[0][2:]}.png") as grid:
            assert grid.size[0] == size * 34 + 2
    proc = run_cli("sample", "run", "--psi", "1.5", "--out", "bad.png", cwd=tmp_path)
    assert proc.returncode == 2 and "--psi 1.5: give a truncation between 0" in proc.stderr


def test_transfer_from_another_stylegan2_run_with_freeze_d(folder: Path, tmp_path: Path) -> None:
    source = train(config(tmp_path / "source", folder, steps=2)).run_dir
    result = train(config(tmp_path / "target", folder, steps=2, init_from=source, freeze_d=1))
    before, after = (RunDir(r).load_checkpoint("last") for r in (source, result.run_dir))
    first = [k for k in before["discriminator"] if k.startswith("stages.0.")]
    assert first and all(torch.equal(before["discriminator"][k], after["discriminator"][k]) for k in first)
