"""THE training loop, shared by every variant, on CPU, CUDA or MPS, in one process or under torchrun.

:class:`Trainer` wires a run together (variant, data, models, the accelerator, the step) and
:meth:`Trainer.fit` keeps its cadence: steps, logs, evaluations, checkpoints, sample grids, stop
signals and, under torchrun, the agreed stop. :func:`train` starts a run and :func:`resume`
continues one; both hold the run directory's lock while they train.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from tqdm.auto import tqdm

from .._version import __version__
from ..accel.accelerator import Accelerator
from ..accel.bf16_weights import why_not_copyable
from ..accel.distributed import init_distributed, restarts_need_a_store_per_attempt
from ..accel.speed import cpu_bf16_native, cpu_description, cpu_fp16_native, resolve_speed
from ..catalog import Catalog, load_catalog
from ..config import DataConfig, TrainConfig, validate_settings, validation_message
from ..data import ImageSet, load_data
from ..devices import pick_device
from ..ema import EMA
from ..errors import GanforgeError, RunFailed
from ..metrics.evaluate import Evaluation
from ..nn import Generator, trusted_labels
from ..resources import parameter_counts, require_memory, size_text
from ..runs import CheckpointError, RunDir, load_checkpoint, load_weights
from ..variant import DataShape, RecipeInputs, VariantSpec, build_models
from .batches import ResidentBatches, StreamedBatches
from .context import TrainContext
from .state import restore_rng, resumed_description, rng_state, setting_changes
from .step import FIGURES, FakeInputs, GanStep
from .terms import choose_terms

DEFAULT_EPOCHS = 20
# Notes already shown in this process, by topic: a sweep or a benchmark fitting many short runs says each once.
_SHOWN_NOTES: set[str] = set()
_TRAINING_BYTES_PER_WEIGHT = 4 * 4
"""fp32 weight, gradient and Adam's two moments."""


class TrainingDiverged(RunFailed):
    """The losses became NaN or infinite; the run stopped without overwriting its last good checkpoint."""


@dataclass
class TrainResult:
    """How a call to :func:`train` ended."""

    run_dir: Path
    step: int
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)


def with_recipe(config: TrainConfig, recipe: Mapping[str, Any]) -> TrainConfig:
    """``config`` with a variant's recipe filling the settings the user left unset.

    Regularisers merge by name: the user's choice of a term replaces the recipe's choice of that
    term (``weight=0`` drops it), and the recipe's other terms stay.
    """
    missing = {k: v for k, v in recipe.items() if k not in config.model_fields_set}
    mine = config.model_dump(exclude_unset=True)
    if "regularizers" in recipe and "regularizers" in config.model_fields_set:
        named = {choice["name"] for choice in mine["regularizers"]}
        missing["regularizers"] = [*(c for c in recipe["regularizers"] if c["name"] not in named), *mine["regularizers"]]
    if not missing:
        return config
    return TrainConfig.model_validate({**mine, **missing})


def residency(data: ImageSet, config: DataConfig, device: torch.device) -> tuple[str, str]:
    """Whether a run holds its images on the device ("resident") or streams them from their files
    ("streamed"), and why, in words for config.json."""
    if config.stream is not None:
        return ("streamed" if config.stream else "resident"), f"data.stream={str(config.stream).lower()}"
    c, h, w = data.shape
    size = f"{len(data):,} images of {c}x{h}x{w} take {size_text(data.nbytes)} decoded"
    if data.nbytes <= config.resident_mb * 1_000_000:
        return "resident", f"{size}, within the {config.resident_mb} MB budget (data.resident_mb)"
    return "streamed", f"{size}, beyond the {config.resident_mb} MB budget (data.resident_mb)"


