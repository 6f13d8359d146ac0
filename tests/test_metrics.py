"""Metrics against cases with known answers, the evaluators' identity, and agreement with torch-fidelity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import torch_fidelity

from ganforge.config import DataConfig
from ganforge.data import ImageData, load_mnist5k
from ganforge.errors import GanforgeError
from ganforge.metrics import conditional_accuracy, confusion_matrix, mode_coverage, per_class, share_standard_error
from ganforge.metrics.builtin import BUILTIN_METRICS, conditional, fid, kid, manifold
from ganforge.metrics.evaluate import embed_images, make_reference, score
from ganforge.catalog import load_catalog
from ganforge.hookspecs import hookimpl
from ganforge.metrics.evaluators import (
    FID_INCEPTION_SHA256,
    Evaluator,
    EvaluatorSpec,
    _weights_dir,
    evaluator_for,
    file_sha256,
)
from ganforge.plugins import PluginWarning, make_plugin_manager
from ganforge.metrics.spec import Reference, Samples


def gaussian(n: int, mean: torch.Tensor, std: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(mean), generator=g, dtype=torch.float64) * std + mean


def distance(metric, samples: torch.Tensor, reference: torch.Tensor, seed: int = 0) -> dict[str, float]:
    return dict(metric(Samples(samples, None, None), Reference(reference, None, None, "test"), seed))


def test_identical_sets_give_fid_zero_and_kid_about_zero() -> None:
    x = gaussian(2000, torch.zeros(8), torch.ones(8), 0)
    assert distance(fid, x, x)["fid"] == pytest.approx(0.0, abs=1e-8)
    figures = distance(kid, x, x)
    assert abs(figures["kid"]) < 5 * figures["kid_std"] + 1e-3


def test_fid_of_gaussians_matches_the_closed_form() -> None:
    # For diagonal covariances: ||mu_a - mu_b||^2 + sum (sigma_a - sigma_b)^2.
    mean_a, mean_b = torch.zeros(6, dtype=torch.float64), torch.tensor([1.0, -2, 0, 0.5, 0, 3], dtype=torch.float64)
    std_a, std_b = torch.ones(6, dtype=torch.float64), torch.tensor([2.0, 1, 0.5, 1, 3, 1], dtype=torch.float64)
    a, b = gaussian(200_000, mean_a, std_a, 1), gaussian(200_000, mean_b, std_b, 2)
    expected = float((mean_a - mean_b).square().sum() + (std_a - std_b).square().sum())
    assert distance(fid, a, b)["fid"] == pytest.approx(expected, rel=0.01)


def test_the_matrix_square_root_handles_correlated_covariances() -> None:
    # Same covariance, shifted mean: the trace term cancels exactly, whatever the correlations.
    g = torch.Generator().manual_seed(3)
    mix = torch.randn(5, 5, generator=g, dtype=torch.float64)
    a = gaussian(50_000, torch.zeros(5), torch.ones(5), 4) @ mix
    shift = torch.tensor([0.5, 0.0, -1.0, 2.0, 0.0], dtype=torch.float64)
    assert distance(fid, a, a + shift)["fid"] == pytest.approx(float(shift.square().sum()), rel=1e-6)


@pytest.mark.slow
def test_kid_grows_with_the_shift() -> None:
    x = gaussian(1000, torch.zeros(4), torch.ones(4), 5).float()
    near = distance(kid, x + 0.1, x)["kid"]
    far = distance(kid, x + 1.0, x)["kid"]
    assert 0 < near < far


def test_precision_and_recall_separate_quality_from_coverage() -> None:
    real = gaussian(2000, torch.zeros(2), torch.ones(2), 6).float()
    good = distance(manifold, gaussian(2000, torch.zeros(2), torch.ones(2), 7).float(), real)
    assert good["precision"] > 0.9 and good["recall"] > 0.9
    collapsed = gaussian(2000, torch.zeros(2), torch.full((2,), 0.05), 8).float()  # good samples, little variety
    figures = distance(manifold, collapsed, real)
    assert figures["precision"] > 0.95 and figures["recall"] < 0.2
    far = gaussian(2000, torch.full((2,), 20.0), torch.ones(2), 9).float()
    assert distance(manifold, far, real) == {"precision": 0.0, "recall": 0.0}


def test_a_set_missing_three_classes_shows_seven_modes() -> None:
    real = torch.arange(1000) % 10
    fake = torch.arange(1000) % 7
    modes, kl = mode_coverage(fake, real, 10)
    assert modes == 7 and kl > 0.3
    assert mode_coverage(real, real, 10) == (10, pytest.approx(0.0, abs=1e-12))
    assert conditional_accuracy(torch.tensor([1, 2, 3, 3]), torch.tensor([1, 2, 3, 4])) == 0.75


def test_per_class_figures_say_which_classes_are_drawn_as_what() -> None:
    requested = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    predicted = torch.tensor([0, 0, 0, 2, 2, 2, 2, 1, 2, 2])
    confusion = confusion_matrix(predicted, requested, 3)
    assert confusion.tolist() == [[3, 0, 1], [0, 1, 3], [0, 0, 2]]
    real = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 1, 1]), 3)
    records = per_class(confusion, real, ["cat", "dog", "fox"])
    assert [(r["name"], r["asked"], r["accuracy"]) for r in records] == [("cat", 4, 0.75), ("dog", 4, 0.25), ("fox", 2, 1.0)]
    assert [(r["most_read_as"], r["most_read_as_share"]) for r in records] == [("fox", 0.25), ("fox", 0.75), (None, 0.0)]
    assert [r["real_accuracy"] for r in records] == [1.0, pytest.approx(2 / 3), None]  # no real fox in the reference
    assert per_class(confusion)[1]["name"] == "1" and per_class(confusion)[1]["real_accuracy"] is None


def test_conditional_accuracy_carries_its_sampling_noise() -> None:
    """The reported standard error is the spread of the figure over repeated evaluations of one model."""
    g = torch.Generator().manual_seed(0)
    n, figures = 1000, []
    for _ in range(400):
        requested = torch.randint(0, 10, (n,), generator=g)
        hit = torch.rand(n, generator=g) < 0.9  # a model whose samples are read as asked 90% of the time
        predicted = torch.where(hit, requested, (requested + 1) % 10)
        logits = torch.nn.functional.one_hot(predicted, 10).float()
        reference = Reference(torch.zeros(1, 2), torch.arange(10), 10, "ten labels")
        figures.append(conditional(Samples(torch.zeros(n, 2), logits, requested), reference, seed=0))
    accuracies = torch.tensor([f["conditional_accuracy"] for f in figures], dtype=torch.float64)
    mean_se = sum(f["conditional_accuracy_se"] for f in figures) / len(figures)
    assert accuracies.mean().item() == pytest.approx(0.9, abs=0.002)
    assert mean_se == pytest.approx(accuracies.std().item(), rel=0.15)  # 400 draws pin the spread to ~4%
    assert share_standard_error(0.9, 5000) == pytest.approx(0.00424, abs=1e-5)
    assert share_standard_error(1.0, 5000) == 0.0


class Images(torch.utils.data.Dataset):
    """uint8 images as torch-fidelity reads an input."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def library(fake: torch.Tensor, real: torch.Tensor, extractor: str, **kwargs) -> dict[str, float]:
    """torch-fidelity's own figures for uint8 ``fake`` against ``real``, as its users call it."""
    return torch_fidelity.calculate_metrics(
        input1=Images(fake), input2=Images(real), cuda=False, fid=True, kid=True, prc=True, feature_extractor=extractor,
        kid_subset_size=min(1000, len(fake)), rng_seed=0, save_cpu_ram=True, verbose=False, batch_size=500, **kwargs)


