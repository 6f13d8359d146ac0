"""ganforge's own metrics, registered through ``ganforge_register_metrics`` like any plugin's."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from ..hookspecs import hookimpl
from .classes import conditional_accuracy, mode_coverage, share_standard_error
from .distances import frechet_distance, kernel_inception_distance
from .spec import MetricSpec, Reference, Samples, read_classes
from .manifold import precision_recall

PR_POINTS = 5000
"""Precision/recall compare at most this many points per side (pairwise distances grow as N^2)."""


def fid(samples: Samples, reference: Reference, seed: int) -> Mapping[str, float]:
    return {"fid": frechet_distance(samples.features, reference.features)}


def kid(samples: Samples, reference: Reference, seed: int) -> Mapping[str, float]:
    mean, std = kernel_inception_distance(samples.features, reference.features, subset_size=1000, seed=seed)
    return {"kid": mean, "kid_std": std}


def manifold(samples: Samples, reference: Reference, seed: int) -> Mapping[str, float]:
    precision, recall = precision_recall(reference.features[:PR_POINTS], samples.features[:PR_POINTS])
    return {"precision": precision, "recall": recall}


def _predicted(samples: Samples, reference: Reference) -> torch.Tensor | None:
    return read_classes(samples.logits, reference.labels, reference.num_classes)


def modes(samples: Samples, reference: Reference, seed: int) -> Mapping[str, float]:
    predicted = _predicted(samples, reference)
    if predicted is None:
        return {}
    covered, kl = mode_coverage(predicted, reference.labels, reference.num_classes)
    return {"modes": covered, "modes_kl": kl}


def conditional(samples: Samples, reference: Reference, seed: int) -> Mapping[str, float]:
    predicted = _predicted(samples, reference)
    if predicted is None or samples.requested is None:
        return {}
    accuracy = conditional_accuracy(predicted, samples.requested)
    return {"conditional_accuracy": accuracy,
            "conditional_accuracy_se": share_standard_error(accuracy, len(samples.requested))}


BUILTIN_METRICS = (
    MetricSpec("fid", "Fréchet distance between sample and reference features (cFID on a classifier)", fid),
    MetricSpec("kid", "kernel distance, mean and std over subsets of 1,000 (Bińkowski et al. 2018)", kid),
    MetricSpec("precision-recall", "k-NN manifold precision and recall, k=3 (Kynkäänniemi et al. 2019)", manifold),
    MetricSpec("modes", "classes the evaluator finds among samples, and KL from the real histogram", modes),
    MetricSpec("conditional-accuracy", "share of samples classified as the class asked for, and its standard error", conditional),
)


@hookimpl
def ganforge_register_metrics(register: Callable[..., None]) -> None:
    for metric in BUILTIN_METRICS:
        register(metric)
