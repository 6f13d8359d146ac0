"""Plugins as users get them: a distribution really installed with pip (into a folder of its own),
found through its entry point, listed, trained; and a sister plugin that is not found, whose names
are then gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

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
    proc = cli("train", "tinygan", "--steps", "4", "--batch-size", "16", "--out", "run", "--reg", "drift",
               "--augment", "instance-noise:std=0.05", "--set", "log_every=2", env=env)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["variant"] == "tiny" and saved["plugin"] == "tiny" and saved["resolved"]["loss"] == "hinge"
    assert saved["resolved"]["regularizers"] == [{"name": "drift", "weight": 0.001, "interval": 1}]
    assert saved["resolved"]["augment"] == {"name": "instance-noise", "std": 0.05}
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(record["reg_drift"] > 0 for record in logged)
    listed = cli("regularizers", env=env).stdout.splitlines()
    assert any(row.split()[:4] == ["drift", "-", "tiny", "ganforge-tiny"] for row in listed)
    plugins = {p["name"]: p for p in json.loads(cli("plugins", "--json", env=env).stdout)}
    assert plugins["tiny"]["distribution"] == "ganforge-tiny" and plugins["tiny"]["version"] == "0.1.0"
    # Without the folder on the path, the distribution is not installed and the name is unknown.
    proc = cli("train", "tiny")
    assert proc.returncode == 2 and "unknown variant 'tiny'" in proc.stderr


def test_a_plugins_data_set_is_scored_with_the_plugins_evaluator(cli, tiny_site: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(tiny_site)}
    listed = cli("evaluators", env=env).stdout
    assert any(line.split()[:4] == ["pooled-pixels", "-", "tiny", "ganforge-tiny"] for line in listed.splitlines())
    proc = cli("train", "tiny", "--data", "digits-by-pixels", "--steps", "4", "--batch-size", "16", "--out", "run",
               "--set", "eval_every=4", "--set", "eval_samples=100", env=env)
    assert proc.returncode == 0, proc.stderr
    [evaluation] = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
                    if "fid" in line]
    assert evaluation["evaluator"] == "pooled-pixels" and evaluation["fid"] > 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["resolved"]["evaluator"] == {"name": "pooled-pixels", "sha256": evaluation["evaluator_sha256"]}
    proc = cli("eval", "run", "--n", "100", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["evaluator"] == "pooled-pixels"


def test_the_example_plugins_own_tests_pass(tiny_site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tiny_site)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                          cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Its two tests, and one contract item per registration from ganforge's pytest plugin.
    for item in ("variant:tiny", "regularizer:drift", "augmentation:instance-noise", "dataset:digits-by-pixels"):
        assert f"ganforge-contract::{item} PASSED" in proc.stdout
    assert "6 passed" in proc.stdout


WITHOUT_CGAN = """
import importlib.metadata, sys
entry_points = importlib.metadata.entry_points
def without_cgan(**kwargs):
    found = entry_points(**kwargs)
    if kwargs.get("group") != "ganforge":
        return found
    return importlib.metadata.EntryPoints([ep for ep in found if ep.dist is None or ep.dist.name != "ganforge-cgan"])
importlib.metadata.entry_points = without_cgan
from ganforge.entry import run
sys.argv[0] = "ganforge"
run()
"""


def test_without_a_plugin_its_names_are_gone_and_the_error_says_what_to_install(tmp_path: Path) -> None:
    # As if ganforge-cgan were not installed: its entry points are not found. The installed
    # environment itself is left as it is.
    script = tmp_path / "without_cgan.py"
    script.write_text(WITHOUT_CGAN)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "TQDM_DISABLE": "1"})

    names = {v["name"] for v in json.loads(run("variants", "--json").stdout)}
    assert {"mlp", "dcgan"} <= names and not {"cgan", "cdcgan", "acgan"} & names
    proc = run("train", "cdcgan")
    assert proc.returncode == 2
    assert "provided by ganforge-cgan, which is not installed: pip install ganforge-cgan" in proc.stderr
