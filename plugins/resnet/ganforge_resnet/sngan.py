"""SNGAN (Miyato et al. 2018): the ResNet generator and spectrally normalised discriminator of
"Spectral Normalization for Generative Adversarial Networks", with the block counts and widths the
paper (CIFAR-10, STL-10) and mimicry (64 and 128 px) use per resolution.

Widths are multiples of ``ch`` (64 in the paper). G: a linear map of z to a 4x4 (6x6 at 48 px) map,
up-sampling residual blocks, BN, ReLU, a 3x3 convolution and tanh. D: the optimised first block,
down-sampling residual blocks, ReLU, global sum pooling, a linear read-out. With ``conditional``
(labelled data), G's batch norms take their gains and biases from the class and D adds a
projection of the class embedding onto its features (Miyato & Koyama 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ganforge import DataShape, Discriminator, GanforgeError, Generator, VariantConfig

from .layers import ConditionalNorm, DBlock, GBlock, conv, init_xavier, side_error, sn

# side: (G's first side, G's widths from the first map on, D's widths, where D halves the side)
ARCHITECTURES = {
    32: (4, (4, 4, 4, 4), (2, 2, 2, 2), (True, True, False, False)),
    48: (6, (8, 4, 2, 1), (1, 2, 4, 8, 16), (True, True, True, True, False)),
    64: (4, (16, 8, 4, 2, 1), (1, 2, 4, 8, 16), (True, True, True, True, False)),
    128: (4, (16, 16, 8, 4, 2, 1), (1, 2, 4, 8, 16, 16), (True, True, True, True, True, False)),
}


class SNGANConfig(VariantConfig):
    """Architecture of SNGAN."""

    latent_dim: int = Field(128, ge=1, le=4096, description="size of z ~ N(0, I)")
    ch: int = Field(64, ge=1, le=1024, description="channel multiplier: every width is a multiple of it (paper: 64)")
    conditional: bool = Field(False, description="class-conditional (conditional batch norm in G, projection D); "
                                                 "needs labelled data")


def architecture(shape: DataShape) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[bool, ...]]:
    if shape.height != shape.width or shape.height not in ARCHITECTURES:
        raise GanforgeError(side_error("sngan", shape.height, tuple(ARCHITECTURES)))
    return ARCHITECTURES[shape.height]


class SNGANGenerator(Generator):
    """z -> first map -> up-sampling residual blocks -> BN, ReLU, 3x3 conv, tanh."""

    def __init__(self, config: SNGANConfig, shape: DataShape) -> None:
        classes = shape.num_classes if config.conditional else None
        super().__init__(config.latent_dim, shape.image_shape, classes)
        start, widths, _, _ = architecture(shape)
        widths = tuple(w * config.ch for w in widths)
        self.start, self.first_width = start, widths[0]
        self.project = init_xavier(nn.Linear(config.latent_dim, start * start * widths[0]), 1.0)

        def norm(channels: int) -> nn.Module:
            return ConditionalNorm(channels, classes) if classes else nn.BatchNorm2d(channels)

        self.blocks = nn.ModuleList(GBlock(cin, cout, norm, spectral=False) for cin, cout in zip(widths[:-1], widths[1:]))
        self.out_norm = nn.BatchNorm2d(widths[-1])
        self.to_image = conv(widths[-1], shape.channels, 3, spectral=False)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = self.project(z).view(-1, self.first_width, self.start, self.start)
        for block in self.blocks:
            h = block(h, labels)
        return torch.tanh(self.to_image(F.relu(self.out_norm(h))))


class SNGANDiscriminator(Discriminator):
    """Optimised first block -> residual blocks -> ReLU -> global sum pooling -> linear (+ class projection)."""

    def __init__(self, config: SNGANConfig, shape: DataShape) -> None:
        classes = shape.num_classes if config.conditional else None
        super().__init__(shape.image_shape, classes)
        _, _, widths, downs = architecture(shape)
        widths = tuple(w * config.ch for w in widths)
        self.stages = nn.ModuleList([DBlock(shape.channels, widths[0], down=downs[0], first=True)] + [
            DBlock(cin, cout, down=down) for cin, cout, down in zip(widths[:-1], widths[1:], downs[1:])])
        self.linear = sn(init_xavier(nn.Linear(widths[-1], 1), 1.0))
        self.embed = sn(nn.Embedding(classes, widths[-1])) if classes else None
        if self.embed is not None:
            nn.init.xavier_uniform_(self.embed.parametrizations.weight.original)

    def blocks(self) -> list[nn.Module]:
        return list(self.stages)

    def score(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = x
        for stage in self.stages:
            h = stage(h)
        features = F.relu(h).sum(dim=(2, 3))
        logits = self.linear(features)
        if self.embed is not None:
            logits = logits + (self.embed(labels) * features).sum(1, keepdim=True)
        return logits
