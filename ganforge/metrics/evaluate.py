"""Scoring a generator against a data set: every figure with its sample count, reference split and
evaluator hash, so that two figures are comparable exactly when those three agree."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import DatasetSpec, ImageData
from ..errors import GanforgeError
from ..nn import draw_latent
from .classes import confusion_matrix, per_class
from .evaluators import Evaluator, evaluator_for


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


def read_classes(logits: torch.Tensor | None, labels: torch.Tensor | None, num_classes: int | None) -> torch.Tensor | None:
    """The class the evaluator reads each image as, when it is a classifier over the data's own
    labelled classes; otherwise None (no class figure applies)."""
    if logits is None or labels is None or logits.shape[1] != num_classes:
        return None
    return logits.argmax(1)


def make_reference(data: ImageData, data_name: str, evaluator: Evaluator, n: int, seed: int = 0) -> Reference:
    """Embed ``n`` training images (all of them if fewer), chosen with ``seed``."""
    count = min(n, len(data.images))
    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed))[:count]
    real = data.images[idx].float().div(127.5).sub(1.0)
    features, logits = evaluator.embed(real)
    labels = data.labels[idx] if data.labels is not None else None
    return Reference(features, labels, data.num_classes, f"{data_name}/train, {count} images, seed {seed}",
                     read_classes(logits, labels, data.num_classes), data.class_names)


def class_figures(confusion: torch.Tensor, reference: Reference) -> dict[str, Any]:
    """``confusion`` (rows: the class asked for, columns: the class read) and each class's figures
    (``per_class``), with the evaluator's reading of the reference's real images beside them."""
    real = None
    if reference.predicted is not None:
        real = confusion_matrix(reference.predicted, reference.labels, reference.num_classes)
    return {"confusion": confusion.tolist(), "per_class": per_class(confusion, real, reference.class_names)}


@torch.no_grad()
def generate(generator: nn.Module, n: int, *, seed: int = 0, batch_size: int = 500, device: torch.device | str = "cpu",
             truncation: float | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples in [-1, 1] on the CPU, with the labels asked for (cycling through the classes);
    ``truncation`` draws the latent codes with the truncation trick (``draw_latent``)."""
    was_training = generator.training
    generator.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    classes = getattr(generator, "num_classes", None)
    labels = torch.arange(n, device=device) % classes if classes else None
    images = []
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        z = draw_latent(generator, size, truncation, device=device, generator=g)
        images.append(generator(z, None if labels is None else labels[start:start + size]).float().cpu())
    generator.train(was_training)
    return torch.cat(images), (labels.cpu() if labels is not None else None)


@dataclass(frozen=True)
class Samples:
    """The evaluator's view of generated images: features, class logits (classifiers only), and the
    classes they were generated for (conditional variants only)."""

    features: torch.Tensor
    logits: torch.Tensor | None
    requested: torch.Tensor | None


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: ``compute(samples, reference, seed)`` returns named figures, or nothing
    when it does not apply (e.g. mode coverage without class labels)."""

    name: str
    description: str
    compute: Callable[[Samples, Reference, int], Mapping[str, float]]
    aliases: tuple[str, ...] = ()


def score(images: torch.Tensor, requested: torch.Tensor | None, reference: Reference, evaluator: Evaluator,
          metrics: Iterable[MetricSpec], *, seed: int = 0, by_class: bool = False) -> dict[str, Any]:
    """Every registered metric that applies to these samples, with the figures' provenance;
    ``by_class``: also the confusion matrix and per-class figures of a conditional generator's samples."""
    features, logits = evaluator.embed(images)
    samples = Samples(features, logits, requested)
    result: dict[str, Any] = {}
    for metric in metrics:
        result.update(metric.compute(samples, reference, seed))
    if by_class and requested is not None:
        predicted = read_classes(logits, reference.labels, reference.num_classes)
        if predicted is not None:
            result.update(class_figures(confusion_matrix(predicted, requested, reference.num_classes), reference))
    result.update({
        "n": len(images),
        "reference": reference.description,
        "evaluator": evaluator.name,
        "evaluator_sha256": evaluator.sha256,
    })
    return result


class Evaluation:
    """Scoring a generator against a data set: the evaluator and reference features are made once,
    so training can score again and again (``ganforge eval`` once, or ``--repeats`` times)."""

    def __init__(self, dataset: DatasetSpec, data: ImageData, metrics: Iterable[MetricSpec], n: int, seed: int,
                 device: torch.device, inception_weights: Path | None = None) -> None:
        if dataset.evaluator is None:
            raise GanforgeError(f"data set {dataset.name!r} names no evaluator; ganforge cannot score it")
        self.evaluator = evaluator_for(dataset.evaluator, device, inception_weights)
        self.reference = make_reference(data, dataset.name, self.evaluator, n, seed)
        self.metrics = list(metrics)
        self.n, self.seed, self.device = n, seed, device

    def run(self, generator: nn.Module, truncation: float | None = None, *, sample_seed: int | None = None,
            by_class: bool = False) -> dict[str, Any]:
        """Score ``n`` samples drawn with ``sample_seed`` (default: the reference's seed); ``by_class``
        as in :func:`score`."""
        seed = self.seed if sample_seed is None else sample_seed
        images, requested = generate(generator, self.n, seed=seed, device=self.device, truncation=truncation)
        return score(images, requested, self.reference, self.evaluator, self.metrics, seed=seed, by_class=by_class)

    def repeat(self, generator: nn.Module, repeats: int, truncation: float | None = None, *,
               by_class: bool = False) -> dict[str, Any]:
        """Score ``repeats`` independent sample sets against the one reference: each figure's mean, its
        standard deviation across the sets (``<name>_sd``: how far one evaluation's figure moves with
        the samples alone), and every set's figures under ``per_repeat``; per-class figures
        (``by_class``) count the samples of all sets together."""
        if repeats < 2:
            raise GanforgeError(f"repeats={repeats}: a spread needs at least 2 sample sets; use run() for one")
        runs = [self.run(generator, truncation, sample_seed=self.seed + k, by_class=by_class) for k in range(repeats)]
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
