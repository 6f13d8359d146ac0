"""The contract kit: ``check_variant(spec)`` checks a variant the way ganforge's trainer relies on it.

Plugin authors call it from their own tests (as scikit-learn's ``check_estimator``). It needs
hypothesis (``pip install ganforge[test]``), which draws batch sizes, data shapes and configs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .catalog import load_catalog
from .losses import AdversarialLoss
from .nn import Discriminator, Generator, InputError
from .variant import DataShape, VariantSpec, build_models

class ContractViolation(AssertionError):
    """A variant broke ganforge's shape, range or gradient contract; the message says where."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ContractViolation(message)


def _expect_input_error(call: Any, what: str) -> None:
    try:
        call()
    except InputError:
        return
    except Exception as exc:  # noqa: BLE001 - the point is to report which error came instead
        raise ContractViolation(f"{what}: expected ganforge.nn.InputError, got {type(exc).__name__}: {exc}") from exc
    raise ContractViolation(f"{what}: expected ganforge.nn.InputError, but the call succeeded")


def check_pair(spec: VariantSpec, config: Any, shape: DataShape, batch: int,
               losses: Sequence[AdversarialLoss]) -> None:
    """Check one built pair on one batch size: shapes, range, finite losses, gradients, bad inputs."""
    torch.manual_seed(0)
    g, d = build_models(spec, config, shape)
    _expect(isinstance(g, Generator) and isinstance(d, Discriminator), "builders must return Generator / Discriminator")
    _expect(g.image_shape == shape.image_shape and d.image_shape == shape.image_shape,
            f"image_shape: expected {shape.image_shape}, got G {g.image_shape}, D {d.image_shape}")
    _expect(g.num_classes == shape.num_classes and d.num_classes == shape.num_classes,
            f"num_classes: expected {shape.num_classes}, got G {g.num_classes}, D {d.num_classes}")
    z = g.sample_latent(batch)
    _expect(z.shape == (batch, g.latent_dim), f"sample_latent: expected ({batch}, {g.latent_dim}), got {tuple(z.shape)}")
    labels = torch.randint(0, shape.num_classes, (batch,)) if shape.num_classes else None
    with torch.no_grad():
        fake = g(z, labels)
    _expect(fake.shape == (batch, *shape.image_shape), f"G output: expected {(batch, *shape.image_shape)}, got {tuple(fake.shape)}")
    _expect(bool(torch.isfinite(fake).all()), "G output holds NaN or Inf")
    _expect(float(fake.min()) >= -1.0 and float(fake.max()) <= 1.0,
            f"G output must lie in [-1, 1], got [{float(fake.min()):.4f}, {float(fake.max()):.4f}]")
    real = torch.rand(batch, *shape.image_shape) * 2 - 1
    scores = d(real, labels)
    _expect(scores.shape == (batch, 1), f"D output: expected ({batch}, 1) logits, got {tuple(scores.shape)}")

    for loss in losses:
        g.zero_grad(set_to_none=True)
        d.zero_grad(set_to_none=True)
        fake = g(z, labels)
        d_loss = loss.d_loss(d(real, labels), d(fake.detach(), labels))
        _expect(d_loss.dim() == 0 and bool(torch.isfinite(d_loss)), f"loss {loss.name}: D loss must be a finite scalar, got {d_loss}")
        d_loss.backward()
        for name, p in d.named_parameters():
            _expect(p.grad is not None and bool(torch.isfinite(p.grad).all()),
                    f"loss {loss.name}: D parameter {name!r} got no finite gradient")
        g_loss = loss.g_loss(d(fake, labels))
        _expect(g_loss.dim() == 0 and bool(torch.isfinite(g_loss)), f"loss {loss.name}: G loss must be a finite scalar, got {g_loss}")
        g_loss.backward()
        for name, p in g.named_parameters():
            _expect(p.grad is not None and bool(torch.isfinite(p.grad).all()),
                    f"loss {loss.name}: G parameter {name!r} got no finite gradient")

    with torch.no_grad():
        _expect_input_error(lambda: g(torch.randn(batch, g.latent_dim + 1), labels), "G with z of the wrong width")
        _expect_input_error(lambda: g(torch.randn(batch, g.latent_dim, 1), labels), "G with 3-d z")
        c, h, w = shape.image_shape
        _expect_input_error(lambda: d(torch.randn(batch, c, h + 1, w), labels), "D with images of the wrong height")
        _expect_input_error(lambda: d(torch.randn(batch, c + 1, h, w), labels), "D with the wrong channel count")
        if shape.num_classes:
            k = shape.num_classes
            _expect_input_error(lambda: g(z, None), "conditional G without labels")
            _expect_input_error(lambda: d(real, None), "conditional D without labels")
            _expect_input_error(lambda: g(z, torch.full((batch,), k)), f"G with label {k} of {k} classes")
            _expect_input_error(lambda: d(real, torch.full((batch,), -1)), "D with label -1")
            _expect_input_error(lambda: g(z, torch.zeros(batch + 1, dtype=torch.long)), "G with too many labels")
        else:
            bogus = torch.zeros(batch, dtype=torch.long)
            _expect_input_error(lambda: g(z, bogus), "unconditional G given labels")
            _expect_input_error(lambda: d(real, bogus), "unconditional D given labels")


def check_variant(
    spec: VariantSpec,
    *,
    image_shapes: Sequence[tuple[int, int, int]] | None = None,
    num_classes: Sequence[int] = (10,),
    configs: st.SearchStrategy[Any] | None = None,
    batch_sizes: st.SearchStrategy[int] = st.integers(2, 12),
    losses: Sequence[AdversarialLoss] | None = None,
    max_examples: int = 8,
) -> None:
    """Check ``spec`` against ganforge's contract over hypothesis-drawn inputs.

    ``image_shapes`` are the (C, H, W) to try (default: ``spec.example_shapes``); ``configs`` draws config instances
    (default: the config's defaults); every registered loss is tried unless ``losses`` is given.
    Raises :class:`ContractViolation` (an AssertionError) naming what broke.
    """
    loss_values = list(losses) if losses is not None else [entry.value for entry in load_catalog().losses]
    shapes = list(image_shapes or spec.example_shapes)
    config_strategy = configs if configs is not None else st.just(spec.make_config())
    class_strategy = st.sampled_from(list(num_classes)) if spec.conditional else st.none()

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(config=config_strategy, image_shape=st.sampled_from(shapes),
           classes=class_strategy, batch=batch_sizes)
    def run(config: Any, image_shape: tuple[int, int, int], classes: int | None, batch: int) -> None:
        check_pair(spec, config, DataShape(*image_shape, classes), batch, loss_values)

    run()


def assert_states_equal(a: Any, b: Any, where: str = "state") -> None:
    """Assert two checkpoint trees (dicts, lists, tensors, numbers) are equal bit for bit."""
    if isinstance(a, dict):
        _expect(isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ")
        for key in a:
            assert_states_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        _expect(isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ")
        for i, (x, y) in enumerate(zip(a, b)):
            assert_states_equal(x, y, f"{where}.{i}")
    elif isinstance(a, torch.Tensor):
        _expect(isinstance(b, torch.Tensor) and torch.equal(a, b), f"{where}: tensors differ")
    else:
        _expect(a == b, f"{where}: {a!r} != {b!r}")
