"""Class-level figures from an evaluator's predictions: mode coverage and conditional accuracy."""

from __future__ import annotations

import math

import torch

COVERED_SHARE = 0.1
"""A class counts as covered when it takes at least this fraction of its uniform share of samples."""


def mode_coverage(predicted: torch.Tensor, real_labels: torch.Tensor, num_classes: int) -> tuple[int, float]:
    """(classes covered, KL(fake class histogram || real class histogram)).

    A class is covered when at least ``COVERED_SHARE / num_classes`` of the samples are classified as
    it; the KL uses add-one smoothing so that a missing class gives a large but finite value.
    """
    fake = torch.bincount(predicted, minlength=num_classes).double()
    real = torch.bincount(real_labels, minlength=num_classes).double()
    covered = int((fake / fake.sum() >= COVERED_SHARE / num_classes).sum())
    p = (fake + 1) / (fake.sum() + num_classes)
    q = (real + 1) / (real.sum() + num_classes)
    return covered, float((p * (p / q).log()).sum())


def conditional_accuracy(predicted: torch.Tensor, requested: torch.Tensor) -> float:
    """Share of samples that the evaluator classifies as the class they were generated for."""
    return float((predicted == requested).double().mean())


def share_standard_error(share: float, n: int) -> float:
    """Standard error of a share measured on ``n`` independent samples, sqrt(p (1 - p) / n).

    It is the sampling noise of one evaluation (at 90% and 5,000 samples, 0.4 points): two runs whose
    conditional accuracies differ by less than a few of these have not been told apart. For samples
    asked for in equal numbers per class, as ``ganforge eval`` draws them, it is an upper bound.
    """
    return math.sqrt(share * (1.0 - share) / n)
