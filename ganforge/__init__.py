"""ganforge: a plugin-based GAN framework for PyTorch.

Variants, losses and data sets come from plugins (pluggy, entry-point group ``ganforge``); every
variant trains through one shared loop. See ``ganforge variants`` for what is installed.

The names below load on first use, so ``import ganforge`` (and the ``ganforge`` command's start)
does not import torch until something needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .catalog import Catalog, load_catalog
    from .config import DataConfig, TrainConfig
    from .errors import GanforgeError
    from .export import export_run, from_pretrained, verify_export
    from .hookspecs import hookimpl
    from .metrics.comparison import compare_models
    from .metrics.scoring import evaluate_model
    from .nn import Discriminator, Generator, InputError
    from .sampling import load_run
    from .training import TrainContext, TrainResult, resume, train
    from .variant import DataShape, OptimizerSettings, VariantConfig, VariantSpec

_EXPORTS = {
    "Catalog": "catalog", "load_catalog": "catalog",
    "DataConfig": "config", "TrainConfig": "config",
    "GanforgeError": "errors",
    "export_run": "export", "from_pretrained": "export", "verify_export": "export",
    "compare_models": "metrics.comparison", "evaluate_model": "metrics.scoring",
    "hookimpl": "hookspecs",
    "Discriminator": "nn", "Generator": "nn", "InputError": "nn",
    "load_run": "sampling",
    "TrainContext": "training", "TrainResult": "training", "resume": "training", "train": "training",
    "DataShape": "variant", "OptimizerSettings": "variant", "VariantConfig": "variant", "VariantSpec": "variant",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def get_variant(name: str) -> VariantSpec:
    """The installed variant called ``name`` (or an alias of it)."""
    from .catalog import load_catalog

    return load_catalog().variants.get(name)


def variant_names() -> list[str]:
    """Names of every installed variant."""
    from .catalog import load_catalog

    return load_catalog().variants.names()


__all__ = [
    "Catalog", "DataConfig", "DataShape", "Discriminator", "GanforgeError", "Generator", "InputError",
    "OptimizerSettings", "TrainConfig", "TrainContext", "TrainResult", "VariantConfig", "VariantSpec", "__version__",
    "compare_models", "evaluate_model", "export_run", "from_pretrained", "get_variant", "hookimpl", "load_catalog",
    "load_run", "resume", "train", "variant_names", "verify_export",
]
