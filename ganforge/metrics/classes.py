"""Class-level figures from an evaluator's predictions: mode coverage, conditional accuracy and its
breakdown by class."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

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


def confusion_matrix(predicted: torch.Tensor, requested: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``counts[i, j]``: samples asked for (or labelled) as class ``i`` that the evaluator reads as ``j``."""
    return torch.bincount(requested * num_classes + predicted, minlength=num_classes**2).view(num_classes, num_classes)


def per_class(confusion: torch.Tensor, real_confusion: torch.Tensor | None = None,
              names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One record per class: how many samples were asked for, the share read as asked, the same share
    for real images of the class (the evaluator's own ceiling there, when ``real_confusion`` is given),
    and the class the samples were most often read as instead, with its share.

    Conditional accuracy is one number; this says which classes G draws unrecognisably and what they
    look like instead (on Fashion-MNIST: sandals drawn as sneakers).
    """
    names = list(names) if names is not None else [str(i) for i in range(len(confusion))]
    records = []
    for i, row in enumerate(confusion.tolist()):
        asked = sum(row)
        wrong = [(count, j) for j, count in enumerate(row) if j != i]
        count, other = max(wrong) if wrong else (0, None)
        real = real_confusion[i].tolist() if real_confusion is not None else None
        records.append({
            "class": i,
            "name": names[i],
            "asked": asked,
            "accuracy": row[i] / asked if asked else None,
            "real_accuracy": real[i] / sum(real) if real and sum(real) else None,
            "most_read_as": names[other] if count else None,
            "most_read_as_share": count / asked if asked else None,
        })
    return records
