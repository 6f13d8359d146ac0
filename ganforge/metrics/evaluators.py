"""Evaluators: networks that map images to features (and class logits), each identified by a SHA-256,
registered by name through ``ganforge_register_evaluators`` like every other plugin. Each is a
torch-fidelity feature extractor, so the distances are computed by torch-fidelity on its features
(and ``torch_fidelity.calculate_metrics(feature_extractor="ganforge-mnist-cnn", ...)`` gives the same).

Built in:

- ``fid-inception``: the Inception network of TensorFlow's 2015-12-05 graph, ported to PyTorch, as
  pytorch-fid, torch-fidelity and StyleGAN2-ADA's metrics load it: the network every published FID is
  computed with. It runs through torch-fidelity from a local weights file (``--inception-weights``,
  ``GANFORGE_INCEPTION_WEIGHTS``) whose SHA-256 must be the published file's. Images are quantised
  to uint8 and resized to 299 px by torch-fidelity's TensorFlow-1 bilinear filter, as the others do.
- ``torchvision-inception``: torchvision's ImageNet Inception-v3, for users who have only those
  weights. Its figures are not comparable with published ones, and are marked so.
- ``mnist-cnn`` and ``fashion-cnn``, classifiers shipped with ganforge, and their independently
  trained second opinions ``mnist-resnet`` and ``fashion-resnet`` (another architecture, seed and
  split; scripts/train_evaluators.py). Their held-out accuracy is recorded beside their weights.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity import register_feature_extractor
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from ..errors import GanforgeError
from ..hookspecs import hookimpl
from .classifier import CrossClassifier, EvalClassifier

FID_INCEPTION_FILES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
"""The FID Inception's file as torch-fidelity and pytorch-fid name it: the same bytes."""
FID_INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
"""The SHA-256 of the published weights of the TF 2015-12-05 Inception."""
TORCHVISION_INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"


