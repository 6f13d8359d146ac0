"""The registries of variants, losses and data sets, filled by asking each plugin in turn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pluggy

from .data import DatasetSpec
from .losses import AdversarialLoss
from .metrics.evaluate import MetricSpec
from .plugins import make_plugin_manager
from .registry import Registry
from .variant import VariantSpec


@dataclass
class Catalog:
    """Everything the installed plugins provide, with provenance, plus the manager that provided it."""

    pm: pluggy.PluginManager
    variants: Registry[VariantSpec]
    losses: Registry[AdversarialLoss]
    datasets: Registry[DatasetSpec]
    metrics: Registry[MetricSpec]


def _collect(pm: pluggy.PluginManager, hook_name: str, registry: Registry[Any]) -> None:
    # Calling each implementation on its own, rather than the hook once, is what lets the registry
    # record which plugin registered what (simonw/llm does the same).
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        def register(obj: Any, *, _plugin: str = impl.plugin_name) -> None:
            registry.add(obj.name, obj, _plugin, tuple(getattr(obj, "aliases", ())))
        impl.function(register=register)


def load_catalog(pm: pluggy.PluginManager | None = None) -> Catalog:
    """Collect what every plugin registers; ``pm`` defaults to :func:`make_plugin_manager`."""
    pm = pm or make_plugin_manager()
    catalog = Catalog(pm, Registry("variant"), Registry("loss"), Registry("data set"), Registry("metric"))
    _collect(pm, "ganforge_register_variants", catalog.variants)
    _collect(pm, "ganforge_register_losses", catalog.losses)
    _collect(pm, "ganforge_register_datasets", catalog.datasets)
    _collect(pm, "ganforge_register_metrics", catalog.metrics)
    return catalog


