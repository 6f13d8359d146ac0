"""Loading a trained run back and drawing images from it, outside the training loop."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .catalog import Catalog, load_catalog
from .devices import pick_device
from .errors import GanforgeError
from .nn import Discriminator, Generator, draw_latent
from .runs import RunDir, load_weights
from .trainer import build_models
from .variant import DataShape, VariantSpec


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

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None, seed: int = 0,
               truncation: float | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` images in [-1, 1] (and the labels they were drawn for, for conditional variants);
        ``truncation`` draws the latent codes with the truncation trick (``draw_latent``)."""
        g = torch.Generator(device=self.device).manual_seed(seed)
        num_classes = self.generator.num_classes
        if num_classes is not None and labels is None:
            labels = torch.arange(num_classes, device=self.device).repeat_interleave(math.ceil(n / num_classes))[:n]
        if num_classes is None and labels is not None:
            raise GanforgeError(f"variant {self.spec.name!r} is unconditional; it takes no --class")
        z = draw_latent(self.generator, n, truncation, device=self.device, generator=g)
        return self.generator(z, labels), labels


def load_run(run_dir: Path | str, checkpoint: str | int = "last", *, device: str = "auto",
             catalog: Catalog | None = None) -> LoadedRun:
    """Rebuild a run's variant from its config.json and load a checkpoint (``last``, ``best`` or a step)."""
    run = RunDir(run_dir)
    config = run.read_config()
    catalog = catalog or load_catalog()
    spec = catalog.variants.get(config["variant"])
    shape = DataShape(*config["resolved"]["data_shape"])
    generator, discriminator = build_models(spec, spec.recorded_config(config["model"]), shape)
    target = pick_device(device)
    state = run.load_checkpoint(checkpoint, map_location=target)
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
