"""Differentiable augmentations of every image D sees, registered by name like variants.

The step passes real and generated images alike through the chosen augmentation, in D's update and
in G's, before D scores them: D never sees an un-augmented image, so the augmentation does not
leak into G's images (Zhao et al. 2020; Karras et al. 2020). Every transform is a tensor operation
that gradients pass through, draws its randomness from the step's generator (so a resumed run is
exact), and reads nothing on the host.

Built in: ``diffaugment`` (colour, translation, cutout) and ``ada``, whose probability p follows
D's overfitting. Both work on images in [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field, field_validator
from torch import nn

from .accel.distributed import DistContext
from .hookspecs import hookimpl
from .regularizers import TermOptions


class Augmentation(nn.Module):
    """A built augmentation: ``forward(images, noise)`` returns the transformed images, same shape.

    Adaptive ones also see D's logits on real images (:meth:`observe`, inside the step, on the
    device) and adjust themselves between steps (:meth:`update`, on the host); their buffers are
    their state and go into checkpoints. :meth:`figures` are logged with the losses.
    """

    def __init__(self, options: TermOptions) -> None:
        super().__init__()
        self.options = options

    def forward(self, images: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def observe(self, real_logits: torch.Tensor) -> None:
        """D's logits on a real batch, in D's update (inside the step: no host sync)."""

    def update(self, step: int, dist: DistContext) -> None:
        """After step ``step`` (1 for the first), outside the step: where an adaptive augmentation adjusts itself."""

    def figures(self) -> dict[str, torch.Tensor]:
        """Scalars to log, as device tensors (read at log steps only)."""
        return {}


@dataclass(frozen=True)
class AugmentationSpec:
    """An augmentation as a plugin registers it: ``build(options)`` makes one from its validated options."""

    name: str
    description: str
    build: Callable[[Any], Augmentation]
    options: type[TermOptions] = TermOptions
    aliases: tuple[str, ...] = ()


def _uniform(n: int, like: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
    return torch.rand(n, device=like.device, generator=noise, dtype=torch.float32)


def random_flip(images: torch.Tensor, noise: torch.Generator, p: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Each image mirrored left to right with probability ``p`` / 2 (``p`` = 1: a fair coin)."""
    flip = (_uniform(len(images), images, noise) < 0.5) & (_uniform(len(images), images, noise) < p)
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def _shifted(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, *, reflect: bool) -> torch.Tensor:
    """Each image moved by (dy, dx) whole pixels; uncovered pixels are zero or, with ``reflect``, mirrored."""
    b, _, h, w = images.shape
    rows = torch.arange(h, device=images.device)[None, :] - dy[:, None]
    cols = torch.arange(w, device=images.device)[None, :] - dx[:, None]
    if reflect:
        rows, cols = _reflected(rows, h), _reflected(cols, w)
        return images[torch.arange(b, device=images.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    rows, cols = rows.clamp(-1, h) + 1, cols.clamp(-1, w) + 1
    return padded[torch.arange(b, device=images.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _reflected(index: torch.Tensor, n: int) -> torch.Tensor:
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * n - 2
    index = index.remainder(period)
    return torch.where(index >= n, period - index, index)


def random_translation(images: torch.Tensor, ratio: float, noise: torch.Generator) -> torch.Tensor:
    """Each image shifted by up to ``ratio`` of its side in each direction, zero padded (DiffAugment's translation)."""
    b, _, h, w = images.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b,), device=images.device, generator=noise)
    dx = torch.randint(-sx, sx + 1, (b,), device=images.device, generator=noise)
    return _shifted(images, dy, dx, reflect=False)


def random_cutout(images: torch.Tensor, ratio: float, noise: torch.Generator) -> torch.Tensor:
    """Each image with a zeroed square of ``ratio`` of its side at a random place (DiffAugment's cutout)."""
    b, _, h, w = images.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (b, 1), device=images.device, generator=noise) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (b, 1), device=images.device, generator=noise) - cw // 2
    rows = torch.arange(h, device=images.device)[None, :]
    cols = torch.arange(w, device=images.device)[None, :]
    inside = ((rows >= top) & (rows < top + ch))[:, :, None] & ((cols >= left) & (cols < left + cw))[:, None, :]
    return images * (~inside)[:, None].to(images.dtype)