class Trainer:
    """One run of the shared loop: built from a :class:`TrainConfig`, continued from a run directory."""

    def __init__(self, config: TrainConfig, catalog: Catalog | None = None, *, run_dir: Path | None = None) -> None:
        self.catalog = catalog or load_catalog()
        self.dist = init_distributed(config.device)
        self.spec = self.catalog.variants.get(config.variant)
        origin = self.catalog.origin("variants", self.spec.name)
        config = with_recipe(config, self.spec.recipe)
        self.model_config = self.spec.make_config(config.model, origin)
        self.conditional = self.spec.is_conditional(self.model_config)
        self.loss = self.catalog.losses.get(config.loss or self.spec.default_loss)
        self.device = self.dist.device or pick_device(config.device)
        dataset = self.catalog.datasets.get(config.data.name)
        full, self.data_options = self.dist.in_turn(
            lambda: load_data(dataset, config.data, self.catalog.origin("datasets", dataset.name)), f"data set {config.data.name!r}")
        data = full.subset(config.data.subset, config.data.subset_seed) if config.data.subset else full
        if self.conditional and data.labels is None:
            raise GanforgeError(
                f"variant {self.spec.name!r} is conditional and needs class labels, but data set "
                f"{config.data.name!r} has none; pick a labelled data set or an unconditional variant"
            )
        self.data = data
        self.shape = DataShape(*data.shape, data.num_classes if self.conditional else None)
        if self.spec.recipe_for is not None:
            inputs = RecipeInputs(data.shape, len(data), config.batch_size, self.dist.world_size)
            config = with_recipe(config, self.spec.recipe_for(inputs))
        per_rank = len(data) * (2 if config.data.xflip else 1) // self.dist.world_size
        steps_per_epoch = per_rank // config.batch_size
        if steps_per_epoch == 0:
            raise GanforgeError(
                f"--batch-size {config.batch_size} is larger than the {per_rank} images each process gets "
                f"from {config.data.name!r}; use a smaller batch size"
            )
        if config.steps is None:
            epochs = config.epochs or DEFAULT_EPOCHS
            config = config.model_copy(update={"steps": math.ceil(epochs * steps_per_epoch / config.n_critic), "epochs": None})
        self.config = config
        opt = self.spec.optimizer
        self.lr_g, self.lr_d = config.lr_g or opt.lr_g, config.lr_d or opt.lr_d
        self.betas = tuple(config.betas or opt.betas)
        self._require_memory_for_models(origin)
        self.terms = choose_terms(config, self.spec, self.catalog)

        torch.manual_seed(config.seed)
        generator, discriminator = build_models(self.spec, self.model_config, self.shape, origin)
        self.generator, self.discriminator = generator, discriminator
        self.speed = resolve_speed(config, self.device, self.dist.world_size,
                                   not_copyable=why_not_copyable(generator=generator, discriminator=discriminator))
        if config.freeze_d:
            discriminator.freeze(config.freeze_d)
        self.accel = Accelerator(self.speed, self.device, self.dist)
        self.accel.place(generator, discriminator, config.channels_last)
        # A half-life in images (StyleGAN's ema_kimg) gives the decay per step from the images a step shows G.
        self.ema_decay = config.ema or (0.5 ** (config.batch_size * self.dist.world_size / (config.ema_kimg * 1000))
                                        if config.ema_kimg else None)
        self.ema = EMA(generator, self.ema_decay, config.ema_start) if self.ema_decay else None
        self.accel.prepare(generator, discriminator, lr_g=self.lr_g, lr_d=self.lr_d, betas=self.betas)
        self.terms.to(self.device)

        self.residency = residency(data, config.data, self.device)
        labels = data.labels if data.labels is not None and self.conditional else None
        order = {"batch_size": config.batch_size, "per_step": config.n_critic, "seed": config.seed, "dist": self.dist,
                 "memory_format": self.accel.memory_format, "xflip": config.data.xflip}
        if self.residency[0] == "resident":
            require_memory(data.nbytes, f"{len(data):,} images held on the device", self.device,
                           "stream them from their files with --set data.stream=true")
            self.batches: ResidentBatches | StreamedBatches = ResidentBatches(
                data.resident().images.to(self.device), None if labels is None else labels.to(self.device), **order)
        else:
            workers = config.data.workers if config.data.workers is not None else min(8, os.cpu_count() or 1)
            self.batches = StreamedBatches(data, labels, device=self.device, workers=workers, **order)
        labels = labels.to(self.device) if labels is not None else None
        frequencies = (torch.bincount(labels, minlength=self.shape.num_classes).float()
                       if labels is not None and config.fake_labels == "data" else None)
        self.noise = torch.Generator(device=self.device).manual_seed(config.seed + 7919 * (self.dist.rank + 1))
        # Where D's output for one image depends on the others in its batch (declared by the variant; batch
        # norm found in D counts too), real and fake go through D apart.
        joint = not (self.spec.d_sees_batch(self.model_config)
                     or any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in discriminator.modules()))
        self.step_fn = GanStep(self.accel, self.loss, self.batches, FakeInputs(generator, self.noise, self.device, frequencies),
                               self.terms, n_critic=config.n_critic, batch_size=config.batch_size, joint_d_forward=joint)
        self.step = 0

        # Rank 0 names the run, so a default name with a timestamp is the same on every rank.
        path = run_dir or config.out or Path("runs") / f"{self.spec.name}-{datetime.now():%Y%m%d-%H%M%S}"
        self.run = RunDir(self.dist.broadcast_object(str(path)))
        self.best_fid = math.inf
        self.max_modes = 0
        self._stop_requested = False
        self._evaluation: Evaluation | None = None
        if config.eval_every and self.dist.is_main:
            self._evaluation = Evaluation(dataset, full, [e.value for e in self.catalog.metrics], config.eval_samples,
                                          config.seed, self.device)
        # The evaluator this run is scored with: `ganforge eval` later refuses another digest under the same name.
        self.evaluator_record = ({"name": self._evaluation.evaluator.name, "sha256": self._evaluation.evaluator.sha256}
                                 if self._evaluation else {"name": dataset.evaluator, "sha256": None})
        self.fixed_z, self.fixed_labels, self.grid_rows = self._fixed_noise()
        self.init_record: dict[str, Any] | None = None
        self.context = TrainContext(config, self.spec.name, self.run.path, self.device, generator, discriminator,
                                    self.accel.opt_g, self.accel.opt_d, self.dist.rank, self.dist.world_size,
                                    augmentation=self.terms.augmentation, _sampling=self.sampling_generator)

    # ----------------------------------------------------------------------------- set-up helpers
    def _require_memory_for_models(self, origin: str) -> None:
        """Refuse models too large for the device before any is built (they are counted on the meta device)."""
        counts = parameter_counts(lambda: build_models(self.spec, self.model_config, self.shape, origin))
        if counts is None:
            return
        n_g, n_d = counts
        ema = n_g if self.config.ema or self.config.ema_kimg else 0
        require_memory((n_g + n_d) * _TRAINING_BYTES_PER_WEIGHT + ema * 4,
                       f"variant {self.spec.name!r} with these settings ({n_g + n_d:,} weights)", self.device,
                       "choose smaller layers (`ganforge variants --options " + self.spec.name + "`)")

    def _fixed_noise(self) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        g = torch.Generator().manual_seed(self.config.seed + 104729)
        n = self.config.num_samples
        if self.shape.num_classes:
            per_class = max(1, n // self.shape.num_classes)
            labels = torch.arange(self.shape.num_classes).repeat_interleave(per_class)
            z = torch.randn(len(labels), self.generator.latent_dim, generator=g)
            return z.to(self.device), labels.to(self.device), per_class
        z = torch.randn(n, self.generator.latent_dim, generator=g)
        return z.to(self.device), None, max(1, int(math.sqrt(n)))

    def describe(self) -> dict[str, Any]:
        """Everything needed to rebuild this run, as written to config.json: the segment trained from ``from_step``."""
        return {
            "from_step": self.step,
            "ganforge_version": __version__,
            "variant": self.spec.name,
            "plugin": self.catalog.variants.entry(self.spec.name).plugin,
            "model": self.model_config.model_dump(mode="json"),
            "train": self.config.model_dump(mode="json"),
            "resolved": {
                "loss": self.loss.name,
                **self.terms.describe(),
                "lr_g": self.lr_g,
                "lr_d": self.lr_d,
                "ema_decay": self.ema_decay,
                "betas": list(self.betas),
                "data_shape": list(self.shape),
                "data_size": len(self.data),
                "data_path": {"mode": self.residency[0], "why": self.residency[1]},
                "data_options": self.data_options.model_dump(mode="json"),
                "init_from": self.init_record,
                "evaluator": self.evaluator_record,
                "frozen_d_weights": sum(p.numel() for p in self.discriminator.parameters() if not p.requires_grad),
                "steps_per_epoch": self.batches.steps_per_epoch,
                "world_size": self.dist.world_size,
                "device": str(self.device),
                "precision": self.speed.precision,
                "compile": self.speed.compile,
                "cuda_graphs": self.speed.cuda_graphs,
                "capture_step": self.speed.capture_step,
                "channels_last": self.accel.memory_format == torch.channels_last,
                "onednn_linear": self.speed.onednn_linear,
                "bf16_weights": self.speed.bf16_weights,
            },
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "ganforge": __version__},
            # The CPU decides defaults (onednn_linear) and speed; the same settings round differently on another one.
            "machine": {"cpu": cpu_description(),
                        "gpu": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None},
        }

    def _note_once(self, topic: str, text: str) -> None:
        """Show a note on rank 0's stderr, above the progress bar, once per process for each topic."""
        if self.dist.is_main and topic not in _SHOWN_NOTES:
            _SHOWN_NOTES.add(topic)
            tqdm.write(f"ganforge: note: {text}", file=sys.stderr)

    def _note_recapture(self, changes: str) -> None:
        """Say once per run that a changed optimiser setting made the captured step be captured again."""
        if self.accel.recaptures == 1:
            tqdm.write(f"ganforge: note: {changes} after step {self.step}; the step is captured again with the new "
                       "value at each such change (a schedule that changes every step trains faster with "
                       "--set capture_step=false)", file=sys.stderr)

    def _check_outputs(self) -> None:
        """Run the plugin's models once on a small batch before the first step, outside the step and
        with their state untouched (eval mode, no gradients, a generator of its own): shapes are checked
        at every call anyway, the range of G's images only here, since reading it costs a device sync."""
        g, d = self.generator, self.discriminator
        modes = g.training, d.training
        g.eval()
        d.eval()
        n = min(self.config.batch_size, 8)
        rng = torch.Generator(device=self.device).manual_seed(0)
        try:
            with torch.no_grad(), trusted_labels():
                z = g.sample_latent(n, device=self.device, generator=rng)
                labels = (torch.randint(0, g.num_classes, (n,), device=self.device, generator=rng)
                          if g.num_classes else None)
                images = g(z, labels)
                g.check_range(images)
                d(images, labels)
        finally:
            g.train(modes[0])
            d.train(modes[1])

    # ----------------------------------------------------------------------------- one step
    def train_step(self) -> None:
        """One generator update and ``n_critic`` discriminator updates; no host sync."""
        self.batches.place()
        self.step_fn.step = self.step
        form = self.step_fn.form()
        self.accel.run(self.step_fn, form, [self.noise], on_recapture=self._note_recapture)
        self._runs = [n + ran for n, ran in zip(self._runs, form)]
        self.step += 1
        self.context.step = self.step
        if self.ema is not None:
            self.ema.update(self.step)
        if self.terms.augmentation is not None:
            self.terms.augmentation.update(self.step, self.dist)
        self._count += 1

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything that a resumed run needs to continue exactly."""
        state: dict[str, Any] = {
            "step": self.step,
            **self.batches.state_dict(),
            "best_fid": self.best_fid,
            "max_modes": self.max_modes,
            "variant": self.spec.name,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            **self.accel.state_dict(),
            # One entry per rank: each draws its own noise.
            "rng": self.dist.gather_objects(rng_state(self.noise, self.device)),
            "terms": self.terms.state_dict(),
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], source: Path | str) -> None:
        """Continue from ``state`` (a checkpoint read from ``source``, named in errors)."""
        if state.get("variant") != self.spec.name:
            raise CheckpointError(f"{source}: holds variant {state.get('variant')!r}, this run is {self.spec.name!r}")
        load_weights(self.generator, state["generator"], "generator", source)
        load_weights(self.discriminator, state["discriminator"], "discriminator", source)
        try:
            self.accel.load_state_dict(state)
            if self.ema is not None and "ema" in state:
                self.ema.load_state_dict(state["ema"])
            self.terms.load_state_dict(state.get("terms", {}))
            restore_rng(state["rng"], self.noise, self.device, self.dist)
        except (ValueError, RuntimeError, KeyError, TypeError, IndexError) as exc:
            raise CheckpointError(f"{source}: its optimiser or random states do not fit this run "
                                  f"({str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__})") from None
        self.step = self.context.step = int(state["step"])
        self.best_fid = float(state.get("best_fid", math.inf))
        self.max_modes = int(state.get("max_modes", 0))
        self.batches.load_state_dict(state)

    def initialize_from(self, source: Path) -> None:
        """Start from another run's weights (G, D, and the EMA of G where both runs keep one): a run
        directory (its last checkpoint) or a checkpoint file. Optimisers and step stay fresh."""
        path = RunDir(source).checkpoint_path("last") if source.is_dir() else source
        state = load_checkpoint(path, map_location=self.device)
        load_weights(self.generator, state["generator"], "generator", path)
        load_weights(self.discriminator, state["discriminator"], "discriminator", path)
        if self.ema is not None:
            if "ema" in state:
                try:
                    self.ema.load_state_dict(state["ema"])
                except RuntimeError:
                    raise CheckpointError(f"{path}: its EMA weights do not fit this run's generator") from None
            else:
                self.ema.restart()
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        self.init_record = {"path": str(path), "sha256": digest.hexdigest(), "step": state["step"],
                            "variant": state["variant"]}

    def set_learning_rates(self) -> None:
        """Apply this run's learning rates to the optimisers (a resumed run's checkpoint holds the old ones)."""
        for optimizer, lr in ((self.accel.opt_g, self.lr_g), (self.accel.opt_d, self.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = lr

    def sampling_generator(self) -> Generator:
        """The generator to draw samples from: the EMA copy when there is one."""
        return self.ema.synced() if self.ema is not None else self.generator  # type: ignore[return-value]

    # ----------------------------------------------------------------------------- the loop
    def fit(self) -> TrainResult:
        """Train to ``config.steps``, writing the run directory (rank 0 only)."""
        cfg = self.config
        if self.dist.is_main and self.step == 0 and not self.run.exists():
            self.run.create(self.describe())
        self.dist.barrier()
        self._check_outputs()
        self._sums = self.step_fn.sums
        self._sums.zero_()
        self._count = 0
        self._runs = [0] * len(self.terms.regularizers)
        self._window_start = (time.perf_counter(), self.step)
        last_metrics: dict[str, Any] = {}
        pm = self.catalog.pm
        pm.hook.ganforge_train_start(context=self.context)
        # Only rank 0 shows a bar; TQDM_DISABLE=1 silences it there too.
        quiet = {} if self.dist.is_main else {"disable": True}
        bar = tqdm(total=cfg.steps, initial=self.step, unit="step", dynamic_ncols=True, mininterval=0.5,
                   desc=self.spec.name, **quiet)
        self._start_notes()
        status = "completed"
        try:
            with self._stop_signals_save(), trusted_labels():
                while self.step < cfg.steps:
                    self.train_step()
                    bar.update(1)
                    at_end = self.step == cfg.steps
                    stop = self._agreed_stop()
                    metrics = None
                    if self.step % cfg.log_every == 0 or at_end or stop:
                        metrics = last_metrics = self._log()
                        bar.set_postfix(d=f"{metrics['d_loss']:.3f}", g=f"{metrics['g_loss']:.3f}", refresh=False)
                    if self.step % cfg.sample_every == 0 or at_end:
                        self.save_samples()
                    names: list[str | int] = []
                    if self.step % cfg.checkpoint_every == 0:
                        names.append(self.step)
                    if names or at_end or stop:
                        names.append("last")
                    if cfg.eval_every and (self.step % cfg.eval_every == 0 or at_end):
                        improved, figures = self._evaluate(bar)
                        metrics = {**(metrics or {}), **figures}
                        if improved:
                            names.append("best")
                    if names:
                        self.save_checkpoint(*names)
                    pm.hook.ganforge_step_end(context=self.context, step=self.step, metrics=metrics)
                    if stop:
                        status = "interrupted"
                        break
        except TrainingDiverged:
            status = "diverged"
            raise
        except BaseException:
            status = "failed"
            raise
        finally:
            bar.close()
            self.batches.close()
            pm.hook.ganforge_train_end(context=self.context, status=status)
        return TrainResult(self.run.path, self.step, status, last_metrics)

    def _start_notes(self) -> None:
        cfg = self.config
        if self.ema is not None and cfg.ema_start >= cfg.steps:
            self._note_once("ema_start", f"the EMA starts averaging after step {cfg.ema_start} (ema_start), this "
                            f"run ends at step {cfg.steps}, so it samples G itself; --set ema_start=N to average earlier")
        if restarts_need_a_store_per_attempt():
            self._note_once("restarts", "torchrun may restart this job (--max-restarts) on several nodes; start "
                            "torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 on every node, or the restarted "
                            "processes can meet the failed ones' addresses in torchrun's store and hang "
                            "(pytorch/pytorch#135712)")
        if self.speed.precision == "bf16" and self.device.type == "cpu" and not cpu_bf16_native():
            self._note_once("cpu_bf16", "this CPU has no bf16 matrix instructions (AVX512-BF16 or AMX), so "
                            "PyTorch runs bf16 products in generic code, many times slower than fp32; "
                            "--precision fp32 trains faster here")
        if self.speed.precision == "fp16" and self.device.type == "cpu" and not cpu_fp16_native():
            self._note_once("cpu_fp16", "this CPU has no fp16 matrix instructions (AVX512-FP16 or AMX-FP16), so "
                            "PyTorch runs fp16 products in generic code, many times slower than fp32; --precision "
                            "fp16 is for GPUs without bf16, and --precision fp32 trains faster here")

    def _agreed_stop(self) -> bool:
        """Whether Ctrl-C asked to stop; under torchrun the ranks agree at log steps, with no per-step collective."""
        if self.dist.enabled:
            return self.step % self.config.log_every == 0 and self.dist.any(self._stop_requested)
        return self._stop_requested

    def _log(self) -> dict[str, Any]:
        """Read the figures the steps since the last log added up (a host sync), log and check them."""
        counts = [max(self._count, 1)] * len(FIGURES) + [max(n, 1) for n in self._runs]
        sums = self.dist.all_reduce_mean(self._sums / torch.tensor(counts, device=self.device)).tolist()
        now = time.perf_counter()
        started, first_step = self._window_start
        steps = self.step - first_step
        record: dict[str, Any] = {"step": self.step, **dict(zip(FIGURES, sums)),
                                  **{name: value for name, value, n in zip(self.step_fn.figures[len(FIGURES):],
                                                                           sums[len(FIGURES):], self._runs) if n},
                                  "images_per_s": steps * self.config.batch_size * self.config.n_critic
                                  * self.dist.world_size / max(now - started, 1e-9)}
        if self.terms.augmentation is not None:
            record.update({name: float(value) for name, value in self.terms.augmentation.figures().items()})
        self._sums.zero_()
        self._count = 0
        self._runs = [0] * len(self.terms.regularizers)
        self._window_start = (now, self.step)
        if not all(math.isfinite(v) for v in sums):
            raise TrainingDiverged(
                f"training diverged: losses became NaN/Inf between steps {first_step} and {self.step} "
                f"(d_loss={sums[0]}, g_loss={sums[1]}); the last good checkpoint is "
                f"{self.run.checkpoint_path('last')}; lower the learning rates (--set lr_d=1e-4) or try another --loss"
            )
        if self.dist.is_main:
            self.run.append_metrics(record)
        return record

    def _evaluate(self, bar: Any) -> tuple[bool, dict[str, Any]]:
        """Score the sampling generator (rank 0), log the figures, warn on lost modes; and whether FID improved."""
        improved, figures = False, {}
        if self._evaluation is not None:
            figures = self._evaluation.run(self.sampling_generator())
            record: dict[str, Any] = {"step": self.step, **figures}
            modes = figures.get("modes")
            if modes is not None:
                if modes < self.max_modes:
                    record["warning"] = (f"mode collapse? the evaluator finds {modes} of {self.shape.num_classes or self.data.num_classes} "
                                         f"classes at step {self.step}, down from {self.max_modes}")
                    bar.write(f"ganforge: warning: {record['warning']}", file=sys.stderr)
                self.max_modes = max(self.max_modes, modes)
            if "fid" in figures:
                improved = figures["fid"] < self.best_fid
                self.best_fid = min(self.best_fid, figures["fid"])
                bar.set_postfix(fid=f"{figures['fid']:.2f}", refresh=False)
            self.run.append_metrics(record)
        return bool(self.dist.broadcast_object(improved)), figures

    def save_checkpoint(self, *names: str | int) -> None:
        """Write the named checkpoints (last, best, a step number) on rank 0, after checking the losses."""
        if self._count:
            self._log()
        self.dist.average_buffers(self.generator)
        self.dist.average_buffers(self.discriminator)
        if self.ema is not None:
            self.dist.average_buffers(self.ema)
        state = self.state_dict()
        if self.dist.is_main:
            self.run.save_checkpoint(state, *(names or ("last",)))
        self.dist.barrier()

    @torch.no_grad()
    def save_samples(self) -> None:
        """A grid from the fixed noise, under samples/step_NNNNNNN.png."""
        if not self.dist.is_main:
            return
        g = self.sampling_generator()
        was_training = g.training
        g.eval()
        images = g(self.fixed_z, self.fixed_labels)
        g.train(was_training)
        self.run.save_grid(images, f"step_{self.step:07d}.png", nrow=self.grid_rows)

    @contextlib.contextmanager
    def _stop_signals_save(self) -> Iterator[None]:
        """First Ctrl-C (or SIGTERM, in one process): finish the step, checkpoint, stop. A second one stops at once.

        SIGTERM is what a cluster's scheduler sends before it preempts or requeues a job. Under
        torchrun it keeps its default: the agent sends it to the survivors when a process has died,
        and they are to exit at once so that the job can restart, not wait in a collective that
        cannot complete.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True

        signals = (signal.SIGINT,) if self.dist.enabled else (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, handler) for sig in signals}
        try:
            yield
        finally:
            for sig, before in previous.items():
                signal.signal(sig, before)


