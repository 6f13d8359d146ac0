"""The entry point ``ganforge = stylegan2``: registers the ``stylegan2`` variant and its path-length
regulariser ``path-length``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ganforge import DataShape, OptimizerSettings, VariantSpec, hookimpl
from ganforge.regularizers import RegularizerSpec
from ganforge.variant import RecipeInputs, build_models

from .networks import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2Generator
from .regularizers import PathLength, PathLengthOptions

ADA_BELOW = 50_000
"""Data sets with fewer images than this train with ADA by default (Karras et al. 2020a)."""


def recipe(inputs: RecipeInputs) -> Mapping[str, Any]:
    """StyleGAN2-ADA's "auto" configuration for the data and batch: R1's gamma = 0.0002 * side^2 / batch
    every 16 steps, path length every 4, an EMA with a half-life of batch * 10/32 thousand images, and
    ADA for data sets under 50,000 images."""
    batch = inputs.batch_size * inputs.world_size
    side = inputs.image_shape[1]
    return {
        "ema_kimg": batch * 10 / 32,
        "regularizers": [{"name": "r1", "gamma": 0.0002 * side ** 2 / batch, "interval": 16},
                         {"name": "path-length", "weight": 2.0, "interval": 4}],
        **({"augment": {"name": "ada"}} if inputs.data_size < ADA_BELOW else {}),
    }


STYLEGAN2 = VariantSpec(
    name="stylegan2",
    description="StyleGAN2-ADA (Karras et al. 2020) in plain PyTorch: mapping and modulated synthesis, residual D; "
                "any power-of-two side",
    config=StyleGAN2Config,
    build_generator=StyleGAN2Generator,
    build_discriminator=StyleGAN2Discriminator,
    default_loss="nonsaturating",
    optimizer=OptimizerSettings(lr_g=0.0025, lr_d=0.0025, betas=(0.0, 0.99)),
    conditional_by="conditional",
    recipe_for=recipe,
    discriminator_sees_batch=True,  # the minibatch standard deviation
    aliases=("sg2", "stylegan2-ada"),
    example_shapes=((3, 32, 32), (1, 32, 32), (3, 64, 64)),
)



def small_pair() -> tuple[Any, Any]:
    """A 16 px StyleGAN2 G and D of a few thousand weights: what the contract kit checks path length on."""
    config = StyleGAN2Config(latent_dim=16, w_dim=16, channel_base=128, channel_max=16, mapping_layers=2)
    return build_models(STYLEGAN2, config, DataShape(3, 16, 16))


PATH_LENGTH = RegularizerSpec("path-length", "StyleGAN2's path-length regularisation of G (Karras et al. 2020)",
                              PathLength, PathLengthOptions, aliases=("pl",), example_models=small_pair)


@hookimpl
def ganforge_register_variants(register: Callable[..., None]) -> None:
    register(STYLEGAN2)


@hookimpl
def ganforge_register_regularizers(register: Callable[..., None]) -> None:
    register(PATH_LENGTH)
