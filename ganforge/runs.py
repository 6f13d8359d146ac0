"""The run directory: config.json, metrics.jsonl, checkpoints/ (atomic writes) and samples/."""

from __future__ import annotations

import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import GanforgeError

CHECKPOINT_FORMAT = "ganforge-checkpoint/1"


class CheckpointError(GanforgeError):
    """A checkpoint file is missing, corrupt or not ganforge's."""


class RunDir:
    """Paths and file formats of one run; only the process that owns the run writes through it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def already_holds_a_run(self) -> str:
        """Why a new run cannot start here, and what to do instead."""
        return f"{self.path} already holds a run; continue it with `ganforge train --resume {self.path}` or pass another --out"

    def create(self, config: dict[str, Any]) -> None:
        """Start a new run here; refuses a folder that already holds one, so no run is overwritten."""
        if self.exists():
            raise GanforgeError(self.already_holds_a_run())
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.samples.mkdir(exist_ok=True)
        self.write_config(config)

    def write_config(self, config: dict[str, Any]) -> None:
        _atomic_write_bytes(self.config_path, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())

    def read_config(self) -> dict[str, Any]:
        if not self.exists():
            raise GanforgeError(f"{self.path}: not a ganforge run directory (no config.json)")
        try:
            return json.loads(self.config_path.read_text())
        except (OSError, ValueError) as exc:
            raise GanforgeError(f"{self.config_path}: unreadable ({exc})") from None

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def rewind(self, step: int) -> None:
        """Drop the metrics logged after ``step``, the checkpoint a run continues from.

        A run that died past its last checkpoint trains those steps again and logs them anew; kept,
        they would be listed twice (TensorBoard's ``purge_step`` does the same for its event files).
        """
        if self.metrics_path.is_file():
            kept = [json.dumps(record) + "\n" for record in self.read_metrics() if record.get("step", 0) <= step]
            _atomic_write_bytes(self.metrics_path, "".join(kept).encode())

    def read_metrics(self) -> list[dict[str, Any]]:
        """The logged records, in order; a line that is not a JSON object (one cut short when the
        disk filled up or the machine lost power) is left out."""
        if not self.metrics_path.is_file():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def checkpoint_path(self, which: str | int = "last") -> Path:
        """``last``, ``best`` or a step number -> the checkpoint file's path."""
        if isinstance(which, int) or str(which).isdigit():
            return self.checkpoints / f"step_{int(which):07d}.pt"
        if which not in ("last", "best"):
            raise GanforgeError(f"--checkpoint must be last, best or a step number, got {which!r}")
        return self.checkpoints / f"{which}.pt"

    def save_checkpoint(self, state: dict[str, Any], *names: str | int) -> None:
        """Write ``state`` under each name, each through a temporary file and a rename."""
        payload = {"format": CHECKPOINT_FORMAT, **state}
        first = self.checkpoint_path(names[0])
        tmp = first.with_suffix(".pt.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, first)
        for name in names[1:]:
            other = self.checkpoint_path(name)
            tmp = other.with_suffix(".pt.tmp")
            _copy(first, tmp)
            os.replace(tmp, other)

    def load_checkpoint(self, which: str | int = "last", map_location: torch.device | str = "cpu") -> dict[str, Any]:
        return load_checkpoint(self.checkpoint_path(which), map_location)

    def save_grid(self, images: torch.Tensor, name: str, nrow: int) -> Path:
        """Save images in [-1, 1] as one PNG grid under samples/."""
        from torchvision.utils import save_image  # torchvision costs a second to import; only grids need it

        path = self.samples / name
        save_image(images.float(), path, nrow=nrow, normalize=True, value_range=(-1, 1), padding=2)
        return path


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a ganforge checkpoint with ``weights_only=True``; anything else is a one-line error."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, struct.error) as exc:
        raise CheckpointError(f"{path}: not a readable ganforge checkpoint ({_load_failure(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: a PyTorch file but not a ganforge checkpoint (expected format {CHECKPOINT_FORMAT})")
    return state


def load_weights(module: nn.Module, weights: dict[str, Any], what: str, source: Path | str) -> None:
    """Load a checkpoint's ``weights`` into ``module``; a mismatch is a one-line error naming the first difference.

    A mismatch means the run was trained by another version of its variant (a changed default
    architecture, for one) or with model settings its config.json no longer holds.
    """
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        details = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        first = (details[0] if details else str(exc)).split(". ")[0].rstrip(".")[:200]
        raise CheckpointError(
            f"{source}: its {what} weights do not fit the model this ganforge builds from the run's config ({first}); "
            "the run was trained by another version of the variant (install that one to load it) or its config.json was edited"
        ) from None


def _load_failure(exc: Exception) -> str:
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0].split(". ")[0].strip()
        if "Unsupported global" in detail:
            return f"it holds more than tensors and plain data, which weights_only loading refuses: {detail}"
        return f"not a PyTorch checkpoint file: {detail}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:200]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
