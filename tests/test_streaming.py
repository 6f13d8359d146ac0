"""Data that does not fit in memory: `ganforge prepare`, ZIP and folder data sets streamed through a
real multi-worker DataLoader, the same images as the resident path, exact resume, data-set options."""

from __future__ import annotations

import http.server
import io
import json
import pickle
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_distribution
from ganforge import DataConfig, GanforgeError, TrainConfig, load_catalog, resume, train
from ganforge.accel.distributed import DistContext
from ganforge.data import ImageData, load_cifar10
from ganforge.runs import RunDir
from ganforge.testing import assert_states_equal, check_dataset
from ganforge.training.batches import ResidentBatches

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from photo_patches import write_patches  # noqa: E402  (scripts/photo_patches.py)

SMALL = {"g_hidden": [32], "d_hidden": [32]}


@pytest.fixture(scope="module")
def photos_zip(tmp_path_factory, cli_module) -> Path:
    """240 crops of the shipped photographs, 16 px, prepared into a ZIP with a class per photograph."""
    folder = tmp_path_factory.mktemp("photos")
    write_patches(folder / "patches", 240, 16)
    proc = cli_module("prepare", str(folder / "patches"), "--out", str(folder / "photos.zip"), "--size", "16",
                      "--labels", "from-folders", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    return folder / "photos.zip"


@pytest.fixture(scope="module")
def cli_module():
    import os
    import subprocess

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ganforge", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=600, env={**os.environ, "TQDM_DISABLE": "1"})

    return run


def test_prepare_packs_a_folder_and_lists_what_it_skips(cli, one_line_error, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)).save(tmp_path / "photos" / cls / f"{i}.jpg")
    (tmp_path / "photos" / "cats" / "broken.png").write_text("not a picture")
    Image.new("RGB", (9, 9)).save(tmp_path / "photos" / "loose.png")
    (tmp_path / "photos" / "notes.txt").write_text("not an image file at all")
    proc = cli("prepare", "photos", "--out", "data.zip", "--size", "8", "--labels", "from-folders", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "wrote 6 images (8x8, 3 channels, 2 classes) to data.zip; skipped 2 files"
    assert sorted(proc.stderr.strip().splitlines()) == [
        "ganforge: skipped photos/cats/broken.png: not a readable image (cannot identify image file "
        "'photos/cats/broken.png')",
        "ganforge: skipped photos/loose.png: not in a class folder"]
    with zipfile.ZipFile(tmp_path / "data.zip") as archive:
        meta = json.loads(archive.read("dataset.json"))
        assert meta["ganforge"] == {"size": 8, "channels": 3, "classes": ["cats", "dogs"], "source": "photos",
                                    "images": 6, "skipped": 2}
        assert [label for _, label in meta["labels"]] == [0, 0, 0, 1, 1, 1]
        with Image.open(io.BytesIO(archive.read(meta["labels"][0][0]))) as image:
            assert image.size == (8, 8) and image.mode == "RGB"
    assert "exists; pass --force" in one_line_error(cli("prepare", "photos", "--out", "data.zip", "--size", "8"))
    assert "needs its images in at least two sub-folders" in one_line_error(
        cli("prepare", "photos/cats", "--out", "other.zip", "--labels", "from-folders"))


def config(tmp_path: Path, zip_path: Path, **overrides) -> TrainConfig:
    settings = {"variant": "mlp", "model": SMALL, "steps": 8, "batch_size": 16, "device": "cpu", "log_every": 4,
                "checkpoint_every": 4, "out": tmp_path / "run",
                "data": {"name": "image-zip", "data_dir": str(zip_path), "workers": 2}}
    return TrainConfig.model_validate({**settings, **overrides})


def test_resident_and_streamed_runs_see_the_same_images(photos_zip: Path, tmp_path: Path) -> None:
    runs = {}
    for stream in (False, True):
        data = {"name": "image-zip", "data_dir": str(photos_zip), "workers": 2, "stream": stream, "xflip": True}
        runs[stream] = train(config(tmp_path / str(stream), photos_zip, variant="cgan", data=data))
        resolved = json.loads((runs[stream].run_dir / "config.json").read_text())["resolved"]
        assert resolved["data_path"] == {"mode": "streamed" if stream else "resident", "why": f"data.stream={str(stream).lower()}"}
        assert resolved["steps_per_epoch"] == 2 * 240 // 16  # xflip doubles the data
    resident, streamed = (RunDir(runs[s].run_dir).load_checkpoint("last") for s in (False, True))
    for key in ("generator", "discriminator", "opt_d"):
        assert_states_equal(resident[key], streamed[key], key)


def test_the_path_is_chosen_by_the_memory_budget_and_recorded(photos_zip: Path, tmp_path: Path) -> None:
    small = train(config(tmp_path / "a", photos_zip, steps=2))
    assert json.loads((small.run_dir / "config.json").read_text())["resolved"]["data_path"] == {
        "mode": "resident", "why": "240 images of 3x16x16 take 184.3 KB decoded, within the 2048 MB budget (data.resident_mb)"}
    data = {"name": "image-zip", "data_dir": str(photos_zip), "workers": 0, "resident_mb": 0}
    tight = train(config(tmp_path / "b", photos_zip, steps=2, data=data))
    assert json.loads((tight.run_dir / "config.json").read_text())["resolved"]["data_path"]["mode"] == "streamed"


def test_a_streamed_run_resumes_exactly(photos_zip: Path, tmp_path: Path) -> None:
    data = {"name": "image-zip", "data_dir": str(photos_zip), "workers": 2, "stream": True}
    straight = train(config(tmp_path / "a", photos_zip, steps=12, data=data))
    half = train(config(tmp_path / "b", photos_zip, steps=6, data=data))
    resumed = resume(half.run_dir, steps=12)
    a, b = (RunDir(r.run_dir).load_checkpoint("last") for r in (straight, resumed))
    for key in ("generator", "discriminator", "opt_g", "opt_d", "rng", "batch_cursor"):
        assert_states_equal(a[key], b[key], key)


def test_a_folder_streams_and_the_data_path_shorthand(cli, photos_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(photos_zip) as archive:
        for name in archive.namelist()[:40]:
            if name.endswith(".png"):
                target = tmp_path / "folder" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
    for data in ("./folder", str(photos_zip)):
        proc = cli("train", "dcgan", "--data", data, "--image-size", "16", "--steps", "2", "--batch-size", "8",
                   "--set", "base_width=4", "--set", "data.stream=true", "--set", "data.workers=1", "--out", f"run-{len(data)}")
        assert proc.returncode == 0, proc.stderr
        saved = json.loads((tmp_path / f"run-{len(data)}" / "config.json").read_text())
        assert saved["train"]["data"]["name"] == ("image-folder" if data.startswith("./") else "image-zip")


def test_xflip_shows_every_image_once_as_it_is_and_once_mirrored() -> None:
    images = torch.arange(6 * 4, dtype=torch.uint8).view(6, 1, 2, 2)  # asymmetric rows: a mirror is another image
    batches = ResidentBatches(images, None, batch_size=4, per_step=1, seed=0, dist=DistContext(), xflip=True)
    seen = []
    for _ in range(batches.steps_per_epoch):
        batches.place()
        seen.append(batches.real(0)[0])
    seen_set = {tuple(x.flatten().tolist()) for x in torch.cat(seen)}
    expected = {tuple(((x.float() / 127.5) - 1).flatten().tolist()) for x in torch.cat([images, images.flip(-1)])}
    assert batches.steps_per_epoch == 3 and seen_set == expected


SHAPES = '''
import torch
from pydantic import Field
from ganforge import hookimpl
from ganforge.data import DatasetOptions, DatasetSpec, ImageData


class ShapesOptions(DatasetOptions):
    count: int = Field(40, ge=1, description="how many images")
    seed: int = Field(0, ge=0, description="places the squares")


def load(config):
    options = ShapesOptions(**config.options)
    g = torch.Generator().manual_seed(options.seed)
    images = torch.zeros(options.count, 1, 10, 10, dtype=torch.uint8)
    for i, (x, y) in enumerate(torch.randint(0, 6, (options.count, 2), generator=g).tolist()):
        images[i, 0, y:y + 4, x:x + 4] = 255
    return ImageData(images, source=f"shapes (seed {options.seed})")


@hookimpl
def ganforge_register_datasets(register):
    register(DatasetSpec("shapes", "white squares", load, options=ShapesOptions))
    register(DatasetSpec("fixed-shapes", "white squares that cannot be resized", load, options=ShapesOptions,
                         resizable=False))
'''


def test_a_data_set_plugin_takes_options_of_its_own(cli, one_line_error, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(write_distribution(tmp_path / "site", "ganforge-shapes", "shapes", SHAPES))}
    schema = json.loads(cli("datasets", "--options", "shapes", env=env).stdout)
    assert schema["properties"]["count"]["default"] == 40
    proc = cli("train", "mlp", "--data", "shapes", "--set", "data.options.count=12", "--set", "data.options.seed=3",
               "--steps", "2", "--batch-size", "4", "--out", "run", env=env)
    assert proc.returncode == 0, proc.stderr
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]
    assert resolved["data_options"] == {"count": 12, "seed": 3} and resolved["data_size"] == 12
    assert "data set 'shapes': data.options.count: Input should be greater than or equal to 1" in one_line_error(
        cli("train", "mlp", "--data", "shapes", "--set", "data.options.count=0", env=env))
    assert "data.options.colour: Extra inputs are not permitted" in one_line_error(
        cli("train", "mlp", "--data", "shapes", "--set", "data.options.colour=1", env=env))
    # The loop holds a data set to the shape the run asks for: resized where allowed, refused where not.
    proc = cli("train", "mlp", "--data", "shapes", "--image-size", "8", "--steps", "1", "--batch-size", "4", "--out", "r8", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r8" / "config.json").read_text())["resolved"]["data_shape"] == [1, 8, 8, None]
    error = one_line_error(cli("train", "mlp", "--data", "fixed-shapes", "--image-size", "8", "--steps", "1", env=env))
    assert "data set 'fixed-shapes' (plugin 'shapes', distribution ganforge-shapes) holds 1x10x10 images and cannot be resized" in error


def test_the_contract_kit_checks_a_data_set() -> None:
    from ganforge.data import DatasetSpec
    from ganforge.testing import ContractViolation

    catalog = load_catalog()
    check_dataset(catalog.datasets.get("mnist5k"))

    def unlabelled_noise(config: DataConfig) -> ImageData:
        return ImageData(torch.randint(0, 255, (8, 1, 6, 6), dtype=torch.uint8))

    with pytest.raises(ContractViolation, match="two loads with the same settings gave other images"):
        check_dataset(DatasetSpec("noise", "random each time", unlabelled_noise))


def test_cifar10_through_torchvisions_own_download_and_reader(tmp_path: Path, monkeypatch) -> None:
    # The real download path, offline: torchvision fetches a cifar-10-python.tar.gz this test makes
    # from a local server, checks it and reads it; ganforge returns what torchvision read.
    import torchvision.datasets

    rng = np.random.default_rng(0)
    batches = tmp_path / "make" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 255, (4, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, 4).tolist()
        (batches / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
        written[name] = (data, labels)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (batches / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    with tarfile.open(tmp_path / "make" / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(batches, arcname="cifar-10-batches-py")

    class Mirror(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(tmp_path / "make"), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cls = torchvision.datasets.CIFAR10
        monkeypatch.setattr(cls, "url", f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz")
        monkeypatch.setattr(cls, "tgz_md5", None)
        monkeypatch.setattr(cls, "train_list", [[name, None] for name, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[name, None] for name, _ in cls.test_list])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": None})
        data = load_cifar10(DataConfig(name="cifar10", data_dir=tmp_path / "data"))
    finally:
        server.shutdown()
    first, labels = written["data_batch_1"]
    assert data.images.shape == (20, 3, 32, 32) and data.class_names == tuple(names)
    assert torch.equal(data.images[:4], torch.from_numpy(first).view(4, 3, 32, 32)) and data.labels[:4].tolist() == labels
    with pytest.raises(GanforgeError, match="CIFAR-10 not found under .* could not be read"):
        load_cifar10(DataConfig(name="cifar10", data_dir=tmp_path / "empty", download=False))


def test_a_broken_file_met_while_streaming_stops_the_run_in_one_line(cli, one_line_error, tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    for i in range(15):
        Image.new("RGB", (12, 12), (i * 10, 0, 0)).save(tmp_path / "photos" / f"{i:02d}.png")
    (tmp_path / "photos" / "07.png").write_bytes(b"half a PNG")
    error = one_line_error(cli("train", "mlp", "--data", "./photos", "--image-size", "8", "--steps", "4",
                               "--batch-size", "8", "--set", "data.stream=true", "--set", "data.workers=2", "--out", "run"))
    assert "photos/07.png: not a readable image" in error and "`ganforge prepare` packs a folder into a ZIP" in error
