"""The run directory: config.json, metrics.jsonl, checkpoints/ and samples/, written durably and
atomically, locked by the one process that trains the run, validated when read back."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from .config import validate_settings, validation_message
from .durable import TEMP_SUFFIX, FileLock, StorageError, atomic_copy, atomic_write, atomic_write_bytes, describe_os_error
from .errors import GanforgeError
from .records import CHECKPOINT_FORMAT, CheckpointRecord, MetricsRecord, RunRecord

LOCK_NAME = ".lock"
_STEP_NAME = re.compile(r"[0-9]+")


class CheckpointError(GanforgeError):
    """A checkpoint file is missing, corrupt or not ganforge's."""


class RunDir:
    """Paths and file formats of one run; only the process that holds its lock writes through it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.saved_step: int | None = None
        """The step of the last checkpoint this object wrote or read as ``last``."""

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

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def exists(self) -> bool:
        return self.config_path.is_file()

    def already_holds_a_run(self) -> str:
        """Why a new run cannot start here, and what to do instead."""
        return f"{self.path} already holds a run; continue it with `ganforge train --resume {self.path}` or pass another --out"

    def foreign_files(self) -> list[str]:
        """Names in the folder that no run put there: a new run refuses a folder of someone else's files."""
        if not self.path.is_dir():
            return []
        ours = {"config.json", "metrics.jsonl", "checkpoints", "samples", LOCK_NAME}
        return sorted(p.name for p in self.path.iterdir() if p.name not in ours and not p.name.endswith(TEMP_SUFFIX))

    @contextlib.contextmanager
    def claim(self) -> Iterator[None]:
        """Hold the run's lock while training it; a second training process is refused with one line.

        Temporary files that a killed process left are removed. A folder made here for a run that
        then never wrote its config.json (bad settings found late, a full disk) is removed again.
        """
        made = _make_folders(self.path)
        lock = FileLock(self.lock_path)
        try:
            lock.acquire(lambda pid: (
                f"{self.path} is being trained by process {pid}, which holds {self.lock_path}; wait for it to "
                "finish or stop it (ganforge sample, eval and report can read the run meanwhile)"))
        except BaseException:
            _remove_empty(made)
            raise
        try:
            for leftover in [*self.path.glob(f"*{TEMP_SUFFIX}"), *self.checkpoints.glob(f"*{TEMP_SUFFIX}")]:
                leftover.unlink(missing_ok=True)
            yield
        finally:
            started = self.exists()
            lock.release(remove=not started)
            if not started:
                _remove_empty([self.samples, self.checkpoints, *made])

    def create(self, config: dict[str, Any]) -> None:
        """Start a new run here; refuses a folder that already holds one, so no run is overwritten."""
        if self.exists():
            raise GanforgeError(self.already_holds_a_run())
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            self.samples.mkdir(exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{describe_os_error(exc, self.path)} making the run directory") from None
        self.write_config(config)

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_bytes(self.config_path, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(),
                           "the run's config.json")

    def read_config(self) -> dict[str, Any]:
        """config.json, validated: the variant, its settings, the run's settings and what they resolved to."""
        if not self.exists():
            raise GanforgeError(f"{self.path}: not a ganforge run directory (no config.json)")
        try:
            raw = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GanforgeError(f"{self.config_path}: unreadable ({exc})") from None
        if not isinstance(raw, dict):
            raise GanforgeError(f"{self.config_path}: holds {type(raw).__name__}, not a ganforge run's config "
                                "(a JSON object with variant, model, train and resolved)")
        try:
            record = validate_settings(RunRecord, raw)
        except ValidationError as exc:
            raise GanforgeError(f"{self.config_path}: not a ganforge run's config "
                                f"({validation_message(exc).removeprefix('bad config: ')})") from None
        return record.model_dump(mode="json")

    def append_metrics(self, record: dict[str, Any]) -> None:
        try:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise StorageError(f"{describe_os_error(exc, self.metrics_path)} logging step {record.get('step')}") from None

    def rewind(self, step: int) -> None:
        """Drop the metrics logged after ``step``, the checkpoint a run continues from.

        A run that died past its last checkpoint trains those steps again and logs them anew; kept,
        they would be listed twice (TensorBoard's ``purge_step`` does the same for its event files).
        """
        if self.metrics_path.is_file():
            kept = [json.dumps(record) + "\n" for record in self.read_metrics() if record["step"] <= step]
            atomic_write_bytes(self.metrics_path, "".join(kept).encode(), "metrics.jsonl")

    def read_metrics(self) -> list[dict[str, Any]]:
        """The logged records, in order. A line that is not a well-formed record (one cut short when
        the disk filled up or the machine lost power, or edited by hand) is left out."""
        if not self.metrics_path.is_file():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
                MetricsRecord.model_validate(record, strict=True)
            except (ValueError, ValidationError):
                continue
            records.append(record)
        return records

    def checkpoint_path(self, which: str | int = "last") -> Path:
        """``last``, ``best`` or a step number -> the checkpoint file's path."""
        if isinstance(which, int) or _STEP_NAME.fullmatch(str(which)):
            return self.checkpoints / f"step_{int(which):07d}.pt"
        if which not in ("last", "best"):
            raise GanforgeError(f"--checkpoint must be last, best or a step number, got {which!r}")
        return self.checkpoints / f"{which}.pt"

    def save_checkpoint(self, state: dict[str, Any], *names: str | int) -> None:
        """Write ``state`` under each name; the first is written, the others are made its copies."""
        payload = {"format": CHECKPOINT_FORMAT, **state}
        first = self.checkpoint_path(names[0])
        try:
            atomic_write(first, lambda file: torch.save(payload, file), f"checkpoint {first.name} of step {state['step']}")
            for name in names[1:]:
                other = self.checkpoint_path(name)
                atomic_copy(first, other, f"checkpoint {other.name} of step {state['step']}")
        except StorageError as exc:
            intact = (f"the previous checkpoint (step {self.saved_step}) is intact" if self.saved_step is not None
                      else "no checkpoint of this run was written before")
            raise StorageError(f"{exc}; {intact}") from None
        if "last" in names:
            self.saved_step = state["step"]

    def load_checkpoint(self, which: str | int = "last", map_location: torch.device | str = "cpu") -> dict[str, Any]:
        state = load_checkpoint(self.checkpoint_path(which), map_location)
        if which == "last":
            self.saved_step = state["step"]
        return state

    def save_grid(self, images: torch.Tensor, name: str, nrow: int) -> Path:
        """Save images in [-1, 1] as one PNG grid under samples/."""
        path = self.samples / name
        write_grid(path, images, nrow, f"sample grid {name}")
        return path


def write_grid(path: Path, images: torch.Tensor, nrow: int, what: str, padding: int = 2) -> None:
    """Images in [-1, 1] as one PNG grid at ``path``, written atomically."""
    from torchvision.utils import save_image  # torchvision costs a second to import; only grids need it

    atomic_write(path, lambda file: save_image(images.float(), file, format="png", nrow=nrow, normalize=True,
                                               value_range=(-1, 1), padding=padding), what)


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a ganforge checkpoint with ``weights_only=True`` and check its structure; anything else is a one-line error."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, struct.error,
            TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a readable ganforge checkpoint ({_load_failure(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: a PyTorch file but not a ganforge checkpoint (expected format {CHECKPOINT_FORMAT})")
    try:
        CheckpointRecord.model_validate(state, strict=True)
    except ValidationError as exc:
        raise CheckpointError(f"{path}: a damaged ganforge checkpoint "
                              f"({validation_message(exc).removeprefix('bad config: ')})") from None
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
            name = detail.split("GLOBAL", 1)[-1].strip().split()[0] if "GLOBAL" in detail else detail
            return (f"it holds Python objects that are not tensors or plain data ({name}); loading such a file "
                    "can run any code it carries, so ganforge refuses it")
        return f"not a PyTorch checkpoint file: {detail}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:200]


def _make_folders(path: Path) -> list[Path]:
    """Make ``path`` and its missing parents; the ones made, deepest first. An impossible path is one line."""
    if path.exists() and not path.is_dir():
        raise GanforgeError(f"{path}: is a file, not a folder; pass another --out")
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(missing)
        raise GanforgeError(f"{path}: cannot make a run directory there ({describe_os_error(exc, path)})") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()

