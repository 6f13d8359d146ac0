"""ganforge's own metrics, registered through ``ganforge_register_metrics`` like any plugin's.

The distances come from torch-fidelity, the library whose implementations published figures are
checked against: Fréchet distance, kernel distance, k-NN precision and recall, Inception Score.
ganforge adds what it lacks: mode coverage and conditional accuracy, with standard errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from ..hookspecs import hookimpl
from .classes import conditional_accuracy, mode_coverage, share_standard_error
from .spec import MetricSpec, Reference, Samples, read_classes

PR_POINTS = 5000
"""Precision/recall compare at most this many points per side (pairwise distances grow as N^2)."""
KID_SUBSET = 1000
"""Images per side in each of KID's 100 subsets (fewer where a side has fewer)."""


def fid(samples: Samples, reference: Reference, seed: int) -> Mapping[str, float]:
    stats = fid_features_to_statistics(samples.features)
    return {"fid": float(fid_statistics_to_metric(stats, reference.statistics(), verbose=False)["frechet_inception_distance"])}


def kid(samples: Samples, reference: Reference, seed: int) -> Mapping[str, float]:
    size = min(KID_SUBSET, len(samples.features), len(reference.features))
    out = kid_features_to_metric(samples.features, reference.features, kid_subset_size=size, rng_seed=seed, verbose=False)
    return {"kid": out["kernel_inception_distance_mean"], "kid_std": out["kernel_inception_distance_std"]}


def manifold(samples: Samples, reference: Reference, seed: int) -> Mapping[str, float]:
    out = prc_features_to_metric(samples.features[:PR_POINTS], reference.features[:PR_POINTS], verbose=False,
                                 save_cpu_ram=False)
    return {"precision": float(out["precision"]), "recall": float(out["recall"])}


def inception_score(samples: Samples, reference: Reference, seed: int) -> Mapping[str, float]:
    if samples.unbiased_logits is None:
        return {}
    out = isc_features_to_metric(samples.unbiased_logits, rng_seed=seed)
    return {"is": out["inception_score_mean"], "is_std": out["inception_score_std"]}


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
    MetricSpec("fid", "Fréchet distance between sample and reference features (torch-fidelity; cFID on a classifier)", fid),
    MetricSpec("kid", "kernel distance, mean and std over 100 subsets of 1,000 (Bińkowski et al. 2018; torch-fidelity)", kid),
    MetricSpec("precision-recall", "k-NN manifold precision and recall, k=3 (Kynkäänniemi et al. 2019; torch-fidelity)",
               manifold),
    MetricSpec("inception-score", "Inception Score over 10 splits, with the FID Inception only (torch-fidelity)",
               inception_score),
    MetricSpec("modes", "classes the evaluator finds among samples, and KL from the real histogram", modes),
    MetricSpec("conditional-accuracy", "share of samples classified as the class asked for, and its standard error", conditional),
)


@hookimpl
def ganforge_register_metrics(register: Callable[..., None]) -> None:
    for metric in BUILTIN_METRICS:
        register(metric)
