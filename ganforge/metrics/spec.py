"""What a metric is given and what it registers: the evaluator's view of samples and of real data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Reference:
    """The evaluator's view of the real data: features, class labels, and a description of the split;
    for labelled data and a classifier, also the classes it reads the real images as, and the names."""

    features: torch.Tensor
    labels: torch.Tensor | None
    num_classes: int | None
    description: str
    predicted: torch.Tensor | None = None
    class_names: tuple[str, ...] | None = None
    _statistics: dict[str, Any] | None = field(default=None, repr=False)

    def statistics(self) -> dict[str, Any]:
        """The features' mean and covariance as torch-fidelity's FID takes them, computed once."""
        if self._statistics is None:
            from torch_fidelity.metric_fid import fid_features_to_statistics

            self._statistics = fid_features_to_statistics(self.features)
        return self._statistics


def read_classes(logits: torch.Tensor | None, labels: torch.Tensor | None, num_classes: int | None) -> torch.Tensor | None:
    """The class the evaluator reads each image as, when it is a classifier over the data's own
    labelled classes; otherwise None (no class figure applies)."""
    if logits is None or labels is None or logits.shape[1] != num_classes:
        return None
    return logits.argmax(1)


@dataclass(frozen=True)
class Samples:
    """The evaluator's view of generated images: features, class logits (classifiers only), and the
    classes they were generated for (conditional variants only)."""

    features: torch.Tensor
    logits: torch.Tensor | None
    requested: torch.Tensor | None
    unbiased_logits: torch.Tensor | None = None
    """The FID Inception's 1008 ImageNet logits, for the Inception Score (None with other evaluators)."""


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: ``compute(samples, reference, seed)`` returns named figures, or nothing
    when it does not apply (e.g. mode coverage without class labels)."""

    name: str
    description: str
    compute: Callable[[Samples, Reference, int], Mapping[str, float]]
    aliases: tuple[str, ...] = ()
