"""Plugins as users get them: a distribution really installed with pip, found through its entry
point, listed, trained; and a sister plugin really uninstalled, after which its names are gone."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "ganforge-tiny"


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
                   check=True, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory) -> Path:
    """The example distribution, built and installed by pip into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    pip("--no-deps", "--no-build-isolation", "--target", str(target), str(EXAMPLE))
    assert list(target.glob("ganforge_tiny-0.1.0.dist-info"))
    return target


def test_the_example_plugin_is_found_listed_and_trained(cli, tiny_site: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(tiny_site)}
    listed = {v["name"]: v for v in json.loads(cli("variants", "--json", env=env).stdout)}
    assert listed["tiny"]["plugin"] == "tiny" and listed["tiny"]["distribution"] == "ganforge-tiny"
    assert listed["tiny"]["aliases"] == ["tinygan"]
    proc = cli("train", "tinygan", "--steps", "4", "--batch-size", "16", "--out", "run", env=env)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["variant"] == "tiny" and saved["plugin"] == "tiny" and saved["resolved"]["loss"] == "hinge"
    plugins = {p["name"]: p for p in json.loads(cli("plugins", "--json", env=env).stdout)}
    assert plugins["tiny"]["distribution"] == "ganforge-tiny" and plugins["tiny"]["version"] == "0.1.0"
    # Without the folder on the path, the distribution is not installed and the name is unknown.
    proc = cli("train", "tiny")
    assert proc.returncode == 2 and "unknown variant 'tiny'" in proc.stderr


def test_the_example_plugins_own_tests_pass(tiny_site: Path) -> None:
    env = {**__import__("os").environ, "PYTHONPATH": str(tiny_site)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                          cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def _editable_from_this_checkout(distribution: str, folder: Path) -> bool:
    try:
        direct = importlib.metadata.distribution(distribution).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return False
    info = json.loads(direct or "{}")
    return info.get("dir_info", {}).get("editable", False) and info.get("url") == folder.resolve().as_uri()


@pytest.mark.skipif(not _editable_from_this_checkout("ganforge-cgan", ROOT / "plugins" / "cgan"),
                    reason="needs ganforge-cgan installed editable from this checkout (as `make test` does)")
def test_uninstalling_a_plugin_removes_its_names(cli) -> None:
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "ganforge-cgan"], check=True,
                   capture_output=True, timeout=300)
    try:
        names = {v["name"] for v in json.loads(cli("variants", "--json").stdout)}
        assert {"mlp", "dcgan"} <= names and not {"cgan", "cdcgan"} & names
        proc = cli("train", "cdcgan")
        assert proc.returncode == 2
        assert "provided by ganforge-cgan, which is not installed: pip install ganforge-cgan" in proc.stderr
    finally:
        pip("--no-deps", "--no-build-isolation", "-e", str(ROOT / "plugins" / "cgan"))
        importlib.invalidate_caches()
    names = {v["name"] for v in json.loads(cli("variants", "--json").stdout)}
    assert {"cgan", "cdcgan"} <= names
