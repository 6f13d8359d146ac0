"""A tiny convolutional GAN as a ganforge plugin, with a regulariser and an augmentation of its own
(ProGAN's drift penalty, and instance noise), an evaluator of its own, and a data set scored with it."""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

import ganforge
from ganforge import DataShape, Discriminator, Generator, VariantConfig, VariantSpec
from ganforge.augment import Augmentation, AugmentationSpec
from ganforge.data import DatasetSpec, load_mnist5k
from ganforge.metrics.evaluators import Evaluator, EvaluatorSpec
from ganforge.regularizers import PhaseView, Regularizer, RegularizerOptions, RegularizerSpec, TermOptions


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


class DriftOptions(RegularizerOptions):
    weight: float = Field(0.001, ge=0, description="epsilon_drift (ProGAN: 0.001)")


class Drift(Regularizer):
    """ProGAN's drift penalty (Karras et al. 2018): E[D(x)^2] on real images keeps D's logits near zero."""

    phases = ("d",)

    def penalty(self, view: PhaseView) -> torch.Tensor:
        return view.d_real.float().square().mean()


class InstanceNoiseOptions(TermOptions):
    std: float = Field(0.1, ge=0, description="standard deviation of the noise added to every image D sees")


class InstanceNoise(Augmentation):
    """Gaussian noise on every image D sees, real and fake alike (Sønderby et al. 2017)."""

    def forward(self, images: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        return images + self.options.std * torch.randn(images.shape, device=images.device, dtype=images.dtype,
                                                      generator=noise)


DRIFT = RegularizerSpec("drift", "ProGAN's drift penalty: weight * E[D(x)^2]", Drift, DriftOptions)
INSTANCE_NOISE = AugmentationSpec("instance-noise", "Gaussian noise on what D sees", InstanceNoise, InstanceNoiseOptions)


@ganforge.hookimpl
def ganforge_register_regularizers(register):
    register(DRIFT)


@ganforge.hookimpl
def ganforge_register_augmentations(register):
    register(INSTANCE_NOISE)


class PooledPixels(nn.Module):
    """A weight-free feature map: uint8 grey images -> their 7x7 average-pooled pixels (49 features)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (F.adaptive_avg_pool2d(x.float() / 255, 7).flatten(1),)


def build_pooled_pixels(device, weights, expected_sha256) -> Evaluator:
    # No weights file: the digest names the definition, so a changed definition never passes for this one.
    digest = hashlib.sha256(b"ganforge-tiny pooled-pixels 7x7 v1").hexdigest()
    return Evaluator("pooled-pixels", digest, PooledPixels().to(device), input_shape=(1, 28, 28), num_classes=None,
                     feature_dim=49, resize="bilinear, antialiased, to 28x28")


POOLED_PIXELS = EvaluatorSpec("pooled-pixels", "example plugin: 7x7 average-pooled pixels", build_pooled_pixels)
DIGITS_BY_PIXELS = DatasetSpec("digits-by-pixels", "example plugin: mnist5k, scored on pooled pixels",
                               load_mnist5k, evaluator="pooled-pixels")


@ganforge.hookimpl
def ganforge_register_evaluators(register):
    register(POOLED_PIXELS)


@ganforge.hookimpl
def ganforge_register_datasets(register):
    register(DIGITS_BY_PIXELS)