@contextlib.contextmanager
def _claimed(trainer: Trainer) -> Iterator[None]:
    """Rank 0 holds the run directory's lock for as long as the run trains; every rank learns whether it got it."""
    error: GanforgeError | None = None
    with contextlib.ExitStack() as stack:
        if trainer.dist.is_main:
            try:
                stack.enter_context(trainer.run.claim())
            except GanforgeError as exc:
                error = exc
        if trainer.dist.broadcast_object(error is not None):
            raise error if error is not None else GanforgeError("rank 0 could not take the run directory (its error is above)")
        yield


def train(config: TrainConfig, catalog: Catalog | None = None, *, resume_if_exists: bool = False) -> TrainResult:
    """Train a new run described by ``config``; the run directory must not hold a run already.

    With ``resume_if_exists``, a run directory that holds a run with the same settings (those a
    continued run may change aside) is continued from its last checkpoint instead, or started over
    when it died before its first one. The same command then starts a job and continues it after
    torchrun (``--max-restarts``) or a cluster's scheduler starts it again.
    """
    if resume_if_exists and config.out is None:
        raise GanforgeError("--resume-if-exists needs --out DIR: without it every start names a new run directory")
    trainer = Trainer(config, catalog)
    with _claimed(trainer):
        plan = _plan_start(trainer, resume_if_exists) if trainer.dist.is_main else None
        action, refusal = trainer.dist.broadcast_object(plan)
        if action == "refuse":
            raise GanforgeError(refusal if trainer.dist.is_main else "rank 0 did not start the run (its error is above)")
        if action == "continue":
            saved = trainer.run.read_config()
            changes, _ = setting_changes(_recorded_settings(saved, trainer.spec), _settings_of(trainer))
            return _continue(trainer, saved, changes, already_done_ok=True)
        if config.init_from is not None:
            trainer.initialize_from(config.init_from)
        if action == "start over" and trainer.dist.is_main:
            trainer.run.rewind(0)
            trainer.run.write_config(trainer.describe())
        return trainer.fit()


