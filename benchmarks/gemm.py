"""fp32 matrix-product rate of PyTorch's default CPU path against oneDNN, on the MLP GAN's layer shapes.

Why ``ganforge.accel.onednn_linear`` exists, and where it is on by default: on AMD CPUs with AVX-512 (Zen 4,
Zen 5), where MKL takes its AVX2 path, oneDNN's AVX-512 kernels multiply the same fp32 matrices about
twice as fast; on a CPU with AVX2 only, both run AVX2 code. Each row times the three
products of one layer at batch 64 (forward, input gradient, weight gradient), both ways, in the
same run; bf16 and fp16 through ``F.linear`` are shown for scale (each runs in hardware only where
the first line calls its products native).

    python benchmarks/gemm.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ganforge.accel.onednn_linear import OneDNNLinear, onednn_linear_available
from ganforge.accel.speed import cpu_description

# (fan_in, fan_out) of every linear layer of the mlp variant: G 100-256-512-1024-784, D 784-512-256-1.
MLP_LAYERS = [(100, 256), (256, 512), (512, 1024), (1024, 784), (784, 512), (512, 256)]


def seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds per call of ``fn``, after a warm-up."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def layer_step(linear: Callable[..., torch.Tensor], x: torch.Tensor, weight: torch.Tensor,
               bias: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    """Forward and backward of one layer: three matrix products."""

    def run() -> None:
        out = linear(x, weight, bias)
        torch.autograd.backward(out, grad)
        x.grad = weight.grad = bias.grad = None

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    if not onednn_linear_available():
        raise SystemExit("this CPU or PyTorch build has no oneDNN linear kernels; nothing to compare")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_description()}, batch {args.batch}, "
          "forward + backward per layer")
    print(f"{'layer':>11} {'F.linear fp32':>14} {'oneDNN fp32':>12} {'ratio':>6} {'F.linear bf16':>14} "
          f"{'F.linear fp16':>14}   (GFLOP/s)")
    for fan_in, fan_out in MLP_LAYERS:
        flops = 3 * 2 * args.batch * fan_in * fan_out
        rates = []
        for linear, dtype in ((F.linear, torch.float32), (OneDNNLinear.apply, torch.float32), (F.linear, torch.bfloat16),
                              (F.linear, torch.float16)):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(args.batch, fan_in, generator=g).to(dtype).requires_grad_(True)
            weight = torch.randn(fan_out, fan_in, generator=g).to(dtype).requires_grad_(True)
            bias = torch.randn(fan_out, generator=g).to(dtype).requires_grad_(True)
            grad = torch.randn(args.batch, fan_out, generator=g).to(dtype)
            rates.append(flops / seconds(layer_step(linear, x, weight, bias, grad), args.repeats) / 1e9)
        print(f"{fan_in:>5}x{fan_out:<5} {rates[0]:14.0f} {rates[1]:12.0f} {rates[1] / rates[0]:5.2f}x {rates[2]:14.0f} "
              f"{rates[3]:14.0f}")


if __name__ == "__main__":
    main()
