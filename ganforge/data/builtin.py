"""The built-in data sets, registered by name through the same hook as plugins' data sets: the
embedded digits, MNIST, Fashion-MNIST, CIFAR-10, a folder of images and a ZIP of images."""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import torch

from ..config import DataConfig
from ..errors import GanforgeError
from ..hookspecs import hookimpl
from ..idx import find_idx, read_idx
from .files import FolderImages, ZipImages
from .sets import ImageData
from .spec import DatasetSpec

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
"""Fashion-MNIST's class names by label, as torchvision's ``FashionMNIST.classes`` spells them."""


def default_data_home() -> Path:
    """Where downloads go: ``$GANFORGE_DATA``, else ``~/.cache/ganforge/data``."""
    return Path(os.environ.get("GANFORGE_DATA") or Path.home() / ".cache" / "ganforge" / "data")


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
    return _from_idx(images_path, labels_path)


def _mnist_family(config: DataConfig, title: str, tv_class: str, system_dir: Path | None,
                  class_names: tuple[str, ...] | None) -> ImageData:
    folders = [config.data_dir] if config.data_dir else ([system_dir] if system_dir else [])
    for folder in folders:
        images = find_idx(folder, "train-images-idx3-ubyte")
        labels = find_idx(folder, "train-labels-idx1-ubyte")
        if images and labels:
            return _from_idx(images, labels, class_names)
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
    return ImageData(images, dataset.targets.long(), 10, f"{root}/{tv_class}", class_names)


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
    return ImageData(images, torch.tensor(dataset.targets), 10, f"{root}/cifar-10-batches-py", tuple(dataset.classes))


def load_image_folder(config: DataConfig) -> FolderImages:
    """Every image under ``--data-dir``, squared to ``--image-size`` (default 64) as it is read;
    sub-folders become class labels when all images sit in them."""
    if config.data_dir is None:
        raise GanforgeError("data set 'image-folder' needs --data-dir FOLDER (a folder of images)")
    return FolderImages(config.data_dir, config.image_size or 64, config.channels or 3)


def load_image_zip(config: DataConfig) -> ZipImages:
    """The images in the ZIP ``--data-dir`` names: one that `ganforge prepare` wrote, or any ZIP of images."""
    if config.data_dir is None:
        raise GanforgeError("data set 'image-zip' needs --data-dir FILE.zip (e.g. one that `ganforge prepare` wrote)")
    return ZipImages(config.data_dir, config.image_size, config.channels)


BUILTIN_DATASETS = (
    DatasetSpec("mnist5k", "5,000 real MNIST digits shipped with ganforge (the default)", load_mnist5k,
                evaluator="mnist-cnn", cross_evaluator="mnist-resnet"),
    DatasetSpec("mnist", "MNIST, 60,000 digits (local IDX files or download)", load_mnist, evaluator="mnist-cnn",
                cross_evaluator="mnist-resnet"),
    DatasetSpec("fashion-mnist", "Fashion-MNIST, 60,000 images (local IDX, Debian's package, or download)",
                load_fashion_mnist, aliases=("fashion_mnist", "fmnist"), evaluator="fashion-cnn",
                cross_evaluator="fashion-resnet"),
    DatasetSpec("cifar10", "CIFAR-10, 50,000 colour 32x32 images (local or download)", load_cifar10,
                aliases=("cifar-10",), evaluator="fid-inception"),
    DatasetSpec("image-folder", "any folder of images, squared to --image-size (default 64) as they are read",
                load_image_folder, aliases=("folder",), evaluator="fid-inception"),
    DatasetSpec("image-zip", "a ZIP of images, e.g. one `ganforge prepare` wrote (labels from its dataset.json)",
                load_image_zip, aliases=("zip",), evaluator="fid-inception"),
)


@hookimpl
def ganforge_register_datasets(register: Callable[..., None]) -> None:
    for spec in BUILTIN_DATASETS:
        register(spec)
