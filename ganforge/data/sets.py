"""A data set's training images, read by index: held in memory as one uint8 tensor (:class:`ImageData`),
or read from files one image at a time (folders, ZIP archives) for data that does not fit.

The loop decides which way a run sees its images (training/batches.py): resident on the device when
the decoded images fit a memory budget, streamed through a DataLoader otherwise. Both read the same
pixels in the same order.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import GanforgeError


class ImageSet:
    """Images of one shape with optional class labels; ``read(indices)`` returns them as uint8 (n, C, H, W).

    Subclasses set ``shape``, ``labels`` (int64 (N,), or None), ``num_classes``, ``source`` (for
    messages) and ``class_names``, and implement ``__len__`` and ``read``. ``read`` may be called
    from DataLoader worker processes: keep file handles per process.
    """

    shape: tuple[int, int, int]
    labels: torch.Tensor | None = None
    num_classes: int | None = None
    source: str = ""
    class_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        """The images at ``indices`` (a 1-d int64 tensor), uint8 (len(indices), C, H, W), on the CPU."""
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        """Bytes the decoded images take in memory."""
        return len(self) * math.prod(self.shape)

    def fingerprint(self) -> str:
        """A SHA-256 of the images (and labels) as they are read: cached statistics of the data are kept
        under it. The default decodes every image; sets read from files hash the files instead."""
        digest = hashlib.sha256(repr((self.shape, len(self))).encode())
        for part in torch.arange(len(self)).split(1024):
            digest.update(self.read(part).numpy().tobytes())
        if self.labels is not None:
            digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()

    def resident(self) -> ImageData:
        """Every image, decoded into one tensor."""
        images = torch.cat([self.read(part) for part in torch.arange(len(self)).split(1024)])
        return ImageData(images, self.labels, self.num_classes, self.source, self.class_names)

    def subset(self, n: int, seed: int) -> ImageSet:
        """``n`` of the images, chosen with ``seed``; where the data has classes, the same number of
        each (the first ``n % classes`` classes one more), for limited-data experiments."""
        if n >= len(self):
            raise GanforgeError(f"data.subset {n}: {self.source} holds only {len(self)} images; "
                                "ask for fewer, or drop data.subset to train on all of them")
        g = torch.Generator().manual_seed(seed)
        if self.labels is None or self.num_classes is None:
            index = torch.randperm(len(self), generator=g)[:n].sort().values
        else:
            picks = []
            for c in range(self.num_classes):
                members = (self.labels == c).nonzero().flatten()
                quota = n // self.num_classes + (c < n % self.num_classes)
                if len(members) < quota:
                    raise GanforgeError(f"data.subset {n}: class {c} of {self.source} has {len(members)} images, "
                                        f"fewer than its share of {quota}; ask for fewer")
                picks.append(members[torch.randperm(len(members), generator=g)[:quota]])
            index = torch.cat(picks).sort().values
        return Subset(self, index, f"{self.source} (a subset of {n}, seed {seed})")


@dataclass(frozen=True)
class ImageData(ImageSet):
    """Training images held as one uint8 ``(N, C, H, W)`` tensor, with int64 labels ``(N,)`` when the data
    has classes, and the classes' names where the data set has any (per-class figures print them)."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    num_classes: int | None = None
    source: str = ""
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise GanforgeError(f"{self.source}: images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) == 0:
            raise GanforgeError(f"{self.source}: the data set holds no images")
        check_labels(self)

    @property
    def shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.images)

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        return self.images.index_select(0, indices)

    def resident(self) -> ImageData:
        return self

    def fingerprint(self) -> str:
        digest = hashlib.sha256(repr(tuple(self.images.shape)).encode())
        digest.update(self.images.contiguous().numpy().tobytes())
        if self.labels is not None:
            digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()

    def subset(self, n: int, seed: int) -> ImageSet:
        view = super().subset(n, seed)
        return view.resident()


def check_labels(data: ImageSet) -> None:
    """Labels, where there are any, one per image, in [0, num_classes); class names one per class."""
    if data.labels is not None:
        if data.labels.shape != (len(data),):
            raise GanforgeError(f"{data.source}: {len(data)} images but labels of shape {tuple(data.labels.shape)}")
        if data.num_classes is None or int(data.labels.min()) < 0 or int(data.labels.max()) >= data.num_classes:
            raise GanforgeError(f"{data.source}: labels must lie in [0, num_classes)")
    if data.class_names is not None and len(data.class_names) != data.num_classes:
        raise GanforgeError(f"{data.source}: {len(data.class_names)} class names for {data.num_classes} classes")


class Subset(ImageSet):
    """Some of another set's images, in index order."""

    def __init__(self, base: ImageSet, index: torch.Tensor, source: str) -> None:
        self.base, self.index = base, index
        self.shape = base.shape
        self.labels = base.labels[index] if base.labels is not None else None
        self.num_classes, self.class_names = base.num_classes, base.class_names
        self.source = source

    def __len__(self) -> int:
        return len(self.index)

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        return self.base.read(self.index[indices])

    def fingerprint(self) -> str:
        return hashlib.sha256((self.base.fingerprint() + self.index.numpy().tobytes().hex()).encode()).hexdigest()


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square-resize uint8 images (antialiased bilinear), in chunks to bound memory."""
    if images.shape[-2:] == (size, size):
        return images
    out = [
        F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        .round_().clamp_(0, 255).to(torch.uint8)
        for chunk in images.split(4096)
    ]
    return torch.cat(out)


def set_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey to colour by repetition, colour to grey by ITU-R 601 luma."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)


class Reshaped(ImageSet):
    """Another set's images resized to ``size`` and converted to ``channels``, as they are read."""

    def __init__(self, base: ImageSet, size: int | None, channels: int | None) -> None:
        self.base, self.size, self.channels = base, size, channels
        c, h, w = base.shape
        self.shape = (channels or c, size or h, size or w)
        self.labels, self.num_classes, self.class_names, self.source = base.labels, base.num_classes, base.class_names, base.source

    def __len__(self) -> int:
        return len(self.base)

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.base.fingerprint()}|{self.shape}".encode()).hexdigest()

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        images = self.base.read(indices)
        if self.channels is not None:
            images = set_channels(images, self.channels)
        return resize(images, self.size) if self.size is not None else images
