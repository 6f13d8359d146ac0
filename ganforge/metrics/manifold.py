"""Precision and recall as k-NN manifold membership (Kynkäänniemi et al. 2019)."""

from __future__ import annotations

import torch


def _radii(features: torch.Tensor, k: int) -> torch.Tensor:
    # Distance to the k-th nearest neighbour other than the point itself.
    distances = torch.cdist(features, features)
    return distances.kthvalue(k + 1, dim=1).values


def _inside(points: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    hits = [(torch.cdist(part, support) <= radii[None, :]).any(dim=1) for part in points.split(chunk)]
    return torch.cat(hits)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Precision: share of fakes inside the real manifold; recall: share of reals inside the fake one.

    Each manifold is the union of balls around its points reaching their k-th nearest neighbour.
    """
    real, fake = real.double(), fake.double()
    precision = _inside(fake, real, _radii(real, k)).double().mean()
    recall = _inside(real, fake, _radii(fake, k)).double().mean()
    return float(precision), float(recall)
