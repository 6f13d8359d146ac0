"""What a plugin registers to add a GAN variant: builders, a config model and training defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from .config import validate_settings, validation_message
from .errors import GanforgeError
from .nn import Discriminator, Generator


class VariantConfig(BaseModel):
    """Base for a variant's architecture config: every knob has a default, unknown keys and
    infinite or NaN numbers are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
class RecipeInputs:
    """What a variant's ``recipe_for`` may depend on, known once the data is loaded: the image shape,
    the number of training images, the batch size per process and the number of processes."""

    image_shape: tuple[int, int, int]
    data_size: int
    batch_size: int
    world_size: int


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
    conditional_by: str | None = None
    """The config field (a bool) that makes the variant conditional, for one that can be either
    (``--set conditional=true``); None where ``conditional`` alone decides."""
    aliases: tuple[str, ...] = ()
    example_shapes: tuple[tuple[int, int, int], ...] = ((1, 28, 28), (3, 32, 32))
    """(C, H, W) shapes the variant supports, which ``ganforge.testing.check_variant`` tries."""
    recipe: Mapping[str, Any] = field(default_factory=dict)
    """Training settings (TrainConfig fields, e.g. ``{"ema": 0.999}``) used unless the user sets them."""
    recipe_for: Callable[[RecipeInputs], Mapping[str, Any]] | None = None
    """More recipe that depends on the data and the batch (StyleGAN2's R1 gamma grows with the image
    side and shrinks with the batch; ADA is on for small data sets): applied like ``recipe``."""
    discriminator_sees_batch: bool | Callable[[Any], bool] = False
    """Whether D's output for one image depends on the other images in its batch (batch norm, a
    minibatch standard deviation), as a bool or a function of the variant's config: the loop then
    scores real and fake images in separate forwards. ``check_variant`` catches a D that depends
    on its batch without saying so."""
    terms: tuple[Mapping[str, Any], ...] = ()
    """Step terms the variant always trains with, as ``{"name": ..., option: value}`` (an auxiliary
    classifier's loss, say): part of the model, where ``recipe`` only holds defaults the user may change."""
    legacy_config: Mapping[str, Any] = field(default_factory=dict)
    """Config fields added after runs were recorded without them, each with the value that rebuilds
    those older runs' models (a new field's default may build a different network)."""

    def d_sees_batch(self, config: Any) -> bool:
        """Whether D, built with ``config``, scores an image differently with other images beside it."""
        declared = self.discriminator_sees_batch
        return bool(declared(config) if callable(declared) else declared)

    def is_conditional(self, config: Any) -> bool:
        """Whether the variant, built with ``config``, draws images of the classes asked for."""
        return self.conditional or bool(self.conditional_by and getattr(config, self.conditional_by))

    def make_config(self, values: dict[str, Any] | None = None, origin: str = "") -> BaseModel:
        """Validate ``values`` (settings a user wrote) strictly against this variant's config model.

        A bad value is a GanforgeError naming the field; a field the values leave out and the model
        gives no default is the plugin's mistake, and the message says so (``origin`` names the plugin).
        """
        try:
            return validate_settings(self.config, values or {})
        except ValidationError as exc:
            missing = [".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "missing"]
            if missing:
                raise GanforgeError(
                    f"variant {self.name!r}{f' ({origin})' if origin else ''} has config field "
                    f"{missing[0]!r} without a default: pass --set {missing[0]}=VALUE, and tell the plugin's "
                    "authors that every field needs one (ganforge.testing.check_variant checks it)"
                ) from None
            raise GanforgeError(validation_message(exc, "model")) from None

    def recorded_config(self, values: dict[str, Any]) -> BaseModel:
        """The config a run directory recorded, with ``legacy_config`` filling the fields it predates,
        so that a run trained by an older version of the variant still loads and resumes."""
        return self.make_config({**self.legacy_config, **values})


def build_models(spec: VariantSpec, model_config: Any, shape: DataShape, origin: str = "") -> tuple[Generator, Discriminator]:
    """Build and type-check a variant's pair, so that a plugin's mistake is reported as the plugin's.

    ``origin`` ("plugin 'p', distribution 'd'") is kept on both modules: the checks of their outputs
    at run time name it.
    """
    generator = spec.build_generator(model_config, shape)
    discriminator = spec.build_discriminator(model_config, shape)
    if not isinstance(generator, Generator) or not isinstance(discriminator, Discriminator):
        raise GanforgeError(
            f"variant {spec.name!r}{f' ({origin})' if origin else ''} built {type(generator).__name__} / "
            f"{type(discriminator).__name__}; they must subclass ganforge.nn.Generator / ganforge.nn.Discriminator"
        )
    for model in (generator, discriminator):
        model.origin = f"variant {spec.name!r}" + (f" ({origin})" if origin else "")
    return generator, discriminator
