"""A tiny convolutional GAN as a ganforge plugin: one config model, two modules, one hook."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

import ganforge
from ganforge import DataShape, Discriminator, Generator, VariantConfig, VariantSpec


class TinyConfig(VariantConfig):
    """Every architecture knob, with a default; unknown keys are refused (extra="forbid")."""

    latent_dim: int = Field(16, ge=1)
    width: int = Field(8, ge=1, description="channels of the hidden feature map")


class TinyGenerator(Generator):
    """z -> a (width, H/2, W/2) map -> upsample -> image in [-1, 1]."""

    def __init__(self, config: TinyConfig, shape: DataShape) -> None:
        super().__init__(config.latent_dim, shape.image_shape)
        c, h, w = shape.image_shape
        self.half = (config.width, h // 2, w // 2)
        self.project = nn.Linear(config.latent_dim, config.width * (h // 2) * (w // 2))
        self.to_image = nn.Sequential(nn.ReLU(), nn.Upsample(size=(h, w)), nn.Conv2d(config.width, c, 3, padding=1), nn.Tanh())

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.to_image(self.project(z).view(-1, *self.half))


class TinyDiscriminator(Discriminator):
    """One strided convolution and a linear read-out: logits of shape (B, 1), no sigmoid."""

    def __init__(self, config: TinyConfig, shape: DataShape) -> None:
        super().__init__(shape.image_shape)
        c, h, w = shape.image_shape
        self.net = nn.Sequential(nn.Conv2d(c, config.width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(),
                                 nn.Linear(config.width * (h // 2) * (w // 2), 1))

    def score(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.net(x)


TINY = VariantSpec(
    name="tiny",
    description="example plugin: a tiny conv GAN",
    config=TinyConfig,
    build_generator=TinyGenerator,
    build_discriminator=TinyDiscriminator,
    default_loss="hinge",
    aliases=("tinygan",),
    example_shapes=((1, 28, 28), (3, 32, 32), (1, 8, 8)),
)


@ganforge.hookimpl
def ganforge_register_variants(register):
    register(TINY)
