"""Data sets: the embedded digits, IDX files gzipped or not, torchvision's layout, folders of images."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
import torch
import torchvision.datasets
from PIL import Image

from ganforge import DataConfig, GanforgeError
from ganforge.data import (
    FASHION_MNIST_SYSTEM_DIR, ImageData, load_data, load_fashion_mnist, load_image_folder, load_mnist, load_mnist5k,
)
from ganforge.idx import read_idx


def idx_bytes(array: torch.Tensor) -> bytes:
    dims = tuple(array.shape)
    return struct.pack(">BBBB", 0, 0, 8, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + array.numpy().tobytes()


def write_mnist_files(folder: Path, images: torch.Tensor, labels: torch.Tensor, *, gz: bool, prefix: str = "train") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        blob = idx_bytes(array)
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(blob) if gz else blob)


@pytest.fixture
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (12, 28, 28), dtype=torch.uint8, generator=g), torch.arange(12, dtype=torch.uint8) % 10


def test_mnist5k_holds_500_real_digits_per_class() -> None:
    data = load_mnist5k(DataConfig())
    assert data.images.shape == (5000, 1, 28, 28) and data.images.dtype == torch.uint8
    assert torch.bincount(data.labels).tolist() == [500] * 10
    # Real digits: dark background, bright strokes, centred (MNIST's centre-of-mass preprocessing).
    mean = data.images.float().mean(0)[0]
    assert mean[:3].mean() < 1 and mean[10:18, 10:18].mean() > 60


@pytest.mark.parametrize("gz", [True, False])
def test_local_idx_files_load_gzipped_or_not(tmp_path: Path, digits, gz: bool) -> None:
    images, labels = digits
    write_mnist_files(tmp_path, images, labels, gz=gz)
    data = load_mnist(DataConfig(name="mnist", data_dir=tmp_path, download=False))
    assert torch.equal(data.images[:, 0], images) and torch.equal(data.labels, labels.long())


def test_torchvision_layout_is_read_by_torchvisions_own_reader(tmp_path: Path, digits) -> None:
    # What torchvision's downloader leaves behind: ROOT/MNIST/raw/ with the files unpacked.
    images, labels = digits
    for split in ("train", "t10k"):
        write_mnist_files(tmp_path / "MNIST" / "raw", images, labels, gz=False, prefix=split)
    data = load_mnist(DataConfig(name="mnist", data_dir=tmp_path, download=True))
    assert torch.equal(data.images[:, 0], images) and data.source.endswith("MNIST")


def test_missing_data_offline_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(GanforgeError) as info:
        load_mnist(DataConfig(name="mnist", data_dir=tmp_path / "empty", download=False))
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "empty") in message and "--data-dir" in message


@pytest.mark.parametrize("damage", ["truncate", "magic", "garbage-gz"])
def test_malformed_idx_files_name_the_path(tmp_path: Path, digits, damage: str) -> None:
    images, labels = digits
    write_mnist_files(tmp_path, images, labels, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[:-100])
    elif damage == "magic":
        path.write_bytes(b"\x12\x34" + blob[2:])
    else:
        path.unlink()
        path = tmp_path / "train-images-idx3-ubyte.gz"
        path.write_bytes(b"\x1f\x8b" + b"not really gzip")
    with pytest.raises(GanforgeError, match=str(path)):
        load_mnist(DataConfig(name="mnist", data_dir=tmp_path, download=False))


def test_resize_and_channels_options(catalog, tmp_path: Path) -> None:
    data, _ = load_data(catalog.datasets.get("mnist5k"), DataConfig(image_size=32, channels=3))
    assert data.images.shape == (5000, 3, 32, 32)
    assert torch.equal(data.images[:, 0], data.images[:, 2])


@pytest.mark.skipif(not FASHION_MNIST_SYSTEM_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_is_found_without_flags_where_debian_installs_it() -> None:
    data = load_fashion_mnist(DataConfig(name="fashion-mnist", download=False))
    assert data.images.shape == (60000, 1, 28, 28)
    assert torch.bincount(data.labels).tolist() == [6000] * 10
    assert read_idx(FASHION_MNIST_SYSTEM_DIR / "train-labels-idx1-ubyte.gz").shape == (60000,)


def test_fashion_mnist_from_local_files_carries_torchvisions_class_names(tmp_path: Path, digits) -> None:
    images, labels = digits
    write_mnist_files(tmp_path, images, labels, gz=True)
    data = load_fashion_mnist(DataConfig(name="fashion-mnist", data_dir=tmp_path, download=False))
    assert data.class_names == tuple(torchvision.datasets.FashionMNIST.classes)
    assert load_mnist(DataConfig(name="mnist", data_dir=tmp_path, download=False)).class_names is None  # digits: the label is the name
    with pytest.raises(GanforgeError, match="2 class names for 10 classes"):
        ImageData(data.images, data.labels, 10, "two names", ("a", "b"))


def test_image_folder_with_class_subfolders(tmp_path: Path) -> None:
    for index, cls in enumerate(["cats", "dogs"]):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (50, 40), (60 * index + i,) * 3).save(tmp_path / cls / f"{i}.png")
    data = load_image_folder(DataConfig(name="image-folder", data_dir=tmp_path, image_size=16)).resident()
    assert data.images.shape == (6, 3, 16, 16)
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1] and data.num_classes == 2
    assert data.class_names == ("cats", "dogs")


def test_image_folder_flat_is_unlabelled_and_errors_are_clear(tmp_path: Path) -> None:
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    data = load_image_folder(DataConfig(name="image-folder", data_dir=tmp_path, image_size=8, channels=1)).resident()
    assert data.images.shape == (1, 1, 8, 8) and data.labels is None
    (tmp_path / "b.png").write_bytes(b"not a png")
    with pytest.raises(GanforgeError, match="b.png: not a readable image"):
        load_image_folder(DataConfig(name="image-folder", data_dir=tmp_path)).resident()
    with pytest.raises(GanforgeError, match="needs --data-dir"):
        load_image_folder(DataConfig(name="image-folder"))