def ganforge_figures(evaluator, fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    reference = make_reference(ImageData(real, None), "test", evaluator, None)
    samples = embed_images(evaluator, fake.float().div(127.5).sub(1.0))  # as a generator hands them over
    assert torch.equal(samples.features, embed_images(evaluator, fake).features)  # quantised back exactly
    return score(samples, reference, evaluator, BUILTIN_METRICS)


def assert_agree(ours: dict[str, float], theirs: dict[str, float]) -> None:
    pairs = {"fid": "frechet_inception_distance", "kid": "kernel_inception_distance_mean",
             "kid_std": "kernel_inception_distance_std", "precision": "precision", "recall": "recall"}
    for mine, name in pairs.items():
        assert ours[mine] == pytest.approx(theirs[name], rel=1e-6, abs=1e-12), mine


def test_shipped_evaluators_match_their_recorded_hash_and_accuracy() -> None:
    index = json.loads((_weights_dir() / "evaluators.json").read_text())
    assert {"mnist-cnn", "mnist-resnet", "fashion-cnn", "fashion-resnet"} <= set(index)
    for name, record in index.items():
        blob = (_weights_dir() / f"{name}.pt").read_bytes()
        assert hashlib.sha256(blob).hexdigest() == record["sha256"]
        evaluator = evaluator_for(name)
        assert evaluator.sha256 == record["sha256"] and record["heldout_accuracy"] > 0.85
    # The second opinions are other networks, not copies.
    assert index["mnist-cnn"]["sha256"] != index["mnist-resnet"]["sha256"]
    assert evaluator_for("mnist-resnet").feature_dim != evaluator_for("mnist-cnn").feature_dim


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist-cnn", "mnist-resnet"])
def test_real_digits_score_as_real_and_report_their_provenance(name: str) -> None:
    evaluator = evaluator_for(name)
    data = load_mnist5k(DataConfig())
    reference = make_reference(data, "mnist5k", evaluator, 2000, seed=0)
    others = data.images[torch.randperm(5000, generator=torch.Generator().manual_seed(1))[:2000]]
    figures = score(embed_images(evaluator, others), reference, evaluator, BUILTIN_METRICS)
    assert figures["fid"] < 1.0 and figures["precision"] > 0.85 and figures["recall"] > 0.85 and figures["modes"] == 10
    assert figures["n"] == 2000 and figures["reference"] == "mnist5k/train, 2000 images, seed 0"
    assert figures["evaluator"] == name and figures["evaluator_sha256"] == evaluator.sha256
    assert figures["comparable_with_published"] is False and "bilinear" in figures["resize"]
    noise = torch.rand(2000, 1, 28, 28) * 2 - 1
    assert score(embed_images(evaluator, noise), reference, evaluator, BUILTIN_METRICS)["fid"] > 50 * max(figures["fid"], 0.1)


@pytest.mark.slow
def test_a_shipped_classifier_gives_torch_fidelitys_own_figures() -> None:
    """ganforge registers its classifiers with torch-fidelity; the library's calculate_metrics and
    ganforge's pipeline agree on the same images."""
    images = load_mnist5k(DataConfig()).images
    real, fake = images[:1500], images[1500:2500].clone()
    fake[:, :, ::3] = 255  # streaks: a worse set, so the figures are far from zero
    ours = ganforge_figures(evaluator_for("mnist-cnn"), fake, real)
    assert ours["fid"] > 1.0
    assert_agree(ours, library(fake, real, "ganforge-mnist-cnn"))


def random_inception(path: Path) -> Path:
    """The FID Inception's file format (torch-fidelity's state dict) with random weights: a stand-in
    for the published file, which cannot be downloaded here."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # keep the fresh weights
            return None

    empty = path.with_suffix(".empty")
    torch.save({}, empty)
    torch.manual_seed(0)
    net = Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    for module in net.modules():  # He initialisation keeps the random features from collapsing to one point
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.05)
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.slow
def test_the_fid_inception_is_refused_unless_its_digest_is_the_published_one_and_then_agrees_with_the_library(
        tmp_path: Path) -> None:
    weights = random_inception(tmp_path / "inception.pth")
    with pytest.raises(GanforgeError, match=f"inception.pth: sha256 .* is not the published FID Inception's "
                                            f"{FID_INCEPTION_SHA256[:16]}"):
        evaluator_for("fid-inception", weights=weights)
    evaluator = evaluator_for("fid-inception", weights=weights, expected_sha256=file_sha256(weights))
    assert evaluator.comparable and evaluator.sha256 == file_sha256(weights) and "TensorFlow 1" in evaluator.resize
    g = torch.Generator().manual_seed(1)
    real = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8, generator=g)
    fake = (real.float() * 0.5 + 64).to(torch.uint8)
    ours = ganforge_figures(evaluator, fake, real)
    theirs = library(fake, real, "inception-v3-compat", isc=True, feature_layer_prc="2048",
                     feature_extractor_weights_path=str(weights))
    assert_agree(ours, theirs)
    assert ours["is"] == pytest.approx(theirs["inception_score_mean"], rel=1e-6)


def test_inception_weights_are_looked_for_and_a_foreign_file_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(GanforgeError, match="Inception weights not found.*weights-inception-2015-12-05-6726825d.pth"
                                            ".*GANFORGE_INCEPTION_WEIGHTS"):
        evaluator_for("fid-inception")
    with pytest.raises(GanforgeError, match="--inception-weights .*missing.pth: no such file"):
        evaluator_for("fid-inception", weights=tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    with pytest.raises(GanforgeError, match="junk.pth: not the FID Inception's weights"):
        evaluator_for("fid-inception", weights=junk, expected_sha256=file_sha256(junk))


def test_torchvisions_inception_stays_available_marked_not_comparable(tmp_path: Path, monkeypatch) -> None:
    from torchvision.models import inception_v3

    path = tmp_path / "inception_v3_google.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    monkeypatch.setenv("GANFORGE_INCEPTION_WEIGHTS", str(path))
    evaluator = evaluator_for("torchvision-inception")
    features, logits = evaluator.embed(torch.rand(2, 1, 32, 32) * 2 - 1)  # grey images become RGB
    assert features.shape == (2, 2048) and logits is None and torch.isfinite(features).all()
    assert not evaluator.comparable and evaluator.sha256 == file_sha256(path)
    assert evaluator_for("inception-v3").name == "torchvision-inception"  # the old name still finds it
    path.write_bytes(b"junk")
    with pytest.raises(GanforgeError, match="inception_v3_google.pth: not torchvision Inception-v3 weights"):
        evaluator_for("torchvision-inception")


class PixelsPlugin:
    """An evaluator from a plugin: 4x4 average-pooled pixels, and a second one that clashes with a built-in name."""

    @hookimpl
    def ganforge_register_evaluators(self, register):
        def build(device, weights, expected):
            model = torch.nn.Sequential(torch.nn.AvgPool2d(7), torch.nn.Flatten()).to(device)
            return Evaluator("pixels", "ab" * 32, _Tuple(model), (1, 28, 28), None, 16)

        register(EvaluatorSpec("pixels", "pooled pixels", lambda d, w, e: build(d, w, e)))
        register(EvaluatorSpec("mnist-cnn", "an impostor", lambda d, w, e: build(d, w, e)))


class _Tuple(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.net(x.float()),)


def test_a_plugin_registers_an_evaluator_and_cannot_take_a_built_in_name() -> None:
    pm = make_plugin_manager(entry_points=False)
    pm.register(PixelsPlugin(), name="pixels-plugin")
    with pytest.warns(PluginWarning, match="'mnist-cnn' is registered twice"):
        catalog = load_catalog(pm)
    assert catalog.origin("evaluators", "pixels") == "plugin 'pixels-plugin'"
    evaluator = evaluator_for("pixels", catalog=catalog)
    data = load_mnist5k(DataConfig())
    reference = make_reference(data, "mnist5k", evaluator, 500)
    figures = score(embed_images(evaluator, data.images[500:1000]), reference, evaluator, BUILTIN_METRICS)
    assert figures["evaluator"] == "pixels" and figures["fid"] > 0 and "modes" not in figures  # no classes to read
    assert evaluator_for("mnist-cnn", catalog=catalog).feature_dim == 128  # the first registration stays
