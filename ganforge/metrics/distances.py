"""Distances between two sets of features: Fréchet distance and kernel (Inception) distance."""

from __future__ import annotations

import torch


def _sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2) for features (N, D) and (M, D).

    Computed in float64 with symmetric eigendecompositions: the symmetric form has the same trace as
    (S_a S_b)^1/2 and, unlike scipy's general ``sqrtm``, never produces complex parts from round-off.
    """
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    root_a = _sqrtm_psd(cov_a)
    cross = _sqrtm_psd(root_a @ cov_b @ root_a)
    value = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross.trace()
    return float(value.clamp_min(0))


def _polynomial_mmd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m = x.shape[0]
    return ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
            + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
            - 2 * kxy.mean())


def kernel_inception_distance(a: torch.Tensor, b: torch.Tensor, *, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): unbiased MMD^2 with the kernel (x.y/d + 1)^3, mean and standard
    deviation over random subsets of ``subset_size`` (capped by the smaller set)."""
    a, b = a.double(), b.double()
    size = min(subset_size, len(a), len(b))
    g = torch.Generator().manual_seed(seed)
    values = torch.stack([
        _polynomial_mmd(a[torch.randperm(len(a), generator=g)[:size]], b[torch.randperm(len(b), generator=g)[:size]])
        for _ in range(subsets)
    ])
    return float(values.mean()), float(values.std())
