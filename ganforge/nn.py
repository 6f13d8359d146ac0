"""Generator and Discriminator base classes: the shape contract every variant keeps.

A generator maps ``(z, labels?)`` to images ``(B, C, H, W)`` in [-1, 1]; a discriminator maps
``(x, labels?)`` to logits ``(B, 1)``. Subclasses implement ``generate`` / ``score``; ``forward``
checks the inputs first, so a wrong call fails with what was expected and what arrived instead of a
matrix-size error deep inside the network, and the output's shape after, so that a plugin's broken
model stops the run with its name instead of training on a wrong shape (shapes are known on the
host: the checks cost no device sync).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from .errors import GanforgeError


class InputError(GanforgeError, ValueError):
    """A generator or discriminator was called with inputs that break its shape contract."""


class ContractError(GanforgeError):
    """A plugin's generator or discriminator returned what the contract rules out."""


CHECK_HINT = "the plugin breaks ganforge's contract (ganforge.testing.check_variant finds such mistakes)"
RANGE_TOLERANCE = 1e-3
"""How far beyond [-1, 1] a generator's output may stray (rounding at the end of a tanh) before it counts as outside."""


_check_label_values = True


@contextlib.contextmanager
def trusted_labels() -> Iterator[None]:
    """Skip the label range check, which reads the labels on the host (a device sync).

    The trainer uses it for labels it drew itself or validated once when the data set loaded.
    """
    global _check_label_values
    previous, _check_label_values = _check_label_values, False
    try:
        yield
    finally:
        _check_label_values = previous


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


