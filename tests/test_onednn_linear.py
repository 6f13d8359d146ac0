"""The oneDNN linear layers compute what F.linear computes, gradients and second derivatives included."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ganforge import GanforgeError, TrainConfig
from ganforge.accel.onednn_linear import OneDNNLinear, onednn_linear_available, onednn_linear_pays, use_onednn_linears
from ganforge.training import Trainer

pytestmark = pytest.mark.skipif(not onednn_linear_available(), reason="needs an x86 CPU and PyTorch with oneDNN")


def _grads(linear, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> list[torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, weight) + ((bias,) if bias is not None else ())]
    out = linear(*leaves) if bias is not None else linear(*leaves, None)
    # A loss that is not a plain sum, so the incoming gradient differs per element.
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).pow(2).sum().backward()
    return [out.detach(), *(t.grad for t in leaves)]


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 70), fan_in=st.integers(1, 300), fan_out=st.integers(1, 300),
       bias=st.booleans(), extra_dim=st.booleans())
def test_values_and_gradients_match_f_linear(batch: int, fan_in: int, fan_out: int, bias: bool, extra_dim: bool) -> None:
    g = torch.Generator().manual_seed(batch * 1000 + fan_in)
    x = torch.randn(*((2,) if extra_dim else ()), batch, fan_in, generator=g)
    weight = torch.randn(fan_out, fan_in, generator=g) / fan_in**0.5
    b = torch.randn(fan_out, generator=g) if bias else None
    for ours, theirs in zip(_grads(OneDNNLinear.apply, x, weight, b), _grads(F.linear, x, weight, b)):
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_second_derivatives_match_so_the_gradient_penalty_works() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 40, generator=g, requires_grad=True)
    weight = torch.randn(30, 40, generator=g, requires_grad=True)
    bias = torch.randn(30, generator=g, requires_grad=True)

    def penalty_grads(linear) -> tuple[torch.Tensor, ...]:
        out = torch.tanh(linear(x, weight, bias)).sum()
        (grad_x,) = torch.autograd.grad(out, x, create_graph=True)
        return torch.autograd.grad(grad_x.norm(dim=1).sub(1).pow(2).mean(), (weight, bias))

    for ours, theirs in zip(penalty_grads(OneDNNLinear.apply), penalty_grads(F.linear)):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_patched_models_keep_their_state_and_fall_back_outside_fp32() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.LeakyReLU(0.2), nn.Linear(30, 1))
    reference = nn.Sequential(nn.Linear(20, 30), nn.LeakyReLU(0.2), nn.Linear(30, 1))
    reference.load_state_dict(model.state_dict())
    keys = list(model.state_dict())
    assert use_onednn_linears(nn.Sequential(nn.Linear(20, 30), nn.Linear(300, 300))) == 1  # small layers stay
    assert use_onednn_linears(model, min_weights=1) == 2
    assert list(model.state_dict()) == keys
    assert [type(m) for m in model] == [nn.Linear, nn.LeakyReLU, nn.Linear]
    x = torch.randn(8, 20)
    torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x)
    assert low.dtype == torch.bfloat16  # autocast still decides, exactly as for an unpatched layer
    assert model.double()(x.double()).dtype == torch.float64


def _trainer(tmp_path: Path, name: str, **settings: object) -> Trainer:
    return Trainer(TrainConfig(variant="mlp", steps=10, log_every=5, out=tmp_path / name, **settings))


def test_cpu_runs_default_to_onednn_where_it_pays_and_train_like_the_aten_kernels(tmp_path: Path) -> None:
    assert _trainer(tmp_path, "default").describe()["resolved"]["onednn_linear"] is onednn_linear_pays()
    fast, plain = _trainer(tmp_path, "fast", onednn_linear=True), _trainer(tmp_path, "plain", onednn_linear=False)
    assert fast.describe()["resolved"]["onednn_linear"] is True
    assert plain.describe()["resolved"]["onednn_linear"] is False
    start = torch.nn.utils.parameters_to_vector(fast.generator.parameters()).clone()
    fast.fit()
    plain.fit()
    ours = torch.nn.utils.parameters_to_vector(fast.generator.parameters())
    theirs = torch.nn.utils.parameters_to_vector(plain.generator.parameters())
    # Adam's steps have a fixed size, so rounding moves single weights by up to lr; the runs as a
    # whole must stay together: their gap is tiny next to the distance both travelled.
    assert (ours - theirs).norm() < 0.01 * (ours - start).norm()


def test_onednn_linear_with_compile_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GanforgeError, match="onednn_linear and --compile do not combine"):
        _trainer(tmp_path, "both", onednn_linear=True, compile=True)
