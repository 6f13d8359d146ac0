"""The contract kit as a pytest plugin: a plugin author names their distribution in the test
configuration and pytest checks every registration, in a real pytest run on a real distribution."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_distribution

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

PLUGIN = '''
import dataclasses
from ganforge import VariantSpec, hookimpl
from ganforge.builtin.mlp import MLPConfig, MLPDiscriminator, MLPGenerator
from ganforge.regularizers import BUILTIN_REGULARIZERS


class WrongShape(MLPGenerator):
    def generate(self, z, labels):
        return super().generate(z, labels)[:, :, :27]


GOOD = VariantSpec("small-mlp", "the MLP under another name", MLPConfig, MLPGenerator, MLPDiscriminator)
BROKEN = VariantSpec("wrong-shape", "G drops a row", MLPConfig, WrongShape, MLPDiscriminator)
ON = {"good": [GOOD], "broken": [GOOD, BROKEN]}[MODE]


@hookimpl
def ganforge_register_variants(register):
    for spec in ON:
        register(spec)


@hookimpl
def ganforge_register_regularizers(register):
    register(dataclasses.replace(BUILTIN_REGULARIZERS[0], name="my-gp", aliases=()))
'''


def run_pytest(tmp_path: Path, mode: str, *args: str, ini: str = "ganforge_contract = ganforge-mine") -> subprocess.CompletedProcess[str]:
    site = write_distribution(tmp_path / mode / "site", "ganforge-mine", "ganforge_mine", f"MODE = {mode!r}\n" + PLUGIN)
    project = tmp_path / mode / "project"
    project.mkdir()
    (project / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args], cwd=project,
                          env=env, capture_output=True, text=True, timeout=600)


def test_every_registration_of_the_named_distribution_becomes_a_passing_test_item(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, "good")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ganforge-contract::variant:small-mlp PASSED" in proc.stdout
    assert "ganforge-contract::regularizer:my-gp PASSED" in proc.stdout
    assert "variant:mlp" not in proc.stdout  # ganforge's own variants belong to ganforge's tests
    assert "2 passed" in proc.stdout


def test_a_variant_that_breaks_the_contract_fails_with_what_broke(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, "broken", "-k", "wrong")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ganforge-contract::variant:wrong-shape FAILED" in proc.stdout
    assert "variant:wrong-shape: variant 'wrong-shape': its generator returned images of shape" in proc.stdout
    assert "Traceback" not in proc.stdout and "_pytest" not in proc.stdout  # one line, not pytest's innards
    assert "1 failed, 2 deselected" in proc.stdout


def test_the_command_line_option_does_the_same_and_an_unknown_distribution_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, "good", "--ganforge-contract", "ganforge_mine", ini="")
    assert proc.returncode == 0 and "2 passed" in proc.stdout, proc.stdout + proc.stderr
    proc = run_pytest(tmp_path / "again", "good", ini="ganforge_contract = ganforge-nothing")
    assert proc.returncode == 4
    assert "ganforge_contract names ganforge-nothing, which registers nothing ganforge loaded" in proc.stderr
