"""Scoring a generator against a data set: every figure with its protocol, sample count, reference
split, evaluator hash and resize, so that two figures are comparable exactly when those agree."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import DatasetSpec, ImageSet
from ..errors import GanforgeError
from ..nn import Generator
from ..resources import require_memory
from ..sampling import CHUNK, generate_chunks
from .classes import confusion_matrix, per_class
from .evaluators import Evaluator, evaluator_for
from .protocols import Protocol, cache_key, custom, load_cached, store
from .spec import MetricSpec, Reference, Samples, read_classes


def make_reference(data: ImageSet, data_name: str, evaluator: Evaluator, n: int | None, seed: int = 0, *,
                   protocol: str | None = None) -> Reference:
    """Embed ``n`` training images (all of them where None or fewer), chosen with ``seed``, a chunk at a
    time; with a ``protocol`` name, cached under the data's content hash, the evaluator and the protocol."""
    count = len(data) if n is None else min(n, len(data))
    description = f"{data_name}/train, {count} images" + ("" if count == len(data) else f", seed {seed}")
    key = cache_key(data.fingerprint(), evaluator.sha256, protocol, seed) if protocol is not None else None
    cached = load_cached(key) if key is not None else None
    if cached is not None:
        features, logits, labels = cached["features"], cached.get("logits"), cached.get("labels")
    else:
        idx = (torch.arange(count) if count == len(data)  # every image, in the data's order, as torch-fidelity reads them
               else torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count])
        features, logits = _embed_all(evaluator, (data.read(part) for part in idx.split(CHUNK)))
        labels = data.labels[idx] if data.labels is not None else None
        if key is not None:
            store(key, {"features": features, "logits": logits, "labels": labels})
    class_logits = logits if evaluator.logits_are_classes else None
    return Reference(features, labels, data.num_classes, description, read_classes(class_logits, labels, data.num_classes),
                     data.class_names)


def class_figures(confusion: torch.Tensor, reference: Reference) -> dict[str, Any]:
    """``confusion`` (rows: the class asked for, columns: the class read) and each class's figures
    (``per_class``), with the evaluator's reading of the reference's real images beside them."""
    real = None
    if reference.predicted is not None:
        real = confusion_matrix(reference.predicted, reference.labels, reference.num_classes)
    return {"confusion": confusion.tolist(), "per_class": per_class(confusion, real, reference.class_names)}


