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
from pydantic import ValidationError

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
               losses: Sequence[AdversarialLoss], terms: Sequence[Any] = ()) -> None:
    """Check one built pair on one batch size: shapes, range, finite losses, gradients, bad inputs.

    ``terms`` are the built regularisers the variant carries (``spec.terms``): their penalties join
    each loss, as in training, so that a head only they train (an auxiliary classifier) gets gradients.
    """
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
    _expect(not g.bounded or (float(fake.min()) >= -1.0 and float(fake.max()) <= 1.0),
            f"G output must lie in [-1, 1], got [{float(fake.min()):.4f}, {float(fake.max()):.4f}] (a generator "
            "whose images are clipped where they are read declares bounded = False)")
    # 64 codes, all for one class: a G that ignores z draws every image alike (a small G at its
    # initialisation may leave a few codes in a dead region, not all of them).
    probe = g.sample_latent(64)
    same_class = torch.zeros(64, dtype=torch.long) if shape.num_classes else None
    g.eval()
    with torch.no_grad():
        apart = g(probe, same_class)
    g.train()
    _expect(bool((apart - apart[:1]).abs().amax() > 0), "G ignores its latent code: every z gives the same image")
    real = torch.rand(batch, *shape.image_shape) * 2 - 1
    scores = d(real, labels)
    _expect(scores.shape == (batch, 1), f"D output: expected ({batch}, 1) logits, got {tuple(scores.shape)}")
    if batch > 1 and not spec.d_sees_batch(config):
        _expect(not _sees_batch(d, real, labels),
                "D's output for one image changes with the other images in its batch (batch norm, a minibatch "
                "statistic), so the loop must not score real and fake images together: declare "
                "VariantSpec(discriminator_sees_batch=True)")

    def with_terms(value: torch.Tensor, phase: str, fakes: torch.Tensor, d_real: torch.Tensor | None,
                   d_fake: torch.Tensor) -> torch.Tensor:
        import contextlib

        from .regularizers import PhaseView

        for term in terms:
            if phase in term.phases:
                view = PhaseView(phase, 0, real, labels, fakes, labels, d_real, d_fake, d, d, g,  # type: ignore[arg-type]
                                 torch.Generator().manual_seed(0), contextlib.nullcontext, lambda images: images)
                value = value + term.penalty(view)
        return value

    for loss in losses:
        g.zero_grad(set_to_none=True)
        d.zero_grad(set_to_none=True)
        fake = g(z, labels)
        d_real, d_fake = d(real, labels), d(fake.detach(), labels)
        d_loss = with_terms(loss.d_loss(d_real, d_fake), "d", fake.detach(), d_real, d_fake)
        _expect(d_loss.dim() == 0 and bool(torch.isfinite(d_loss)), f"loss {loss.name}: D loss must be a finite scalar, got {d_loss}")
        d_loss.backward()
        for name, p in d.named_parameters():
            _expect(p.grad is not None and bool(torch.isfinite(p.grad).all()),
                    f"loss {loss.name}: D parameter {name!r} got no finite gradient")
        g_fake = d(fake, labels)
        g_real = d(real, labels).detach() if loss.g_needs_real else None
        g_loss = with_terms(loss.g_loss(g_real, g_fake), "g", fake, g_real, g_fake)
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


