"""A BigGAN-style class-conditional GAN (Brock et al. 2019, "Large Scale GAN Training for High Fidelity
Natural Image Synthesis"), scaled by its channel multiplier ``ch`` rather than by another code path.

G: a shared class embedding; a hierarchical latent, z split into one chunk for the first map and one
per block, each block's conditional batch norms taking their gains and biases from its chunk and the
shared embedding through linear maps; self-attention at one resolution; spectral normalisation
throughout. D: SNGAN's residual discriminator with self-attention and a projection head. The
recipe (``biggan``'s defaults): hinge loss, two D steps per G step, Adam at 1e-4 (G) and 4e-4 (D)
with betas (0, 0.999), an EMA of G, and orthogonal regularisation of G's weights (``ortho``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ganforge import DataShape, Discriminator, GanforgeError, Generator, VariantConfig
from ganforge.regularizers import PhaseView, Regularizer, RegularizerOptions

from .layers import ConditionalNorm, DBlock, GBlock, SelfAttention, conv, init_xavier, side_error, sn

# side: (G's widths from the 4x4 map on, D's widths, where D halves the side)
ARCHITECTURES = {
    32: ((4, 4, 4, 4), (4, 4, 4, 4), (True, True, False, False)),
    64: ((16, 16, 8, 4, 2), (1, 2, 4, 8, 16), (True, True, True, True, False)),
    128: ((16, 16, 8, 4, 2, 1), (1, 2, 4, 8, 16, 16), (True, True, True, True, True, False)),
}


class BigGANConfig(VariantConfig):
    """Architecture of the BigGAN-style model."""

    latent_dim: int = Field(120, ge=1, le=4096, description="size of z ~ N(0, I); split evenly over the first map "
                                                          "and every G block (120: 20 each at 128 px)")
    ch: int = Field(64, ge=1, le=1024, description="channel multiplier: every width is a multiple of it (BigGAN: 96)")
    shared_dim: int = Field(128, ge=1, le=1024, description="size of the class embedding shared by every G block")
    attention: int | None = Field(64, ge=4, description="side of the feature maps that get self-attention, in G and "
                                                        "D; null: none")


def architecture(shape: DataShape, config: BigGANConfig) -> tuple[tuple[int, ...], tuple[int, ...], tuple[bool, ...], int]:
    if shape.height != shape.width or shape.height not in ARCHITECTURES:
        raise GanforgeError(side_error("biggan", shape.height, tuple(ARCHITECTURES)))
    g_widths, d_widths, downs = ARCHITECTURES[shape.height]
    chunks = len(g_widths)  # the first map's chunk and one per block
    if config.latent_dim % chunks:
        raise GanforgeError(f"biggan at {shape.height} px splits z into {chunks} chunks: latent_dim {config.latent_dim} "
                            f"must be a multiple of {chunks} (e.g. --set latent_dim={chunks * 20})")
    return g_widths, d_widths, downs, config.latent_dim // chunks


class BigGANGenerator(Generator):
    """Shared class embedding, hierarchical z, conditional batch norm, self-attention, spectral norm."""

    def __init__(self, config: BigGANConfig, shape: DataShape) -> None:
        if shape.num_classes is None:
            raise GanforgeError("biggan is class-conditional: it needs a data set with class labels")
        super().__init__(config.latent_dim, shape.image_shape, shape.num_classes)
        widths, _, _, chunk = architecture(shape, config)
        widths = tuple(w * config.ch for w in widths)
        self.chunk, self.first_width = chunk, widths[0]
        self.shared = nn.Embedding(shape.num_classes, config.shared_dim)
        nn.init.normal_(self.shared.weight, 0, 0.02)
        self.project = sn(init_xavier(nn.Linear(chunk, 16 * widths[0]), 1.0))
        condition = chunk + config.shared_dim

        def norm(channels: int) -> nn.Module:
            return ConditionalNorm(channels, condition_dim=condition, spectral=True)

        self.stages = nn.ModuleList(GBlock(cin, cout, norm, spectral=True) for cin, cout in zip(widths[:-1], widths[1:]))
        sides = [4 * 2 ** (i + 1) for i in range(len(self.stages))]
        self.attention = nn.ModuleDict({str(i): SelfAttention(widths[i + 1], spectral=True)
                                        for i, side in enumerate(sides) if side == config.attention})
        self.out_norm = nn.BatchNorm2d(widths[-1])
        self.to_image = conv(widths[-1], shape.channels, 3, spectral=True)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        first, *rest = z.split(self.chunk, dim=1)
        shared = self.shared(labels)
        h = self.project(first).view(-1, self.first_width, 4, 4)
        for i, (stage, part) in enumerate(zip(self.stages, rest)):
            h = stage(h, torch.cat([part, shared], 1))
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.to_image(F.relu(self.out_norm(h))))


class BigGANDiscriminator(Discriminator):
    """SNGAN's residual D with self-attention at one resolution and a class projection."""

    def __init__(self, config: BigGANConfig, shape: DataShape) -> None:
        if shape.num_classes is None:
            raise GanforgeError("biggan is class-conditional: it needs a data set with class labels")
        super().__init__(shape.image_shape, shape.num_classes)
        _, widths, downs, _ = architecture(shape, config)
        widths = tuple(w * config.ch for w in widths)
        stages: list[nn.Module] = [DBlock(shape.channels, widths[0], down=downs[0], first=True)]
        stages += [DBlock(cin, cout, down=down) for cin, cout, down in zip(widths[:-1], widths[1:], downs[1:])]
        side = shape.height
        self.stages = nn.ModuleList()
        for stage, width, down in zip(stages, widths, downs):
            self.stages.append(stage)
            side = side // 2 if down else side
            if side == config.attention and not any(isinstance(m, SelfAttention) for m in self.stages):
                self.stages.append(SelfAttention(width, spectral=True))
        self.linear = sn(init_xavier(nn.Linear(widths[-1], 1), 1.0))
        self.embed = sn(nn.Embedding(shape.num_classes, widths[-1]))
        nn.init.xavier_uniform_(self.embed.parametrizations.weight.original)

    def blocks(self) -> list[nn.Module]:
        return list(self.stages)

    def score(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = x
        for stage in self.stages:
            h = stage(h)
        features = F.relu(h).sum(dim=(2, 3))
        return self.linear(features) + (self.embed(labels) * features).sum(1, keepdim=True)


class OrthogonalOptions(RegularizerOptions):
    weight: float = Field(1e-4, ge=0, description="beta (BigGAN: 1e-4)")


class Orthogonal(Regularizer):
    """BigGAN's orthogonal regularisation of G: 1/2 * sum over G's weight matrices W of
    ||W W^T (1 - I)||_F^2, which pushes the filters of a layer apart without fixing their norms. Class
    embeddings and one-dimensional parameters are left out, as in BigGAN."""

    phases = ("g",)

    def penalty(self, view: PhaseView) -> torch.Tensor:
        total = view.d_fake.new_zeros(())
        for name, p in view.generator.named_parameters():
            if p.dim() < 2 or isinstance(_owner(view.generator, name), nn.Embedding):
                continue
            w = p.flatten(1).float()
            gram = w @ w.t()
            total = total + 0.5 * (gram - torch.diag_embed(gram.diagonal())).square().sum()
        return total


def _owner(model: nn.Module, name: str) -> nn.Module:
    """The module a parameter's dotted name belongs to (the layer, not a parametrization inside it)."""
    parts = name.split(".")
    if "parametrizations" in parts:
        parts = parts[: parts.index("parametrizations")]
    else:
        parts = parts[:-1]
    return model.get_submodule(".".join(parts))
