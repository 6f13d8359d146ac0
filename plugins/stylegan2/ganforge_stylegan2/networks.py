"""StyleGAN2's generator and discriminator (Karras et al. 2020, "Analyzing and Improving the Image
Quality of StyleGAN", config F; with the conditioning of StyleGAN2-ADA), in plain PyTorch.

G: a mapping network (8 equalised linear layers, learning rate x0.01) turns z (and a class embedding,
when conditional) into w, tracking the average w for truncation; the synthesis network starts from a
learned 4x4 constant and doubles the side block by block with modulated, demodulated 3x3 convolutions,
per-layer noise, and the "skip" architecture (each block adds its RGB image to the upsampled image of
the last). In training, style mixing gives the layers from a random cutoff on the w of a second z.

D: the "resnet" architecture, from RGB at full size down to 4x4 through residual blocks with
low-pass filtered downsampling, then a minibatch standard deviation channel, a 3x3 convolution, a
linear layer and the output; when conditional, the output is projected onto a mapping of the class.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from pydantic import Field
from torch import nn

from ganforge import DataShape, Discriminator, GanforgeError, Generator, VariantConfig

from .ops import EqualConv2d, EqualLinear, bias_act, fir_filter, modulated_conv2d, upsample2d


class StyleGAN2Config(VariantConfig):
    """Architecture of StyleGAN2 (defaults: config F's channels, capped at 512)."""

    latent_dim: int = Field(512, ge=1, le=4096, description="size of z ~ N(0, I)")
    w_dim: int = Field(512, ge=1, le=4096, description="size of the intermediate latent w")
    mapping_layers: int = Field(8, ge=1, le=16, description="layers of the mapping network")
    mapping_lr_mul: float = Field(0.01, gt=0, le=1, description="learning-rate multiplier of the mapping network")
    channel_base: int = Field(32768, ge=1, description="a layer at side s has min(channel_base / s, channel_max) "
                                                       "channels (config F: 32768; StyleGAN2-ADA's paper256: 16384)")
    channel_max: int = Field(512, ge=1, le=4096, description="most channels in a layer")
    style_mixing: float = Field(0.9, ge=0, le=1, description="share of training batches whose layers from a random "
                                                           "cutoff take a second z's w")
    w_avg_beta: float = Field(0.995, ge=0, lt=1, description="decay of the tracked average w")
    mbstd_group: int = Field(4, ge=1, le=64, description="images per group of D's minibatch standard deviation")
    embed_dim: int | None = Field(None, ge=1, description="size of the class embedding when conditional; default w_dim")
    conditional: bool = Field(False, description="class-conditional (an embedding into the mapping network, a "
                                                 "projection in D); needs labelled data")


def resolutions(shape: DataShape) -> list[int]:
    """The sides of the synthesis blocks, 4 up to the image's (a power of two from 8)."""
    side = shape.height
    if shape.width != side or side < 8 or side & (side - 1):
        raise GanforgeError(f"stylegan2 builds square images whose side is a power of two (32 to 256 as trained, any "
                            f"from 8 up), not {shape.height}x{shape.width}; pass --image-size {max(8, 1 << (side - 1).bit_length())}")
    return [2 ** i for i in range(2, side.bit_length())]


def channels(config: StyleGAN2Config, side: int) -> int:
    """Channels of the layers at ``side``: channel_base / side, capped at channel_max, at least 1."""
    return max(1, min(config.channel_base // side, config.channel_max))


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (and a class) -> w: a normalised input through ``layers`` equalised linear layers with a reduced
    learning rate; ``w_avg`` follows the batches' mean w in training, for truncation."""

    def __init__(self, z_dim: int, classes: int | None, embed_dim: int, w_dim: int, layers: int, lr_mul: float,
                 w_avg_beta: float | None) -> None:
        super().__init__()
        self.z_dim, self.w_avg_beta = z_dim, w_avg_beta
        self.embed = EqualLinear(classes, embed_dim) if classes else None
        widths = [z_dim + (embed_dim if classes else 0)] + [w_dim] * layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul, activation="lrelu") for a, b in zip(widths[:-1], widths[1:]))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, labels: torch.Tensor | None, *, track: bool = False) -> torch.Tensor:
        parts = []
        if self.z_dim:
            parts.append(normalize_2nd_moment(z))  # type: ignore[arg-type]
        if self.embed is not None:
            onehot = torch.nn.functional.one_hot(labels, self.embed.weight.shape[1]).to(self.embed.weight.dtype)  # type: ignore[arg-type]
            parts.append(normalize_2nd_moment(self.embed(onehot)))
        x = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)
        if track and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        return x


