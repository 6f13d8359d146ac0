"""The residual blocks, conditional batch norm and self-attention that SNGAN and BigGAN are built of.

G's blocks (He et al. 2016, as Miyato et al. 2018 use them): BN, ReLU, 2x nearest upsampling, 3x3
convolution, BN, ReLU, 3x3 convolution, plus an upsampled 1x1 convolution of the input. D's blocks:
ReLU, 3x3, ReLU, 3x3, 2x2 average pooling where the block halves the side, plus a 1x1 convolution
of the input (pooled); D's first block is the "optimised" one, without the leading ReLU. Every D
layer is spectrally normalised, as are BigGAN's G layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

Norm = Callable[[int], nn.Module]


def sn(module: nn.Module, on: bool = True) -> nn.Module:
    """``module`` under spectral normalisation (Miyato et al. 2018) when ``on``."""
    return spectral_norm(module) if on else module


def init_xavier(module: nn.Module, gain: float) -> nn.Module:
    """Xavier-uniform weights (the raw weight under spectral norm) and zero biases."""
    weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
    nn.init.xavier_uniform_(weight, gain)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


def conv(cin: int, cout: int, kernel: int, *, spectral: bool, gain: float = 1.0) -> nn.Module:
    return sn(init_xavier(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), gain), spectral)


class ConditionalNorm(nn.Module):
    """Batch norm without its own affine transform, whose gain and bias come from a condition: a class
    label looked up in embeddings (SNGAN, de Vries et al. 2017), or a vector through linear maps (BigGAN)."""

    def __init__(self, channels: int, classes: int | None = None, condition_dim: int | None = None,
                 spectral: bool = False) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        if condition_dim is not None:
            self.gain = sn(nn.Linear(condition_dim, channels, bias=False), spectral)
            self.bias = sn(nn.Linear(condition_dim, channels, bias=False), spectral)
            for m in (self.gain, self.bias):
                init_xavier(m, 1.0)
        else:
            self.gain = nn.Embedding(classes, channels)  # type: ignore[arg-type]
            self.bias = nn.Embedding(classes, channels)  # type: ignore[arg-type]
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        gain = 1 + self.gain(condition)
        return self.norm(x) * gain[:, :, None, None] + self.bias(condition)[:, :, None, None]


class GBlock(nn.Module):
    """G's residual block, doubling the side; conditional where its norms are."""

    def __init__(self, cin: int, cout: int, norm: Norm, *, spectral: bool) -> None:
        super().__init__()
        self.b1, self.b2 = norm(cin), norm(cout)
        self.c1 = conv(cin, cout, 3, spectral=spectral, gain=math.sqrt(2))
        self.c2 = conv(cout, cout, 3, spectral=spectral, gain=math.sqrt(2))
        self.shortcut = conv(cin, cout, 1, spectral=spectral)

    def _norm(self, layer: nn.Module, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        return layer(x, condition) if isinstance(layer, ConditionalNorm) else layer(x)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(self._norm(self.b1, x, condition)), scale_factor=2, mode="nearest")
        h = self.c2(F.relu(self._norm(self.b2, self.c1(h), condition)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """D's residual block, halving the side where ``down``; ``first``: the optimised first block."""

    def __init__(self, cin: int, cout: int, *, down: bool, first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.c1 = conv(cin, cout, 3, spectral=True, gain=math.sqrt(2))
        self.c2 = conv(cout, cout, 3, spectral=True, gain=math.sqrt(2))
        self.shortcut = conv(cin, cout, 1, spectral=True) if (cin != cout or down or first) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.c2(F.relu(self.c1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.shortcut is None:
            return h + x
        if self.first:  # pool, then project: the optimised block's cheaper order
            return h + self.shortcut(F.avg_pool2d(x, 2) if self.down else x)
        skip = self.shortcut(x)
        return h + (F.avg_pool2d(skip, 2) if self.down else skip)


class SelfAttention(nn.Module):
    """Non-local self-attention (Zhang et al. 2019, SAGAN), as BigGAN places it at one resolution; it
    starts as the identity (gamma = 0) and learns how much to attend."""

    def __init__(self, channels: int, *, spectral: bool) -> None:
        super().__init__()
        key = max(1, channels // 8)
        value = max(1, channels // 2)
        self.theta = sn(init_xavier(nn.Conv2d(channels, key, 1, bias=False), 1.0), spectral)
        self.phi = sn(init_xavier(nn.Conv2d(channels, key, 1, bias=False), 1.0), spectral)
        self.g = sn(init_xavier(nn.Conv2d(channels, value, 1, bias=False), 1.0), spectral)
        self.o = sn(init_xavier(nn.Conv2d(value, channels, 1, bias=False), 1.0), spectral)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        theta = self.theta(x).flatten(2)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)
        g = F.max_pool2d(self.g(x), 2).flatten(2)
        attention = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)
        o = self.o((g @ attention.transpose(1, 2)).view(b, -1, h, w))
        return x + self.gamma * o


def side_error(name: str, side: int, sides: tuple[int, ...]) -> str:
    return (f"{name} builds {', '.join(map(str, sides[:-1]))} or {sides[-1]} px square images, not {side}; "
            f"pass --image-size {min(sides, key=lambda s: abs(s - side))}")
