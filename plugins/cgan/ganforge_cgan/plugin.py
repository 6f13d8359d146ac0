"""The entry point ``ganforge = cgan``: registers ``cgan``, ``cdcgan`` and ``acgan``, and the ``acgan``
classification term that the last one carries."""

from __future__ import annotations

from collections.abc import Callable

from ganforge import OptimizerSettings, VariantSpec, hookimpl
from ganforge.regularizers import RegularizerSpec

from .acgan import ACGANConfig, ACGANDiscriminator, AuxiliaryClassifierLoss, AuxiliaryClassifierOptions
from .cdcgan import CDCGANConfig, CDCGANDiscriminator, CDCGANGenerator
from .mlp import CGANConfig, CGANDiscriminator, CGANGenerator

CGAN = VariantSpec(
    name="cgan",
    description="conditional MLP GAN (Mirza & Osindero 2014): label embedding joined to every G layer and to the image, projection D",
    config=CGANConfig,
    build_generator=CGANGenerator,
    build_discriminator=CGANDiscriminator,
    # beta1 = 0, as in SAGAN, BigGAN and StyleGAN2: with the label at every G layer, the best pair
    # of the Fashion-MNIST trials in `git show 70f85d6:docs/benchmarks.md`.
    optimizer=OptimizerSettings(betas=(0.0, 0.99)),
    conditional=True,
    # An EMA twice as long as mlp's: on Fashion-MNIST it lowered cFID by a tenth and raised conditional
    # accuracy by 0.5-0.8 points (over ten sample sets) on each of five seeds (0.1's quality trials: `git show 70f85d6:docs/benchmarks.md`).
    recipe={"ema": 0.9995, "ema_start": 5000},
    # Runs recorded before label_every_layer existed joined the label to z only.
    legacy_config={"label_every_layer": False},
)

CDCGAN = VariantSpec(
    name="cdcgan",
    description="conditional DCGAN: label embedding joined to z and conditional batch norm in G, projection D (Miyato & Koyama 2018)",
    config=CDCGANConfig,
    build_generator=CDCGANGenerator,
    build_discriminator=CDCGANDiscriminator,
    default_loss="hinge",
    conditional=True,
    example_shapes=((1, 28, 28), (3, 32, 32), (1, 16, 16)),
    # D holds batch norm unless spectral norm replaces it, and batch norm makes its output depend on the batch.
    discriminator_sees_batch=lambda config: not config.spectral_norm,
)


ACGAN = VariantSpec(
    name="acgan",
    description="ACGAN (Odena et al. 2017): cdcgan's G, a D with an adversarial and an auxiliary class head",
    config=ACGANConfig,
    build_generator=CDCGANGenerator,
    build_discriminator=ACGANDiscriminator,
    default_loss="nonsaturating",
    conditional=True,
    terms=({"name": "acgan"},),
    example_shapes=((1, 28, 28), (3, 32, 32), (1, 16, 16)),
    # D holds batch norm unless spectral norm replaces it, and batch norm makes its output depend on the batch.
    discriminator_sees_batch=lambda config: not config.spectral_norm,
)

AUXILIARY_CLASSIFIER = RegularizerSpec(
    "acgan", "ACGAN's class loss: cross-entropy of D's class head on real and fake (D), on fake (G)",
    AuxiliaryClassifierLoss, AuxiliaryClassifierOptions)


@hookimpl
def ganforge_register_variants(register: Callable[..., None]) -> None:
    register(CGAN)
    register(CDCGAN)
    register(ACGAN)


@hookimpl
def ganforge_register_regularizers(register: Callable[..., None]) -> None:
    register(AUXILIARY_CLASSIFIER)
