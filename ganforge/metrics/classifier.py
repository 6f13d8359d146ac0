"""The small convolutional classifier that ganforge's digit and fashion evaluators are built on.

Its 128-d pooled features feed the Fréchet distance, KID and precision/recall; its logits feed mode
coverage and conditional accuracy. Trained by ``scripts/train_evaluators.py``.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class EvalClassifier(nn.Module):
    """28x28 grey images in [-1, 1] -> (features (B, 128), logits (B, num_classes))."""

    feature_dim = 128

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_block(1, 32), *_block(32, 32), nn.MaxPool2d(2),
            *_block(32, 64), *_block(64, 64), nn.MaxPool2d(2),
            *_block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.feature_dim, num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return features, self.head(features)


def _residual(channels: int) -> nn.Module:
    return nn.Sequential(nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
                         nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = _residual(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CrossClassifier(nn.Module):
    """A second, independently trained evaluator for the digit and fashion data: another architecture
    (residual blocks, group norm, SiLU, strided convolutions) on another split, with 96-d features.
    A change counts as an improvement only when this one agrees with the first."""

    feature_dim = 96

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 48, 3, padding=1), _Residual(48), nn.Conv2d(48, 96, 4, stride=2, padding=1),
            _Residual(96), nn.Conv2d(96, 96, 4, stride=2, padding=1), _Residual(96),
            nn.GroupNorm(8, 96), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return features, self.head(features)