def _embed_all(evaluator: Evaluator, chunks: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features and logits of every image in ``chunks``, keeping only those (not the images)."""
    features, logits = [], []
    for images in chunks:
        f, lg = evaluator.embed(images)
        features.append(f)
        if lg is not None:
            logits.append(lg)
    return torch.cat(features), (torch.cat(logits) if logits else None)


def _samples(evaluator: Evaluator, features: torch.Tensor, logits: torch.Tensor | None,
             requested: torch.Tensor | None) -> Samples:
    if evaluator.logits_are_classes:
        return Samples(features, logits, requested)
    return Samples(features, None, requested, unbiased_logits=logits)


def embed_images(evaluator: Evaluator, images: torch.Tensor, requested: torch.Tensor | None = None) -> Samples:
    """The evaluator's view of ``images`` (uint8, or float in [-1, 1]), generated for the classes ``requested`` if any."""
    features, logits = _embed_all(evaluator, images.split(CHUNK))
    return _samples(evaluator, features, logits, requested)


def embed_samples(generator: Generator, evaluator: Evaluator, n: int, *, seed: int = 0,
                  truncation: float | None = None, psi: float | None = None) -> Samples:
    """The evaluator's view of ``n`` images drawn from ``generator`` (:func:`ganforge.sampling.generate_chunks`):
    generated, embedded and dropped a chunk at a time, so memory holds features, not images."""
    requested: list[torch.Tensor] = []

    def images() -> Iterator[torch.Tensor]:
        for chunk, labels in generate_chunks(generator, n, seed=seed, truncation=truncation, psi=psi):
            if labels is not None:
                requested.append(labels.cpu())
            yield chunk

    features, logits = _embed_all(evaluator, images())
    return _samples(evaluator, features, logits, torch.cat(requested) if requested else None)


def score(samples: Samples, reference: Reference, evaluator: Evaluator, metrics: Iterable[MetricSpec], *,
          seed: int = 0, by_class: bool = False, protocol: str | None = None) -> dict[str, Any]:
    """Every registered metric that applies to these samples, with the figures' provenance;
    ``by_class``: also the confusion matrix and per-class figures of a conditional generator's samples."""
    requested, logits = samples.requested, samples.logits
    result: dict[str, Any] = {}
    for metric in metrics:
        result.update(metric.compute(samples, reference, seed))
    if by_class and requested is not None:
        predicted = read_classes(logits, reference.labels, reference.num_classes)
        if predicted is not None:
            result.update(class_figures(confusion_matrix(predicted, requested, reference.num_classes), reference))
    result.update({
        "n": len(samples.features),
        "reference": reference.description,
        "evaluator": evaluator.name,
        "evaluator_sha256": evaluator.sha256,
        "comparable_with_published": evaluator.comparable,
        "resize": evaluator.resize,
        **({"protocol": protocol} if protocol else {}),
    })
    return result


class Evaluation:
    """Scoring a generator against a data set: the evaluator and reference features are made once,
    so training can score again and again (``ganforge eval`` once, or ``--repeats`` times).

    ``evaluator`` names the evaluator (default: the data set's); ``protocol`` fixes the number of
    samples and reference images (default: ``n`` of each) and caches the reference's features.
    """

    def __init__(self, dataset: DatasetSpec, data: ImageSet, metrics: Iterable[MetricSpec], n: int, seed: int,
                 device: torch.device, inception_weights: Path | None = None, *, evaluator: str | None = None,
                 protocol: Protocol | None = None, expected_sha256: str | None = None) -> None:
        name = evaluator or dataset.evaluator
        if name is None:
            raise GanforgeError(f"data set {dataset.name!r} names no evaluator; ganforge cannot score it (pick one "
                                "with --evaluator, see `ganforge evaluators`)")
        self.evaluator = evaluator_for(name, device, inception_weights, expected_sha256=expected_sha256)
        self.protocol = protocol or custom(n)
        n, reference = self.protocol.samples, self.protocol.reference
        per_image = (self.evaluator.feature_dim + (self.evaluator.num_classes or 1008)) * 4
        count = len(data) if reference is None else min(reference, len(data))
        require_memory(2 * (n + count) * per_image, f"scoring {n} samples", torch.device("cpu"),
                       "score fewer (--n, or --set eval_samples=N while training)")
        self.reference = make_reference(data, dataset.name, self.evaluator, reference, seed,
                                        protocol=None if protocol is None else self.protocol.name)
        self.metrics = list(metrics)
        self.n, self.seed, self.device = n, seed, device

    def run(self, generator: nn.Module, truncation: float | None = None, *, sample_seed: int | None = None,
            by_class: bool = False, psi: float | None = None) -> dict[str, Any]:
        """Score ``n`` samples drawn with ``sample_seed`` (default: the reference's seed); ``by_class``
        as in :func:`score`."""
        seed = self.seed if sample_seed is None else sample_seed
        samples = embed_samples(generator, self.evaluator, self.n, seed=seed, truncation=truncation, psi=psi)
        return score(samples, self.reference, self.evaluator, self.metrics, seed=seed, by_class=by_class,
                     protocol=self.protocol.name)

    def repeat(self, generator: nn.Module, repeats: int, truncation: float | None = None, *,
               by_class: bool = False, psi: float | None = None) -> dict[str, Any]:
        """Score ``repeats`` independent sample sets against the one reference: each figure's mean, its
        standard deviation across the sets (``<name>_sd``: how far one evaluation's figure moves with
        the samples alone), and every set's figures under ``per_repeat``; per-class figures
        (``by_class``) count the samples of all sets together."""
        if repeats < 2:
            raise GanforgeError(f"repeats={repeats}: a spread needs at least 2 sample sets; use run() for one")
        runs = [self.run(generator, truncation, sample_seed=self.seed + k, by_class=by_class, psi=psi) for k in range(repeats)]
        summary: dict[str, Any] = {}
        for key, first in runs[0].items():
            values = [r[key] for r in runs]
            if key == "confusion":
                summary.update(class_figures(torch.tensor(values).sum(0), self.reference))
            elif key == "per_class":
                continue
            elif isinstance(first, (int, float)) and key != "n":
                summary[key] = statistics.fmean(values)
                if not key.endswith(("_std", "_se")):  # already a spread: its mean is what to report
                    summary[f"{key}_sd"] = statistics.stdev(values)
            else:
                summary[key] = first
        return {**summary, "repeats": repeats, "per_repeat": runs}
