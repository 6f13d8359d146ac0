"""Data sets as uint8 tensors, registered by name.

A loader returns all training images at once as a ``(N, C, H, W)`` uint8 tensor: the trainer keeps
it on the device and normalises each batch there, with no per-sample Python transforms.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import DataConfig
from .errors import GanforgeError
from .hookspecs import hookimpl
from .idx import find_idx, read_idx
from .imagefiles import IMAGE_SUFFIXES, open_image

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
"""Fashion-MNIST's class names by label, as torchvision's ``FashionMNIST.classes`` spells them."""


@dataclass(frozen=True)
class ImageData:
    """Training images as uint8 ``(N, C, H, W)``, with int64 labels ``(N,)`` when the data has classes,
    and the classes' names where the data set has any (per-class figures print them)."""

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
        if self.labels is not None:
            if self.labels.shape != (len(self.images),):
                raise GanforgeError(f"{self.source}: {len(self.images)} images but labels of shape {tuple(self.labels.shape)}")
            if self.num_classes is None or int(self.labels.min()) < 0 or int(self.labels.max()) >= self.num_classes:
                raise GanforgeError(f"{self.source}: labels must lie in [0, num_classes)")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise GanforgeError(f"{self.source}: {len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, n: int, seed: int) -> ImageData:
        """``n`` of the images, chosen with ``seed``; where the data has classes, the same number of
        each (the first ``n % classes`` classes one more), for limited-data experiments."""
        if n >= len(self.images):
            raise GanforgeError(f"data.subset {n}: {self.source} holds only {len(self.images)} images; "
                                "ask for fewer, or drop data.subset to train on all of them")
        g = torch.Generator().manual_seed(seed)
        if self.labels is None or self.num_classes is None:
            index = torch.randperm(len(self.images), generator=g)[:n]
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
        labels = self.labels[index] if self.labels is not None else None
        return ImageData(self.images[index], labels, self.num_classes, f"{self.source} (a subset of {n}, seed {seed})",
                         self.class_names)


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set: ``load(config)`` returns its training split as :class:`ImageData`."""

    name: str
    description: str
    load: Callable[[DataConfig], ImageData]
    aliases: tuple[str, ...] = ()
    evaluator: str | None = None
    """Name of the evaluator that scores samples of this data (see ganforge.metrics.evaluators)."""


def default_data_home() -> Path:
    """Where downloads go: ``$GANFORGE_DATA``, else ``~/.cache/ganforge/data``."""
    return Path(os.environ.get("GANFORGE_DATA") or Path.home() / ".cache" / "ganforge" / "data")


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


def _finish(data: ImageData, config: DataConfig) -> ImageData:
    images = data.images
    if config.channels is not None:
        images = set_channels(images, config.channels)
    if config.image_size is not None:
        images = resize(images, config.image_size)
    if images is data.images:
        return data
    return ImageData(images, data.labels, data.num_classes, data.source, data.class_names)


def _from_idx(images_path: Path, labels_path: Path, class_names: tuple[str, ...] | None = None) -> ImageData:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
        raise GanforgeError(
            f"{images_path}: expected N images of H x W with N labels in {labels_path}, "
            f"got images {tuple(images.shape)} and labels {tuple(labels.shape)}"
        )
    return ImageData(images.unsqueeze(1).contiguous(), labels.long(), 10, str(images_path), class_names)


def load_mnist5k(config: DataConfig) -> ImageData:
    """The 5,000 real MNIST digits shipped inside ganforge (500 per class)."""
    folder = files("ganforge") / "data_files"
    images_path = Path(str(folder / "mnist5k-images-idx3-ubyte.gz"))
    labels_path = Path(str(folder / "mnist5k-labels-idx1-ubyte.gz"))
    return _finish(_from_idx(images_path, labels_path), config)


def _mnist_family(config: DataConfig, title: str, tv_class: str, system_dir: Path | None,
                  class_names: tuple[str, ...] | None) -> ImageData:
    folders = [config.data_dir] if config.data_dir else ([system_dir] if system_dir else [])
    for folder in folders:
        images = find_idx(folder, "train-images-idx3-ubyte")
        labels = find_idx(folder, "train-labels-idx1-ubyte")
        if images and labels:
            return _finish(_from_idx(images, labels, class_names), config)
    root = config.data_dir or default_data_home()
    import torchvision.datasets

    dataset_cls = getattr(torchvision.datasets, tv_class)
    try:
        dataset = dataset_cls(str(root), train=True, download=config.download)
    except Exception as exc:
        raise GanforgeError(
            f"{title} not found under {root} and could not be {'downloaded' if config.download else 'read'} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); put "
            f"train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] in a folder and pass --data-dir FOLDER"
        ) from None
    images = dataset.data.unsqueeze(1).to(torch.uint8).contiguous()
    return _finish(ImageData(images, dataset.targets.long(), 10, f"{root}/{tv_class}", class_names), config)


def load_mnist(config: DataConfig) -> ImageData:
    """MNIST's 60,000 training digits: local IDX files, or torchvision's download."""
    return _mnist_family(config, "MNIST", "MNIST", None, None)


def load_fashion_mnist(config: DataConfig) -> ImageData:
    """Fashion-MNIST's 60,000 training images: local IDX files, Debian's package, or torchvision's download."""
    return _mnist_family(config, "Fashion-MNIST", "FashionMNIST", FASHION_MNIST_SYSTEM_DIR, FASHION_MNIST_CLASSES)


def load_cifar10(config: DataConfig) -> ImageData:
    """CIFAR-10's 50,000 training images through torchvision (downloaded when online)."""
    import torchvision.datasets

    root = config.data_dir or default_data_home()
    try:
        dataset = torchvision.datasets.CIFAR10(str(root), train=True, download=config.download)
    except Exception as exc:
        raise GanforgeError(
            f"CIFAR-10 not found under {root} and could not be {'downloaded' if config.download else 'read'} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); put the extracted "
            f"cifar-10-batches-py folder under a folder and pass --data-dir FOLDER"
        ) from None
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    return _finish(ImageData(images, torch.tensor(dataset.targets), 10, f"{root}/cifar-10-batches-py",
                             tuple(dataset.classes)), config)


def _read_image(path: Path, size: int, channels: int) -> torch.Tensor:
    from torchvision.transforms.v2.functional import center_crop, pil_to_tensor, resize as tv_resize

    tensor = pil_to_tensor(open_image(path, "RGB" if channels == 3 else "L"))
    tensor = tv_resize(tensor, [size], antialias=True)
    return center_crop(tensor, [size, size])


def load_image_folder(config: DataConfig) -> ImageData:
    """Every image under ``--data-dir``; sub-folders become class labels when all images sit in them."""
    if config.data_dir is None:
        raise GanforgeError("data set 'image-folder' needs --data-dir FOLDER (a folder of images)")
    root = config.data_dir
    if not root.is_dir():
        raise GanforgeError(f"{root}: no such folder; --data-dir must name a folder of images")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise GanforgeError(f"{root}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
    size = config.image_size or 64
    channels = config.channels or 3
    images = torch.stack([_read_image(p, size, channels) for p in paths])
    classes = sorted({p.relative_to(root).parts[0] for p in paths if len(p.relative_to(root).parts) > 1})
    labelled = len(classes) >= 2 and all(len(p.relative_to(root).parts) > 1 for p in paths)
    if not labelled:
        return ImageData(images, source=str(root))
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index[p.relative_to(root).parts[0]] for p in paths])
    return ImageData(images, labels, len(classes), str(root), tuple(classes))


BUILTIN_DATASETS = (
    DatasetSpec("mnist5k", "5,000 real MNIST digits shipped with ganforge (the default)", load_mnist5k,
                evaluator="mnist-cnn"),
    DatasetSpec("mnist", "MNIST, 60,000 digits (local IDX files or download)", load_mnist, evaluator="mnist-cnn"),
    DatasetSpec("fashion-mnist", "Fashion-MNIST, 60,000 images (local IDX, Debian's package, or download)",
                load_fashion_mnist, aliases=("fashion_mnist", "fmnist"), evaluator="fashion-cnn"),
    DatasetSpec("cifar10", "CIFAR-10, 50,000 colour 32x32 images (local or download)", load_cifar10,
                aliases=("cifar-10",), evaluator="inception-v3"),
    DatasetSpec("image-folder", "any folder of images, resized to --image-size (default 64)", load_image_folder,
                aliases=("folder",), evaluator="inception-v3"),
)


@hookimpl
def ganforge_register_datasets(register: Callable[..., None]) -> None:
    for spec in BUILTIN_DATASETS:
        register(spec)