def _settings_of(trainer: Trainer) -> dict[str, Any]:
    """The trainer's settings as config.json records a run's: TrainConfig's fields with the variant's as ``model``."""
    return {**trainer.config.model_dump(mode="json"), "model": trainer.model_config.model_dump(mode="json")}


def _recorded_settings(saved: dict[str, Any], spec: VariantSpec) -> dict[str, Any]:
    """A run's recorded settings in the same form, its variant's config completed as the variant rebuilds it."""
    return {**saved["train"], "model": spec.recorded_config(saved["model"]).model_dump(mode="json")}


def _plan_start(trainer: Trainer, resume_if_exists: bool) -> tuple[str, str]:
    """What ``train`` does with the run directory: ``new``, ``continue``, ``start over`` or ``refuse``, and why it refuses."""
    run = trainer.run
    if not run.exists():
        foreign = run.foreign_files()
        if foreign:
            return "refuse", (f"{run.path} holds files of its own ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}) "
                              "and no run; pass an empty or new folder as --out")
        return "new", ""
    if not resume_if_exists:
        refusal = run.already_holds_a_run()
        restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        if restarts:
            refusal += (f"; torchrun started this job again (restart {restarts}): add --resume-if-exists so that a "
                        "restart continues from the last checkpoint")
        return "refuse", refusal
    try:
        saved = run.read_config()
    except GanforgeError as exc:
        return "refuse", str(exc)
    if saved["variant"] != trainer.spec.name:
        return "refuse", (f"{run.path} holds a run of variant {saved['variant']!r}, not {trainer.spec.name!r}; "
                          "pass another --out")
    _, refused = setting_changes(_recorded_settings(saved, trainer.spec), _settings_of(trainer))
    if refused:
        return "refuse", (f"{run.path} holds a run with other settings ({'; '.join(refused[:3])}); continue it as "
                          f"it is with `ganforge train --resume {run.path}`, or pass another --out")
    return ("continue" if run.checkpoint_path("last").is_file() else "start over"), ""


