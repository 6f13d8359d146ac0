"""The DCGAN pair (Radford, Metz & Chintala 2016), sized from the data.

G: project z to a (width * 2^(depth-1), s, s) map with a transposed convolution, then ``depth``
stride-2 transposed convolutions double the side up to the image; batch norm and ReLU between them,
none on the output, which ends in tanh. D mirrors it: stride-2 convolutions (no pooling), LeakyReLU
(0.2), batch norm on every hidden layer but the first, and a final convolution over the s x s map to
one logit. Weights start from N(0, 0.02), batch-norm gains from N(1, 0.02).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganforge import DataShape, Discriminator, GanforgeError, Generator, VariantConfig


class DCGANConfig(VariantConfig):
    """Architecture of DCGAN."""

    latent_dim: int = Field(100, ge=1, le=4096, description="size of z ~ N(0, I)")
    base_width: int = Field(64, ge=1, le=1024, description="channels of G's last and D's first hidden layer (ngf = ndf)")
    depth: int | None = Field(None, ge=1, le=8, description="stride-2 stages; default: as many as leave a start map of 4 to 8 px (7 for 28 px)")
    spectral_norm: bool = Field(False, description="spectral normalisation on D's layers (then D has no batch norm)")
    negative_slope: float = Field(0.2, ge=0, lt=1, description="D's LeakyReLU slope")


class Geometry(NamedTuple):
    """The start side ``start`` and number of stride-2 stages ``depth`` with start * 2^depth == side."""

    start: int
    depth: int

    def widths(self, base: int) -> list[int]:
        """Hidden widths from the smallest map to the largest: base * 2^(depth-1), ..., base."""
        return [base * 2 ** (self.depth - 1 - i) for i in range(self.depth)]


def geometry(shape: DataShape, depth: int | None) -> Geometry:
    """How DCGAN reaches ``shape``'s side; an unsupported size is an error that says what fits."""
    side = shape.height
    if shape.width != side:
        raise GanforgeError(f"dcgan needs square images, got {shape.height}x{shape.width}; pass --image-size N")
    if depth is None:
        depth = 0
        while side % 2 ** (depth + 1) == 0 and side // 2 ** (depth + 1) >= 4:
            depth += 1
        if side // 2**depth > 8:
            depth = 0  # a start map larger than 8x8 is no DCGAN: refuse below
    if depth < 1 or side % 2**depth or side // 2**depth < 2:
        raise GanforgeError(
            f"dcgan cannot reach {side}x{side} with depth {depth}: the side must be start * 2^depth with start >= 2 "
            "(28, 32 and 64 work with the default depth); pass --image-size 32 or another depth"
        )
    return Geometry(side // 2**depth, depth)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.'s initialisation: N(0, 0.02) weights; batch-norm gains N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            # Under spectral norm, ``weight`` is computed from the stored ``original``: initialise that.
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def generator_layers(config: DCGANConfig, shape: DataShape, geo: Geometry, in_dim: int) -> list[nn.Module]:
    """G's layers from an ``in_dim``-channel 1x1 input to the image, ending in tanh."""
    widths = geo.widths(config.base_width)
    layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, widths[0], geo.start, 1, 0, bias=False),
                               nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
    for cin, cout in zip(widths[:-1], widths[1:]):
        layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
    layers += [nn.ConvTranspose2d(widths[-1], shape.channels, 4, 2, 1, bias=False), nn.Tanh()]
    return layers


def discriminator_features(config: DCGANConfig, shape: DataShape, geo: Geometry) -> tuple[list[nn.Module], int]:
    """D's convolutional trunk down to a (width, start, start) map, and that width."""
    widths = list(reversed(geo.widths(config.base_width)))
    sn = spectral_norm if config.spectral_norm else (lambda m: m)
    layers: list[nn.Module] = [sn(nn.Conv2d(shape.channels, widths[0], 4, 2, 1)), nn.LeakyReLU(config.negative_slope, True)]
    for cin, cout in zip(widths[:-1], widths[1:]):
        layers.append(sn(nn.Conv2d(cin, cout, 4, 2, 1, bias=config.spectral_norm)))
        if not config.spectral_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.LeakyReLU(config.negative_slope, True))
    return layers, widths[-1]


class DCGANGenerator(Generator):
    """Transposed-convolution generator."""

    def __init__(self, config: DCGANConfig, shape: DataShape) -> None:
        super().__init__(config.latent_dim, shape.image_shape)
        self.net = nn.Sequential(*generator_layers(config, shape, geometry(shape, config.depth), config.latent_dim))
        dcgan_init(self)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(Discriminator):
    """Strided-convolution discriminator returning one logit per image."""

    def __init__(self, config: DCGANConfig, shape: DataShape) -> None:
        super().__init__(shape.image_shape)
        geo = geometry(shape, config.depth)
        layers, width = discriminator_features(config, shape, geo)
        head = nn.Conv2d(width, 1, geo.start, 1, 0)
        self.net = nn.Sequential(*layers, spectral_norm(head) if config.spectral_norm else head)
        dcgan_init(self)

    def score(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.net(x).view(-1, 1)
