"""The paper's MLP GAN for MNIST (Goodfellow et al. 2014).

G: z (100) -> 256 -> 512 -> 1024 -> C*H*W, LeakyReLU(0.2), tanh. D: C*H*W -> 512 -> 256 -> 1 logit,
LeakyReLU(0.2), no sigmoid (the losses work on logits). Every size is a config field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from ..hookspecs import hookimpl
from ..nn import Discriminator, Generator
from ..variant import DataShape, VariantConfig, VariantSpec


Width = Annotated[int, Field(ge=1)]


class MLPConfig(VariantConfig):
    """Architecture of the MLP GAN."""

    latent_dim: int = Field(100, ge=1, le=4096, description="size of z ~ N(0, I)")
    g_hidden: tuple[Width, ...] = Field((256, 512, 1024), min_length=1, description="generator hidden widths")
    d_hidden: tuple[Width, ...] = Field((512, 256), min_length=1, description="discriminator hidden widths")
    negative_slope: float = Field(0.2, ge=0, lt=1, description="LeakyReLU slope")


def mlp_layers(widths: list[int], slope: float) -> list[nn.Module]:
    """Linear layers through ``widths`` with LeakyReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(fan_in, fan_out), nn.LeakyReLU(slope, inplace=True)]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return layers


class MLPGenerator(Generator):
    """Fully connected generator ending in tanh."""

    def __init__(self, config: MLPConfig, shape: DataShape) -> None:
        super().__init__(config.latent_dim, shape.image_shape)
        pixels = math.prod(shape.image_shape)
        self.net = nn.Sequential(*mlp_layers([config.latent_dim, *config.g_hidden, pixels], config.negative_slope), nn.Tanh())

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.net(z).view(-1, *self.image_shape)


class MLPDiscriminator(Discriminator):
    """Fully connected discriminator returning one logit per image."""

    def __init__(self, config: MLPConfig, shape: DataShape) -> None:
        super().__init__(shape.image_shape)
        pixels = math.prod(shape.image_shape)
        self.net = nn.Sequential(*mlp_layers([pixels, *config.d_hidden, 1], config.negative_slope))

    def score(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.net(x.flatten(1))


MLP = VariantSpec(
    name="mlp",
    description="the paper's MLP GAN: G 100-256-512-1024-784 tanh, D 784-512-256-1",
    config=MLPConfig,
    build_generator=MLPGenerator,
    build_discriminator=MLPDiscriminator,
    default_loss="nonsaturating",
    aliases=("gan", "vanilla"),
    # Sampling from an EMA of G roughly halves the classifier FID on mnist5k once G has settled; averaging
    # the first 5,000 steps' generators blurs them (0.1's quality trials: `git show 70f85d6:docs/benchmarks.md`), so until then the EMA copies G.
    recipe={"ema": 0.999, "ema_start": 5000},
)


@hookimpl
def ganforge_register_variants(register: Callable[..., None]) -> None:
    register(MLP)