def random_color(images: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
    """DiffAugment's colour: brightness shifted by U(-0.5, 0.5), saturation scaled by U(0, 2), contrast by U(0.5, 1.5)."""
    b = len(images)
    shape = (b, 1, 1, 1)
    images = images + (_uniform(b, images, noise).view(shape) - 0.5).to(images.dtype)
    mean = images.mean(dim=1, keepdim=True)
    images = (images - mean) * (_uniform(b, images, noise).view(shape) * 2).to(images.dtype) + mean
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform(b, images, noise).view(shape) + 0.5).to(images.dtype) + mean


DIFFAUGMENT_POLICIES = ("color", "translation", "cutout")


class DiffAugmentOptions(TermOptions):
    policy: str = Field("color,translation,cutout", description="comma-separated: color, translation, cutout")
    translation: float = Field(0.125, ge=0, le=0.5, description="largest shift, as a share of the side")
    cutout: float = Field(0.5, ge=0, le=1, description="side of the cut-out square, as a share of the image's")

    @field_validator("policy")
    @classmethod
    def _known(cls, policy: str) -> str:
        parts = [p.strip() for p in policy.split(",") if p.strip()]
        unknown = [p for p in parts if p not in DIFFAUGMENT_POLICIES]
        if unknown or not parts:
            raise ValueError(f"policy {policy!r}: choose from {', '.join(DIFFAUGMENT_POLICIES)}")
        return ",".join(parts)


