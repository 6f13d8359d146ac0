"""Data sets, registered by name: images held in memory or read from files, and what the loop needs
to load them in the shape a run asks for."""

from .builtin import (
    FASHION_MNIST_CLASSES, FASHION_MNIST_SYSTEM_DIR, default_data_home, load_cifar10, load_fashion_mnist,
    load_image_folder, load_image_zip, load_mnist, load_mnist5k,
)
from .files import FolderImages, ZipImages
from .sets import ImageData, ImageSet, resize, set_channels
from .spec import DatasetOptions, DatasetSpec, load_data

__all__ = [
    "FASHION_MNIST_CLASSES", "FASHION_MNIST_SYSTEM_DIR", "DatasetOptions", "DatasetSpec", "FolderImages", "ImageData",
    "ImageSet", "ZipImages", "default_data_home", "load_cifar10", "load_data", "load_fashion_mnist", "load_image_folder",
    "load_image_zip", "load_mnist", "load_mnist5k", "resize", "set_channels",
]
