"""Loggers as plugins on the training-time hooks. ``tensorboard`` (``--logger tensorboard``) writes
the logged scalars, evaluation figures and sample grids to RUN_DIR/tensorboard."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import GanforgeError
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .training.context import TrainContext

_writers: dict[int, Any] = {}


def _wanted(context: TrainContext) -> bool:
    return "tensorboard" in context.config.loggers and context.is_main


@hookimpl
def ganforge_train_start(context: TrainContext) -> None:
    if not _wanted(context):
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GanforgeError("--logger tensorboard needs the tensorboard package: pip install 'ganforge[tensorboard]'") from None
    # A resumed run logs again the steps after its checkpoint; the events an interrupted run wrote
    # past that point go, as its metrics.jsonl lines do.
    _writers[id(context)] = SummaryWriter(log_dir=str(context.run_dir / "tensorboard"), purge_step=context.step + 1)


@hookimpl
def ganforge_step_end(context: TrainContext, step: int, metrics: Mapping[str, Any] | None) -> None:
    writer = _writers.get(id(context))
    if writer is None:
        return
    for key, value in (metrics or {}).items():
        if isinstance(value, (int, float)) and key != "step":
            writer.add_scalar(key, value, step)
    grid = context.samples_dir / f"step_{step:07d}.png"
    if grid.is_file():
        from PIL import Image
        from torchvision.transforms.v2.functional import pil_to_tensor

        with Image.open(grid) as image:
            writer.add_image("samples", pil_to_tensor(image.convert("RGB")), step)


@hookimpl
def ganforge_train_end(context: TrainContext, status: str) -> None:
    writer = _writers.pop(id(context), None)
    if writer is not None:
        writer.close()
