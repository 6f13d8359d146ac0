"""The order in which a run sees its real images, and the two ways it gets them.

Each epoch's order is a permutation that is a function of (seed, epoch) alone, so a resumed run sees
exactly the batches it would have seen; under torchrun each rank takes its own disjoint share. With
``xflip`` the order runs over twice the images: position N + i is image i mirrored.

:class:`ResidentBatches` holds the images on the device as uint8 and gathers each step's batches at
a device-side offset into the permutations of the epochs it reaches (each cut to whole batches, so
consecutive batches lie end to end): the same device work serves every step, which a captured CUDA
graph needs. :class:`StreamedBatches` reads them from their files through a DataLoader (worker
processes, pinned memory) into fixed device buffers; its position in the order is the same batch
cursor, so a streamed run resumes exactly too. For the same seed both give the same images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..accel.distributed import DistContext
from ..data import ImageSet
from ..errors import GanforgeError


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of ``n`` images in ``epoch``: a function of (seed, epoch) alone."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def _flipped(images: torch.Tensor, positions: torch.Tensor, n: int) -> torch.Tensor:
    """``images`` read for ``positions`` (image index + N for a mirrored one), mirrored where asked."""
    return torch.where((positions >= n).view(-1, 1, 1, 1), images.flip(-1), images)


class _Order:
    """Where batch number b of this rank lies in the data order: an epoch's shard, cut to whole batches."""

    def __init__(self, n: int, seed: int, batch_size: int, dist: DistContext) -> None:
        self.n, self.seed, self.batch_size, self.dist = n, seed, batch_size, dist
        self.steps_per_epoch = n // dist.world_size // batch_size
        self._cached: tuple[int, torch.Tensor] | None = None

    def epoch(self, epoch: int) -> torch.Tensor:
        """This rank's share of ``epoch``'s order, cut to whole batches."""
        if self._cached is None or self._cached[0] != epoch:
            order = self.dist.shard(epoch_permutation(self.seed, epoch, self.n))[: self.steps_per_epoch * self.batch_size]
            self._cached = (epoch, order)
        return self._cached[1]

    def batch(self, number: int) -> torch.Tensor:
        epoch, within = divmod(number, self.steps_per_epoch)
        return self.epoch(epoch)[within * self.batch_size:(within + 1) * self.batch_size]


class ResidentBatches:
    """Real batches from images held on the device: ``place()`` before each step, then ``real(i)`` for
    the step's ``i``-th of ``per_step`` batches, normalised to [-1, 1]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, *, batch_size: int, per_step: int, seed: int,
                 dist: DistContext, memory_format: torch.memory_format = torch.contiguous_format,
                 xflip: bool = False) -> None:
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.per_step = per_step
        self.memory_format = memory_format
        self.xflip = xflip
        self.order = _Order(len(images) * (2 if xflip else 1), seed, batch_size, dist)
        self.steps_per_epoch = self.order.steps_per_epoch
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
            self._order.copy_(torch.cat([self.order.epoch(e) for e in range(epoch, epoch + self._epochs_held)]))
            self._first_epoch = epoch
        self._offset.fill_((self.cursor - epoch * spe) * b)
        self.cursor += self.per_step

    def real(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The step's ``i``-th real batch in [-1, 1], and its labels where the data has them."""
        positions = self._order.index_select(0, self._positions[i] + self._offset)
        n = len(self.images)
        idx = positions.remainder(n) if self.xflip else positions
        images = self.images.index_select(0, idx)
        if self.xflip:
            images = _flipped(images, positions, n)
        real = images.to(memory_format=self.memory_format).float().div_(127.5).sub_(1.0)
        labels = self.labels.index_select(0, idx) if self.labels is not None else None
        return real, labels

    def state_dict(self) -> dict[str, Any]:
        return {"batch_cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cursor = int(state["batch_cursor"])

    def close(self) -> None:
        """Nothing to let go of: the images stay on the device with the run."""


class _BatchNumbers(Sampler[list[int]]):
    """The positions of this rank's batches from batch ``start`` on, epoch after epoch, without end."""

    def __init__(self, order: _Order, start: int) -> None:
        self.order, self.start = order, start

    def __iter__(self) -> Iterator[list[int]]:
        number = self.start
        while True:
            yield self.order.batch(number).tolist()
            number += 1


class _Reader(Dataset):
    """Reads a whole batch at once (``__getitems__``): uint8 images, mirrored where the position says, and labels."""

    def __init__(self, images: ImageSet, labels: torch.Tensor | None, xflip: bool) -> None:
        self.images, self.labels, self.xflip = images, labels, xflip

    def __len__(self) -> int:
        return len(self.images) * (2 if self.xflip else 1)

    def __getitems__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor | None] | GanforgeError:
        where = torch.tensor(positions)
        n = len(self.images)
        idx = where.remainder(n) if self.xflip else where
        try:
            images = self.images.read(idx)
        except GanforgeError as exc:  # a broken file: handed to the main process, which stops the run in one line
            return exc
        if self.xflip:
            images = _flipped(images, where, n)
        return images, (self.labels.index_select(0, idx) if self.labels is not None else None)