class _Contract(nn.Module):
    origin: str | None = None
    """Which variant and plugin built this module (set by ``ganforge.variant.build_models``), for error messages."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int | None) -> None:
        super().__init__()
        if num_classes is not None and num_classes < 2:
            raise InputError(f"num_classes must be at least 2 or None, got {num_classes}")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_classes = num_classes

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    def _broken(self, what: str) -> ContractError:
        return ContractError(f"{self.origin or type(self).__name__}: {what}; {CHECK_HINT}")

    def _check_labels(self, labels: torch.Tensor | None, batch: int) -> None:
        who = type(self).__name__
        if self.num_classes is None:
            if labels is not None:
                raise InputError(f"{who} is unconditional and takes no labels, got labels of shape {_shape(labels)}")
            return
        if labels is None:
            raise InputError(f"{who} is conditional on {self.num_classes} classes: expected labels of shape ({batch},), got None")
        if labels.shape != (batch,) or labels.dtype not in (torch.int64, torch.int32):
            raise InputError(
                f"{who} expected labels of shape ({batch},) and dtype int64, got {_shape(labels)} and {labels.dtype}"
            )
        if _check_label_values and batch:
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= self.num_classes:
                raise InputError(f"{who} expected labels in [0, {self.num_classes - 1}], got values from {low} to {high}")


class Generator(_Contract):
    """Maps latent codes ``z`` of shape (B, latent_dim), and labels if conditional, to (B, C, H, W) in [-1, 1].

    ``bounded``: the images lie in [-1, 1] (a generator ending in tanh). A generator whose images are
    clipped where they are read instead (StyleGAN's) sets it False; sampling clips them and the
    range check skips them. ``truncated(psi)``: a generator with an average latent to pull towards
    (StyleGAN's w) overrides it to sample with that truncation.
    """

    bounded: bool = True

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], num_classes: int | None = None) -> None:
        super().__init__(image_shape, num_classes)
        self.latent_dim = int(latent_dim)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise InputError(f"{type(self).__name__} expected z of shape (B, {self.latent_dim}), got {_shape(z)}")
        self._check_labels(labels, z.shape[0])
        images = self.generate(z, labels)
        if images.shape[0] != z.shape[0] or tuple(images.shape[1:]) != self.image_shape:
            raise self._broken(f"its generator returned images of shape {_shape(images)}, "
                               f"expected ({z.shape[0]}, {', '.join(map(str, self.image_shape))})")
        return images

    def truncated(self, psi: float) -> contextlib.AbstractContextManager[None]:
        """A context in which the generator draws with truncation ``psi`` towards its average latent
        (1: none, 0: the average itself); only generators that keep one (StyleGAN's w) have it."""
        raise GanforgeError(f"{self.origin or type(self).__name__} has no average latent to truncate towards "
                            "(--psi is for StyleGAN's w); --truncation redraws z instead")

    def check_range(self, images: torch.Tensor) -> None:
        """Raise ContractError unless ``images`` (this generator's output) lie in [-1, 1]. It reads the
        images on the host, so the loop calls it once, on a first batch, rather than at every step."""
        low, high = float(images.min()), float(images.max())
        if not self.bounded:
            if not (math.isfinite(low) and math.isfinite(high)):
                raise self._broken(f"its generator's images hold NaN or Inf (values from {low} to {high})")
            return
        if not (low >= -1 - RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE):
            raise self._broken(f"its generator's images must lie in [-1, 1] (end it in tanh), got values from "
                               f"{low:.4g} to {high:.4g}")

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Map checked inputs to images; subclasses implement this."""
        raise NotImplementedError

    def sample_latent(self, batch: int, *, device: torch.device | str | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``batch`` latent codes from the prior, N(0, I) unless a subclass says otherwise."""
        return torch.randn(batch, self.latent_dim, device=device, generator=generator)


def draw_latent(model: Generator, n: int, truncation: float | None = None, *, device: torch.device | str | None = None,
                generator: torch.Generator | None = None, max_rounds: int = 1000) -> torch.Tensor:
    """``n`` codes from ``model``'s prior; with ``truncation`` T, every entry within [-T, T], by
    redrawing the entries beyond it (the truncation trick, Brock et al. 2019): images nearer the
    prior's centre look more typical of their class and vary less, so fidelity rises as diversity falls."""
    if truncation is not None and not truncation > 0:
        raise GanforgeError(f"--truncation {truncation}: give a positive threshold (1.0 keeps about 68% of N(0, 1) draws)")
    z = model.sample_latent(n, device=device, generator=generator)
    if truncation is None:
        return z
    for _ in range(max_rounds):
        beyond = z.abs() > truncation
        if not beyond.any():
            return z
        z = torch.where(beyond, model.sample_latent(n, device=device, generator=generator), z)
    raise GanforgeError(f"--truncation {truncation}: too few draws from the prior fall within it; use a larger threshold")


class Discriminator(_Contract):
    """Maps images (B, C, H, W), and labels if conditional, to logits (B, 1): no sigmoid inside."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int | None = None) -> None:
        super().__init__(image_shape, num_classes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            c, h, w = self.image_shape
            raise InputError(f"{type(self).__name__} expected images of shape (B, {c}, {h}, {w}), got {_shape(x)}")
        self._check_labels(labels, x.shape[0])
        logits = self.score(x, labels)
        if tuple(logits.shape) != (x.shape[0], 1):
            raise self._broken(f"its discriminator returned logits of shape {_shape(logits)}, expected ({x.shape[0]}, 1)")
        return logits

    def score(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Map checked inputs to logits of shape (B, 1); subclasses implement this."""
        raise NotImplementedError

    def blocks(self) -> list[nn.Module]:
        """D's stages from the input side, which ``--set freeze_d=K`` freezes the first K of.

        By default the modules of its one container child (an ``nn.Sequential`` named ``net``, say),
        else its children; a variant with another layout names its blocks by overriding this.
        """
        children = list(self.children())
        if len(children) == 1 and isinstance(children[0], (nn.Sequential, nn.ModuleList)):
            return list(children[0].children())
        return children

    def freeze(self, count: int) -> int:
        """Freeze the weights of the first ``count`` blocks (FreezeD, Mo et al. 2020); how many weights froze."""
        blocks = self.blocks()
        if count > len(blocks):
            raise GanforgeError(f"freeze_d={count}: {self.origin or type(self).__name__}'s discriminator has "
                                f"{len(blocks)} blocks")
        frozen = 0
        for block in blocks[:count]:
            for p in block.parameters():
                p.requires_grad_(False)
                frozen += p.numel()
        return frozen
