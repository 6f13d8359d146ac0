"""What the training-time hooks receive: a small, stable view of a run, never the loop's internals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import TrainConfig
from ..nn import Discriminator, Generator


@dataclass
class TrainContext:
    """A run as hooks (loggers, callbacks, schedules) see it.

    ``config`` holds the settings as resolved for this run (recipe and defaults filled in);
    ``generator`` and ``discriminator`` are the fp32 models being trained (a hook may change their
    weights in place between steps, and the next step reads them); ``opt_g`` and ``opt_d`` their
    Adam optimisers (a learning-rate schedule may change their ``lr``); ``step`` the number of
    steps done; ``augmentation`` the augmentation D's inputs go through, if any (an adaptive one's
    state, such as ADA's ``p``, is its buffers). Only rank 0 writes files (``is_main``).
    """

    config: TrainConfig
    variant: str
    run_dir: Path
    device: torch.device
    generator: Generator
    discriminator: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    rank: int = 0
    world_size: int = 1
    step: int = 0
    augmentation: torch.nn.Module | None = None
    _sampling: Callable[[], Generator] | None = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0, the one that writes the run directory."""
        return self.rank == 0

    @property
    def samples_dir(self) -> Path:
        """Where the sample grids go: ``samples/step_NNNNNNN.png``."""
        return self.run_dir / "samples"

    def sampling_generator(self) -> Generator:
        """The generator samples are drawn from: the EMA of G where the run keeps one, else G."""
        return self._sampling() if self._sampling is not None else self.generator
