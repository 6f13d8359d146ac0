"""Evaluators: networks that map images to features (and class logits), identified by a hash.

``mnist-cnn`` and ``fashion-cnn`` ship with ganforge (trained by scripts/train_evaluators.py, their
held-out accuracy in weights/evaluators.json). ``inception-v3`` is torchvision's Inception-v3 with
ImageNet weights that the user provides, for colour data (CIFAR-10, image folders).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanforgeError
from .classifier import EvalClassifier

INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"


@dataclass
class Evaluator:
    """A frozen network with its identity: every reported figure carries ``name`` and ``sha256``."""

    name: str
    sha256: str
    model: nn.Module
    input_shape: tuple[int, int, int]
    num_classes: int | None
    feature_dim: int
    heldout_accuracy: float | None = None

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features (N, D) and, for classifiers, logits (N, K) of images in [-1, 1], on the CPU."""
        device = next(self.model.parameters()).device
        feats, logits = [], []
        for chunk in images.split(batch_size):
            f, lg = self.model(self._fit(chunk.to(device).float()))
            feats.append(f.cpu())
            if lg is not None:
                logits.append(lg.cpu())
        return torch.cat(feats), (torch.cat(logits) if logits else None)

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = self.input_shape
        if x.shape[1] != c:
            x = x.mean(1, keepdim=True).expand(-1, c, -1, -1) if c == 3 else x.mean(1, keepdim=True)
        if x.shape[2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        return x


def _weights_dir() -> Path:
    return Path(str(files("ganforge.metrics") / "weights"))


def evaluator_names() -> list[str]:
    """Every evaluator a data set may name."""
    return sorted([*json.loads((_weights_dir() / "evaluators.json").read_text()), "inception-v3"])


def shipped_evaluator(name: str, device: torch.device | str = "cpu") -> Evaluator:
    """One of the classifiers that ship with ganforge, checked against its recorded hash."""
    index = json.loads((_weights_dir() / "evaluators.json").read_text())
    if name not in index:
        raise GanforgeError(f"unknown evaluator {name!r}; shipped: {', '.join(sorted(index))}, or inception-v3")
    path = _weights_dir() / f"{name}.pt"
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != index[name]["sha256"]:
        raise GanforgeError(f"{path}: sha256 {digest[:16]}... does not match the recorded {index[name]['sha256'][:16]}...; reinstall ganforge")
    model = EvalClassifier()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return Evaluator(name, digest, model.to(device).eval(), (1, 28, 28), 10, EvalClassifier.feature_dim,
                     index[name]["heldout_accuracy"])


class _InceptionFeatures(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.net(x), None


def inception_weights_path(explicit: Path | None = None) -> Path:
    """Where Inception-v3 weights are: the argument, $GANFORGE_INCEPTION_WEIGHTS, or torch's hub cache."""
    candidates = [explicit] if explicit else []
    if os.environ.get("GANFORGE_INCEPTION_WEIGHTS"):
        candidates.append(Path(os.environ["GANFORGE_INCEPTION_WEIGHTS"]))
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE)
    for path in candidates:
        if path.is_file():
            return path
    raise GanforgeError(
        f"Inception-v3 weights not found (looked at {', '.join(str(p) for p in candidates)}); on a machine online, run "
        "`python -c \"import torchvision; torchvision.models.inception_v3(weights='IMAGENET1K_V1')\"` to cache them, "
        "or set GANFORGE_INCEPTION_WEIGHTS=/path/to/" + INCEPTION_FILE
    )


def inception_evaluator(weights: Path | None = None, device: torch.device | str = "cpu") -> Evaluator:
    """torchvision's Inception-v3 pool features (2048-d) with the user's ImageNet weights."""
    from torchvision.models import inception_v3

    path = inception_weights_path(weights)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on a foreign file
        raise GanforgeError(f"{path}: not torchvision Inception-v3 weights ({str(exc).splitlines()[0][:160]})") from None
    net.fc = nn.Identity()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Evaluator("inception-v3", digest, _InceptionFeatures(net).to(device).eval(), (3, 299, 299), None, 2048)


def evaluator_for(name: str, device: torch.device | str = "cpu", inception_weights: Path | None = None) -> Evaluator:
    """The evaluator called ``name``."""
    if name == "inception-v3":
        return inception_evaluator(inception_weights, device)
    return shipped_evaluator(name, device)
