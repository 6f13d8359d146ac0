"""Train ganforge's evaluator classifiers and record their held-out accuracy beside the weights.

- ``mnist-cnn`` on the embedded mnist5k: 4,500 digits to train, 500 held out (50 per class).
- ``fashion-cnn`` on Fashion-MNIST: the 60,000 training images, the 10,000 test images held out
  (Debian's dataset-fashion-mnist, or --fashion-dir with the IDX files).
- ``mnist-resnet`` and ``fashion-resnet``: the second, independent evaluators, another architecture
  (CrossClassifier) and seed on another split: mnist5k with another 500 held out (seed 1), and
  Fashion-MNIST's 10,000 test images, with 10,000 of the training images held out.

The weights go to ganforge/metrics/weights/NAME.pt and their SHA-256, accuracy and split to
ganforge/metrics/weights/evaluators.json; every figure ganforge reports carries that hash.

    python scripts/train_evaluators.py [--only mnist-cnn] [--fashion-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.config import DataConfig
from ganforge.data import FASHION_MNIST_SYSTEM_DIR, load_mnist5k
from ganforge.idx import find_idx, read_idx
from ganforge.metrics.classifier import CrossClassifier, EvalClassifier

WEIGHTS = Path(__file__).resolve().parents[1] / "ganforge" / "metrics" / "weights"


def normalise(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1.0)


def stratified_split(labels: torch.Tensor, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    held = torch.cat([torch.nonzero(labels == c).flatten()[torch.randperm(int((labels == c).sum()), generator=g)[:per_class]]
                      for c in range(10)])
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held] = False
    return torch.nonzero(mask).flatten(), held


def shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random translations by up to 2 pixels: cheap augmentation that generalises better."""
    padded = F.pad(x, (2, 2, 2, 2), value=-1.0)
    dx, dy = torch.randint(0, 5, (2,), generator=g).tolist()
    return padded[:, :, dy:dy + 28, dx:dx + 28]


def train(images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int = 0,
          architecture: type[torch.nn.Module] = EvalClassifier) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = architecture()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (len(images) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(images), generator=g)
        for i in range(len(images) // 128):
            idx = perm[i * 128:(i + 1) * 128]
            _, logits = model(shift(normalise(images[idx]), g))
            loss = F.cross_entropy(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    correct = sum(int((model(normalise(chunk))[1].argmax(1) == lab).sum())
                  for chunk, lab in zip(images.split(1000), labels.split(1000)))
    return correct / len(labels)


def save(name: str, model: torch.nn.Module, record: dict) -> None:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    blob = buffer.getvalue()
    (WEIGHTS / f"{name}.pt").write_bytes(blob)
    index_path = WEIGHTS / "evaluators.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[name] = {**record, "sha256": hashlib.sha256(blob).hexdigest(), "torch": torch.__version__}
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    print(f"{name}: held-out accuracy {record['heldout_accuracy']:.4f}, sha256 {index[name]['sha256'][:16]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["mnist-cnn", "fashion-cnn", "mnist-resnet", "fashion-resnet"])
    parser.add_argument("--fashion-dir", type=Path, default=FASHION_MNIST_SYSTEM_DIR)
    args = parser.parse_args()
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "mnist-cnn"):
        data = load_mnist5k(DataConfig())
        train_idx, held_idx = stratified_split(data.labels, 50, seed=0)
        start = time.perf_counter()
        model = train(data.images[train_idx], data.labels[train_idx], epochs=30)
        save("mnist-cnn", model, {
            "data": "mnist5k", "train_split": "mnist5k minus held-out (4500)", "heldout_split": "mnist5k, 50 per class, seed 0 (500)",
            "heldout_accuracy": accuracy(model, data.images[held_idx], data.labels[held_idx]),
            "train_seconds": round(time.perf_counter() - start, 1),
        })
    if args.only in (None, "mnist-resnet"):
        data = load_mnist5k(DataConfig())
        train_idx, held_idx = stratified_split(data.labels, 50, seed=1)
        start = time.perf_counter()
        model = train(data.images[train_idx], data.labels[train_idx], epochs=20, seed=1, architecture=CrossClassifier)
        save("mnist-resnet", model, {
            "data": "mnist5k", "architecture": "CrossClassifier",
            "train_split": "mnist5k minus held-out (4500)", "heldout_split": "mnist5k, 50 per class, seed 1 (500)",
            "heldout_accuracy": accuracy(model, data.images[held_idx], data.labels[held_idx]),
            "train_seconds": round(time.perf_counter() - start, 1),
        })

    def split(prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
        images = find_idx(args.fashion_dir, f"{prefix}-images-idx3-ubyte")
        labels = find_idx(args.fashion_dir, f"{prefix}-labels-idx1-ubyte")
        if images is None or labels is None:
            raise SystemExit(f"{args.fashion_dir}: no Fashion-MNIST {prefix} IDX files; pass --fashion-dir")
        return read_idx(images).unsqueeze(1), read_idx(labels).long()

    if args.only in (None, "fashion-resnet"):
        test_images, test_labels = split("t10k")
        train_images, train_labels = split("train")
        held = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(1))[:10000]
        start = time.perf_counter()
        model = train(test_images, test_labels, epochs=12, seed=1, architecture=CrossClassifier)
        save("fashion-resnet", model, {
            "data": "fashion-mnist", "architecture": "CrossClassifier", "train_split": "t10k (10000)",
            "heldout_split": "train, 10000 drawn with seed 1",
            "heldout_accuracy": accuracy(model, train_images[held], train_labels[held]),
            "train_seconds": round(time.perf_counter() - start, 1),
        })
    if args.only in (None, "fashion-cnn"):
        train_images, train_labels = split("train")
        test_images, test_labels = split("t10k")
        start = time.perf_counter()
        model = train(train_images, train_labels, epochs=6)
        save("fashion-cnn", model, {
            "data": "fashion-mnist", "train_split": "train (60000)", "heldout_split": "t10k (10000)",
            "heldout_accuracy": accuracy(model, test_images, test_labels),
            "train_seconds": round(time.perf_counter() - start, 1),
        })


if __name__ == "__main__":
    main()
