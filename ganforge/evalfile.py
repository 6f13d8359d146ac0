"""A run's (or an exported model's) eval.json: the figures of its last ``ganforge eval``, written and
read in one place so that `eval`, `report` and `export` agree on what a damaged file is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .durable import atomic_write_bytes
from .errors import GanforgeError

EVAL_FILE = "eval.json"


def write_evaluation(folder: Path, figures: dict[str, Any]) -> None:
    """Replace ``folder``/eval.json with ``figures``, atomically."""
    atomic_write_bytes(folder / EVAL_FILE, (json.dumps(figures, indent=2) + "\n").encode(), EVAL_FILE)


def read_evaluation(folder: Path) -> dict[str, Any] | None:
    """The figures of ``folder``'s last ``ganforge eval``; None where it was never evaluated. A file that
    cannot be read, or holds no figures, is one line naming it."""
    path = folder / EVAL_FILE
    if not path.is_file():
        return None
    try:
        figures = json.loads(path.read_text())
    except (OSError, ValueError):
        raise GanforgeError(f"{path}: unreadable; run `ganforge eval` again, or delete it") from None
    if not isinstance(figures, dict):
        raise GanforgeError(f"{path}: holds no figures of `ganforge eval`; run `ganforge eval` again, or delete it")
    return figures