def resume(run_dir: Path | str, *, steps: int | None = None, device: str | None = None,
           settings: Mapping[str, Any] | None = None, catalog: Catalog | None = None) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint, to ``steps`` in total if given.

    ``settings`` (TrainConfig fields, ``model`` and ``data`` as nested dicts) change the run where a
    continued run may change them (its length, device, speed settings, cadence and learning rates);
    any other change is refused with one line naming the setting, its recorded value and the new one.
    """
    run = RunDir(run_dir)
    saved = run.read_config()
    catalog = catalog or load_catalog()
    spec = catalog.variants.get(saved["variant"])
    recorded = {**_recorded_settings(saved, spec), "out": str(run.path)}
    requested = dict(settings or {})
    if steps is not None:
        requested["steps"] = steps
    if device is not None:
        requested["device"] = device
    if requested.get("out") not in (None, str(run.path)):
        raise GanforgeError(f"--resume continues {run.path} in place; drop --out")
    if "variant" in requested and catalog.variants.get(requested["variant"]).name != spec.name:
        raise GanforgeError(f"{run.path} is a run of variant {spec.name!r}, not {requested['variant']!r}; "
                            "drop the variant name to continue it")
    new = {**recorded, **{k: v for k, v in requested.items() if k not in ("model", "data", "variant")},
           "model": {**recorded["model"], **requested.get("model", {})},
           "data": {**recorded["data"], **requested.get("data", {})}}
    if "epochs" in requested:
        new["steps"] = requested.get("steps")
    elif "steps" in requested:
        new["epochs"] = None
    try:
        config = validate_settings(TrainConfig, new)
    except ValidationError as exc:
        raise GanforgeError(validation_message(exc)) from None
    changes, refused = setting_changes(recorded, {**config.model_dump(mode="json"), "model": new["model"]})
    if refused:
        raise GanforgeError(f"cannot continue {run.path} with other settings: {'; '.join(refused)}; "
                            "start a new run with --out to change them")
    trainer = Trainer(config, catalog, run_dir=run.path)
    with _claimed(trainer):
        return _continue(trainer, saved, changes, already_done_ok=False)


def _continue(trainer: Trainer, saved: dict[str, Any], changes: Mapping[str, tuple[Any, Any]], *,
              already_done_ok: bool) -> TrainResult:
    """Load the run's last checkpoint into ``trainer`` and train on from there; the caller holds the run's lock.

    The metrics logged after that checkpoint are dropped first: the steps between it and where an
    interrupted run stopped are trained again and logged anew.
    """
    run = trainer.run
    before = (saved.get("resolved") or {}).get("evaluator") or {}
    now = trainer.evaluator_record
    if before.get("sha256") and now["sha256"] and (before.get("name"), before["sha256"]) != (now["name"], now["sha256"]):
        raise GanforgeError(
            f"{run.path} was evaluated with {before.get('name')!r} sha256 {before['sha256'][:16]}..., and the installed "
            f"{now['name']!r} is {now['sha256'][:16]}...: its FID curve and best checkpoint would mix the two; continue "
            "with the ganforge that shipped the first, or without evaluations (--set eval_every=null)")
    if before.get("sha256") and not now["sha256"]:
        trainer.evaluator_record = before
    trainer.load_state_dict(run.load_checkpoint("last", map_location=trainer.device), run.checkpoint_path("last"))
    if any(key in changes for key in ("lr_g", "lr_d")):
        trainer.set_learning_rates()
    if trainer.step >= trainer.config.steps:
        if already_done_ok:
            return TrainResult(run.path, trainer.step, "completed")
        raise GanforgeError(f"{run.path} already reached step {trainer.step}; pass --steps N with N > {trainer.step} to train further")
    if trainer.dist.is_main:
        run.rewind(trainer.step)
        run.write_config(resumed_description(saved, trainer.describe(), changes))
    return trainer.fit()
