"""Plugins that break the contract, contained: a broken model stops its own run with one line naming
it, a name clash breaks nothing else, and the contract kit catches what used to slip through."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from pydantic import Field

from conftest import write_distribution
from ganforge import VariantConfig
from ganforge.builtin.mlp import MLP, MLPConfig, MLPGenerator
from ganforge.testing import ContractViolation, check_pair, check_variant
from ganforge.variant import DataShape

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

BROKEN = '''
import torch
from ganforge import VariantSpec, hookimpl
from ganforge.builtin.mlp import MLPConfig, MLPDiscriminator, MLPGenerator


class WrongShape(MLPGenerator):
    def generate(self, z, labels):
        return super().generate(z, labels)[:, :, :27]


class Unbounded(MLPGenerator):
    def generate(self, z, labels):
        return super().generate(z, labels) * 50


def logits(shape):
    class D(MLPDiscriminator):
        def score(self, x, labels):
            out = super().score(x, labels)
            return out.view(len(x), *shape) if shape != (2,) else torch.cat([out, out], 1)
    return D


VARIANTS = [
    VariantSpec("wrong-shape", "G drops a row", MLPConfig, WrongShape, MLPDiscriminator),
    VariantSpec("unbounded", "G without tanh", MLPConfig, Unbounded, MLPDiscriminator),
    VariantSpec("d-b11", "D returns (B, 1, 1)", MLPConfig, MLPGenerator, logits((1, 1))),
    VariantSpec("d-b2", "D returns (B, 2)", MLPConfig, MLPGenerator, logits((2,))),
]


@hookimpl
def ganforge_register_variants(register):
    for spec in VARIANTS:
        register(spec)
'''

CLASH = '''
from ganforge import VariantSpec, hookimpl
from ganforge.builtin.mlp import MLPConfig, MLPDiscriminator, MLPGenerator


@hookimpl
def ganforge_register_variants(register):
    register(VariantSpec("mlp", "a second mlp", MLPConfig, MLPGenerator, MLPDiscriminator))
    register(VariantSpec("own-mlp", "its own name", MLPConfig, MLPGenerator, MLPDiscriminator))
'''

NO_DEFAULT = '''
from pydantic import Field
from ganforge import VariantConfig, VariantSpec, hookimpl
from ganforge.builtin.mlp import MLPDiscriminator, MLPGenerator


class Config(VariantConfig):
    latent_dim: int = Field(ge=1)
    g_hidden: tuple[int, ...] = (32,)
    d_hidden: tuple[int, ...] = (32,)
    negative_slope: float = 0.2


@hookimpl
def ganforge_register_variants(register):
    register(VariantSpec("needy", "a knob without a default", Config, MLPGenerator, MLPDiscriminator))
'''


@pytest.fixture
def site(tmp_path: Path) -> dict[str, str]:
    write_distribution(tmp_path / "site", "ganforge-broken", "broken_variants", BROKEN, entry="broken")
    return {"PYTHONPATH": str(tmp_path / "site")}


@pytest.mark.parametrize(("variant", "expected"), [
    ("wrong-shape", "its generator returned images of shape (8, 1, 27, 28), expected (8, 1, 28, 28)"),
    ("unbounded", "its generator's images must lie in [-1, 1] (end it in tanh), got values from"),
    ("d-b11", "its discriminator returned logits of shape (8, 1, 1), expected (8, 1)"),
    ("d-b2", "its discriminator returned logits of shape (8, 2), expected (8, 1)"),
])
def test_a_model_that_breaks_the_contract_stops_its_run_naming_the_plugin(cli, one_line_error, site, tmp_path: Path,
                                                                          variant: str, expected: str) -> None:
    error = one_line_error(cli("train", variant, "--steps", "3", "--out", "run", "--set", "g_hidden=[16]",
                               "--set", "d_hidden=[16]", env=site))
    assert f"variant {variant!r} (plugin 'broken', distribution ganforge-broken): {expected}" in error
    assert "ganforge.testing.check_variant" in error
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_a_plugin_reusing_a_name_breaks_nothing_else(cli, one_line_error, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(write_distribution(tmp_path / "site", "ganforge-copycat", "copycat", CLASH))}
    listed = cli("variants", env=env)
    assert listed.returncode == 0
    warnings = [line for line in listed.stderr.splitlines() if line]
    assert warnings == ["ganforge: warning: variant name 'mlp' is registered twice: by plugin 'ganforge.builtin.mlp' and "
                        "by plugin 'copycat'; 'ganforge.builtin.mlp' keeps it and 'copycat''s variant 'mlp' is skipped "
                        "(GANFORGE_DISABLE_PLUGINS=copycat silences this)"]
    assert any(line.startswith("own-mlp ") for line in listed.stdout.splitlines())
    proc = cli("train", "mlp", "--steps", "2", "--out", "run", "--set", "g_hidden=[16]", "--set", "d_hidden=[16]", env=env)
    assert proc.returncode == 0, proc.stderr
    assert cli("sample", "run", "--n", "4", "--out", "grid.png", env=env).returncode == 0
    strict = {**env, "GANFORGE_STRICT_PLUGINS": "1"}
    assert "registered twice" in one_line_error(cli("variants", env=strict))


def test_a_config_field_without_a_default_blames_the_plugin(cli, one_line_error, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(write_distribution(tmp_path / "site", "ganforge-needy", "needy", NO_DEFAULT))}
    error = one_line_error(cli("train", "needy", "--steps", "2", env=env))
    assert ("variant 'needy' (plugin 'needy', distribution ganforge-needy) has config field 'latent_dim' without a default: "
            "pass --set latent_dim=VALUE") in error
    proc = cli("train", "needy", "--steps", "2", "--set", "latent_dim=8", "--out", "run", env=env)
    assert proc.returncode == 0, proc.stderr


def test_the_contract_kit_catches_a_generator_that_ignores_its_latent() -> None:
    class Constant(MLPGenerator):
        def generate(self, z, labels):
            return super().generate(torch.zeros_like(z), labels)

    broken = dataclasses.replace(MLP, build_generator=Constant)
    with pytest.raises(ContractViolation, match="ignores its latent code: every z gives the same image"):
        check_pair(broken, MLPConfig(), DataShape(1, 28, 28), 4, [])


def test_the_contract_kit_catches_a_config_field_without_a_default() -> None:
    class Needy(VariantConfig):
        latent_dim: int = Field(ge=1)
        g_hidden: tuple[int, ...] = (32,)
        d_hidden: tuple[int, ...] = (32,)
        negative_slope: float = 0.2

    broken = dataclasses.replace(MLP, config=Needy)
    with pytest.raises(ContractViolation, match="config field 'latent_dim' has no default"):
        check_variant(broken, max_examples=1)
