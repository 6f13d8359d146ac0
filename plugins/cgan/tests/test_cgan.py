"""ganforge-cgan: the contract with labels, conditioning that matters, the shared loop's label handling."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from hypothesis import strategies as st
from PIL import Image

from ganforge import DataShape, TrainConfig, hookimpl, load_catalog, train
from ganforge.plugins import make_plugin_manager
from ganforge.testing import check_variant
from ganforge_cgan import CDCGANConfig, CDCGANDiscriminator, CDCGANGenerator, CGANConfig, CGANDiscriminator, CGANGenerator
from ganforge_cgan.plugin import CDCGAN, CGAN

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ganforge", *args], cwd=cwd, env={**os.environ, "TQDM_DISABLE": "1"},
                          capture_output=True, text=True, timeout=300)


def test_cgan_contract_over_configs_and_class_counts() -> None:
    widths = st.lists(st.integers(1, 32), min_size=1, max_size=2).map(tuple)
    configs = st.builds(CGANConfig, latent_dim=st.integers(1, 16), g_hidden=widths, d_hidden=widths,
                        embed_dim=st.integers(1, 12), projection=st.booleans(), label_every_layer=st.booleans())
    check_variant(CGAN, image_shapes=[(1, 28, 28), (3, 8, 8), (2, 5, 9)], num_classes=[2, 3, 10, 17],
                  configs=configs, max_examples=15)


def test_cdcgan_contract_over_configs_and_class_counts() -> None:
    configs = st.builds(CDCGANConfig, latent_dim=st.integers(1, 16), base_width=st.integers(1, 8),
                        spectral_norm=st.booleans(), embed_dim=st.integers(0, 12))
    check_variant(CDCGAN, image_shapes=[(1, 28, 28), (3, 32, 32), (1, 16, 16)], num_classes=[2, 10],
                  configs=configs, max_examples=12)


def test_the_label_changes_what_g_draws() -> None:
    g = CDCGANGenerator(CDCGANConfig(base_width=8), DataShape(1, 28, 28, 10)).eval()
    torch.nn.init.normal_(g.layers[1].gain.weight, 1.0, 0.5)
    z = torch.randn(1, 100).expand(10, 100)
    images = g(z, torch.arange(10))
    assert torch.equal(g(z[:2], torch.tensor([4, 4]))[0], g(z[:2], torch.tensor([4, 4]))[1])
    spread = (images - images.mean(0)).abs().max()
    assert spread > 0.05 * images.abs().max()


def test_projection_discriminator_formula() -> None:
    # D(x, y) - D(x, y') = <embed(y) - embed(y'), phi(x)>: the class enters only through the projection.
    d = CDCGANDiscriminator(CDCGANConfig(base_width=4, spectral_norm=False), DataShape(1, 16, 16, 5)).eval()
    x = torch.randn(1, 1, 16, 16)
    phi = d.trunk(x).sum(dim=(2, 3))
    diff = d(x, torch.tensor([3])) - d(x, torch.tensor([1]))
    expected = ((d.embed.weight[3] - d.embed.weight[1]) * phi).sum()
    assert torch.allclose(diff.squeeze(), expected, atol=1e-5)


def test_cgan_projection_adds_the_class_term_to_the_joined_input_score() -> None:
    d = CGANDiscriminator(CGANConfig(d_hidden=(16, 8)), DataShape(1, 6, 6, 4))
    x, y = torch.randn(3, 1, 6, 6), torch.tensor([0, 3, 1])
    features = d.net[:-1](torch.cat([x.flatten(1), d.embed(y)], 1))
    expected = d.net[-1](features) + (d.project.weight[y] * features).sum(1, keepdim=True)
    torch.testing.assert_close(d(x, y), expected)
    assert CGANDiscriminator(CGANConfig(projection=False), DataShape(1, 6, 6, 4)).project is None


def test_cgan_default_discriminator_is_wider_than_the_unconditional_mlps() -> None:
    # The recipe 0.1's quality trials measured (`git show 70f85d6:docs/benchmarks.md`): D 794-1024-512-1 on MNIST-sized images, G as in mlp.
    shape = DataShape(1, 28, 28, 10)
    d, g = CGANDiscriminator(CGANConfig(), shape), CGANGenerator(CGANConfig(), shape)
    assert [(m.in_features, m.out_features) for m in d.net if isinstance(m, nn.Linear)] == [(794, 1024), (1024, 512), (512, 1)]
    assert [(m.in_features, m.out_features) for m in g.net if isinstance(m, nn.Linear)] == [(110, 256), (266, 512), (522, 1024), (1034, 784)]
    assert CGAN.optimizer.betas == (0.0, 0.99)
    assert (CGAN.recipe["ema"], CGAN.recipe["ema_start"]) == (0.9995, 5000)


def test_cgan_generator_joins_the_label_to_every_layer_by_default() -> None:
    # With the first layer blind to the label, the label still changes the image through the later joins.
    shape = DataShape(1, 6, 6, 4)
    z, labels = torch.randn(1, 8).expand(4, 8), torch.arange(4)
    for every, differs in ((True, True), (False, False)):
        g = CGANGenerator(CGANConfig(latent_dim=8, g_hidden=(16, 16), label_every_layer=every), shape)
        with torch.no_grad():
            g.net[0].weight[:, 8:] = 0
            images = g(z, labels)
        assert (not torch.allclose(images[0], images[1])) is differs
    plain = CGANGenerator(CGANConfig(latent_dim=8, g_hidden=(16,), label_every_layer=False), shape)
    assert [m.in_features for m in plain.net if isinstance(m, nn.Linear)] == [18, 16]


def test_found_through_installed_entry_point_metadata() -> None:
    points = [ep for ep in importlib.metadata.entry_points(group="ganforge") if ep.name == "cgan"]
    assert len(points) == 1 and points[0].dist.name == "ganforge-cgan"


def test_train_and_sample_one_row_per_class(tmp_path: Path) -> None:
    proc = run_cli("train", "cgan", "--steps", "6", "--batch-size", "16", "--out", "run", "--set", "g_hidden=[32]",
                   "--set", "d_hidden=[32]", "--set", "log_every=3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["resolved"]["data_shape"] == [1, 28, 28, 10]
    with Image.open(tmp_path / "run" / "samples" / "step_0000006.png") as grid:
        assert grid.size == (6 * 30 + 2, 10 * 30 + 2)  # 64 fixed samples -> 6 per class, one row per class
    proc = run_cli("sample", "run", "--n", "30", "--out", "grid.png", cwd=tmp_path)
    assert proc.returncode == 0 and "wrote 30 samples" in proc.stdout
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (3 * 30 + 2, 10 * 30 + 2)
    proc = run_cli("sample", "run", "--n", "4", "--class", "7", "--out", "seven.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("sample", "run", "--class", "10", cwd=tmp_path)
    assert proc.returncode == 2 and "classes 0 to 9" in proc.stderr


def test_eval_breaks_conditional_accuracy_down_by_class(tmp_path: Path) -> None:
    proc = run_cli("train", "cgan", "--steps", "30", "--batch-size", "32", "--out", "run", "--set", "g_hidden=[32]",
                   "--set", "d_hidden=[32]", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for repeats in (1, 2):
        proc = run_cli("eval", "run", "--n", "500", "--repeats", str(repeats), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        figures = json.loads((tmp_path / "run" / "eval.json").read_text())
        confusion = torch.tensor(figures["confusion"])
        assert confusion.shape == (10, 10) and confusion.sum(1).tolist() == [50 * repeats] * 10  # every set pooled
        records = figures["per_class"]
        assert [r["accuracy"] for r in records] == pytest.approx((confusion.diag() / confusion.sum(1)).tolist())
        # Each class was asked for equally often, so the overall share is the mean of the classes' shares.
        assert figures["conditional_accuracy"] == pytest.approx(sum(r["accuracy"] for r in records) / 10)
        real = [r["real_accuracy"] for r in records]
        assert min(real) > 0.9  # mnist-cnn reads the real digits of the reference right
        header = proc.stdout.split("CLASS")[1].splitlines()[0].split()
        assert header == ["ASKED", "READ", "AS", "ASKED", "REAL", "IMAGES", "MOST", "OFTEN", "READ", "AS"]
        assert f"{real[3]:.3f}" in proc.stdout.split("CLASS")[1].splitlines()[4]


def test_a_run_recorded_before_label_every_layer_still_samples_and_resumes(tmp_path: Path) -> None:
    # Such a run's config.json lacks the field; the variant's legacy_config rebuilds its z-only G.
    proc = run_cli("train", "cgan", "--steps", "6", "--batch-size", "16", "--out", "run", "--set", "g_hidden=[32]",
                   "--set", "d_hidden=[32]", "--set", "label_every_layer=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert run_cli("sample", "run", "--n", "20", "--out", "before.pt", cwd=tmp_path).returncode == 0
    config_path = tmp_path / "run" / "config.json"
    saved = json.loads(config_path.read_text())
    del saved["model"]["label_every_layer"]
    config_path.write_text(json.dumps(saved))
    proc = run_cli("sample", "run", "--n", "20", "--out", "after.pt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    before, after = torch.load(tmp_path / "before.pt"), torch.load(tmp_path / "after.pt")
    assert torch.equal(before["images"], after["images"])
    proc = run_cli("train", "--resume", "run", "--steps", "8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(config_path.read_text())["model"]["label_every_layer"] is False


def test_cdcgan_trains_through_the_shared_loop(tmp_path: Path) -> None:
    proc = run_cli("train", "cdcgan", "--steps", "4", "--batch-size", "16", "--out", "run", "--set", "base_width=4",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def image_folder(root: Path, counts: dict[str, int]) -> Path:
    for cls, count in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(count):
            Image.new("L", (16, 16), 20 * i).save(root / cls / f"{i}.png")
    return root


def test_a_conditional_variant_refuses_unlabelled_data(tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    for i in range(4):
        Image.new("L", (16, 16), 40 * i).save(tmp_path / "flat" / f"{i}.png")
    proc = run_cli("train", "cgan", "--data", "image-folder", "--data-dir", "flat", "--batch-size", "2", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "'cgan' is conditional and needs class labels, but data set 'image-folder' has none" in proc.stderr


class LabelRecorder:
    """A plugin variant: cgan whose generator keeps the labels the loop asks it for while training."""

    def __init__(self) -> None:
        self.labels: list[torch.Tensor] = []
        recorder = self

        class RecordingGenerator(CGANGenerator):
            def generate(self, z, labels):
                if self.training:
                    recorder.labels.append(labels.detach().clone())
                return super().generate(z, labels)

        self.spec = dataclasses.replace(CGAN, name="recording-cgan", build_generator=RecordingGenerator, recipe={})

    @hookimpl
    def ganforge_register_variants(self, register):
        register(self.spec)


@pytest.mark.parametrize(("mode", "expected_share"), [("uniform", 0.5), ("data", 0.75)])
def test_fake_labels_uniform_or_at_the_data_frequencies(tmp_path: Path, mode: str, expected_share: float) -> None:
    root = image_folder(tmp_path / "imgs", {"a": 2, "b": 6})
    recorder = LabelRecorder()
    pm = make_plugin_manager()
    pm.register(recorder, name="recorder")
    config = TrainConfig.model_validate({"variant": "recording-cgan", "device": "cpu", "batch_size": 8, "steps": 300,
                                         "fake_labels": mode, "out": str(tmp_path / "run"),
                                         "data": {"name": "image-folder", "data_dir": str(root), "image_size": 8},
                                         "model": {"g_hidden": [8], "d_hidden": [8]}})
    train(config, load_catalog(pm))
    labels = torch.cat(recorder.labels)
    assert len(labels) == 300 * 8
    # 2,400 draws: the share's standard error is under 0.01.
    assert labels.float().mean().item() == pytest.approx(expected_share, abs=0.035)


def test_acgan_keeps_the_contract_with_its_classification_term() -> None:
    from ganforge_cgan.plugin import ACGAN

    check_variant(ACGAN, num_classes=[3, 10], max_examples=4)


def test_acgan_trains_its_class_head_through_the_term_it_carries(tmp_path: Path) -> None:
    from ganforge.runs import RunDir

    proc = run_cli("train", "acgan", "--steps", "4", "--batch-size", "16", "--out", "run", "--set", "base_width=8",
                   "--set", "log_every=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["resolved"]["regularizers"] == [{"name": "acgan", "weight": 1.0, "interval": 1}]
    records = RunDir(tmp_path / "run").read_metrics()
    assert all(r["reg_acgan"] > 0 for r in records)
    proc = run_cli("train", "acgan", "--steps", "2", "--out", "again", "--reg", "acgan:weight=2", cwd=tmp_path)
    assert proc.returncode == 2 and "regulariser 'acgan' is chosen twice" in proc.stderr