class SynthesisLayer(nn.Module):
    """A modulated, demodulated 3x3 convolution (doubling the side where ``up``), per-pixel noise with a
    learned strength, bias and leaky ReLU."""

    def __init__(self, cin: int, cout: int, w_dim: int, side: int, *, up: bool) -> None:
        super().__init__()
        self.up = up
        self.affine = EqualLinear(w_dim, cin, bias_init=1)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.weight_gain = 1 / math.sqrt(cin * 9)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(side, side))
        self.register_buffer("filter", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight * self.weight_gain, styles, up=2 if self.up else 1, f=self.filter)
        if noise_mode == "random":
            # torch's default generator: its state is in every checkpoint, and a captured CUDA graph advances it.
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        else:
            noise = self.noise_const.to(x.dtype)
        x = x + noise * self.noise_strength.to(x.dtype)
        return bias_act(x, self.bias, "lrelu")


class ToRGB(nn.Module):
    """A modulated 1x1 convolution to the image's channels, without demodulation."""

    def __init__(self, cin: int, image_channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1)
        self.weight = nn.Parameter(torch.randn(image_channels, cin, 1, 1))
        self.weight_gain = 1 / math.sqrt(cin)
        self.bias = nn.Parameter(torch.zeros(image_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        return bias_act(modulated_conv2d(x, self.weight, styles, demodulate=False), self.bias, "linear")


class SynthesisBlock(nn.Module):
    """One side of the synthesis network: (a learned 4x4 constant, or the last block's features doubled)
    two modulated convolutions, and an RGB image added to the last one's, upsampled."""

    def __init__(self, cin: int, cout: int, w_dim: int, side: int, image_channels: int) -> None:
        super().__init__()
        self.const = nn.Parameter(torch.randn(cout, 4, 4)) if cin == 0 else None
        self.conv0 = SynthesisLayer(cin, cout, w_dim, side, up=True) if cin else None
        self.conv1 = SynthesisLayer(cout, cout, w_dim, side, up=False)
        self.torgb = ToRGB(cout, image_channels, w_dim)
        self.register_buffer("filter", fir_filter(), persistent=False)
        self.num_ws = (2 if cin else 1) + 1
        """The ws a block reads: one per convolution, and the next one for its RGB layer."""

    def forward(self, x: torch.Tensor | None, image: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self.const is not None:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
            i = 0
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)  # type: ignore[misc]
            i = 1
        x = self.conv1(x, ws[:, i], noise_mode)
        rgb = self.torgb(x, ws[:, i + 1])
        image = rgb if image is None else upsample2d(image, self.filter) + rgb
        return x, image


class SynthesisNetwork(nn.Module):
    def __init__(self, config: StyleGAN2Config, shape: DataShape) -> None:
        super().__init__()
        sides = resolutions(shape)
        self.blocks = nn.ModuleList(
            SynthesisBlock(channels(config, side // 2) if side > 4 else 0, channels(config, side), config.w_dim, side,
                           shape.channels) for side in sides)
        # Consecutive blocks share a w: a block's RGB layer and the next block's first convolution.
        self.num_ws = sum(b.num_ws - 1 for b in self.blocks) + 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = image = None
        start = 0
        for block in self.blocks:
            x, image = block(x, image, ws[:, start:start + block.num_ws], noise_mode)
            start += block.num_ws - 1
        return image  # type: ignore[return-value]


class StyleGAN2Generator(Generator):
    """z -> w (mapping) -> image (synthesis); images are not squashed into [-1, 1] but clipped where read."""

    bounded = False

    def __init__(self, config: StyleGAN2Config, shape: DataShape) -> None:
        classes = shape.num_classes if config.conditional else None
        super().__init__(config.latent_dim, shape.image_shape, classes)
        self.synthesis = SynthesisNetwork(config, shape)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(config.latent_dim, classes, config.embed_dim or config.w_dim, config.w_dim,
                                      config.mapping_layers, config.mapping_lr_mul, config.w_avg_beta)
        self.style_mixing = config.style_mixing
        self.psi = 1.0

    @contextlib.contextmanager
    def truncated(self, psi: float) -> Iterator[None]:
        if not 0 <= psi <= 1:
            raise GanforgeError(f"--psi {psi}: give a truncation between 0 (the average w) and 1 (none)")
        before, self.psi = self.psi, psi
        try:
            yield
        finally:
            self.psi = before

    def styles(self, z: torch.Tensor, labels: torch.Tensor | None, *, track: bool | None = None) -> torch.Tensor:
        """The ws (B, num_ws, w_dim) of ``z``: mixed with a second z's in training, truncated by ``psi``;
        ``track`` (default: in training) moves the average w towards these."""
        w = self.mapping(z, labels, track=self.training if track is None else track)
        ws = w[:, None].expand(-1, self.num_ws, -1)
        if self.training and self.style_mixing > 0:
            # Decided on the device (no host sync): from a random layer on, the ws of another z.
            other = self.mapping(torch.randn_like(z), labels)
            cutoff = torch.randint(1, self.num_ws, (), device=z.device)
            cutoff = torch.where(torch.rand((), device=z.device) < self.style_mixing, cutoff, self.num_ws)
            later = torch.arange(self.num_ws, device=z.device) >= cutoff
            ws = torch.where(later[None, :, None], other[:, None], ws)
        if self.psi != 1:
            ws = self.mapping.w_avg.to(ws.dtype).lerp(ws, self.psi)
        return ws

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        # Sampling (eval mode) uses each layer's fixed noise, so a seed gives the same images every time.
        return self.synthesis(self.styles(z, labels), "random" if self.training else "const")


class MinibatchStd(nn.Module):
    """Appends the standard deviation of the features over groups of images, averaged into one channel
    (Karras et al. 2018): D can tell a batch of too-similar images. Groups are the largest divisor of
    the batch up to ``group``."""

    def __init__(self, group: int) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = max(d for d in range(1, min(self.group, n) + 1) if n % d == 0)
        y = x.reshape(g, -1, c, h, w).float()
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()
        y = y.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y.to(x.dtype)], 1)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convolutions, the second halving the side, beside a 1x1 skip that halves it too; their sum
    times sqrt(1/2). The first block first turns RGB into features."""

    def __init__(self, cin: int, cout: int, image_channels: int, *, first: bool) -> None:
        super().__init__()
        self.fromrgb = EqualConv2d(image_channels, cin, 1, activation="lrelu") if first else None
        self.conv0 = EqualConv2d(cin, cin, 3, activation="lrelu")
        self.conv1 = EqualConv2d(cin, cout, 3, activation="lrelu", down=2)
        self.skip = EqualConv2d(cin, cout, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.skip(x, gain=math.sqrt(0.5))
        return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class StyleGAN2Discriminator(Discriminator):
    """Residual D from the image's side down to 4x4, minibatch standard deviation, convolution, linear
    layers; with classes, the output projected onto a mapping of the class (StyleGAN2-ADA)."""

    def __init__(self, config: StyleGAN2Config, shape: DataShape) -> None:
        classes = shape.num_classes if config.conditional else None
        super().__init__(shape.image_shape, classes)
        sides = resolutions(shape)[::-1][:-1]  # the image's side down to 8
        self.stages = nn.ModuleList(
            DiscriminatorBlock(channels(config, side), channels(config, side // 2), shape.channels, first=i == 0)
            for i, side in enumerate(sides))
        width = channels(config, 4)
        self.mbstd = MinibatchStd(config.mbstd_group)
        self.conv = EqualConv2d(width + 1, width, 3, activation="lrelu")
        self.fc = EqualLinear(width * 16, width, activation="lrelu")
        self.out = EqualLinear(width, width if classes else 1)
        self.cmap = (MappingNetwork(0, classes, config.embed_dim or width, width, config.mapping_layers,
                                    config.mapping_lr_mul, None) if classes else None)

    def blocks(self) -> list[nn.Module]:
        return list(self.stages)

    def score(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        x = self.fc(self.conv(self.mbstd(x)).flatten(1))
        out = self.out(x)
        if self.cmap is None:
            return out
        cmap = self.cmap(None, labels)
        return (out * cmap).sum(dim=1, keepdim=True) / math.sqrt(cmap.shape[1])
