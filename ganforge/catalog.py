"""The registries of variants, losses, step terms, data sets, evaluators and metrics, filled by asking
each plugin in turn."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pluggy

from .augment import AugmentationSpec
from .data import DatasetSpec
from .losses import AdversarialLoss
from .metrics.evaluators import EvaluatorSpec
from .metrics.spec import MetricSpec
from .plugins import PluginLoadError, PluginWarning, make_plugin_manager, strict_plugins
from .registry import NameClash, Registry
from .regularizers import RegularizerSpec
from .variant import VariantSpec


@dataclass
class Catalog:
    """Everything the installed plugins provide, with provenance, plus the manager that provided it."""

    pm: pluggy.PluginManager
    variants: Registry[VariantSpec]
    losses: Registry[AdversarialLoss]
    regularizers: Registry[RegularizerSpec]
    augmentations: Registry[AugmentationSpec]
    datasets: Registry[DatasetSpec]
    evaluators: Registry[EvaluatorSpec]
    metrics: Registry[MetricSpec]

    def distribution(self, plugin: str) -> str | None:
        """The distribution that installed ``plugin`` (``ganforge`` for the built-ins)."""
        info = self.pm.ganforge_info.get(plugin)  # type: ignore[attr-defined]
        return info.distribution if info is not None else None

    def origin(self, kind: str, name: str) -> str:
        """Where a registered name comes from, for messages: "plugin 'dcgan', distribution ganforge-dcgan"."""
        plugin = getattr(self, kind).entry(name).plugin
        distribution = self.distribution(plugin)
        return f"plugin {plugin!r}" + (f", distribution {distribution}" if distribution else "")


def _skip(message: str) -> None:
    """A plugin's registration that cannot be used: a warning, or fatal under GANFORGE_STRICT_PLUGINS=1."""
    if strict_plugins():
        raise PluginLoadError(message)
    warnings.warn(message, PluginWarning, stacklevel=3)


def _collect(pm: pluggy.PluginManager, hook_name: str, registry: Registry[Any], kind: type) -> None:
    # Calling each implementation on its own, rather than the hook once, is what lets the registry
    # record which plugin registered what (simonw/llm does the same), and contains a failing one.
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        def register(obj: Any, *, _plugin: str = impl.plugin_name) -> None:
            if not isinstance(obj, kind):
                raise TypeError(f"register() takes a {kind.__name__}, got {type(obj).__name__}")
            try:
                registry.add(obj.name, obj, _plugin, tuple(getattr(obj, "aliases", ())))
            except NameClash as clash:
                # The first registration keeps the name, so a plugin that reuses one breaks nothing else.
                _skip(str(clash))
        try:
            impl.function(register=register)
        except PluginLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must not take every other plugin down
            detail = " ".join(str(exc).split())[:300]
            _skip(f"ganforge plugin {impl.plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {detail} "
                  "(what it registered before failing is kept)")


def load_catalog(pm: pluggy.PluginManager | None = None) -> Catalog:
    """Collect what every plugin registers; ``pm`` defaults to :func:`make_plugin_manager`."""
    pm = pm or make_plugin_manager()
    catalog = Catalog(pm, Registry("variant"), Registry("loss"), Registry("regulariser"), Registry("augmentation"),
                      Registry("data set"), Registry("evaluator"), Registry("metric"))
    _collect(pm, "ganforge_register_variants", catalog.variants, VariantSpec)
    _collect(pm, "ganforge_register_losses", catalog.losses, AdversarialLoss)
    _collect(pm, "ganforge_register_regularizers", catalog.regularizers, RegularizerSpec)
    _collect(pm, "ganforge_register_augmentations", catalog.augmentations, AugmentationSpec)
    _collect(pm, "ganforge_register_datasets", catalog.datasets, DatasetSpec)
    _collect(pm, "ganforge_register_evaluators", catalog.evaluators, EvaluatorSpec)
    _collect(pm, "ganforge_register_metrics", catalog.metrics, MetricSpec)
    return catalog
