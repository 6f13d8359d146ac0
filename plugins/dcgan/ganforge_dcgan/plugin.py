"""The entry point ``ganforge = dcgan``: registers the ``dcgan`` variant."""

from __future__ import annotations

from collections.abc import Callable

from ganforge import VariantSpec, hookimpl

from .models import DCGANConfig, DCGANDiscriminator, DCGANGenerator

DCGAN = VariantSpec(
    name="dcgan",
    description="DCGAN (Radford et al. 2016): strided convs, batch norm, sized to 28, 32 or 64 px",
    config=DCGANConfig,
    build_generator=DCGANGenerator,
    build_discriminator=DCGANDiscriminator,
    default_loss="nonsaturating",
    example_shapes=((1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 16, 16)),
    # D holds batch norm unless spectral norm replaces it, and batch norm makes its output depend on the batch.
    discriminator_sees_batch=lambda config: not config.spectral_norm,
)


@hookimpl
def ganforge_register_variants(register: Callable[..., None]) -> None:
    register(DCGAN)
