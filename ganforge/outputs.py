"""Files that commands write for the user (sample grids, raw samples, reports): the path is checked
before any work is done, the file is written atomically, a run's own checkpoints are never written
over, and an existing file only with ``--force``."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .durable import atomic_write
from .errors import GanforgeError


def check_output(path: Path, suffixes: tuple[str, ...], force: bool, flag: str = "--out") -> None:
    """Refuse ``path`` unless it ends in one of ``suffixes``, is not a folder, lies in a folder, is
    not inside a run's ``checkpoints/`` and, unless ``force``, does not exist yet."""
    if not path.name or path.suffix.lower() not in suffixes:
        raise GanforgeError(f"{flag} {str(path)!r}: name a {' or '.join(suffixes)} file")
    if path.is_dir():
        raise GanforgeError(f"{flag} {path}: is a folder; name a {' or '.join(suffixes)} file inside it")
    parent = path.resolve().parent
    if parent.name == "checkpoints" and (parent.parent / "config.json").is_file():
        raise GanforgeError(f"{flag} {path}: lies in the checkpoints folder of run {parent.parent}; write it elsewhere")
    if parent.exists() and not parent.is_dir():
        raise GanforgeError(f"{flag} {path}: {parent} is a file, not a folder")
    if path.exists() and not force:
        raise GanforgeError(f"{flag} {path}: exists; pass --force to replace it")


def make_parent(path: Path, flag: str = "--out") -> None:
    """Make the folder ``path`` goes into; a path that cannot have one is one line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GanforgeError(f"{flag} {path}: cannot make its folder ({exc.strerror or exc})") from None


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as uint8 pixels on the CPU, as an external evaluator reads them."""
    return images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu()


def _write_npy(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype: np.dtype,
               chunks: Iterable[np.ndarray]) -> None:
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_2_0(member, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                      "fortran_order": False, "shape": shape})
        for chunk in chunks:
            member.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())


def write_samples(path: Path, n: int, image_shape: tuple[int, int, int], chunks: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
                  what: str) -> None:
    """Raw samples for external evaluators: uint8 images (N, C, H, W) and their labels where drawn for
    classes. ``.npz`` is written as it is generated, chunk by chunk (numpy's ``np.load`` reads it);
    ``.pt`` holds everything at once."""
    if path.suffix.lower() == ".pt":
        parts = [(to_uint8(images), labels) for images, labels in chunks]
        labels = None if parts[0][1] is None else torch.cat([part for _, part in parts]).cpu()  # type: ignore[misc]
        payload = {"images": torch.cat([pixels for pixels, _ in parts]), "labels": labels}
        atomic_write(path, lambda file: torch.save(payload, file), what)
        return

    def write(file: Any) -> None:
        label_parts: list[np.ndarray] = []
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            def images() -> Iterable[np.ndarray]:
                for pixels, labels in chunks:
                    if labels is not None:
                        label_parts.append(labels.cpu().numpy())
                    yield to_uint8(pixels).numpy()

            _write_npy(archive, "images", (n, *image_shape), np.dtype(np.uint8), images())
            if label_parts:
                _write_npy(archive, "labels", (n,), np.dtype(np.int64), label_parts)

    atomic_write(path, write, what)
