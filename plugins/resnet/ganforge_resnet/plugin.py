"""The entry point ``ganforge = resnet``: registers ``sngan`` and ``biggan``, and BigGAN's orthogonal
regularisation ``ortho``."""

from __future__ import annotations

from collections.abc import Callable

from ganforge import OptimizerSettings, VariantSpec, hookimpl
from ganforge.regularizers import RegularizerSpec

from .biggan import BigGANConfig, BigGANDiscriminator, BigGANGenerator, Orthogonal, OrthogonalOptions
from .sngan import SNGANConfig, SNGANDiscriminator, SNGANGenerator

SNGAN = VariantSpec(
    name="sngan",
    description="SNGAN (Miyato et al. 2018): ResNet G, spectrally normalised ResNet D; 32, 48, 64 or 128 px",
    config=SNGANConfig,
    build_generator=SNGANGenerator,
    build_discriminator=SNGANDiscriminator,
    # The paper's CIFAR-10 recipe: hinge loss, five D steps per G step, Adam 2e-4 with betas (0, 0.9).
    default_loss="hinge",
    optimizer=OptimizerSettings(lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.9)),
    conditional_by="conditional",
    recipe={"n_critic": 5},
    example_shapes=((3, 32, 32), (1, 32, 32), (3, 48, 48), (3, 64, 64), (3, 128, 128)),
)

BIGGAN = VariantSpec(
    name="biggan",
    description="BigGAN-style class-conditional GAN (Brock et al. 2019): shared embedding, hierarchical z, "
                "self-attention, projection D; 32, 64 or 128 px",
    config=BigGANConfig,
    build_generator=BigGANGenerator,
    build_discriminator=BigGANDiscriminator,
    # The paper's recipe: hinge loss, 2 D steps per G step, Adam 1e-4 / 4e-4 with betas (0, 0.999),
    # an EMA of G (decay 0.9999 from iteration 20,000) and orthogonal regularisation (beta 1e-4).
    default_loss="hinge",
    optimizer=OptimizerSettings(lr_g=1e-4, lr_d=4e-4, betas=(0.0, 0.999)),
    conditional=True,
    recipe={"n_critic": 2, "ema": 0.9999, "ema_start": 20000, "regularizers": [{"name": "ortho"}]},
    example_shapes=((3, 32, 32), (3, 64, 64), (3, 128, 128)),
)

ORTHOGONAL = RegularizerSpec("ortho", "BigGAN's orthogonal regularisation of G's weights (Brock et al. 2019)",
                             Orthogonal, OrthogonalOptions)


@hookimpl
def ganforge_register_variants(register: Callable[..., None]) -> None:
    register(SNGAN)
    register(BIGGAN)


@hookimpl
def ganforge_register_regularizers(register: Callable[..., None]) -> None:
    register(ORTHOGONAL)
