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
    """``module`` holds the averaged copy of ``model``; ``update()`` moves it towards ``model`` by ``1 - decay``."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay
        # Plain lists, not a module attribute (which would enter the state dict); collected once,
        # because walking the module tree every step costs more than the update itself on small models.
        # The Parameter objects themselves (not detached views), so they stay valid if the model's
        # tensors are moved or reloaded in place.
        self._pairs = (
            list(self.module.parameters()), list(model.parameters()),
            list(self.module.buffers()), list(model.buffers()),
        )

    @torch.no_grad()
    def update(self) -> None:
        mine, theirs, own_buffers, their_buffers = self._pairs
        torch._foreach_lerp_(mine, theirs, 1.0 - self.decay)
        # Buffers (batch-norm statistics) are already running averages: take the model's.
        if own_buffers:
            torch._foreach_copy_(own_buffers, their_buffers)
