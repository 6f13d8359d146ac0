"""The one way ganforge draws images from a generator, and loading a trained run back to draw them.

Sample grids, ``load_run(...).sample``, ``ganforge sample`` and evaluation all draw latent codes
from the generator's prior in chunks of :data:`CHUNK` from one seeded generator, and ask for
classes in blocks (all of class 0, then all of class 1, ...), so the same seed gives the same
images whichever of them asks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .catalog import Catalog, load_catalog
from .devices import pick_device
from .errors import GanforgeError
from .nn import Discriminator, Generator, draw_latent
from .runs import RunDir, load_weights
from .variant import DataShape, VariantSpec, build_models

CHUNK = 500
"""Images generated per forward pass when drawing many."""


def class_labels(n: int, num_classes: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` labels in blocks of equal size, class 0 first (the last block shorter when ``n`` does not divide)."""
    return torch.arange(num_classes, device=device).repeat_interleave(math.ceil(n / num_classes))[:n]


@torch.no_grad()
def generate_chunks(generator: Generator, n: int, *, labels: torch.Tensor | None = None, seed: int = 0,
                    truncation: float | None = None, psi: float | None = None,
                    chunk: int = CHUNK) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """``n`` images in [-1, 1] as chunks of at most ``chunk``, with the labels they were drawn for.

    A conditional generator without ``labels`` draws every class in blocks (:func:`class_labels`).
    ``truncation`` draws the codes with the truncation trick (:func:`ganforge.nn.draw_latent`);
    ``psi`` pulls them towards the generator's average latent (StyleGAN's truncation). The generator
    runs in eval mode and is put back as it was; its images are clipped to [-1, 1].
    """
    device = next(generator.parameters()).device
    num_classes = generator.num_classes
    if num_classes is None and labels is not None:
        raise GanforgeError(f"{generator.origin or type(generator).__name__} is unconditional; it takes no --class")
    if num_classes is not None and labels is None:
        labels = class_labels(n, num_classes, device)
    rng = torch.Generator(device=device).manual_seed(seed)
    with _evaluating(generator), generator.truncated(psi) if psi is not None else contextlib.nullcontext():
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            z = draw_latent(generator, size, truncation, device=device, generator=rng)
            part = None if labels is None else labels[start:start + size]
            yield generator(z, part).clamp(-1, 1), part


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latent codes ``a`` and ``b`` (rows) at fractions ``t``: the path
    that stays where Gaussian codes lie, unlike a straight line through the origin's neighbourhood."""
    unit_a, unit_b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((unit_a * unit_b).sum(-1, keepdim=True).clamp(-1, 1)).clamp_min(1e-6)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


