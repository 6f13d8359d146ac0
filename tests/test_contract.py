"""Every installed variant, built-in or from a plugin, keeps the shape contract."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import strategies as st

from ganforge import load_catalog
from ganforge.builtin.mlp import MLP, MLPConfig, MLPGenerator
from ganforge.nn import InputError
from ganforge.testing import ContractViolation, check_pair, check_variant
from ganforge.variant import DataShape

INSTALLED = load_catalog().variants.names()


QUICK = {"mlp"}
"""Variants whose default networks are checked in seconds; the plugins' convolutional ones take up to minutes."""


@pytest.mark.parametrize("name", [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in INSTALLED])
def test_every_installed_variant_keeps_the_contract(name: str) -> None:
    check_variant(load_catalog().variants.get(name), max_examples=4)


def test_mlp_contract_over_drawn_configs() -> None:
    widths = st.lists(st.integers(1, 64), min_size=1, max_size=3).map(tuple)
    configs = st.builds(MLPConfig, latent_dim=st.integers(1, 32), g_hidden=widths, d_hidden=widths,
                        negative_slope=st.floats(0, 0.5))
    check_variant(MLP, image_shapes=[(1, 8, 8), (3, 5, 7), (1, 28, 28)], configs=configs, max_examples=15)


def test_mlp_matches_the_paper_sizes() -> None:
    g = MLPGenerator(MLPConfig(), DataShape(1, 28, 28))
    sizes = [(m.in_features, m.out_features) for m in g.net if isinstance(m, torch.nn.Linear)]
    assert sizes == [(100, 256), (256, 512), (512, 1024), (1024, 784)]
    d = MLP.build_discriminator(MLPConfig(), DataShape(1, 28, 28))
    sizes = [(m.in_features, m.out_features) for m in d.net if isinstance(m, torch.nn.Linear)]
    assert sizes == [(784, 512), (512, 256), (256, 1)]
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in d.modules())


def test_input_errors_say_what_was_expected_and_what_arrived() -> None:
    g = MLPGenerator(MLPConfig(), DataShape(1, 28, 28))
    with pytest.raises(InputError, match=r"expected z of shape \(B, 100\), got \(4, 64\)"):
        g(torch.randn(4, 64))
    d = MLP.build_discriminator(MLPConfig(), DataShape(1, 28, 28))
    with pytest.raises(InputError, match=r"expected images of shape \(B, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        d(torch.randn(2, 3, 28, 28))


def test_the_contract_check_catches_a_broken_generator() -> None:
    class Unbounded(MLPGenerator):
        def generate(self, z, labels):
            return super().generate(z, labels) + 1.5

    broken = dataclasses.replace(MLP, build_generator=Unbounded)
    with pytest.raises(ContractViolation, match=r"must lie in \[-1, 1\]"):
        check_pair(broken, MLPConfig(), DataShape(1, 28, 28), 4, [])
