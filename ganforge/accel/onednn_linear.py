"""fp32 ``nn.Linear`` layers on oneDNN's AVX-512 kernels, for AMD CPUs with AVX-512, where MKL takes its AVX2 path.

PyTorch sends fp32 CPU matrix products to MKL, and MKL uses its AVX-512 kernels on Intel CPUs only;
on AMD CPUs with AVX-512 it runs its AVX2 ones, at about half the machine's fp32 peak. oneDNN, which
PyTorch also ships, picks kernels by instruction set rather than vendor, so there it runs the
larger layers at about twice MKL's rate (``benchmarks/gemm.py`` measures both). On a CPU without
AVX-512 both libraries run AVX2 code and oneDNN does not pay; on an Intel CPU with AVX-512 MKL's own
kernels are the faster. So :func:`onednn_linear_pays` holds it to AMD CPUs with AVX-512 by default.
The results are fp32 products, not reduced-precision ones.

:func:`use_onednn_linears` points the forward of every large ``nn.Linear`` in a model (exactly that
class: a subclass may have a forward of its own) at :class:`OneDNNLinear`,
an autograd function whose forward and backward products all run on oneDNN. Its backward is itself
built from :class:`OneDNNLinear`, so second derivatives (the WGAN-GP penalty) work. Under autocast,
or on any device but the CPU, a layer falls back to ``F.linear``.
"""

from __future__ import annotations

import platform
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..cpuinfo import CPUINFO, cpu_vendor


def onednn_linear_available() -> bool:
    """Whether this PyTorch build can run fp32 linear layers on oneDNN on this CPU."""
    return (
        platform.machine().lower() in ("x86_64", "amd64")
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def onednn_linear_pays(capability: str | None = None, cpuinfo: Path = CPUINFO) -> bool:
    """Where oneDNN is available, whether its fp32 products beat MKL's on this CPU: an AMD CPU with AVX-512.

    ``capability`` is the instruction set of PyTorch's kernels, ``torch.backends.cpu.get_cpu_capability()``
    where None.
    """
    capability = torch.backends.cpu.get_cpu_capability() if capability is None else capability
    return capability.startswith("AVX512") and cpu_vendor(cpuinfo) == "AuthenticAMD"


def _product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T + bias`` on oneDNN; transposed views are read in place, without a copy."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class OneDNNLinear(torch.autograd.Function):
    """``F.linear(x, weight, bias)`` for fp32 CPU tensors with every product on oneDNN."""

    # forward takes ctx rather than a separate setup_context: Function.apply then skips binding
    # the arguments through inspect.signature on every call.
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _product(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad2d = grad.reshape(-1, grad.shape[-1])
        grad_x = grad_w = grad_b = None
        # With create_graph the products go through OneDNNLinear again, so that they are differentiable.
        product = OneDNNLinear.apply if torch.is_grad_enabled() else _product
        if ctx.needs_input_grad[0]:
            grad_x = product(grad2d, weight.t(), None).view(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = product(grad2d.t(), x.reshape(-1, x.shape[-1]).t(), None)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad2d.sum(0)
        return grad_x, grad_w, grad_b


def _forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    # bf16 under autocast already runs on oneDNN through F.linear, as fast as this module makes it.
    if (x.device.type != "cpu" or x.dtype != torch.float32 or self.weight.dtype != torch.float32 or x.dim() < 2
            or torch.is_autocast_enabled("cpu")):
        return F.linear(x, self.weight, self.bias)
    return OneDNNLinear.apply(x, self.weight, self.bias)


# Below this many weights the Python-level autograd function costs more than the faster product saves
# (benchmarks/gemm.py: the mlp's 100x256 layer runs at 0.8x through oneDNN, its 256x512 one at 1.4x).
MIN_WEIGHTS = 1 << 16


def use_onednn_linears(model: nn.Module, min_weights: int = MIN_WEIGHTS) -> int:
    """Run every ``nn.Linear`` of ``model`` with at least ``min_weights`` weights through :class:`OneDNNLinear`.

    Returns how many layers changed. They keep their class, parameters and state dict; only their
    ``forward`` changes, and it falls back to ``F.linear`` for anything but fp32 on the CPU outside
    autocast.
    """
    changed = 0
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.numel() >= min_weights:
            module.forward = types.MethodType(_forward, module)
            changed += 1
    return changed