@torch.no_grad()
def interpolation_grid(generator: Generator, rows: int, steps: int, *, seed: int = 0,
                       psi: float | None = None) -> torch.Tensor:
    """``rows`` walks of ``steps`` images each, between two latent codes along the great circle (slerp);
    a conditional generator walks within one class per row, the classes in turn. Images row by row."""
    device = next(generator.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    ends = [draw_latent(generator, rows, None, device=device, generator=rng) for _ in range(2)]
    t = torch.linspace(0, 1, steps, device=device)[None, :, None]
    z = slerp(ends[0][:, None], ends[1][:, None], t).reshape(rows * steps, -1)
    labels = None
    if generator.num_classes is not None:
        labels = (torch.arange(rows, device=device) % generator.num_classes).repeat_interleave(steps)
    with _evaluating(generator), generator.truncated(psi) if psi is not None else contextlib.nullcontext():
        return torch.cat([generator(part, None if labels is None else labels[i:i + CHUNK]).clamp(-1, 1).cpu()
                          for i, part in zip(range(0, len(z), CHUNK), z.split(CHUNK))])


@torch.no_grad()
def mixing_grid(generator: Generator, k: int, *, seed: int = 0, psi: float | None = None, coarse: int = 4) -> torch.Tensor:
    """StyleGAN's style-mixing figure, (k + 1) x (k + 1) images: the top row holds k sources, the left
    column k destinations, and each other cell the destination with its first ``coarse`` ws (pose,
    shape) taken from the column's source. Needs a generator with ``styles`` and ``synthesis``."""
    if not (hasattr(generator, "styles") and hasattr(generator, "synthesis")):
        raise GanforgeError(f"{generator.origin or type(generator).__name__} has no styles to mix; --mix is for "
                            "StyleGAN's generators")
    device = next(generator.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    z = draw_latent(generator, 2 * k, None, device=device, generator=rng)
    labels = (torch.arange(2 * k, device=device) % generator.num_classes) if generator.num_classes else None
    with _evaluating(generator), generator.truncated(psi) if psi is not None else contextlib.nullcontext():
        ws = generator.styles(z, labels)
        sources, destinations = ws[:k], ws[k:]
        mixed = destinations[:, None].repeat(1, k, 1, 1)
        mixed[:, :, :coarse] = sources[None, :, :coarse]
        render = [generator.synthesis(w, "const").clamp(-1, 1).cpu() for w in (sources, destinations, mixed.flatten(0, 1))]
    blank = torch.full_like(render[0][:1], -1)
    rows = [torch.cat([blank, render[0]])]
    rows += [torch.cat([render[1][i:i + 1], render[2][i * k:(i + 1) * k]]) for i in range(k)]
    return torch.cat(rows)


@contextlib.contextmanager
def _evaluating(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@dataclass
class LoadedRun:
    """A trained model ready to sample: a run's models restored from one checkpoint, or an exported
    folder's generator (``run`` and ``discriminator`` None then). ``generator`` is the EMA copy when
    the run kept one (``ema``); ``path`` is the run directory or the exported folder."""

    run: RunDir | None
    spec: VariantSpec
    config: dict[str, Any]
    generator: Generator
    discriminator: Discriminator | None
    step: int
    path: Path = Path(".")
    ema: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def sample(self, n: int, *, labels: torch.Tensor | None = None, seed: int = 0, truncation: float | None = None,
               psi: float | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` images in [-1, 1] (and the labels they were drawn for, for conditional variants);
        ``truncation`` draws the latent codes with the truncation trick (``draw_latent``), ``psi``
        pulls them towards the generator's average latent where it has one (StyleGAN)."""
        parts = list(generate_chunks(self.generator, n, labels=labels, seed=seed, truncation=truncation, psi=psi))
        images = torch.cat([images for images, _ in parts])
        drawn = None if parts[0][1] is None else torch.cat([part for _, part in parts])  # type: ignore[misc]
        return images, drawn


def load_run(run_dir: Path | str, checkpoint: str | int = "last", *, device: str = "auto",
             catalog: Catalog | None = None) -> LoadedRun:
    """Rebuild a run's variant from its config.json and load a checkpoint (``last``, ``best`` or a step)."""
    run = RunDir(run_dir)
    config = run.read_config()
    catalog = catalog or load_catalog()
    spec = catalog.variants.get(config["variant"])
    shape = DataShape(*config["resolved"]["data_shape"])
    origin = catalog.origin("variants", spec.name)
    generator, discriminator = build_models(spec, spec.recorded_config(config["model"]), shape, origin)
    target = pick_device(device)
    state = run.load_checkpoint(checkpoint, map_location=target)
    if state["variant"] != spec.name:
        raise GanforgeError(f"{run.checkpoint_path(checkpoint)}: holds variant {state['variant']!r}, the run is {spec.name!r}")
    if "ema" in state:
        weights = {k.removeprefix("module."): v for k, v in state["ema"].items()}
    else:
        weights = state["generator"]
    source = run.checkpoint_path(checkpoint)
    load_weights(generator, weights, "generator", source)
    load_weights(discriminator, state["discriminator"], "discriminator", source)
    generator.to(target).eval()
    discriminator.to(target).eval()
    return LoadedRun(run, spec, config, generator, discriminator, int(state["step"]), run.path, "ema" in state)
