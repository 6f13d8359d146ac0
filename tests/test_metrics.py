"""Metric functions against cases with known answers, and the shipped evaluators' identity."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch

from ganforge.config import DataConfig
from ganforge.data import load_mnist5k
from ganforge.errors import GanforgeError
from ganforge.metrics import (
    conditional_accuracy,
    confusion_matrix,
    frechet_distance,
    kernel_inception_distance,
    mode_coverage,
    per_class,
    precision_recall,
    share_standard_error,
)
from ganforge.metrics.builtin import conditional
from ganforge.metrics.spec import Reference, Samples
from ganforge.metrics.builtin import BUILTIN_METRICS
from ganforge.metrics.evaluate import embed_images, make_reference, score
from ganforge.metrics.evaluators import _weights_dir, inception_evaluator, shipped_evaluator


def gaussian(n: int, mean: torch.Tensor, std: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(mean), generator=g, dtype=torch.float64) * std + mean


def test_identical_sets_give_fid_zero_and_kid_about_zero() -> None:
    x = gaussian(2000, torch.zeros(8), torch.ones(8), 0)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    kid, kid_std = kernel_inception_distance(x, x, subsets=20, subset_size=500)
    assert abs(kid) < 5 * kid_std + 1e-3


def test_fid_of_gaussians_matches_the_closed_form() -> None:
    # For diagonal covariances: ||mu_a - mu_b||^2 + sum (sigma_a - sigma_b)^2.
    mean_a, mean_b = torch.zeros(6, dtype=torch.float64), torch.tensor([1.0, -2, 0, 0.5, 0, 3], dtype=torch.float64)
    std_a, std_b = torch.ones(6, dtype=torch.float64), torch.tensor([2.0, 1, 0.5, 1, 3, 1], dtype=torch.float64)
    a, b = gaussian(200_000, mean_a, std_a, 1), gaussian(200_000, mean_b, std_b, 2)
    expected = float((mean_a - mean_b).square().sum() + (std_a - std_b).square().sum())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.01)


def test_the_matrix_square_root_handles_correlated_covariances() -> None:
    # Same covariance, shifted mean: the trace term cancels exactly, whatever the correlations.
    g = torch.Generator().manual_seed(3)
    mix = torch.randn(5, 5, generator=g, dtype=torch.float64)
    a = gaussian(50_000, torch.zeros(5), torch.ones(5), 4) @ mix
    shift = torch.tensor([0.5, 0.0, -1.0, 2.0, 0.0], dtype=torch.float64)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift.square().sum()), rel=1e-6)


def test_kid_grows_with_the_shift() -> None:
    x = gaussian(1000, torch.zeros(4), torch.ones(4), 5)
    near = kernel_inception_distance(x, x + 0.1, subsets=10, subset_size=500)[0]
    far = kernel_inception_distance(x, x + 1.0, subsets=10, subset_size=500)[0]
    assert 0 < near < far


def test_precision_and_recall_separate_quality_from_coverage() -> None:
    real = gaussian(2000, torch.zeros(2), torch.ones(2), 6)
    assert precision_recall(real, gaussian(2000, torch.zeros(2), torch.ones(2), 7)) > (0.9, 0.9)
    collapsed = gaussian(2000, torch.zeros(2), torch.full((2,), 0.05), 8)  # good samples, little variety
    precision, recall = precision_recall(real, collapsed)
    assert precision > 0.95 and recall < 0.2
    far = gaussian(2000, torch.full((2,), 20.0), torch.ones(2), 9)
    assert precision_recall(real, far) == (0.0, 0.0)


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


def test_shipped_evaluators_match_their_recorded_hash_and_accuracy() -> None:
    index = json.loads((_weights_dir() / "evaluators.json").read_text())
    assert "mnist-cnn" in index
    for name, record in index.items():
        blob = (_weights_dir() / f"{name}.pt").read_bytes()
        assert hashlib.sha256(blob).hexdigest() == record["sha256"]
        evaluator = shipped_evaluator(name)
        assert evaluator.sha256 == record["sha256"] and record["heldout_accuracy"] > 0.88


def test_real_digits_score_as_real_and_report_their_provenance() -> None:
    evaluator = shipped_evaluator("mnist-cnn")
    data = load_mnist5k(DataConfig())
    reference = make_reference(data, "mnist5k", evaluator, 2000, seed=0)
    others = data.images[torch.randperm(5000, generator=torch.Generator().manual_seed(1))[:2000]].float() / 127.5 - 1
    figures = score(embed_images(evaluator, others), reference, evaluator, BUILTIN_METRICS)
    assert figures["fid"] < 1.0 and figures["precision"] > 0.85 and figures["recall"] > 0.85 and figures["modes"] == 10
    assert figures["n"] == 2000 and figures["reference"] == "mnist5k/train, 2000 images, seed 0"
    assert figures["evaluator_sha256"] == evaluator.sha256
    noise = torch.rand(2000, 1, 28, 28) * 2 - 1
    assert score(embed_images(evaluator, noise), reference, evaluator, BUILTIN_METRICS)["fid"] > 50 * max(figures["fid"], 0.1)


def test_inception_needs_weights_and_says_how_to_get_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(GanforgeError, match="Inception-v3 weights not found.*GANFORGE_INCEPTION_WEIGHTS"):
        inception_evaluator()
    # Weights in torchvision's format load and give 2048-d pool features (random here, not ImageNet's).
    from torchvision.models import inception_v3

    path = tmp_path / "inception.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    monkeypatch.setenv("GANFORGE_INCEPTION_WEIGHTS", str(path))
    evaluator = inception_evaluator()
    features, logits = evaluator.embed(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert features.shape == (2, 2048) and logits is None and math.isfinite(float(features.sum()))
    path.write_bytes(b"junk")
    with pytest.raises(GanforgeError, match="inception.pth"):
        inception_evaluator()
