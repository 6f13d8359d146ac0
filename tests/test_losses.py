"""Each loss against values computed by hand from its formula."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.losses import BUILTIN_LOSSES
from ganforge.regularizers import gradient_penalty

REAL = torch.tensor([[2.0], [0.0]])
FAKE = torch.tensor([[-1.0], [0.5]])


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def by_name(name: str):
    return next(loss for loss in BUILTIN_LOSSES if loss.name == name)


def test_minimax_is_the_papers_value_function() -> None:
    loss = by_name("minimax")
    d = -(math.log(sigmoid(2.0)) + math.log(sigmoid(0.0))) / 2 - (math.log(1 - sigmoid(-1.0)) + math.log(1 - sigmoid(0.5))) / 2
    g = (math.log(1 - sigmoid(-1.0)) + math.log(1 - sigmoid(0.5))) / 2
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    assert loss.g_loss(REAL, FAKE).item() == pytest.approx(g, rel=1e-6)


def test_nonsaturating_matches_bce_with_flipped_labels() -> None:
    loss = by_name("nonsaturating")
    g = -(math.log(sigmoid(-1.0)) + math.log(sigmoid(0.5))) / 2
    assert loss.g_loss(REAL, FAKE).item() == pytest.approx(g, rel=1e-6)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(REAL, torch.ones_like(REAL)) + bce(FAKE, torch.zeros_like(FAKE))
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(expected.item(), rel=1e-6)


def test_saturating_gradient_vanishes_where_nonsaturating_does_not() -> None:
    # When D confidently rejects a fake (logit -10), the minimax G loss gives almost no gradient.
    fake = torch.tensor([[-10.0]], requires_grad=True)
    by_name("minimax").g_loss(None, fake).backward()
    saturating = fake.grad.abs().item()
    fake.grad = None
    by_name("nonsaturating").g_loss(None, fake).backward()
    assert saturating < 1e-4 < 0.9 < fake.grad.abs().item()


def test_hinge() -> None:
    loss = by_name("hinge")
    d = (max(0, 1 - 2.0) + max(0, 1 - 0.0)) / 2 + (max(0, 1 - 1.0) + max(0, 1 + 0.5)) / 2
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d)
    assert loss.g_loss(REAL, FAKE).item() == pytest.approx(-(-1.0 + 0.5) / 2)


def test_wasserstein() -> None:
    loss = by_name("wasserstein")
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx((-1.0 + 0.5) / 2 - (2.0 + 0.0) / 2)
    assert loss.g_loss(REAL, FAKE).item() == pytest.approx(0.25)


def test_lsgan() -> None:
    loss = by_name("lsgan")
    d = 0.5 * ((2 - 1) ** 2 + (0 - 1) ** 2) / 2 + 0.5 * ((-1) ** 2 + 0.5**2) / 2
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d)
    assert loss.g_loss(REAL, FAKE).item() == pytest.approx(0.5 * ((-2) ** 2 + (-0.5) ** 2) / 2)


def test_softplus_forms_stay_finite_for_extreme_logits() -> None:
    extreme = torch.tensor([[1e4], [-1e4]])
    for loss in BUILTIN_LOSSES:
        assert torch.isfinite(loss.d_loss(extreme, extreme))
        assert torch.isfinite(loss.g_loss(extreme, extreme))


def test_gradient_penalty_of_a_linear_critic() -> None:
    # D(x) = sum(w * x) has gradient w everywhere, so the penalty is (||w|| - 1)^2 exactly.
    w = torch.full((1, 1, 2, 2), 1.5)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(1, keepdim=True)

    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((3.0 - 1.0) ** 2, rel=1e-5)
    # Under bf16 autocast G's images arrive in bf16 beside fp32 real ones.
    assert gradient_penalty(critic, real, fake.bfloat16()).item() == pytest.approx((3.0 - 1.0) ** 2, rel=1e-5)
