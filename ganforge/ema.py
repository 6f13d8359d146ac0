"""An exponential moving average of the generator's weights (Karras et al. 2018; Yazıcı et al. 2019).

Sampled from instead of G when enabled, it smooths out the last steps' oscillations once training
has settled. Before that it does harm: averaging generators whose weights still move by their own
size every few hundred steps gives one that draws grey blurs. So, as in BigGAN and StudioGAN, the
average only starts at step ``start``; until then it is a copy of G.

One fused ``lerp`` over all parameters per step and no host sync (torch's AveragedModel reads a
device counter every step, which stalls a CUDA stream). Before its start the copy of G is taken
only when something reads the average (``synced``, ``state_dict``) and at the start itself, not at
every step.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA(nn.Module):
    """``module`` holds the averaged copy of ``model``; ``update(step)`` moves it towards ``model`` by ``1 - decay``."""

    def __init__(self, model: nn.Module, decay: float, start: int = 0) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay
        self.start = start
        self._behind = False  # before the start: the model has moved since the last copy
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
        """Fold in the model's weights after training step ``step`` (1 for the first): up to ``start``
        the average is the model itself.

        The step comes from the trainer rather than a counter of this object's own, so a resumed run,
        which restores the step, continues the same average.
        """
        if step < self.start:
            self._behind = True
        elif step == self.start:
            self._copy()
        else:
            mine, theirs, own_buffers, their_buffers = self._pairs
            torch._foreach_lerp_(mine, theirs, 1.0 - self.decay)
            # Buffers (batch-norm statistics) are already running averages: take the model's.
            if own_buffers:
                torch._foreach_copy_(own_buffers, their_buffers)

    def restart(self) -> None:
        """Make the average the model itself again (a run started from another run's G without an EMA)."""
        self._copy()

    def synced(self) -> nn.Module:
        """The averaged model, up to date: what samples are drawn from."""
        if self._behind:
            self._copy()
        return self.module

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        """The up-to-date average's state, so a checkpoint never holds a stale copy."""
        self.synced()
        return super().state_dict(*args, **kwargs)

    @torch.no_grad()
    def _copy(self) -> None:
        mine, theirs, own_buffers, their_buffers = self._pairs
        torch._foreach_copy_(mine, theirs)
        if own_buffers:
            torch._foreach_copy_(own_buffers, their_buffers)
        self._behind = False
