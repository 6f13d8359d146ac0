"""The order in which a run sees its real images: a permutation per epoch, gathered on the device.

The data set lives on the device as uint8. Each epoch's order is a function of (seed, epoch) alone,
so a resumed run sees exactly the batches it would have seen; under torchrun each rank takes its
own disjoint share. A step's batches are gathered at a device-side offset into the permutations of
the epochs it reaches (each cut to whole batches, so consecutive batches lie end to end): the same
device work serves every step, which a captured CUDA graph needs.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..accel.distributed import DistContext


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of ``n`` images in ``epoch``: a function of (seed, epoch) alone."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class ResidentBatches:
    """Real batches from images held on the device: ``place()`` before each step, then ``real(i)`` for
    the step's ``i``-th of ``per_step`` batches, normalised to [-1, 1]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, *, batch_size: int, per_step: int, seed: int,
                 dist: DistContext, memory_format: torch.memory_format = torch.contiguous_format) -> None:
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.per_step = per_step
        self.seed = seed
        self.dist = dist
        self.memory_format = memory_format
        self.steps_per_epoch = len(images) // dist.world_size // batch_size
        device = images.device
        used = self.steps_per_epoch * batch_size
        self._epochs_held = 1 + math.ceil((per_step - 1) / self.steps_per_epoch)
        self._order = torch.empty(self._epochs_held * used, dtype=torch.long, device=device)
        self._first_epoch = -1
        self._offset = torch.zeros((), dtype=torch.long, device=device)
        self._positions = torch.arange(per_step * batch_size, device=device).view(per_step, -1)
        self.cursor = 0
        """Batches handed out so far: where the data order stands."""

    def place(self) -> None:
        """Point this step's batches at the next ``per_step`` batches of the data order (host side, no sync)."""
        b, spe = self.batch_size, self.steps_per_epoch
        epoch = self.cursor // spe
        if epoch != self._first_epoch:
            used = spe * b
            orders = [self.dist.shard(epoch_permutation(self.seed, e, len(self.images)))[:used]
                      for e in range(epoch, epoch + self._epochs_held)]
            self._order.copy_(torch.cat(orders))
            self._first_epoch = epoch
        self._offset.fill_((self.cursor - epoch * spe) * b)
        self.cursor += self.per_step

    def real(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The step's ``i``-th real batch in [-1, 1], and its labels where the data has them."""
        idx = self._order.index_select(0, self._positions[i] + self._offset)
        real = self.images.index_select(0, idx).to(memory_format=self.memory_format).float().div_(127.5).sub_(1.0)
        labels = self.labels.index_select(0, idx) if self.labels is not None else None
        return real, labels

    def state_dict(self) -> dict[str, Any]:
        return {"batch_cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cursor = int(state["batch_cursor"])
