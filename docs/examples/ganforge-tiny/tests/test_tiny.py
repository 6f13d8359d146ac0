"""The plugin's own tests. Every registration's contract is checked by ganforge's pytest plugin
(``ganforge_contract`` in pyproject.toml); these add drawn configs and the names."""

from hypothesis import strategies as st

from ganforge import get_variant
from ganforge.testing import check_variant
from ganforge_tiny import TINY, TinyConfig


def test_contract_over_drawn_configs() -> None:
    configs = st.builds(TinyConfig, latent_dim=st.integers(1, 32), width=st.integers(1, 16))
    check_variant(TINY, configs=configs, max_examples=10)


def test_registered_under_its_name_and_alias() -> None:
    assert get_variant("tiny") is TINY and get_variant("tinygan") is TINY
