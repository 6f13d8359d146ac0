"""Scoring a generator against a data set: every figure with its sample count, reference split and
evaluator hash, so that two figures are comparable exactly when those three agree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data import DatasetSpec, ImageData
from ..errors import GanforgeError
from .classes import conditional_accuracy, mode_coverage
from .distances import frechet_distance, kernel_inception_distance
from .evaluators import Evaluator, evaluator_for
from .manifold import precision_recall

PR_POINTS = 5000
"""Precision/recall compare at most this many points per side (pairwise distances grow as N^2)."""


@dataclass
class Reference:
    """The evaluator's view of the real data: features, class labels, and a description of the split."""

    features: torch.Tensor
    labels: torch.Tensor | None
    num_classes: int | None
    description: str


def make_reference(data: ImageData, data_name: str, evaluator: Evaluator, n: int, seed: int = 0) -> Reference:
    """Embed ``n`` training images (all of them if fewer), chosen with ``seed``."""
    count = min(n, len(data.images))
    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed))[:count]
    real = data.images[idx].float().div(127.5).sub(1.0)
    features, _ = evaluator.embed(real)
    labels = data.labels[idx] if data.labels is not None else None
    return Reference(features, labels, data.num_classes, f"{data_name}/train, {count} images, seed {seed}")


@torch.no_grad()
def generate(generator: nn.Module, n: int, *, seed: int = 0, batch_size: int = 500,
             device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples in [-1, 1] on the CPU, with the labels asked for (cycling through the classes)."""
    was_training = generator.training
    generator.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    classes = getattr(generator, "num_classes", None)
    labels = torch.arange(n, device=device) % classes if classes else None
    images = []
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        z = generator.sample_latent(size, device=device, generator=g)
        images.append(generator(z, None if labels is None else labels[start:start + size]).float().cpu())
    generator.train(was_training)
    return torch.cat(images), (labels.cpu() if labels is not None else None)


def score(images: torch.Tensor, requested: torch.Tensor | None, reference: Reference, evaluator: Evaluator,
          *, seed: int = 0) -> dict[str, Any]:
    """Every metric that applies to these samples, with its provenance."""
    features, logits = evaluator.embed(images)
    kid, kid_std = kernel_inception_distance(features, reference.features, subset_size=1000, seed=seed)
    precision, recall = precision_recall(reference.features[:PR_POINTS], features[:PR_POINTS])
    result: dict[str, Any] = {
        "fid": frechet_distance(features, reference.features),
        "kid": kid,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
    }
    classes_match = logits is not None and reference.labels is not None and logits.shape[1] == reference.num_classes
    if classes_match:
        predicted = logits.argmax(1)
        result["modes"], result["modes_kl"] = mode_coverage(predicted, reference.labels, reference.num_classes)
        if requested is not None:
            result["conditional_accuracy"] = conditional_accuracy(predicted, requested)
    result.update({
        "n": len(images),
        "reference": reference.description,
        "evaluator": evaluator.name,
        "evaluator_sha256": evaluator.sha256,
    })
    return result


class Evaluation:
    """Repeated scoring during training: the evaluator and reference features are made once."""

    def __init__(self, dataset: DatasetSpec, data: ImageData, n: int, seed: int, device: torch.device) -> None:
        if dataset.evaluator is None:
            raise GanforgeError(f"data set {dataset.name!r} names no evaluator, so eval_every cannot score it")
        self.evaluator = evaluator_for(dataset.evaluator, device)
        self.reference = make_reference(data, dataset.name, self.evaluator, n, seed)
        self.n, self.seed, self.device = n, seed, device

    def run(self, generator: nn.Module) -> dict[str, Any]:
        images, requested = generate(generator, self.n, seed=self.seed, device=self.device)
        return score(images, requested, self.reference, self.evaluator, seed=self.seed)
