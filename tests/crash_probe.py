"""The real CLI, except that the process of rank RANK dies after step STEP, with no clean-up, as one
that the kernel's OOM killer ends or whose node is lost. It dies once: the first death leaves
``crash_probe.died`` in the working folder, so the processes of a torchrun restart (on any node, and
whatever rank each gets there) train on. Run by test_cli.py on its own and by test_distributed.py
under torchrun. Usage: crash_probe.py RANK STEP GANFORGE-ARGS..."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ganforge.cli import main
from ganforge.training import Trainer

if __name__ == "__main__":
    rank, dies_after = int(sys.argv[1]), int(sys.argv[2])
    marker = Path("crash_probe.died")
    train_step = Trainer.train_step

    def train_step_or_die(self: Trainer) -> None:
        if self.dist.rank == rank and self.step == dies_after and not marker.exists():
            marker.touch()
            os._exit(1)
        train_step(self)

    Trainer.train_step = train_step_or_die  # type: ignore[method-assign]
    raise SystemExit(main(sys.argv[3:]))
