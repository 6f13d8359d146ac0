"""The one way ganforge draws images from a generator, and loading a trained run back to draw them.

Sample grids, ``load_run(...).sample``, ``ganforge sample`` and evaluation all draw latent codes
from the generator's prior in chunks of :data:`CHUNK` from one seeded generator, and ask for
classes in blocks (all of class 0, then all of class 1, ...), so the same seed gives the same
images whichever of them asks.
"""

from __future__ import annotations

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
                    truncation: float | None = None, chunk: int = CHUNK) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """``n`` images in [-1, 1] as chunks of at most ``chunk``, with the labels they were drawn for.

    A conditional generator without ``labels`` draws every class in blocks (:func:`class_labels`).
    ``truncation`` draws the codes with the truncation trick (:func:`ganforge.nn.draw_latent`). The
    generator runs in eval mode and is put back as it was.
    """
    device = next(generator.parameters()).device
    num_classes = generator.num_classes
    if num_classes is None and labels is not None:
        raise GanforgeError(f"{generator.origin or type(generator).__name__} is unconditional; it takes no --class")
    if num_classes is not None and labels is None:
        labels = class_labels(n, num_classes, device)
    rng = torch.Generator(device=device).manual_seed(seed)
    was_training = generator.training
    generator.eval()
    try:
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            z = draw_latent(generator, size, truncation, device=device, generator=rng)
            part = None if labels is None else labels[start:start + size]
            yield generator(z, part), part
    finally:
        generator.train(was_training)


@dataclass
class LoadedRun:
    """A run's models restored from one checkpoint; ``generator`` is the EMA copy when the run kept one."""

    run: RunDir
    spec: VariantSpec
    config: dict[str, Any]
    generator: Generator
    discriminator: Discriminator
    step: int

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def sample(self, n: int, *, labels: torch.Tensor | None = None, seed: int = 0,
               truncation: float | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` images in [-1, 1] (and the labels they were drawn for, for conditional variants);
        ``truncation`` draws the latent codes with the truncation trick (``draw_latent``)."""
        parts = list(generate_chunks(self.generator, n, labels=labels, seed=seed, truncation=truncation))
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
    return LoadedRun(run, spec, config, generator, discriminator, int(state["step"]))