@dataclass
class Evaluator:
    """A frozen network with its identity: every reported figure carries ``name`` and ``sha256``.

    ``model`` maps uint8 images (N, C, H, W) of ``input_shape`` to a tuple of features (N, ``feature_dim``)
    and, optionally, logits (N, ``num_classes``), as torch-fidelity's feature extractors do;
    an ``input_shape`` of (C, 0, 0) takes any size (the network resizes itself). ``comparable``: its
    figures can be set beside published ones. ``resize`` says how images reach the network's input
    size: part of the protocol, since another filter changes FID. ``logits_are_classes``: the logits
    classify the data's own classes (the FID Inception's are ImageNet's, for the Inception Score).
    """

    name: str
    sha256: str
    model: nn.Module
    input_shape: tuple[int, int, int]
    num_classes: int | None
    feature_dim: int
    heldout_accuracy: float | None = None
    comparable: bool = False
    resize: str = "bilinear, antialiased, on float images, then quantised to uint8"
    logits_are_classes: bool = True

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features (N, D) and logits (N, K) or None, on the CPU, of uint8 images or float images in [-1, 1]."""
        device = next(itertools.chain(self.model.parameters(), self.model.buffers()), torch.empty(0)).device
        feats, logits = [], []
        for chunk in images.split(batch_size):
            out = self.model(self.fit(chunk).to(device))
            feats.append(out[0].float().cpu())
            if len(out) > 1 and out[1] is not None:
                logits.append(out[1].float().cpu())
        return torch.cat(feats), (torch.cat(logits) if logits else None)

    def fit(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as the network takes it: uint8, with its channels, at its size. Generated images are
        quantised as a saved PNG would be (StyleGAN's ``x * 127.5 + 128``, clamped, truncated)."""
        c, h, w = self.input_shape
        resize = bool(h) and tuple(x.shape[2:]) != (h, w)
        if x.dtype == torch.uint8 and not resize:
            return x if x.shape[1] == c else _match_channels(x, c)
        if x.dtype == torch.uint8:
            x = x.float().div(127.5).sub(1.0)
        if resize:
            x = F.interpolate(x.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        pixels = (x.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
        return pixels if pixels.shape[1] == c else _match_channels(pixels, c)


def _match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey images repeated into RGB for an RGB network; RGB images averaged for a grey one."""
    if channels == 3 and x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    return x.float().mean(1, keepdim=True).round().to(torch.uint8)


@dataclass(frozen=True)
class EvaluatorSpec:
    """An evaluator as a plugin registers it: ``build(device, weights, expected_sha256)`` loads it
    (``weights``: a file the user gave, for evaluators without shipped weights; ``expected_sha256``
    overrides the digest it checks, for tests that build weights of their own)."""

    name: str
    description: str
    build: Callable[[torch.device | str, Path | None, str | None], Evaluator]
    comparable: bool = False
    aliases: tuple[str, ...] = ()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _weights_dir() -> Path:
    return Path(str(files("ganforge.metrics") / "weights"))


class ClassifierFeatures(FeatureExtractorBase):
    """A shipped classifier as a torch-fidelity feature extractor: uint8 grey 28x28 images in,
    ``features`` and ``logits`` out. Registered with torch-fidelity as ``ganforge-NAME``, so
    ``torch_fidelity.calculate_metrics(feature_extractor="ganforge-mnist-cnn", ...)`` computes the
    same figures as ganforge."""

    evaluator_name = ""
    architecture: type[nn.Module] = EvalClassifier

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name, features_list)
        self.net = self.architecture()
        path = feature_extractor_weights_path or _weights_dir() / f"{self.evaluator_name}.pt"
        self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.net.eval().requires_grad_(False)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "logits" if metric == "isc" else "features"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 1, 28, 28, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features, logits = self.net(x.float().div(127.5).sub(1.0))
        found = {"features": features, "logits": logits}
        return tuple(found[name] for name in self.features_list)


def _classifier_features(name: str, architecture: type[nn.Module]) -> type[ClassifierFeatures]:
    return type(f"ClassifierFeatures_{name.replace('-', '_')}", (ClassifierFeatures,),
                {"evaluator_name": name, "architecture": architecture})


def _shipped(name: str, architecture: type[nn.Module]) -> Callable[[torch.device | str, Path | None, str | None], Evaluator]:
    def build(device: torch.device | str, weights: Path | None, expected: str | None) -> Evaluator:
        index = json.loads((_weights_dir() / "evaluators.json").read_text())
        path = _weights_dir() / f"{name}.pt"
        digest = file_sha256(path)
        recorded = expected or index[name]["sha256"]
        if digest != recorded:
            raise GanforgeError(f"{path}: sha256 {digest[:16]}... does not match the recorded {recorded[:16]}...; reinstall ganforge")
        model = EXTRACTORS[name](f"ganforge-{name}", ["features", "logits"], str(path))
        return Evaluator(name, digest, model.to(device), (1, 28, 28), 10, architecture.feature_dim,  # type: ignore[attr-defined]
                         index[name]["heldout_accuracy"])

    return build


def weights_path(explicit: Path | None, default_names: tuple[str, ...]) -> Path:
    """Where an Inception's weights are: the argument, $GANFORGE_INCEPTION_WEIGHTS, or torch's hub
    cache (where pytorch-fid, torch-fidelity or torchvision put them when they download them)."""
    candidates = [explicit] if explicit else []
    if os.environ.get("GANFORGE_INCEPTION_WEIGHTS"):
        candidates.append(Path(os.environ["GANFORGE_INCEPTION_WEIGHTS"]))
    if explicit is not None and not explicit.is_file():
        raise GanforgeError(f"--inception-weights {explicit}: no such file")
    candidates += [Path(torch.hub.get_dir()) / "checkpoints" / name for name in default_names]
    for path in candidates:
        if path.is_file():
            return path
    raise GanforgeError(
        f"Inception weights not found (looked at {', '.join(str(p) for p in candidates)}); download {default_names[0]} "
        "on a machine online and give it with --inception-weights FILE or GANFORGE_INCEPTION_WEIGHTS=FILE"
    )


def build_fid_inception(device: torch.device | str, weights: Path | None, expected: str | None) -> Evaluator:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = weights_path(weights, FID_INCEPTION_FILES)
    digest = file_sha256(path)
    wanted = expected or FID_INCEPTION_SHA256
    if digest != wanted:
        raise GanforgeError(f"{path}: sha256 {digest[:16]}... is not the published FID Inception's {wanted[:16]}... "
                            f"({FID_INCEPTION_FILES[0]} from torch-fidelity or pytorch-fid); figures from other weights "
                            "mean nothing beside published ones")
    try:
        model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                            feature_extractor_weights_path=str(path))
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on a foreign file
        raise GanforgeError(f"{path}: not the FID Inception's weights ({str(exc).splitlines()[0][:160]})") from None
    return Evaluator("fid-inception", digest, model.to(device), (3, 0, 0), 1008, 2048, comparable=True,
                     resize="uint8 images, resized to 299 px by TensorFlow 1's bilinear filter inside the network "
                            "(torch-fidelity; as pytorch-fid and StyleGAN2-ADA)", logits_are_classes=False)


class TorchvisionInceptionFeatures(FeatureExtractorBase):
    """torchvision's ImageNet Inception-v3 as a torch-fidelity feature extractor (``2048`` pool
    features), registered as ``ganforge-torchvision-inception``; its figures are not comparable with
    published ones."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None,
                 **kwargs: Any) -> None:
        from torchvision.models import inception_v3

        super().__init__(name, features_list)
        self.net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        if feature_extractor_weights_path is not None:
            self.net.load_state_dict(torch.load(feature_extractor_weights_path, map_location="cpu", weights_only=True))
        self.net.fc = nn.Identity()
        self.net.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("2048",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "2048"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 3, 299, 299, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        x = F.interpolate(x.float() / 255, size=(299, 299), mode="bilinear", antialias=True, align_corners=False)
        return (self.net((x - self.mean) / self.std),)


def build_torchvision_inception(device: torch.device | str, weights: Path | None, expected: str | None) -> Evaluator:
    path = weights_path(weights, (TORCHVISION_INCEPTION_FILE,))
    try:
        model = TorchvisionInceptionFeatures("ganforge-torchvision-inception", ["2048"], str(path))
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on a foreign file
        raise GanforgeError(f"{path}: not torchvision Inception-v3 weights ({str(exc).splitlines()[0][:160]})") from None
    return Evaluator("torchvision-inception", file_sha256(path), model.to(device), (3, 0, 0), None, 2048,
                     comparable=False, resize="bilinear, antialiased, to 299 px on float images (torchvision's)")


EXTRACTORS: dict[str, type[FeatureExtractorBase]] = {
    "mnist-cnn": _classifier_features("mnist-cnn", EvalClassifier),
    "mnist-resnet": _classifier_features("mnist-resnet", CrossClassifier),
    "fashion-cnn": _classifier_features("fashion-cnn", EvalClassifier),
    "fashion-resnet": _classifier_features("fashion-resnet", CrossClassifier),
    "torchvision-inception": TorchvisionInceptionFeatures,
}
"""ganforge's evaluators as torch-fidelity feature extractors, registered with it as ``ganforge-NAME``."""
for _name, _cls in EXTRACTORS.items():
    if f"ganforge-{_name}" not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(f"ganforge-{_name}", _cls)


BUILTIN_EVALUATORS = (
    EvaluatorSpec("mnist-cnn", "a CNN classifier of digits, shipped (99.6% on 500 held-out mnist5k digits)",
                  _shipped("mnist-cnn", EvalClassifier)),
    EvaluatorSpec("mnist-resnet", "an independent second classifier of digits: another architecture, seed and split",
                  _shipped("mnist-resnet", CrossClassifier)),
    EvaluatorSpec("fashion-cnn", "a CNN classifier of Fashion-MNIST, shipped (trained on its 60,000 training images)",
                  _shipped("fashion-cnn", EvalClassifier)),
    EvaluatorSpec("fashion-resnet", "an independent second classifier of Fashion-MNIST, trained on its test split",
                  _shipped("fashion-resnet", CrossClassifier)),
    EvaluatorSpec("fid-inception", "the TF 2015-12-05 Inception of published FIDs, through torch-fidelity "
                  "(weights from --inception-weights, checked by SHA-256)", build_fid_inception, comparable=True,
                  aliases=("inception",)),
    EvaluatorSpec("torchvision-inception", "torchvision's ImageNet Inception-v3: figures NOT comparable with "
                  "published ones", build_torchvision_inception, aliases=("inception-v3",)),
)


@hookimpl
def ganforge_register_evaluators(register: Callable[..., None]) -> None:
    for spec in BUILTIN_EVALUATORS:
        register(spec)


def evaluator_for(name: str, device: torch.device | str = "cpu", weights: Path | None = None, *,
                  expected_sha256: str | None = None, catalog: Any = None) -> Evaluator:
    """The evaluator registered as ``name``, loaded onto ``device``."""
    from ..catalog import load_catalog

    return (catalog or load_catalog()).evaluators.get(name).build(device, weights, expected_sha256)


def evaluator_names() -> list[str]:
    """Every evaluator a data set may name."""
    from ..catalog import load_catalog

    return load_catalog().evaluators.names()
