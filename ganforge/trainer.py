"""THE training loop, shared by every variant, on CPU, CUDA or MPS, in one process or under torchrun.

Per step: draw z (and labels for conditional variants), run G once, update D on the real batch and
the detached fake (``n_critic`` times, with a fresh real batch and fake each time), update G through
the last fake, update the EMA of G. The data set lives on the device as uint8 and each batch is
normalised to [-1, 1] there. Losses accumulate on the device and are read every ``log_every`` steps,
so the host never waits for the device in between.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from . import __version__
from .bf16_weights import BF16Weights, why_not_copyable
from .catalog import Catalog, load_catalog
from .config import TrainConfig
from .devices import pick_device
from .distributed import DistContext, init_distributed, restarts_need_a_store_per_attempt
from .ema import EMA
from .errors import GanforgeError
from .losses import gradient_penalty
from .metrics.evaluate import Evaluation
from .nn import Discriminator, Generator, trusted_labels
from .onednn_linear import use_onednn_linears
from .runs import RunDir, load_weights
from .speed import cpu_bf16_native, cpu_description, cpu_fp16_native, resolve_speed
from .step_graph import CapturedStep
from .variant import DataShape, VariantSpec

DEFAULT_EPOCHS = 20
# Notes already shown in this process, by topic: a sweep or a benchmark fitting many short runs says each once.
_SHOWN_NOTES: set[str] = set()


class TrainingDiverged(GanforgeError):
    """The losses became NaN or infinite; the run stopped without overwriting its last good checkpoint."""


@dataclass
class TrainResult:
    """How a call to :func:`train` ended."""

    run_dir: Path
    step: int
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)


def _epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    # A function of (seed, epoch) alone, so a resumed run sees exactly the batches it would have seen.
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def build_models(spec: VariantSpec, model_config: Any, shape: DataShape) -> tuple[Generator, Discriminator]:
    """Build and type-check a variant's pair, so a plugin's mistake is reported as the plugin's."""
    generator = spec.build_generator(model_config, shape)
    discriminator = spec.build_discriminator(model_config, shape)
    if not isinstance(generator, Generator) or not isinstance(discriminator, Discriminator):
        raise GanforgeError(
            f"variant {spec.name!r} built {type(generator).__name__} / {type(discriminator).__name__}; "
            "they must subclass ganforge.nn.Generator / ganforge.nn.Discriminator"
        )
    return generator, discriminator


