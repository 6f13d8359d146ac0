"""An exponential moving average of the generator's weights (Karras et al. 2018; Yazıcı et al. 2019).

Sampled from instead of G when enabled, it smooths out the last steps' oscillations. One fused
``lerp`` over all parameters per step and no host sync (torch's AveragedModel reads a device
counter every step, which stalls a CUDA stream).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """``module`` holds the averaged copy; ``update(model)`` moves it towards ``model`` by ``1 - decay``."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        mine = list(self.module.parameters())
        theirs = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(mine, theirs, 1.0 - self.decay)
        # Buffers (batch-norm statistics) are already running averages: take the model's.
        for own, other in zip(self.module.buffers(), model.buffers()):
            own.copy_(other)
