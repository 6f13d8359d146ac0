"""``ganforge prepare``: pack a folder of images once into a ZIP of same-size PNGs and a dataset.json
(StyleGAN2-ADA's dataset_tool convention), so that training never decodes and resizes odd-sized
photographs again. Files that are not readable images are listed and skipped, not fatal."""

from __future__ import annotations

import io
import json
import multiprocessing
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..durable import atomic_write
from ..errors import GanforgeError
from ..imagefiles import ImageFileError, open_image
from .files import DATASET_JSON, class_folders, image_paths, to_square


@dataclass
class Prepared:
    """What ``prepare`` wrote: how many images, the classes, and each skipped file with the reason."""

    images: int
    classes: list[str] | None
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _encode(job: tuple[str, int, str]) -> tuple[bytes | None, str]:
    """One file as a squared PNG, or None and why not (in a worker process)."""
    from PIL import Image
    from torchvision.transforms.v2.functional import to_pil_image

    path, size, mode = job
    try:
        square = to_square(open_image(Path(path), mode), size)
    except ImageFileError as exc:
        return None, str(exc).split(": ", 1)[-1]
    buffer = io.BytesIO()
    image: Image.Image = to_pil_image(square)
    image.save(buffer, format="png", compress_level=6)
    return buffer.getvalue(), ""


def prepare(source: Path, out: Path, size: int, *, channels: int = 3, labels: str = "none", workers: int = 1,
            progress: Callable[[int, int], None] | None = None) -> Prepared:
    """Pack the images under ``source`` into the ZIP ``out`` (written atomically), squared to ``size``.

    ``labels``: "from-folders" labels each image by its top folder under ``source`` (every image must
    sit in one of at least two folders; others are skipped); "none" writes no labels.
    """
    if labels not in ("none", "from-folders"):
        raise GanforgeError(f"--labels {labels!r}: choose none or from-folders")
    paths = image_paths(source)
    skipped: list[tuple[str, str]] = []
    classes: list[str] | None = None
    label_of: dict[Path, int] = {}
    if labels == "from-folders":
        in_folders = [p for p in paths if len(p.relative_to(source).parts) > 1]
        skipped += [(str(p), "not in a class folder") for p in paths if len(p.relative_to(source).parts) == 1]
        found = class_folders(source, in_folders) if in_folders else None
        if found is None:
            raise GanforgeError(f"--labels from-folders: {source} needs its images in at least two sub-folders, one per class")
        classes, values = found
        label_of = dict(zip(in_folders, values))
        paths = in_folders
    mode = "RGB" if channels == 3 else "L"
    jobs = [(str(p), size, mode) for p in paths]
    kept: list[tuple[str, int | None]] = []

    def results() -> Iterator[tuple[bytes | None, str]]:
        if workers <= 1:
            yield from map(_encode, jobs)
            return
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            yield from pool.imap(_encode, jobs, chunksize=16)

    def write(file: Any) -> None:
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
            for done, (path, (png, why)) in enumerate(zip(paths, results()), 1):
                if png is None:
                    skipped.append((str(path), why))
                else:
                    name = f"{len(kept) // 1000:05d}/img{len(kept):08d}.png"
                    archive.writestr(name, png)
                    kept.append((name, label_of.get(path)))
                if progress is not None:
                    progress(done, len(paths))
            if not kept:
                raise GanforgeError(f"{source}: none of its {len(paths)} image files could be read")
            meta = {"labels": [[name, label] for name, label in kept] if classes is not None else None,
                    "ganforge": {"size": size, "channels": channels, "classes": classes, "source": str(source),
                                 "images": len(kept), "skipped": len(skipped)}}
            archive.writestr(DATASET_JSON, json.dumps(meta))

    atomic_write(out, write, f"the prepared data set {out.name}")
    return Prepared(len(kept), classes, skipped)
