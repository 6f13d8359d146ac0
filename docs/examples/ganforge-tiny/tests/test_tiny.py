"""The plugin's own tests: ganforge's contract kit does the work."""

from hypothesis import strategies as st

from ganforge import get_variant
from ganforge.testing import check_augmentation, check_regularizer, check_variant
from ganforge_tiny import DRIFT, INSTANCE_NOISE, TINY, TinyConfig


def test_contract() -> None:
    configs = st.builds(TinyConfig, latent_dim=st.integers(1, 32), width=st.integers(1, 16))
    check_variant(TINY, configs=configs, max_examples=10)


def test_registered_under_its_name_and_alias() -> None:
    assert get_variant("tiny") is TINY and get_variant("tinygan") is TINY


def test_the_step_terms_keep_their_contract() -> None:
    check_regularizer(DRIFT)
    check_augmentation(INSTANCE_NOISE)
