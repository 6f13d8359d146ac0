"""What a plugin registers to add a GAN variant: builders, a config model and training defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from .nn import Discriminator, Generator


class VariantConfig(BaseModel):
    """Base for a variant's architecture config: every knob has a default, unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataShape(NamedTuple):
    """The shape of the training images, and the number of classes for conditional variants."""

    channels: int
    height: int
    width: int
    num_classes: int | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass(frozen=True)
class OptimizerSettings:
    """Adam settings a variant trains with unless the user overrides them."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)


@dataclass(frozen=True)
class VariantSpec:
    """A GAN variant as a plugin registers it.

    ``build_generator`` and ``build_discriminator`` receive the validated ``config`` instance and the
    :class:`DataShape` of the data set, so one variant can size itself to MNIST or CIFAR-10.
    """

    name: str
    description: str
    config: type[BaseModel]
    build_generator: Callable[[Any, DataShape], Generator]
    build_discriminator: Callable[[Any, DataShape], Discriminator]
    default_loss: str = "nonsaturating"
    optimizer: OptimizerSettings = OptimizerSettings()
    conditional: bool = False
    aliases: tuple[str, ...] = ()
    example_shapes: tuple[tuple[int, int, int], ...] = ((1, 28, 28), (3, 32, 32))
    """(C, H, W) shapes the variant supports, which ``ganforge.testing.check_variant`` tries."""
    recipe: Mapping[str, Any] = field(default_factory=dict)
    """Training settings (TrainConfig fields, e.g. ``{"ema": 0.999}``) used unless the user sets them."""
    legacy_config: Mapping[str, Any] = field(default_factory=dict)
    """Config fields added after runs were recorded without them, each with the value that rebuilds
    those older runs' models (a new field's default may build a different network)."""

    def make_config(self, values: dict[str, Any] | None = None) -> BaseModel:
        """Validate ``values`` against this variant's config model (pydantic raises on bad keys)."""
        return self.config.model_validate(values or {})

    def recorded_config(self, values: dict[str, Any]) -> BaseModel:
        """The config a run directory recorded, with ``legacy_config`` filling the fields it predates,
        so that a run trained by an older version of the variant still loads and resumes."""
        return self.make_config({**self.legacy_config, **values})
