"""Images read from files one at a time: a folder of images (sub-folders as classes) and a ZIP archive
of same-size PNGs with a dataset.json (StyleGAN2-ADA's dataset_tool convention, which `ganforge
prepare` writes). Either serves data too large to hold in memory; the loop streams it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from ..errors import GanforgeError
from ..imagefiles import IMAGE_SUFFIXES, open_image
from .sets import ImageSet, check_labels

DATASET_JSON = "dataset.json"


def to_square(image: Any, size: int) -> torch.Tensor:
    """A decoded PIL image as uint8 (C, size, size): its shorter side resized to ``size`` (antialiased),
    then cropped about the centre."""
    from torchvision.transforms.v2.functional import center_crop, pil_to_tensor, resize

    tensor = pil_to_tensor(image)
    if tensor.shape[-2:] != (size, size):
        tensor = center_crop(resize(tensor, [size], antialias=True), [size, size])
    return tensor


def class_folders(root: Path, paths: Sequence[Path]) -> tuple[list[str], list[int]] | None:
    """The classes that ``paths`` fall into by their top folder under ``root``, and each path's class;
    None unless every image sits in one of at least two folders."""
    tops = [p.relative_to(root).parts for p in paths]
    if not all(len(parts) > 1 for parts in tops):
        return None
    classes = sorted({parts[0] for parts in tops})
    if len(classes) < 2:
        return None
    index = {c: i for i, c in enumerate(classes)}
    return classes, [index[parts[0]] for parts in tops]


def image_paths(root: Path) -> list[Path]:
    """Every image file under ``root``, sorted."""
    if not root.is_dir():
        raise GanforgeError(f"{root}: no such folder; --data-dir must name a folder of images")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise GanforgeError(f"{root}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths


class FolderImages(ImageSet):
    """Every image under a folder, decoded and squared to ``size`` as it is read; sub-folders become
    class labels when every image sits in one of at least two of them."""

    def __init__(self, root: Path, size: int, channels: int) -> None:
        self.root, self.size, self.mode = root, size, "RGB" if channels == 3 else "L"
        self.paths = image_paths(root)
        self.shape = (channels, size, size)
        self.source = str(root)
        classes = class_folders(root, self.paths)
        if classes is not None:
            names, labels = classes
            self.labels, self.num_classes, self.class_names = torch.tensor(labels), len(names), tuple(names)

    def __len__(self) -> int:
        return len(self.paths)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(repr((self.shape, self.mode)).encode())
        for path in self.paths:
            digest.update(str(path.relative_to(self.root)).encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.stack([to_square(open_image(self.paths[i], self.mode), self.size) for i in indices.tolist()])


class ZipImages(ImageSet):
    """The images in a ZIP archive, in name order, with labels from its dataset.json where it has some.

    A ZIP that ``ganforge prepare`` wrote holds PNGs of one size and is read as it is; any other is
    squared to ``size`` (its first image's size when None) as it is read.
    """

    def __init__(self, path: Path, size: int | None, channels: int | None) -> None:
        if not path.is_file():
            raise GanforgeError(f"{path}: no such file; --data-dir must name a ZIP of images")
        self.path = path
        self.source = str(path)
        try:
            with zipfile.ZipFile(path) as archive:
                names = sorted(n for n in archive.namelist() if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES)
                meta = json.loads(archive.read(DATASET_JSON)) if DATASET_JSON in archive.namelist() else {}
                first = archive.read(names[0]) if names else None
        except (OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
            raise GanforgeError(f"{path}: not a readable ZIP of images ({exc})") from None
        if first is None:
            raise GanforgeError(f"{path}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
        if not isinstance(meta, dict):
            raise GanforgeError(f"{path}: its {DATASET_JSON} is not a JSON object")
        self.names = names
        info = meta.get("ganforge") if isinstance(meta.get("ganforge"), dict) else {}
        self.mode = "L" if (channels or info.get("channels")) == 1 else "RGB"
        probe = open_image(io.BytesIO(first), self.mode, f"{path}:{names[0]}")
        self.size = size or int(info.get("size") or min(probe.size))
        self.shape = (1 if self.mode == "L" else 3, self.size, self.size)
        self._labels(meta.get("labels"), info.get("classes"))
        self._archive: zipfile.ZipFile | None = None
        self._pid = -1

    def _labels(self, labels: Any, classes: Any) -> None:
        if labels is None:
            return
        try:
            by_name = {str(name): int(label) for name, label in labels}
            values = torch.tensor([by_name[name] for name in self.names])
        except (TypeError, ValueError, KeyError) as exc:
            raise GanforgeError(f"{self.path}: the labels in its {DATASET_JSON} do not name every image "
                                f"as [name, class] ({exc})") from None
        self.labels = values
        self.num_classes = int(values.max()) + 1 if len(values) else None
        if isinstance(classes, list) and len(classes) == self.num_classes:
            self.class_names = tuple(str(c) for c in classes)
        check_labels(self)

    def __len__(self) -> int:
        return len(self.names)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(repr((self.shape, self.mode)).encode())
        with open(self.path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get a copy without the open archive, and open their own.
        return {**self.__dict__, "_archive": None, "_pid": -1}

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        if self._archive is None or self._pid != os.getpid():
            self._archive, self._pid = zipfile.ZipFile(self.path), os.getpid()
        out = []
        for i in indices.tolist():
            name = self.names[i]
            out.append(to_square(open_image(io.BytesIO(self._archive.read(name)), self.mode, f"{self.path}:{name}"), self.size))
        return torch.stack(out)
