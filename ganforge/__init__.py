"""ganforge: a plugin-based GAN framework for PyTorch.

Variants, losses and data sets come from plugins (pluggy, entry-point group ``ganforge``); every
variant trains through one shared loop. See ``ganforge variants`` for what is installed.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .catalog import Catalog, load_catalog
from .config import DataConfig, TrainConfig
from .errors import GanforgeError
from .hookspecs import hookimpl
from .nn import Discriminator, Generator, InputError
from .sampling import load_run
from .trainer import TrainResult, resume, train
from .variant import DataShape, OptimizerSettings, VariantConfig, VariantSpec


def get_variant(name: str) -> VariantSpec:
    """The installed variant called ``name`` (or an alias of it)."""
    return load_catalog().variants.get(name)


def variant_names() -> list[str]:
    """Names of every installed variant."""
    return load_catalog().variants.names()


__all__ = [
    "Catalog", "DataConfig", "DataShape", "Discriminator", "GanforgeError", "Generator", "InputError",
    "OptimizerSettings", "TrainConfig", "TrainResult", "VariantConfig", "VariantSpec", "__version__",
    "get_variant", "hookimpl", "load_catalog", "load_run", "resume", "train", "variant_names",
]
