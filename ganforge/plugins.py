"""Building the plugin manager: ganforge's built-ins first, then entry points of group "ganforge".

Nothing loads at import time. Entry points load one at a time, so one broken plugin is named and
skipped instead of taking every other variant down with it (``GANFORGE_STRICT_PLUGINS=1`` makes it
fatal); ``GANFORGE_DISABLE_PLUGINS=a,b`` blocks plugins by name, built-ins included.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import warnings
from dataclasses import dataclass

import pluggy

from . import hookspecs
from ._version import __version__
from .errors import GanforgeError

DEFAULT_PLUGINS: tuple[str, ...] = (
    "ganforge.losses",
    "ganforge.regularizers",
    "ganforge.augment",
    "ganforge.data.builtin",
    "ganforge.builtin.mlp",
    "ganforge.metrics.builtin",
    "ganforge.metrics.evaluators",
    "ganforge.loggers",
)
ENTRY_POINT_GROUP = "ganforge"


class PluginLoadError(GanforgeError):
    """An entry-point plugin failed to load, or clashed with another, while ``GANFORGE_STRICT_PLUGINS=1``."""


class PluginWarning(UserWarning):
    """A plugin that could not be used in full: it failed to load, or registered a name already taken.
    The CLI prints each as one line, ``ganforge: warning: ...``."""


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin came from: a built-in module or an installed distribution."""

    name: str
    distribution: str
    version: str


def _disabled() -> set[str]:
    return {n.strip() for n in os.environ.get("GANFORGE_DISABLE_PLUGINS", "").split(",") if n.strip()}


def strict_plugins() -> bool:
    """Whether a plugin that fails to load or clashes is fatal (``GANFORGE_STRICT_PLUGINS=1``) rather than skipped."""
    return os.environ.get("GANFORGE_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def make_plugin_manager(*, entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager holding the built-ins and, unless ``entry_points=False``, installed plugins.

    Each registered plugin's origin is kept in ``pm.ganforge_info`` (name -> :class:`PluginInfo`).
    """
    pm = pluggy.PluginManager("ganforge")
    pm.add_hookspecs(hookspecs)
    info: dict[str, PluginInfo] = {}
    pm.ganforge_info = info  # type: ignore[attr-defined]
    disabled = _disabled()
    for module_name in DEFAULT_PLUGINS:
        if module_name in disabled:
            continue
        pm.register(importlib.import_module(module_name), name=module_name)
        info[module_name] = PluginInfo(module_name, "ganforge", __version__)
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled or pm.has_plugin(ep.name):
                continue
            dist = ep.dist.name if ep.dist else "?"
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:
                if pm.has_plugin(ep.name):  # pluggy keeps the hooks it checked before the one that failed
                    pm.unregister(name=ep.name)
                detail = " ".join(str(exc).split())[:300]
                message = f"ganforge plugin {ep.name!r} from {dist} failed to load: {type(exc).__name__}: {detail}"
                if strict_plugins():
                    raise PluginLoadError(message) from exc
                warnings.warn(message + " (skipped; GANFORGE_STRICT_PLUGINS=1 makes this fatal)", PluginWarning, stacklevel=2)
                continue
            info[ep.name] = PluginInfo(ep.name, dist, ep.dist.version if ep.dist else "?")
    return pm


def plugin_hooks(pm: pluggy.PluginManager, name: str) -> list[str]:
    """The ganforge hooks that plugin ``name`` implements."""
    plugin = pm.get_plugin(name)
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
