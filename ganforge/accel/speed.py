"""Which speed settings a run uses: the user's choices, and defaults by device where they left them unset.

Kept apart from the trainer so the defaults for a CUDA machine can be checked on one without CUDA.
The CUDA defaults follow benchmarks/gpu.py (docs/results/gpu.md): these models are small enough
that a GPU step is bound by launching kernels, so replaying the whole step as one CUDA graph pays
most, and torch.compile, whose per-call overhead outweighs its fused kernels here, is off. On the
CPU, fp32 linear layers run on oneDNN where MKL would take its AVX2 path on an AVX-512 CPU
(onednn_linear.py), and bf16 runs of models built of Linear layers keep bf16 copies of their
weights (bf16_weights.py).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import TrainConfig
from ..cpuinfo import CPUINFO, cpu_fields
from ..errors import GanforgeError
from .onednn_linear import onednn_linear_available, onednn_linear_pays


def cpu_bf16_native() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX), as oneDNN reports it.

    Without it PyTorch runs bf16 products in generic code, an order of magnitude slower than fp32's
    (``benchmarks/gemm.py`` measures both), so a bf16 run there is warned that fp32 is faster.
    """
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_fp16_native() -> bool:
    """Whether this CPU multiplies fp16 matrices in hardware (AVX512-FP16 or AMX-FP16), as oneDNN reports it."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())


def cpu_description(cpuinfo: Path = CPUINFO) -> str:
    """This CPU as CPU speed figures depend on it: its model, the instruction set of PyTorch's kernels, bf16 and fp16.

    A virtual machine may name its CPU only "AMD EPYC"; the family and model numbers from /proc/cpuinfo
    still tell its generation (AMD family 25: model 1 is a Zen 3 Milan, model 17 a Zen 4 Genoa;
    family 26, model 2 is a Zen 5).
    """
    fields = cpu_fields(cpuinfo)
    model = fields.get("model name", platform.processor() or platform.machine())
    if "cpu family" in fields and "model" in fields:
        model += f" (family {fields['cpu family']}, model {fields['model']})"
    bf16 = "native" if cpu_bf16_native() else "emulated"
    fp16 = "native" if cpu_fp16_native() else "emulated"
    return f"{model}, {torch.backends.cpu.get_cpu_capability()} kernels, bf16 products {bf16}, fp16 products {fp16}"


@dataclass(frozen=True)
class Speed:
    """The resolved settings, as recorded under ``resolved`` in a run's config.json."""

    precision: str
    compile: bool
    cuda_graphs: bool
    capture_step: bool
    onednn_linear: bool
    bf16_weights: bool


def resolve_speed(config: TrainConfig, device: torch.device, world_size: int = 1, *, not_copyable: str | None,
                  bf16_supported: bool | None = None, onednn_available: bool | None = None,
                  onednn_pays: bool | None = None) -> Speed:
    """Resolve ``config``'s speed settings for ``device``; a combination that cannot work is a GanforgeError.

    ``not_copyable``: why G and D cannot run through bf16 weight copies, None when they can
    (:func:`ganforge.bf16_weights.why_not_copyable`).
    """
    cuda = device.type == "cuda"
    if bf16_supported is None:
        bf16_supported = cuda and torch.cuda.is_bf16_supported()
    if onednn_available is None:
        onednn_available = onednn_linear_available()
    if onednn_pays is None:
        onednn_pays = onednn_linear_pays()
    precision = config.precision if config.precision != "auto" else ("bf16" if cuda and bf16_supported else "fp32")
    if precision == "fp16" and device.type not in ("cuda", "cpu"):
        raise GanforgeError(f"--precision fp16 (autocast with loss scaling) runs on CUDA or the CPU; this run is on "
                            f"{device}; use --precision fp32")

    if config.capture_step and not cuda:
        raise GanforgeError(f"capture_step replays CUDA graphs; this run is on {device}; drop --set capture_step=true")
    if config.capture_step and world_size > 1:
        raise GanforgeError("capture_step does not run under torchrun (DDP's all-reduce is not captured); "
                            "drop --set capture_step=true")
    if config.capture_step and config.compile:
        raise GanforgeError("capture_step and --compile do not combine (compile graphs its own modules: "
                            "--compile --set cuda_graphs=true); drop one of them")
    if config.capture_step and precision == "fp16":
        raise GanforgeError("capture_step does not combine with --precision fp16 (the loss scaler's step is not "
                            "captured); drop --set capture_step=true")
    capture_step = config.capture_step if config.capture_step is not None else (
        cuda and world_size == 1 and not config.compile and precision != "fp16")
    compile_ = bool(config.compile)
    cuda_graphs = compile_ and cuda and config.cuda_graphs

    on_x86_cpu = device.type == "cpu" and onednn_available
    if config.onednn_linear and not on_x86_cpu:
        raise GanforgeError(
            f"onednn_linear needs an x86 CPU device and a PyTorch build with oneDNN; this run is on {device} "
            f"({platform.machine()}); drop --set onednn_linear=true"
        )
    if config.onednn_linear and compile_:
        raise GanforgeError("onednn_linear and --compile do not combine (inductor picks its own kernels); drop one of them")
    onednn = (on_x86_cpu and onednn_pays and not compile_) if config.onednn_linear is None else bool(config.onednn_linear)

    # The copies are on by default exactly where none of these stands in their way.
    bf16_blockers = [
        (device.type != "cpu", f"bf16_weights runs on the CPU; this run is on {device}"),
        (precision != "bf16", "bf16_weights keeps bf16 copies for bf16 autocast; add --precision bf16"),
        (world_size > 1, "bf16_weights does not run under torchrun (DDP would all-reduce bf16 gradients)"),
        (compile_, "bf16_weights and --compile do not combine (compile casts inside its own graphs)"),
        (not_copyable is not None, "bf16_weights needs G and D whose every weight is in an nn.Linear and that hold no "
                                  f"buffers; in variant {config.variant!r} {not_copyable}"),
    ]
    blocked = next((why for applies, why in bf16_blockers if applies), None)
    if config.bf16_weights and blocked:
        raise GanforgeError(f"{blocked}; drop --set bf16_weights=true")
    bf16_weights = blocked is None if config.bf16_weights is None else config.bf16_weights
    return Speed(precision, compile_, cuda_graphs, capture_step, onednn, bf16_weights)