class Trainer:
    """One run of the shared loop: built from a :class:`TrainConfig`, continued from a run directory."""

    def __init__(self, config: TrainConfig, catalog: Catalog | None = None, *, run_dir: Path | None = None) -> None:
        self.catalog = catalog or load_catalog()
        self.dist: DistContext = init_distributed(config.device)
        self.spec = self.catalog.variants.get(config.variant)
        recipe = {k: v for k, v in self.spec.recipe.items() if k not in config.model_fields_set}
        if recipe:
            config = TrainConfig.model_validate({**config.model_dump(exclude_unset=True), **recipe})
        self.model_config = self.spec.make_config(config.model)
        self.loss = self.catalog.losses.get(config.loss or self.spec.default_loss)
        self.device = self.dist.device or pick_device(config.device)
        dataset = self.catalog.datasets.get(config.data.name)
        data = self.dist.in_turn(lambda: dataset.load(config.data), f"data set {config.data.name!r}")
        if self.spec.conditional and data.labels is None:
            raise GanforgeError(
                f"variant {self.spec.name!r} is conditional and needs class labels, but data set "
                f"{config.data.name!r} has none; pick a labelled data set or an unconditional variant"
            )
        self.data = data
        self.shape = DataShape(*data.shape, data.num_classes if self.spec.conditional else None)
        per_rank = len(data.images) // self.dist.world_size
        self.steps_per_epoch = per_rank // config.batch_size
        if self.steps_per_epoch == 0:
            raise GanforgeError(
                f"--batch-size {config.batch_size} is larger than the {per_rank} images each process gets "
                f"from {config.data.name!r}; use a smaller batch size"
            )
        if config.steps is None:
            epochs = config.epochs or DEFAULT_EPOCHS
            config = config.model_copy(update={"steps": math.ceil(epochs * self.steps_per_epoch / config.n_critic), "epochs": None})
        self.config = config
        opt = self.spec.optimizer
        self.lr_g, self.lr_d = config.lr_g or opt.lr_g, config.lr_d or opt.lr_d
        self.betas = tuple(config.betas or opt.betas)

        torch.manual_seed(config.seed)
        generator, discriminator = build_models(self.spec, self.model_config, self.shape)
        convolutional = any(isinstance(m, nn.modules.conv._ConvNd) for m in (*generator.modules(), *discriminator.modules()))
        self.memory_format = (
            torch.channels_last if (convolutional if config.channels_last is None else config.channels_last)
            else torch.contiguous_format
        )
        # oneDNN and cuDNN run convolutions fastest on channels-last tensors (NHWC in memory).
        self.generator = generator.to(self.device, memory_format=self.memory_format)
        self.discriminator = discriminator.to(self.device, memory_format=self.memory_format)
        # Without batch statistics in D, one forward over real and fake together is the same function
        # as two forwards, and bigger matrix products run faster.
        self.joint_d_forward = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.discriminator.modules())
        self.ema = EMA(self.generator, config.ema, config.ema_start) if config.ema else None
        self.speed = resolve_speed(config, self.device, self.dist.world_size,
                                   not_copyable=why_not_copyable(generator=self.generator, discriminator=self.discriminator))
        # Fused kernels (CPU and CUDA) update every parameter in one pass instead of a dozen;
        # capturable keeps Adam's step count on the device, as a captured step needs.
        fused = self.device.type in ("cpu", "cuda")
        adam = {"betas": self.betas, "fused": fused, "capturable": self.speed.capture_step}
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr_g, **adam)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr_d, **adam)
        # fp16 gradients underflow without loss scaling; one scaler per model, since their losses differ in scale.
        # Fused Adam takes the scale and the overflow flag on the device, so scaling adds no host sync.
        fp16 = self.speed.precision == "fp16"
        self.scaler_g = torch.amp.GradScaler(self.device.type) if fp16 else None
        self.scaler_d = torch.amp.GradScaler(self.device.type) if fp16 else None
        # With bf16_weights the step runs bf16 copies; the fp32 models stay what is trained, averaged and saved.
        self._g16 = BF16Weights(self.generator) if self.speed.bf16_weights else None
        self._d16 = BF16Weights(self.discriminator) if self.speed.bf16_weights else None
        if self.speed.onednn_linear:
            use_onednn_linears(self.generator)
            use_onednn_linears(self.discriminator)
        g_step = self._g16.module if self._g16 is not None else self.generator
        d_step = self._d16.module if self._d16 is not None else self.discriminator
        self._d_params = list(d_step.parameters())
        self.g_run: nn.Module = self.dist.wrap(g_step)
        self.d_run: nn.Module = self.dist.wrap(d_step)
        # The gradient penalty differentiates D's input gradient again, which compiled code cannot.
        self.d_penalty: nn.Module = self.d_run
        self.d_plain: nn.Module = d_step
        if self.speed.compile:
            mode = "reduce-overhead" if self.speed.cuda_graphs else None
            self.g_run, self.d_run = torch.compile(self.g_run, mode=mode), torch.compile(self.d_run, mode=mode)
            self.d_plain = torch.compile(self.discriminator, mode=mode)

        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device) if data.labels is not None else None
        self._class_frequencies = (
            torch.bincount(self.labels, minlength=self.shape.num_classes).float()
            if self.shape.num_classes and config.fake_labels == "data" else None
        )
        self.noise = torch.Generator(device=self.device).manual_seed(config.seed + 7919 * (self.dist.rank + 1))
        self.step = 0
        # A step's batches are gathered at a device-side offset into the permutations of the epochs
        # it reaches (each cut to whole batches, so consecutive batches lie end to end), so the same
        # device work serves every step and a captured CUDA graph can replay it.
        used = self.steps_per_epoch * config.batch_size
        self._order_epochs = 1 + math.ceil((config.n_critic - 1) / self.steps_per_epoch)
        self._order = torch.empty(self._order_epochs * used, dtype=torch.long, device=self.device)
        self._order_first_epoch = -1
        self._batch_offset = torch.zeros((), dtype=torch.long, device=self.device)
        self._batch_positions = torch.arange(config.n_critic * config.batch_size, device=self.device).view(config.n_critic, -1)
        self._batch_cursor = 0
        self._stop_requested = False
        self._captured = CapturedStep(self._device_step, [self.noise], optimizers={"opt_g": self.opt_g, "opt_d": self.opt_d},
                                      on_recapture=self._note_recapture) if self.speed.capture_step else None

        # Rank 0 names the run, so a default name with a timestamp is the same on every rank.
        path = run_dir or config.out or Path("runs") / f"{self.spec.name}-{datetime.now():%Y%m%d-%H%M%S}"
        self.run = RunDir(self.dist.broadcast_object(str(path)))
        self.best_fid = math.inf
        self.max_modes = 0
        self._evaluation: Evaluation | None = None
        if config.eval_every and self.dist.is_main:
            self._evaluation = Evaluation(self.catalog.datasets.get(config.data.name), data,
                                          [e.value for e in self.catalog.metrics], config.eval_samples,
                                          config.seed, self.device)
        self.fixed_z, self.fixed_labels, self.grid_rows = self._fixed_noise()

    # ----------------------------------------------------------------------------- set-up helpers
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
                "lr_g": self.lr_g,
                "lr_d": self.lr_d,
                "betas": list(self.betas),
                "data_shape": list(self.shape),
                "data_size": len(self.data.images),
                "steps_per_epoch": self.steps_per_epoch,
                "world_size": self.dist.world_size,
                "device": str(self.device),
                "precision": self.speed.precision,
                "compile": self.speed.compile,
                "cuda_graphs": self.speed.cuda_graphs,
                "capture_step": self.speed.capture_step,
                "channels_last": self.memory_format == torch.channels_last,
                "onednn_linear": self.speed.onednn_linear,
                "bf16_weights": self.speed.bf16_weights,
            },
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "ganforge": __version__},
            # The CPU decides defaults (onednn_linear) and speed; the same settings round differently on another one.
            "machine": {"cpu": cpu_description(),
                        "gpu": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None},
        }

    # ----------------------------------------------------------------------------- data and noise
    def _place_batches(self) -> None:
        """Point this step's batches at the next ``n_critic`` batches of the data order (host side, no sync)."""
        b, spe = self.config.batch_size, self.steps_per_epoch
        epoch = self._batch_cursor // spe
        if epoch != self._order_first_epoch:
            used = spe * b
            orders = [self.dist.shard(_epoch_permutation(self.config.seed, e, len(self.images)))[:used]
                      for e in range(epoch, epoch + self._order_epochs)]
            self._order.copy_(torch.cat(orders))
            self._order_first_epoch = epoch
        self._batch_offset.fill_((self._batch_cursor - epoch * spe) * b)
        self._batch_cursor += self.config.n_critic

    def _batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The step's ``i``-th real batch, normalised to [-1, 1], and its labels for conditional variants."""
        idx = self._order.index_select(0, self._batch_positions[i] + self._batch_offset)
        real = self.images.index_select(0, idx).to(memory_format=self.memory_format).float().div_(127.5).sub_(1.0)
        labels = self.labels.index_select(0, idx) if self.spec.conditional else None  # type: ignore[union-attr]
        return real, labels

    def _draw_fake_inputs(self, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = self.generator.sample_latent(batch, device=self.device, generator=self.noise)
        if self._class_frequencies is not None:
            return z, torch.multinomial(self._class_frequencies, batch, replacement=True, generator=self.noise)
        if self.shape.num_classes:
            return z, torch.randint(0, self.shape.num_classes, (batch,), device=self.device, generator=self.noise)
        return z, None

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.speed.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.speed.precision == "bf16" else torch.float16
            # A captured graph cannot hold autocast's cache of cast weights (PyTorch's CUDA graph notes).
            return torch.autocast(self.device.type, dtype=dtype, cache_enabled=not self.speed.capture_step)
        return contextlib.nullcontext()

    def _penalty_precision(self) -> contextlib.AbstractContextManager[Any]:
        """fp32 for the gradient penalty under fp16: its input gradients, taken before any loss scaling, would underflow."""
        if self.speed.precision == "fp16":
            return torch.autocast(self.device.type, enabled=False)
        return contextlib.nullcontext()

    def _note_once(self, topic: str, text: str) -> None:
        """Show a note on rank 0's stderr, above the progress bar, once per process for each topic."""
        if self.dist.is_main and topic not in _SHOWN_NOTES:
            _SHOWN_NOTES.add(topic)
            tqdm.write(f"ganforge: note: {text}", file=sys.stderr)

    def _note_recapture(self, changes: str) -> None:
        """Say once per run that a changed optimiser setting made the captured step be captured again."""
        if self._captured is not None and self._captured.captures == 1:
            tqdm.write(f"ganforge: note: {changes} after step {self.step}; the step is captured again with the new "
                       "value at each such change (a schedule that changes every step trains faster with "
                       "--set capture_step=false)", file=sys.stderr)

    # ----------------------------------------------------------------------------- one step
    def _score_real_and_fake(self, real: torch.Tensor, real_labels: torch.Tensor | None, fake: torch.Tensor,
                             fake_labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.joint_d_forward:
            return self.d_run(real, real_labels).float(), self.d_run(fake, fake_labels).float()
        labels = torch.cat([real_labels, fake_labels]) if real_labels is not None else None
        scores = self.d_run(torch.cat([real, fake.to(real.dtype)]), labels).float()
        return scores[: len(real)], scores[len(real):]

    def train_step(self) -> None:
        """One generator update and ``n_critic`` discriminator updates; no host sync."""
        self._place_batches()
        if self._captured is not None:
            self._captured()
        else:
            if self.speed.cuda_graphs:
                # Each step replays the compiled graphs afresh; last step's graph outputs are no longer read.
                torch.compiler.cudagraph_mark_step_begin()
            self._device_step()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.step)
        self._count += 1

    def _device_step(self) -> None:
        """The step's device work, the same whether run directly or captured as a CUDA graph."""
        cfg = self.config
        b = cfg.batch_size
        # The bf16 copies take the weights as they are now: after a resume, or a hook that changed them.
        for copies in (self._g16, self._d16):
            if copies is not None:
                copies.sync()
        for i in range(cfg.n_critic):
            real, real_labels = self._batch(i)
            z, fake_labels = self._draw_fake_inputs(b)
            last = i == cfg.n_critic - 1
            with self._autocast(), torch.set_grad_enabled(last):
                fake = self.g_run(z, fake_labels)
            with self._autocast():
                d_real, d_fake = self._score_real_and_fake(real, real_labels, fake.detach(), fake_labels)
                d_loss = self.loss.d_loss(d_real, d_fake)
                if cfg.gradient_penalty:
                    with self._penalty_precision():
                        penalty = gradient_penalty(self.d_penalty, real, fake, real_labels, generator=self.noise)
                    d_loss = d_loss + cfg.gradient_penalty * penalty
            self._update(self.opt_d, self._d16, self.scaler_d, d_loss)
            if self._d16 is not None:
                self._d16.sync()  # the next critic update and G's update read D's new weights
        # D's weights need no gradient for G's update; skipping them saves a third of D's backward.
        for p in self._d_params:
            p.requires_grad_(False)
        with self._autocast():
            g_loss = self.loss.g_loss(self.d_plain(fake, fake_labels).float())
        self._update(self.opt_g, self._g16, self.scaler_g, g_loss)
        for p in self._d_params:
            p.requires_grad_(True)
        self._sums += torch.stack([d_loss.detach(), g_loss.detach(), d_real.detach().mean(), d_fake.detach().mean()])

    @staticmethod
    def _update(optimizer: torch.optim.Optimizer, copies: BF16Weights | None, scaler: torch.amp.GradScaler | None,
                loss: torch.Tensor) -> None:
        """One optimiser step on ``loss``: through the bf16 copies when the step runs them, with loss scaling under
        fp16 (a step whose gradients overflow is skipped and the scale halved)."""
        if copies is not None:
            copies.zero_grad()
            loss.backward()
            copies.step(optimizer)
        elif scaler is not None:
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything that a resumed run needs to continue exactly."""
        state: dict[str, Any] = {
            "step": self.step,
            "batch_cursor": self._batch_cursor,
            "best_fid": self.best_fid,
            "max_modes": self.max_modes,
            "variant": self.spec.name,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }
        rng = {"torch": torch.get_rng_state(), "noise": self.noise.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state["rng"] = self.dist.gather_objects(rng)  # one entry per rank: each draws its own noise
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.scaler_g is not None and self.scaler_d is not None:
            state["scaler_g"], state["scaler_d"] = self.scaler_g.state_dict(), self.scaler_d.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], source: Path | str) -> None:
        """Continue from ``state`` (a checkpoint read from ``source``, named in errors)."""
        if state.get("variant") != self.spec.name:
            raise GanforgeError(f"checkpoint holds variant {state.get('variant')!r}, this run is {self.spec.name!r}")
        load_weights(self.generator, state["generator"], "generator", source)
        load_weights(self.discriminator, state["discriminator"], "discriminator", source)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        if self.scaler_g is not None and self.scaler_d is not None and "scaler_g" in state:
            self.scaler_g.load_state_dict(state["scaler_g"])
            self.scaler_d.load_state_dict(state["scaler_d"])
        if len(state["rng"]) != self.dist.world_size:
            raise GanforgeError(
                f"the checkpoint was written by {len(state['rng'])} process(es), this run has {self.dist.world_size}; "
                "resume with the same number of processes (torchrun --nproc-per-node)"
            )
        rng = state["rng"][self.dist.rank]
        torch.set_rng_state(rng["torch"].cpu())
        self.noise.set_state(rng["noise"].cpu())
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)
        self.step = int(state["step"])
        self.best_fid = float(state.get("best_fid", math.inf))
        self.max_modes = int(state.get("max_modes", 0))
        self._batch_cursor = int(state["batch_cursor"])

    def sampling_generator(self) -> nn.Module:
        """The generator to draw samples from: the EMA copy when there is one."""
        return self.ema.synced() if self.ema is not None else self.generator

    # ----------------------------------------------------------------------------- the loop
    def fit(self) -> TrainResult:
        """Train to ``config.steps``, writing the run directory (rank 0 only)."""
        cfg = self.config
        if self.dist.is_main and self.step == 0 and not self.run.exists():
            self.run.create(self.describe())
        self.dist.barrier()
        self._sums = torch.zeros(4, device=self.device)
        self._count = 0
        self._window_start = (time.perf_counter(), self.step)
        last_metrics: dict[str, Any] = {}
        pm = self.catalog.pm
        pm.hook.ganforge_train_start(trainer=self)
        # Only rank 0 shows a bar; TQDM_DISABLE=1 silences it there too.
        quiet = {} if self.dist.is_main else {"disable": True}
        bar = tqdm(total=cfg.steps, initial=self.step, unit="step", dynamic_ncols=True, mininterval=0.5,
                   desc=self.spec.name, **quiet)
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
                    pm.hook.ganforge_step_end(trainer=self, step=self.step, metrics=metrics)
                    if stop:
                        status = "interrupted"
                        break
        except TrainingDiverged:
            status = "diverged"
            raise
        finally:
            bar.close()
            pm.hook.ganforge_train_end(trainer=self, status=status)
        return TrainResult(self.run.path, self.step, status, last_metrics)

    def _agreed_stop(self) -> bool:
        """Whether Ctrl-C asked to stop; under torchrun the ranks agree at log steps, with no per-step collective."""
        if self.dist.enabled:
            return self.step % self.config.log_every == 0 and self.dist.any(self._stop_requested)
        return self._stop_requested

    def _log(self) -> dict[str, Any]:
        sums = self.dist.all_reduce_mean(self._sums / max(self._count, 1)).tolist()
        now = time.perf_counter()
        started, first_step = self._window_start
        steps = self.step - first_step
        record = {
            "step": self.step,
            "d_loss": sums[0],
            "g_loss": sums[1],
            "d_real": sums[2],
            "d_fake": sums[3],
            "images_per_s": steps * self.config.batch_size * self.config.n_critic * self.dist.world_size / max(now - started, 1e-9),
        }
        self._sums.zero_()
        self._count = 0
        self._window_start = (now, self.step)
        if not all(math.isfinite(v) for v in sums):
            raise TrainingDiverged(
                f"losses became NaN/Inf between steps {first_step} and {self.step} "
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


def train(config: TrainConfig, catalog: Catalog | None = None, *, resume_if_exists: bool = False) -> TrainResult:
    """Train a new run described by ``config``; the run directory must not hold a run already.

    With ``resume_if_exists``, a run directory that holds a run with the same settings (its length
    and device aside) is continued from its last checkpoint instead, or started over when it died
    before its first one. The same command then starts a job and continues it after torchrun
    (``--max-restarts``) or a cluster's scheduler starts it again.
    """
    if resume_if_exists and config.out is None:
        raise GanforgeError("--resume-if-exists needs --out DIR: without it every start names a new run directory")
    trainer = Trainer(config, catalog)
    action, refusal = trainer.dist.broadcast_object(_plan_start(trainer, resume_if_exists) if trainer.dist.is_main else None)
    if action == "refuse":
        raise GanforgeError(refusal if trainer.dist.is_main else "rank 0 did not start the run (its error is above)")
    if action == "continue":
        return _continue(trainer, trainer.run.read_config(), already_done_ok=True)
    if action == "start over" and trainer.dist.is_main:
        trainer.run.rewind(0)
        trainer.run.write_config(trainer.describe())
    return trainer.fit()


def _plan_start(trainer: Trainer, resume_if_exists: bool) -> tuple[str, str]:
    """What ``train`` does with the run directory: ``new``, ``continue``, ``start over`` or ``refuse``, and why it refuses."""
    run = trainer.run
    if not run.exists():
        return "new", ""
    if not resume_if_exists:
        refusal = run.already_holds_a_run()
        restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        if restarts:
            refusal += (f"; torchrun started this job again (restart {restarts}): add --resume-if-exists so that a "
                        "restart continues from the last checkpoint")
        return "refuse", refusal
    try:
        differences = _settings_differences(run.read_config(), trainer)
    except GanforgeError as exc:
        return "refuse", str(exc)
    except (KeyError, ValueError) as exc:
        return "refuse", f"{run.config_path}: not a config.json this ganforge can compare settings with ({str(exc).splitlines()[0]})"
    if differences:
        return "refuse", (f"{run.path} holds a run with other settings ({'; '.join(differences[:3])}); continue it as "
                          f"it is with `ganforge train --resume {run.path}`, or pass another --out")
    return ("continue" if run.checkpoint_path("last").is_file() else "start over"), ""


# A continued run may go on further and on another device; every other setting must be the run's own.
_MAY_DIFFER = frozenset({"steps", "epochs", "out", "device"})


def _settings_differences(saved: dict[str, Any], trainer: Trainer) -> list[str]:
    """``key: saved there, ours here`` for each setting in which ``trainer`` differs from the saved run."""
    def settings(variant: str, model: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
        # Through JSON, so that tuples and paths compare as config.json holds them.
        return json.loads(json.dumps({**train, "variant": variant, "model": model}))

    there = settings(saved["variant"], trainer.spec.recorded_config(saved["model"]).model_dump(mode="json"),
                     TrainConfig.model_validate(saved["train"]).model_dump(mode="json"))
    here = settings(trainer.spec.name, trainer.model_config.model_dump(mode="json"), trainer.config.model_dump(mode="json"))
    return [f"{key}: {there.get(key)!r} there, {here.get(key)!r} here"
            for key in sorted((there.keys() | here.keys()) - _MAY_DIFFER) if there.get(key) != here.get(key)]


def resume(run_dir: Path | str, *, steps: int | None = None, device: str | None = None,
           catalog: Catalog | None = None) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint, to ``steps`` in total if given."""
    run = RunDir(run_dir)
    saved = run.read_config()
    catalog = catalog or load_catalog()
    spec = catalog.variants.get(saved["variant"])
    update: dict[str, Any] = {"out": str(run.path), "model": spec.recorded_config(saved["model"]).model_dump(mode="json")}
    if steps is not None:
        update["steps"] = steps
    if device is not None:
        update["device"] = device
    config = TrainConfig.model_validate({**saved["train"], **update})
    return _continue(Trainer(config, catalog, run_dir=run.path), saved, already_done_ok=False)


def _continue(trainer: Trainer, saved: dict[str, Any], *, already_done_ok: bool) -> TrainResult:
    """Load the run's last checkpoint into ``trainer`` and train on from there.

    The metrics logged after that checkpoint are dropped first: the steps between it and where an
    interrupted run stopped are trained again and logged anew.
    """
    run = trainer.run
    trainer.load_state_dict(run.load_checkpoint("last", map_location=trainer.device), run.checkpoint_path("last"))
    if trainer.step >= trainer.config.steps:
        if already_done_ok:
            return TrainResult(run.path, trainer.step, "completed")
        raise GanforgeError(f"{run.path} already reached step {trainer.step}; pass --steps N with N > {trainer.step} to train further")
    if trainer.dist.is_main:
        run.rewind(trainer.step)
        run.write_config(_resumed_description(saved, trainer.describe()))
    return trainer.fit()


def _resumed_description(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """config.json for a resumed run: ``now`` describes the segment it trains, ``earlier_segments`` the ones before.

    A resume may run on another machine, device, precision or version, which change the numbers a
    run produces; each segment keeps its own settings, resolved defaults, versions and machine.
    """
    earlier = {key: saved[key] for key in ("train", "resolved", "versions", "machine") if key in saved}
    return {**now, "earlier_segments": [*saved.get("earlier_segments", []), {"from_step": saved.get("from_step", 0), **earlier}]}