def _as_is(batch: Any) -> Any:
    return batch


class StreamedBatches:
    """Real batches read from their files by DataLoader workers: ``place()`` copies the step's batches
    into fixed device buffers (so a captured CUDA graph reads them), ``real(i)`` normalises one."""

    def __init__(self, images: ImageSet, labels: torch.Tensor | None, *, batch_size: int, per_step: int, seed: int,
                 dist: DistContext, device: torch.device, workers: int,
                 memory_format: torch.memory_format = torch.contiguous_format, xflip: bool = False) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.per_step, self.memory_format, self.xflip = batch_size, per_step, memory_format, xflip
        self.device, self.workers = device, workers
        self.order = _Order(len(images) * (2 if xflip else 1), seed, batch_size, dist)
        self.steps_per_epoch = self.order.steps_per_epoch
        self._images = torch.empty(per_step, batch_size, *images.shape, dtype=torch.uint8, device=device)
        self._labels = torch.empty(per_step, batch_size, dtype=torch.long, device=device) if labels is not None else None
        self.cursor = 0
        self._batches: Iterator[Any] | None = None

    def _loader(self) -> Iterator[Any]:
        order = _Order(self.order.n, self.order.seed, self.batch_size, self.order.dist)
        # A generator of its own for the workers' seeds: drawing them from torch's global one would move
        # the run's random state at every (re)start of the loader, and a resumed run would drift.
        loader = DataLoader(_Reader(self.images, self.labels, self.xflip), batch_sampler=_BatchNumbers(order, self.cursor),
                            num_workers=self.workers, collate_fn=_as_is, pin_memory=self.device.type == "cuda",
                            prefetch_factor=4 if self.workers else None, generator=torch.Generator().manual_seed(0))
        return iter(loader)

    def place(self) -> None:
        """Copy the next ``per_step`` batches of the data order into the device buffers."""
        if self._batches is None:
            self._batches = self._loader()
        for i in range(self.per_step):
            batch = next(self._batches)
            if isinstance(batch, GanforgeError):
                raise GanforgeError(f"{batch}; `ganforge prepare` packs a folder into a ZIP, skipping such files")
            images, labels = batch
            self._images[i].copy_(images, non_blocking=True)
            if self._labels is not None:
                self._labels[i].copy_(labels, non_blocking=True)  # type: ignore[arg-type]
        self.cursor += self.per_step

    def real(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The step's ``i``-th real batch in [-1, 1], and its labels where the data has them."""
        real = self._images[i].to(memory_format=self.memory_format).float().div_(127.5).sub_(1.0)
        return real, (self._labels[i] if self._labels is not None else None)

    def state_dict(self) -> dict[str, Any]:
        return {"batch_cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cursor = int(state["batch_cursor"])
        self._batches = None

    def close(self) -> None:
        """Stop the DataLoader's workers (a later ``place()`` starts them again where the cursor stands)."""
        self._batches = None
