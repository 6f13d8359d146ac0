"""An exponential moving average of the generator's weights (Karras et al. 2018; Yazıcı et al. 2019).

Sampled from instead of G when enabled, it smooths out the last steps' oscillations once training
has settled. Before that it does harm: averaging generators whose weights still move by their own
size every few hundred steps gives one that draws grey blurs (docs/benchmarks.md: the mlp after
1,560 steps scores cFID 2,603 from its average, 189 from G itself). So, as in BigGAN and StudioGAN,
the average only starts at step ``start``; until then it is a copy of G.

One fused ``lerp`` (or copy) over all parameters per step and no host sync (torch's AveragedModel
reads a device counter every step, which stalls a CUDA stream).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """``module`` holds the averaged copy of ``model``; ``update(step)`` moves it towards ``model`` by ``1 - decay``."""

    def __init__(self, model: nn.Module, decay: float, start: int = 0) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay
        self.start = start
        # Plain lists, not a module attribute (which would enter the state dict); collected once,
        # because walking the module tree every step costs more than the update itself on small models.
        # The Parameter objects themselves (not detached views), so they stay valid if the model's
        # tensors are moved or reloaded in place.
        self._pairs = (
            list(self.module.parameters()), list(model.parameters()),
            list(self.module.buffers()), list(model.buffers()),
        )

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold in the model's weights after training step ``step`` (1 for the first): copy them up to ``start``.

        The step comes from the trainer rather than a counter of this object's own, so a resumed run,
        which restores the step, continues the same average.
        """
        mine, theirs, own_buffers, their_buffers = self._pairs
        if step <= self.start:
            torch._foreach_copy_(mine, theirs)
        else:
            torch._foreach_lerp_(mine, theirs, 1.0 - self.decay)
        # Buffers (batch-norm statistics) are already running averages: take the model's.
        if own_buffers:
            torch._foreach_copy_(own_buffers, their_buffers)
