"""The one seam between the training step's maths and what makes it fast or distributed.

The step asks for "a G forward", "a D forward", "an update of this optimiser on this loss" and "run
this step"; how each is done is decided here, once, from the resolved :class:`~ganforge.accel.speed.Speed`:
the device and memory format, the precision (bf16 autocast, fp16 autocast with a loss scaler per
model), bf16 copies of Linear weights and oneDNN's linear kernels on the CPU, fused (and on CUDA
capturable) Adam, torch.compile, DistributedDataParallel, and the whole step captured as one CUDA
graph and replayed. Adding or removing one of these changes this module, never the step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ..nn import Discriminator, Generator
from .bf16_weights import BF16Weights
from .distributed import DistContext
from .onednn_linear import use_onednn_linears
from .speed import Speed
from .step_graph import CapturedStep


class Accelerator:
    """Places G and D, builds their optimisers, and runs the step's forwards, updates and the step itself.

    ``g`` and ``d`` are what the step calls in D's phase (wrapped for DDP and compiled where asked);
    ``d_frozen`` scores G's images in G's phase, with D's weights frozen; ``d_input_grads`` is D
    for terms that differentiate D's output with respect to its input twice (gradient penalties),
    which compiled code cannot.
    """

    def __init__(self, speed: Speed, device: torch.device, dist: DistContext) -> None:
        self.speed = speed
        self.device = device
        self.dist = dist
        self.memory_format = torch.contiguous_format
        self._captured: CapturedStep | None = None

    def place(self, generator: Generator, discriminator: Discriminator, channels_last: bool | None) -> None:
        """Move both models to the device, channels-last where they convolve (oneDNN and cuDNN run
        convolutions fastest on NHWC tensors) unless ``channels_last`` says otherwise."""
        convolutional = any(isinstance(m, nn.modules.conv._ConvNd) for m in (*generator.modules(), *discriminator.modules()))
        if convolutional if channels_last is None else channels_last:
            self.memory_format = torch.channels_last
        generator.to(self.device, memory_format=self.memory_format)
        discriminator.to(self.device, memory_format=self.memory_format)

    def prepare(self, generator: Generator, discriminator: Discriminator, *, lr_g: float, lr_d: float,
                betas: tuple[float, float]) -> None:
        """Build the optimisers and the handles the step runs; call after :meth:`place`."""
        speed = self.speed
        self.generator, self.discriminator = generator, discriminator
        # Fused kernels (CPU and CUDA) update every parameter in one pass instead of a dozen;
        # capturable keeps Adam's step count on the device, as a captured step needs.
        fused = self.device.type in ("cpu", "cuda")
        adam = {"betas": betas, "fused": fused, "capturable": speed.capture_step}
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=lr_g, **adam)
        self.opt_d = torch.optim.Adam([p for p in discriminator.parameters() if p.requires_grad], lr=lr_d, **adam)
        # fp16 gradients underflow without loss scaling; one scaler per model, since their losses differ in scale.
        # Fused Adam takes the scale and the overflow flag on the device, so scaling adds no host sync.
        fp16 = speed.precision == "fp16"
        self.scaler_g = torch.amp.GradScaler(self.device.type) if fp16 else None
        self.scaler_d = torch.amp.GradScaler(self.device.type) if fp16 else None
        # With bf16_weights the step runs bf16 copies; the fp32 models stay what is trained, averaged and saved.
        self._g16 = BF16Weights(generator) if speed.bf16_weights else None
        self._d16 = BF16Weights(discriminator) if speed.bf16_weights else None
        if speed.onednn_linear:
            use_onednn_linears(generator)
            use_onednn_linears(discriminator)
        g_step = self._g16.module if self._g16 is not None else generator
        d_step = self._d16.module if self._d16 is not None else discriminator
        # The modules as the step runs them (bf16 copies where those are on), unwrapped: for heads of their own.
        self.g_module, self.d_module = g_step, d_step
        # Weights frozen before (FreezeD) stay frozen when G's update freezes the rest for a moment.
        self._d_params = [p for p in d_step.parameters() if p.requires_grad]
        self.g: nn.Module = self.dist.wrap(g_step)
        self.d: nn.Module = self.dist.wrap(d_step)
        self.d_input_grads: nn.Module = self.d
        # With its weights frozen, D needs no DDP: no gradient of its own to all-reduce.
        self.d_frozen: nn.Module = d_step
        if speed.compile:
            mode = "reduce-overhead" if speed.cuda_graphs else None
            self.g, self.d = torch.compile(self.g, mode=mode), torch.compile(self.d, mode=mode)
            self.d_frozen = torch.compile(discriminator, mode=mode)

    @property
    def captures(self) -> bool:
        return self.speed.capture_step

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast in the run's precision (nothing under fp32)."""
        if self.speed.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.speed.precision == "bf16" else torch.float16
            # A captured graph cannot hold autocast's cache of cast weights (PyTorch's CUDA graph notes).
            return torch.autocast(self.device.type, dtype=dtype, cache_enabled=not self.speed.capture_step)
        return contextlib.nullcontext()

    def input_grad_precision(self) -> contextlib.AbstractContextManager[Any]:
        """fp32 for terms built on D's input gradients under fp16: taken before any loss scaling, they would underflow."""
        if self.speed.precision == "fp16":
            return torch.autocast(self.device.type, enabled=False)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def frozen_d(self) -> Iterator[None]:
        """D's weights take no gradient inside: G's update then skips a third of D's backward."""
        for p in self._d_params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in self._d_params:
                p.requires_grad_(True)

    def begin_step(self) -> None:
        """Refresh what the step runs from the trained weights (a resume or a hook may have changed them)."""
        for copies in (self._g16, self._d16):
            if copies is not None:
                copies.sync()

    def update(self, model: str, loss: torch.Tensor) -> None:
        """One optimiser step of ``model`` ("g" or "d") on ``loss``: through the bf16 copies when the step
        runs them, with loss scaling under fp16 (a step whose gradients overflow is skipped and the scale halved)."""
        optimizer, copies, scaler = ((self.opt_g, self._g16, self.scaler_g) if model == "g"
                                     else (self.opt_d, self._d16, self.scaler_d))
        if copies is not None:
            copies.zero_grad()
            loss.backward()
            copies.step(optimizer)
            copies.sync()  # the next critic update and G's update read D's new weights
        elif scaler is not None:
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def run(self, step: Callable[[], None], key: Hashable, generators: Sequence[torch.Generator],
            on_recapture: Callable[[str], None] | None = None) -> None:
        """Run one training step: directly, or as a replay of its CUDA graph.

        ``key`` names which form of the step this is (steps that add a lazy regulariser differ from
        those that do not): each form is captured once and replayed whenever it comes again.
        ``generators`` are the random generators the step draws from, whose states a graph must
        advance on each replay.
        """
        if self.speed.capture_step:
            if self._captured is None:
                self._captured = CapturedStep(step, generators, optimizers={"opt_g": self.opt_g, "opt_d": self.opt_d},
                                              on_recapture=on_recapture)
            self._captured(key)
            return
        if self.speed.cuda_graphs:
            # Each step replays the compiled graphs afresh; last step's graph outputs are no longer read.
            torch.compiler.cudagraph_mark_step_begin()
        step()

    @property
    def recaptures(self) -> int:
        """How many times a changed optimiser setting made a captured step be captured anew."""
        return self._captured.recaptures if self._captured is not None else 0

    def state_dict(self) -> dict[str, Any]:
        """The optimisers' and loss scalers' states, under their checkpoint keys."""
        state: dict[str, Any] = {"opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}
        if self.scaler_g is not None and self.scaler_d is not None:
            state["scaler_g"], state["scaler_d"] = self.scaler_g.state_dict(), self.scaler_d.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.scaler_g is not None and self.scaler_d is not None and "scaler_g" in state:
            self.scaler_g.load_state_dict(state["scaler_g"])
            self.scaler_d.load_state_dict(state["scaler_d"])