class DiffAugment(Augmentation):
    """Differentiable augmentation (Zhao et al. 2020), each transform on every image, in policy order."""

    options: DiffAugmentOptions

    def forward(self, images: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        for name in self.options.policy.split(","):
            if name == "color":
                images = random_color(images, noise)
            elif name == "translation":
                images = random_translation(images, self.options.translation, noise)
            else:
                images = random_cutout(images, self.options.cutout, noise)
        return images


class ADAOptions(TermOptions):
    target: float = Field(0.6, gt=0, lt=1, description="the overfitting signal E[sign(D(real))] that p is steered to")
    interval: int = Field(4, ge=1, le=1000, description="steps between adjustments of p")
    kimg: float = Field(500.0, gt=0, description="thousands of real images over which p can move from 0 to 1")
    p: float = Field(0.0, ge=0, le=1, description="the probability p starts at")
    adjust: bool = Field(True, description="adjust p from the overfitting signal; false keeps p fixed")
    translation: float = Field(0.125, ge=0, le=0.5, description="largest integer translation, as a share of the side")
    brightness: float = Field(0.2, ge=0, description="standard deviation of the brightness shift")
    contrast: float = Field(0.5, ge=0, description="standard deviation of log2 of the contrast factor")
    hue: float = Field(1.0, ge=0, le=1, description="largest hue rotation, as a share of half a turn")
    saturation: float = Field(1.0, ge=0, description="standard deviation of log2 of the saturation factor")


class ADA(Augmentation):
    """Adaptive discriminator augmentation (Karras et al. 2020), with its pixel-blitting and colour groups:
    x-flip, 90-degree rotations and integer translation (mirrored at the edges), then brightness,
    contrast, luma flip, hue rotation and saturation as one colour matrix. Each transform applies to
    each image with probability p.

    p is steered by the overfitting signal r_t = E[sign(D(x_real))]: every ``interval`` steps it moves
    up by (images seen) / (kimg * 1000) where r_t is above ``target``, down where below (never under 0).
    The signal is all-reduced under torchrun, so p is the same on every rank. The geometric group with
    fractional transforms (scaling, arbitrary rotation, anisotropy) is not included.
    """

    options: ADAOptions

    def __init__(self, options: ADAOptions) -> None:
        super().__init__(options)
        self.register_buffer("p", torch.tensor(options.p))
        self.register_buffer("signs", torch.zeros(2))  # sum of sign(D(x_real)), and their count, since the last adjustment

    def observe(self, real_logits: torch.Tensor) -> None:
        with torch.no_grad():
            self.signs[0].add_(real_logits.detach().float().sign().sum())
            self.signs[1].add_(real_logits.numel())

    def update(self, step: int, dist: DistContext) -> None:
        if not self.options.adjust or step % self.options.interval:
            return
        with torch.no_grad():
            total, count = dist.all_reduce_mean(self.signs).unbind()
            signal = total / count.clamp_min(1)
            images = count * dist.world_size
            self.p.add_(torch.sign(signal - self.options.target) * images / (self.options.kimg * 1000)).clamp_(min=0)
            self.signs.zero_()

    def figures(self) -> dict[str, torch.Tensor]:
        return {"ada_p": self.p}

    def forward(self, images: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        b, c, h, w = images.shape
        p = self.p

        def chance() -> torch.Tensor:
            return _uniform(b, images, noise) < p

        images = random_flip(images, noise, p)
        if h == w:
            turns = torch.randint(0, 4, (b,), device=images.device, generator=noise) * chance()
            for k in (1, 2, 3):
                images = torch.where((turns == k)[:, None, None, None], images.rot90(k, (2, 3)), images)
        shift = (_uniform(2 * b, images, noise).view(2, b) * 2 - 1) * self.options.translation * chance()
        images = _shifted(images, (shift[0] * h).round().long(), (shift[1] * w).round().long(), reflect=True)
        if c in (1, 3):
            images = _apply_colour(images, self._colour_matrices(b, images, noise, chance))
        return images

    def _colour_matrices(self, b: int, like: torch.Tensor, noise: torch.Generator,
                         chance: Callable[[], torch.Tensor]) -> torch.Tensor:
        o = self.options
        device = like.device
        eye = torch.eye(4, device=device).expand(b, 4, 4)
        luma = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device) / math.sqrt(3)
        outer = torch.outer(luma, luma)

        def normal() -> torch.Tensor:
            return torch.randn(b, device=device, generator=noise)

        matrix = eye.clone()
        brightness = normal() * o.brightness * chance()
        matrix = _translation3(brightness) @ matrix
        contrast = torch.exp2(normal() * o.contrast * chance())
        matrix = _scale3(contrast) @ matrix
        flip = torch.floor(_uniform(b, like, noise) * 2) * chance()
        matrix = (eye - 2 * outer * flip[:, None, None]) @ matrix
        theta = (_uniform(b, like, noise) * 2 - 1) * math.pi * o.hue * chance()
        matrix = _rotation_about(luma[:3], theta) @ matrix
        saturation = torch.exp2(normal() * o.saturation * chance())
        matrix = (outer + (eye - outer) * saturation[:, None, None]) @ matrix
        return matrix


def _translation3(t: torch.Tensor) -> torch.Tensor:
    m = torch.eye(4, device=t.device).repeat(len(t), 1, 1)
    m[:, :3, 3] = t[:, None]
    return m


def _scale3(s: torch.Tensor) -> torch.Tensor:
    m = torch.eye(4, device=s.device).repeat(len(s), 1, 1)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = s
    return m


def _rotation_about(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """4x4 rotations by ``theta`` about the unit 3-vector ``axis`` (Rodrigues' formula)."""
    x, y, z = axis
    cross = torch.stack([torch.stack([0 * x, -z, y]), torch.stack([z, 0 * x, -x]), torch.stack([-y, x, 0 * x])])
    cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]
    rotation = cos * torch.eye(3, device=theta.device) + sin * cross + (1 - cos) * torch.outer(axis, axis)
    m = torch.eye(4, device=theta.device).repeat(len(theta), 1, 1)
    m[:, :3, :3] = rotation
    return m


def _apply_colour(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    b, c, h, w = images.shape
    matrix = matrix.to(images.dtype)
    flat = images.reshape(b, c, h * w)
    if c == 3:
        return (matrix[:, :3, :3] @ flat + matrix[:, :3, 3:]).reshape(b, c, h, w)
    grey = matrix[:, :3, :].mean(dim=1, keepdim=True)
    return (flat * grey[:, :, :3].sum(dim=2, keepdim=True) + grey[:, :, 3:]).reshape(b, c, h, w)


BUILTIN_AUGMENTATIONS = (
    AugmentationSpec("diffaugment", "DiffAugment: colour, translation and cutout on every image D sees (Zhao et al. 2020)",
                     DiffAugment, DiffAugmentOptions, aliases=("diffaug",)),
    AugmentationSpec("ada", "adaptive augmentation: flips, rotations, shifts and colour with a p steered by D's "
                     "overfitting (Karras et al. 2020)", ADA, ADAOptions),
)


@hookimpl
def ganforge_register_augmentations(register: Callable[..., None]) -> None:
    for spec in BUILTIN_AUGMENTATIONS:
        register(spec)
