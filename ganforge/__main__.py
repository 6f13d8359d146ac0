"""``python -m ganforge``: the CLI (also what torchrun runs: ``torchrun -m ganforge train ...``)."""

from .cli import main

raise SystemExit(main())
