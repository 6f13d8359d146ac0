"""The registry and plugin loading: built-ins, entry points, failures, duplicates, provenance."""

from __future__ import annotations

import importlib.metadata
import types

import pytest

from ganforge import GanforgeError, VariantSpec, hookimpl, load_catalog
from ganforge.builtin.mlp import MLP, MLPConfig, MLPDiscriminator, MLPGenerator
from ganforge.plugins import DEFAULT_PLUGINS, PluginLoadError, PluginWarning, make_plugin_manager
from ganforge.registry import Registry


def plugin_module(name: str, variant_name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    spec = VariantSpec(variant_name, "a test variant", MLPConfig, MLPGenerator, MLPDiscriminator)

    @hookimpl
    def ganforge_register_variants(register):
        register(spec)

    module.ganforge_register_variants = ganforge_register_variants
    return module


class FakeEntryPoint:
    """Stands in for importlib.metadata.EntryPoint: a name, a distribution and a load()."""

    def __init__(self, name: str, load, dist_name: str = "fake-dist") -> None:
        self.name = name
        self._load = load
        self.dist = types.SimpleNamespace(name=dist_name, version="9.9")

    def load(self):
        return self._load()


@pytest.fixture
def entry_points(monkeypatch):
    points: list[FakeEntryPoint] = []
    real = importlib.metadata.entry_points

    def fake(**kwargs):
        if kwargs.get("group") == "ganforge":
            return list(points)
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    return points


def test_builtins_are_registered_as_plugins_with_provenance(catalog) -> None:
    entry = catalog.variants.entry("mlp")
    assert entry.plugin == "ganforge.builtin.mlp"
    assert catalog.variants.get("gan") is catalog.variants.get("vanilla") is MLP
    assert {"minimax", "nonsaturating", "hinge", "wasserstein", "lsgan"} <= set(catalog.losses.names())
    assert {"mnist5k", "mnist", "fashion-mnist", "cifar10", "image-folder"} <= set(catalog.datasets.names())
    assert all(catalog.pm.has_plugin(name) for name in DEFAULT_PLUGINS)


def test_a_plugin_registered_at_run_time_appears_and_disappears() -> None:
    pm = make_plugin_manager(entry_points=False)
    plugin = plugin_module("my_plugin", "tiny")
    pm.register(plugin, name="my_plugin")
    catalog = load_catalog(pm)
    assert catalog.variants.entry("tiny").plugin == "my_plugin"
    pm.unregister(plugin)
    assert "tiny" not in load_catalog(pm).variants


def test_an_entry_point_plugin_loads(entry_points) -> None:
    entry_points.append(FakeEntryPoint("extra", lambda: plugin_module("extra_mod", "extra-gan")))
    catalog = load_catalog()
    assert catalog.variants.entry("extra-gan").plugin == "extra"
    assert catalog.pm.ganforge_info["extra"].distribution == "fake-dist"


def test_a_broken_plugin_is_named_and_skipped(entry_points, monkeypatch) -> None:
    def boom():
        raise ImportError("No module named 'missing_dependency'")

    entry_points.append(FakeEntryPoint("broken", boom, "broken-dist"))
    entry_points.append(FakeEntryPoint("fine", lambda: plugin_module("fine_mod", "fine-gan")))
    with pytest.warns(UserWarning, match=r"plugin 'broken' from broken-dist failed to load.*missing_dependency"):
        catalog = load_catalog()
    assert "fine-gan" in catalog.variants and "mlp" in catalog.variants
    monkeypatch.setenv("GANFORGE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="broken"):
        load_catalog()


def test_plugins_can_be_disabled_by_name(entry_points, monkeypatch) -> None:
    entry_points.append(FakeEntryPoint("extra", lambda: plugin_module("extra_mod", "extra-gan")))
    monkeypatch.setenv("GANFORGE_DISABLE_PLUGINS", "extra, ganforge.builtin.mlp")
    catalog = load_catalog()
    assert "extra-gan" not in catalog.variants and "mlp" not in catalog.variants


def test_a_duplicate_name_is_reported_and_the_first_registration_keeps_it(entry_points, monkeypatch) -> None:
    entry_points.append(FakeEntryPoint("copycat", lambda: plugin_module("copycat_mod", "mlp")))
    entry_points.append(FakeEntryPoint("fine", lambda: plugin_module("fine_mod", "fine-gan")))
    with pytest.warns(PluginWarning, match=r"'mlp' is registered twice: by plugin 'ganforge.builtin.mlp' and by plugin "
                                           r"'copycat'; 'ganforge.builtin.mlp' keeps it"):
        catalog = load_catalog()
    assert catalog.variants.get("mlp") is MLP and catalog.variants.entry("mlp").plugin == "ganforge.builtin.mlp"
    assert "fine-gan" in catalog.variants
    monkeypatch.setenv("GANFORGE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="registered twice"):
        load_catalog()


def test_a_plugin_whose_registration_fails_is_skipped_and_named(entry_points) -> None:
    broken = types.ModuleType("broken_mod")

    @hookimpl
    def ganforge_register_losses(register):
        register("not a loss")

    broken.ganforge_register_losses = ganforge_register_losses
    entry_points.append(FakeEntryPoint("broken", lambda: broken))
    with pytest.warns(PluginWarning, match=r"plugin 'broken' failed in ganforge_register_losses: TypeError: register\(\) "
                                           r"takes a AdversarialLoss, got str"):
        catalog = load_catalog()
    assert "hinge" in catalog.losses and "mlp" in catalog.variants


def test_unknown_names_suggest_close_matches_and_list_installed() -> None:
    registry: Registry[int] = Registry("variant")
    for name in ("cgan", "dcgan", "mlp"):
        registry.add(name, 0, "p")
    with pytest.raises(GanforgeError) as info:
        registry.get("dcgn")
    assert str(info.value) == ("unknown variant 'dcgn'; did you mean 'dcgan' or 'cgan'? installed: cgan, dcgan, mlp "
                               "(see `ganforge variants` and `ganforge plugins`)")
    registry.add("sngan", 0, "p")
    with pytest.raises(GanforgeError) as info:
        registry.get("gan")
    assert str(info.value).startswith("unknown variant 'gan'; did you mean 'cgan', 'sngan' or 'dcgan'? installed:")
    with pytest.raises(GanforgeError) as info:
        registry.get("zzz")
    assert str(info.value).startswith("unknown variant 'zzz'; installed: cgan, dcgan, mlp, sngan")


def test_a_known_but_missing_plugin_says_what_to_install() -> None:
    registry: Registry[int] = Registry("variant")
    registry.add("mlp", 0, "p")
    with pytest.raises(GanforgeError, match=r"provided by ganforge-dcgan, which is not installed: pip install ganforge-dcgan"):
        registry.get("dcgan")


def test_every_hook_has_a_test_and_a_documentation_entry() -> None:
    # datasette's habit: a hook nobody tests or documents is a hook nobody can rely on.
    from pathlib import Path

    from ganforge import hookspecs

    hooks = [name for name in dir(hookspecs) if name.startswith("ganforge_")]
    root = Path(__file__).resolve().parents[1]
    docs = (root / "docs" / "plugins.md").read_text()
    tests = "".join(p.read_text() for p in (root / "tests").glob("test_*.py"))
    for hook in hooks:
        assert getattr(hookspecs, hook).__doc__, f"{hook} has no docstring"
        assert f"`{hook}" in docs, f"{hook} is not documented in docs/plugins.md"
        assert f"def {hook}" in tests or f"{hook}(" in tests, f"{hook} has no test"
