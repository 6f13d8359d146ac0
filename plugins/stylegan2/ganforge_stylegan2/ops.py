"""StyleGAN2's operations written with standard PyTorch ops, so they run wherever PyTorch runs (CPU,
CUDA, MPS), under autocast and inside a captured CUDA graph, with no extension to compile.

``upfirdn2d``: upsample by inserting zeros, pad, filter with a FIR kernel, downsample by keeping every
``down``-th pixel, as one depthwise convolution. ``conv2d_resample``: a convolution that doubles the
side (a transposed convolution, then the low-pass filter) or halves it (the filter, then a strided
convolution). ``modulated_conv2d``: StyleGAN2's per-sample weights (the style scales the input
channels, demodulation rescales each output channel to unit expected variance) as one grouped
convolution. Equalised-learning-rate layers keep their weights at N(0, 1) and scale them at run time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2)
"""Leaky ReLU (slope 0.2) is followed by this gain, so that activations keep their variance."""


def fir_filter(taps: tuple[float, ...] = (1, 3, 3, 1)) -> torch.Tensor:
    """The separable 2-D low-pass filter of ``taps``, normalised to sum to 1."""
    f = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, *, up: int = 1, down: int = 1,
              padding: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample ``x`` (B, C, H, W) by ``up`` with zeros, pad it by ``padding`` (left, right, top, bottom;
    negative crops), convolve each channel with ``f`` times ``gain``, and keep every ``down``-th pixel."""
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(b, c, h * up, w * up)
    x = F.pad(x, padding)
    kernel = (f * gain).flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, *f.shape)
    x = F.conv2d(x, kernel, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Twice the side, low-pass filtered."""
    kh = f.shape[0]
    p = ((kh + 1) // 2, (kh - 2) // 2)
    return upfirdn2d(x, f, up=2, padding=(p[0], p[1], p[0], p[1]), gain=4)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Half the side, low-pass filtered first."""
    kh = f.shape[0]
    p = ((kh - 1) // 2, kh // 2 - 1)
    return upfirdn2d(x, f, down=2, padding=(p[0], p[1], p[0], p[1]))


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None, *, up: int = 1, down: int = 1,
                    groups: int = 1) -> torch.Tensor:
    """Convolve ``x`` with ``w`` (out, in/groups, k, k), keeping the side (padding k // 2), doubling it
    (``up`` = 2) or halving it (``down`` = 2) with the low-pass filter ``f``."""
    k = w.shape[-1]
    fh = f.shape[0] if f is not None else 0
    if up == 2:
        # A stride-2 transposed convolution, then the filter: (2H + k - 2) pixels, trimmed to 2H.
        weight = w.reshape(groups, -1, *w.shape[1:]).transpose(1, 2).reshape(-1, w.shape[0] // groups, k, k)
        x = F.conv_transpose2d(x, weight, stride=2, groups=groups)
        pad0 = (fh + 1) // 2 + k // 2 - (k - 1)
        pad1 = (fh - 2) // 2 + k // 2 - (k - 2)
        return upfirdn2d(x, f, padding=(pad0, pad1, pad0, pad1), gain=4)  # type: ignore[arg-type]
    if down == 2:
        if k == 1:
            return F.conv2d(downsample2d(x, f), w, groups=groups)  # type: ignore[arg-type]
        pad0 = (fh - 1) // 2 + k // 2
        pad1 = fh // 2 - 1 + k // 2
        return F.conv2d(upfirdn2d(x, f, padding=(pad0, pad1, pad0, pad1)), w, stride=2, groups=groups)  # type: ignore[arg-type]
    return F.conv2d(x, w, padding=k // 2, groups=groups)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     up: int = 1, f: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN2's modulated convolution of ``x`` (B, in, H, W) with ``weight`` (out, in, k, k) scaled
    per sample by ``styles`` (B, in), each output channel rescaled to unit expected variance where
    ``demodulate`` (Karras et al. 2020, eq. 1-3), as one grouped convolution over the batch."""
    b, cin, h, wd = x.shape
    cout, _, k, _ = weight.shape
    w = weight[None] * styles.reshape(b, 1, cin, 1, 1)
    if demodulate:
        w = w * (w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    x = conv2d_resample(x.reshape(1, b * cin, h, wd), w.reshape(b * cout, cin, k, k).to(x.dtype), f, up=up, groups=b)
    return x.reshape(b, cout, *x.shape[2:])


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, activation: str, dim: int = 1) -> torch.Tensor:
    """Add ``bias`` along ``dim``, then "linear" or "lrelu" (slope 0.2, times sqrt(2))."""
    if bias is not None:
        shape = [1] * x.dim()
        shape[dim] = -1
        x = x + bias.to(x.dtype).reshape(shape)
    if activation == "lrelu":
        return F.leaky_relu(x, 0.2) * LRELU_GAIN
    return x


class EqualLinear(nn.Module):
    """A linear layer with an equalised learning rate: weights stored as N(0, 1) / ``lr_mul``, scaled by
    ``lr_mul / sqrt(fan_in)`` when used, so Adam moves the effective weights at ``lr * lr_mul``."""

    def __init__(self, fan_in: int, fan_out: int, *, bias: bool = True, lr_mul: float = 1.0, bias_init: float = 0.0,
                 activation: str = "linear") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((fan_out,), float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(fan_in)
        self.bias_gain = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        bias = self.bias * self.bias_gain if self.bias is not None else None
        return bias_act(x.matmul(w.to(x.dtype).t()), bias, self.activation)


class EqualConv2d(nn.Module):
    """A convolution with an equalised learning rate, optionally halving the side (``down`` = 2)."""

    def __init__(self, cin: int, cout: int, kernel: int, *, bias: bool = True, activation: str = "linear",
                 down: int = 1, filter_: torch.Tensor | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.weight_gain = 1 / math.sqrt(cin * kernel * kernel)
        self.activation, self.down = activation, down
        self.register_buffer("filter", filter_ if filter_ is not None else fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = conv2d_resample(x, w, self.filter, down=self.down)
        return bias_act(x, self.bias, self.activation) * gain
