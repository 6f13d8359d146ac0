"""What a data-set plugin registers, and how the loop loads one: options validated, the images
checked, and resized to the shape the run asked for where the data set allows it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

from ..config import DataConfig, validate_settings, validation_message
from ..errors import GanforgeError
from .sets import ImageData, ImageSet, Reshaped, check_labels


class DatasetOptions(BaseModel):
    """Base of a data set's own options (``--set data.options.KEY=VALUE``, ``[data.options]`` in TOML):
    every option has a default; unknown keys and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set: ``load(config)`` returns its training images as an :class:`ImageSet` (an
    :class:`ImageData` tensor for data that fits in memory, or a set read from files one image at a time).

    ``config.options`` holds the data set's validated ``options`` (a :class:`DatasetOptions` model) as
    a dict. ``resizable``: the loop may resize and convert the images to the size and channels the
    run asks for; otherwise a run asking for another shape is refused. ``evaluator`` names the
    evaluator that scores samples of this data (``ganforge metrics``).
    """

    name: str
    description: str
    load: Callable[[DataConfig], ImageSet]
    aliases: tuple[str, ...] = ()
    evaluator: str | None = None
    options: type[DatasetOptions] = DatasetOptions
    cross_evaluator: str | None = None
    resizable: bool = True


def load_data(spec: DatasetSpec, config: DataConfig, origin: str = "") -> tuple[ImageSet, DatasetOptions]:
    """The images ``spec`` loads for ``config``, in the requested shape, and its validated options.

    A plugin that returns something else, or images of another shape when it cannot be resized, is
    one line naming it (``origin``).
    """
    try:
        options = validate_settings(spec.options, config.options)
    except ValidationError as exc:
        raise GanforgeError(f"data set {spec.name!r}: " + validation_message(exc, "data.options").removeprefix("bad config: ")) from None
    data = spec.load(config.model_copy(update={"options": options.model_dump(mode="json")}))
    who = f"data set {spec.name!r}" + (f" ({origin})" if origin else "")
    if not isinstance(data, ImageSet):
        raise GanforgeError(f"{who} returned {type(data).__name__}; load() must return a ganforge.data.ImageSet "
                            "(ImageData for images in memory)")
    if len(data) == 0:
        raise GanforgeError(f"{data.source or who}: the data set holds no images")
    check_labels(data)
    c, h, w = data.shape
    size, channels = config.image_size, config.channels
    if (size is None or (h, w) == (size, size)) and channels in (None, c):
        return data, options
    if not spec.resizable:
        raise GanforgeError(f"{who} holds {c}x{h}x{w} images and cannot be resized; drop --image-size and "
                            "data.channels, or ask for its own size")
    reshaped = Reshaped(data, size, channels)
    return (reshaped.resident() if isinstance(data, ImageData) else reshaped), options
