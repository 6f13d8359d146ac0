"""Every hook a ganforge plugin can implement.

Registration hooks receive a ``register`` callback (the style of simonw/llm and tox): a plugin
calls it once per thing it provides, and ganforge records which plugin provided what.
Training-time hooks let loggers and callbacks observe a run without touching the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .training.context import TrainContext

hookspec = pluggy.HookspecMarker("ganforge")
hookimpl = pluggy.HookimplMarker("ganforge")


@hookspec
def ganforge_register_variants(register: Callable[..., None]) -> None:
    """Register GAN variants: call ``register(spec)`` with a :class:`ganforge.VariantSpec` for each."""


@hookspec
def ganforge_register_losses(register: Callable[..., None]) -> None:
    """Register adversarial losses: call ``register(loss)`` with a :class:`ganforge.losses.AdversarialLoss`."""


@hookspec
def ganforge_register_regularizers(register: Callable[..., None]) -> None:
    """Register step terms on D's or G's objective: call ``register(spec)`` with a
    :class:`ganforge.regularizers.RegularizerSpec` for each (``--reg NAME``)."""


@hookspec
def ganforge_register_augmentations(register: Callable[..., None]) -> None:
    """Register augmentations of every image D sees: call ``register(spec)`` with a
    :class:`ganforge.augment.AugmentationSpec` for each (``--augment NAME``)."""


@hookspec
def ganforge_register_datasets(register: Callable[..., None]) -> None:
    """Register data sets: call ``register(spec)`` with a :class:`ganforge.data.DatasetSpec` for each."""


@hookspec
def ganforge_register_evaluators(register: Callable[..., None]) -> None:
    """Register evaluators, networks that map images to features: call ``register(spec)`` with a
    :class:`ganforge.metrics.evaluators.EvaluatorSpec` for each; a data set names its evaluator."""


@hookspec
def ganforge_register_metrics(register: Callable[..., None]) -> None:
    """Register evaluation metrics: call ``register(spec)`` with a :class:`ganforge.metrics.evaluate.MetricSpec`."""


@hookspec
def ganforge_train_start(context: TrainContext) -> None:
    """Called once before the first step of a run (also of a resumed run), after models are built."""


@hookspec
def ganforge_step_end(context: TrainContext, step: int, metrics: Mapping[str, Any] | None) -> None:
    """Called after every training step; ``metrics`` holds the logged figures on log steps, else None.

    It runs on every step, so an implementation must not read device tensors (a host sync) or do
    slow work except when ``metrics`` is given.
    """


@hookspec
def ganforge_train_end(context: TrainContext, status: str) -> None:
    """Called once when a run stops; ``status`` is "completed", "interrupted", "diverged" or "failed"."""
