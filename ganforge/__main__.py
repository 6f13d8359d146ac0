"""``python -m ganforge``: the CLI (also what torchrun runs: ``torchrun -m ganforge train ...``)."""

from .entry import run

run()