def _sees_batch(d: Discriminator, real: torch.Tensor, labels: torch.Tensor | None) -> bool:
    """Whether D, in training mode, scores the first image differently when the others change. Each
    forward starts from the same state (spectral norm's power iteration and batch-norm statistics move
    at every forward) and the same random numbers."""
    import copy

    state = copy.deepcopy(d.state_dict())
    others = torch.rand_like(real[1:]) * 2 - 1
    outputs = []
    for batch in (real, torch.cat([real[:1], others])):
        torch.manual_seed(0)
        with torch.no_grad():
            outputs.append(d(batch, labels)[0])
        d.load_state_dict(state)
    return not torch.allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)


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
    try:
        spec.config()
    except ValidationError as exc:
        missing = [".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "missing"]
        _expect(not missing, f"config field {missing[0]!r} has no default; every knob needs one, since the CLI "
                             "builds the config from --set")
        raise ContractViolation(f"the config's defaults do not validate: {exc.errors()[0]['msg']}") from exc
    loss_values = list(losses) if losses is not None else [entry.value for entry in load_catalog().losses]
    shapes = list(image_shapes or spec.example_shapes)
    config_strategy = configs if configs is not None else st.just(spec.make_config())
    class_strategy = st.sampled_from(list(num_classes)) if spec.conditional or spec.conditional_by else st.none()

    catalog = load_catalog()
    term_specs = [(catalog.regularizers.get(t["name"]), {k: v for k, v in t.items() if k != "name"}) for t in spec.terms]

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(config=config_strategy, image_shape=st.sampled_from(shapes),
           classes=class_strategy, batch=batch_sizes)
    def run(config: Any, image_shape: tuple[int, int, int], classes: int | None, batch: int) -> None:
        terms = [term.build(term.options.model_validate(options)) for term, options in term_specs]
        classes = classes if spec.is_conditional(config) else None
        check_pair(spec, config, DataShape(*image_shape, classes), batch, loss_values, terms)

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


def _term_setup(shape: tuple[int, int, int], batch: int, models: Any = None,
                seed: int = 0) -> tuple[Any, Any, torch.Tensor, torch.Tensor]:
    """A tiny G and D (``models()``, or the built-in MLP's) and a real and a fake batch, for checking step terms."""
    from .builtin.mlp import MLP

    torch.manual_seed(seed)
    if models is None:
        g, d = build_models(MLP, MLP.make_config({"latent_dim": 8, "g_hidden": [16], "d_hidden": [16]}), DataShape(*shape))
    else:
        g, d = models()
        shape = g.image_shape
    real = torch.rand(batch, *shape) * 2 - 1
    fake = g(g.sample_latent(batch))
    return g, d, real, fake


def _view(phase: str, g: Any, d: Any, real: torch.Tensor, fake: torch.Tensor, seed: int) -> Any:
    import contextlib

    from .regularizers import PhaseView

    noise = torch.Generator().manual_seed(seed)
    fake_seen = fake.detach() if phase == "d" else fake
    return PhaseView(phase, 0, real, None, fake_seen, None, d(real) if phase == "d" else None, d(fake_seen),  # type: ignore[arg-type]
                     d, d, g, noise, contextlib.nullcontext, lambda images: images)


def check_regularizer(spec: Any, options: Any = None, *, image_shape: tuple[int, int, int] = (1, 8, 8),
                      batch: int = 6, models: Any = None) -> None:
    """Check a :class:`ganforge.regularizers.RegularizerSpec` as the step relies on it.

    Built from ``options`` (its defaults where None), in each phase it declares: the penalty is a
    finite scalar; gradients reach D's weights in D's phase (G's in G's phase) and are finite; the
    same random generator state gives the same penalty; and it changes neither the images it is
    shown nor any weight. It runs on the (G, D) that ``models()`` builds (default: the spec's
    ``example_models``, else a small MLP pair). Raises :class:`ContractViolation` naming what broke.
    """
    import copy

    from .regularizers import Regularizer

    options = options if options is not None else spec.options()
    models = models if models is not None else getattr(spec, "example_models", None)
    module = spec.build(options)
    _expect(isinstance(module, Regularizer), f"{spec.name}: build() returned {type(module).__name__}, not a Regularizer")
    _expect(set(module.phases) <= {"d", "g"} and module.phases, f"{spec.name}: phases must be 'd' and/or 'g', got {module.phases}")
    for phase in module.phases:
        g, d, real, fake = _term_setup(image_shape, batch, models)
        before = (real.clone(), fake.detach().clone(), copy.deepcopy(d.state_dict()), copy.deepcopy(g.state_dict()))
        state = copy.deepcopy(module.state_dict())
        torch.manual_seed(1)  # the models' own randomness (dropout, StyleGAN's noise) comes from torch's generator
        value = module.penalty(_view(phase, g, d, real, fake, seed=1))
        _expect(isinstance(value, torch.Tensor) and value.dim() == 0 and bool(torch.isfinite(value)),
                f"{spec.name} ({phase} phase): the penalty must be a finite scalar tensor, got {value!r}")
        model = d if phase == "d" else g
        model.zero_grad(set_to_none=True)
        value.backward(retain_graph=True)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        _expect(bool(grads), f"{spec.name} ({phase} phase): no gradient reaches {'D' if phase == 'd' else 'G'}'s weights")
        _expect(all(bool(torch.isfinite(grad).all()) for grad in grads), f"{spec.name} ({phase} phase): non-finite gradients")
        _expect(torch.equal(before[0], real) and torch.equal(before[1], fake.detach()),
                f"{spec.name} ({phase} phase): it changed the images it was shown in place")
        assert_states_equal(before[2], d.state_dict(), f"{spec.name}: D's state")
        assert_states_equal(before[3], g.state_dict(), f"{spec.name}: G's state")
        module.load_state_dict(state)
        torch.manual_seed(1)
        again = module.penalty(_view(phase, g, d, real, fake, seed=1))
        _expect(torch.equal(value.detach(), again.detach()),
                f"{spec.name} ({phase} phase): the same random state gave {float(value.detach())} and then "
                f"{float(again.detach())}; draw random numbers from view.noise (or torch's default generator, "
                "whose state checkpoints keep) only")


def check_augmentation(spec: Any, options: Any = None, *,
                       image_shapes: Sequence[tuple[int, int, int]] = ((1, 8, 8), (3, 16, 16)), batch: int = 8,
                       draws: int = 200, tolerance: float = 0.1) -> None:
    """Check a :class:`ganforge.augment.AugmentationSpec` as the step relies on it.

    Built from ``options`` (its defaults where None), on each image shape: the output has the
    input's shape and dtype and is finite; gradients reach the input and are finite; the same random
    generator state gives the same output; and real and fake images are treated alike: an image
    placed in the first half of a batch (where the step puts real ones) or in the second (fake ones)
    comes out the same on average over ``draws`` batches, within ``tolerance``.
    """
    import copy

    from .augment import Augmentation

    options = options if options is not None else spec.options()
    for shape in image_shapes:
        module = spec.build(options)
        _expect(isinstance(module, Augmentation), f"{spec.name}: build() returned {type(module).__name__}, not an Augmentation")
        images = (torch.rand(batch, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_(True)
        state = copy.deepcopy(module.state_dict())
        out = module(images, torch.Generator().manual_seed(1))
        _expect(out.shape == images.shape and out.dtype == images.dtype,
                f"{spec.name}: {tuple(images.shape)} {images.dtype} in, {tuple(out.shape)} {out.dtype} out")
        _expect(bool(torch.isfinite(out).all()), f"{spec.name}: the output holds NaN or Inf")
        out.square().sum().backward()
        _expect(images.grad is not None and bool(torch.isfinite(images.grad).all()),
                f"{spec.name}: no finite gradient reaches the images")
        module.load_state_dict(state)
        again = module(images.detach(), torch.Generator().manual_seed(1))
        _expect(torch.equal(out.detach(), again), f"{spec.name}: the same random state gave other images; "
                                                  "draw random numbers from the generator it is given only")
        one = images.detach()[:1]
        pair = one.expand(2, *shape)
        noise = torch.Generator().manual_seed(2)
        with torch.no_grad():
            outputs = torch.stack([module(pair, noise) for _ in range(draws)])
        first, second = outputs[:, 0].mean(0), outputs[:, 1].mean(0)
        gap = float((first - second).abs().mean())
        _expect(gap <= tolerance, f"{spec.name}: an image in the real half and in the fake half of a batch comes out "
                                  f"differently on average (mean gap {gap:.3f} over {draws} draws)")


def check_dataset(spec: Any, config: Any = None, *, size: int = 16) -> None:
    """Check a :class:`ganforge.data.DatasetSpec` as the loop relies on it.

    Loaded with ``config`` (a ``DataConfig``; the data set's defaults where None): it returns an
    :class:`~ganforge.data.ImageSet` of uint8 (C, H, W) images with consistent labels; two loads with
    the same settings give the same images (the run's order and a resumed run depend on it); the
    evaluator it names exists; and, where it is resizable, a run asking for ``size`` px and the
    other channel count gets them. Raises :class:`ContractViolation` naming what broke.
    """
    from .config import DataConfig
    from .data import ImageSet, load_data
    from .errors import GanforgeError
    from .metrics.evaluators import evaluator_names

    config = config if config is not None else DataConfig(name=spec.name)
    try:
        data, _ = load_data(spec, config)
        again, _ = load_data(spec, config)
    except GanforgeError as exc:
        raise ContractViolation(f"{spec.name}: {exc}") from exc
    _expect(isinstance(data, ImageSet), f"{spec.name}: load() returned {type(data).__name__}, not an ImageSet")
    first = torch.arange(min(8, len(data)))
    images = data.read(first)
    _expect(images.dtype == torch.uint8 and tuple(images.shape) == (len(first), *data.shape),
            f"{spec.name}: read() gave {images.dtype} {tuple(images.shape)}, expected uint8 {(len(first), *data.shape)}")
    _expect(len(again) == len(data) and torch.equal(again.read(first), images),
            f"{spec.name}: two loads with the same settings gave other images; a run's data order and its "
            "resume rely on the same images in the same order")
    _expect(spec.evaluator is None or spec.evaluator in evaluator_names(),
            f"{spec.name}: it names evaluator {spec.evaluator!r}, which is not one of {', '.join(evaluator_names())}")
    if spec.resizable:
        channels = 1 if data.shape[0] == 3 else 3
        resized, _ = load_data(spec, config.model_copy(update={"image_size": size, "channels": channels}))
        _expect(resized.shape == (channels, size, size),
                f"{spec.name}: asked for {channels}x{size}x{size}, got {resized.shape}")
        _expect(tuple(resized.read(first).shape) == (len(first), channels, size, size),
                f"{spec.name}: its resized images do not have the shape it reports")
