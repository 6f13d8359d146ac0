"""Where one training step's time goes: torch.profiler over ganforge's ``train_step``, by op and shape,
or (``--phases``) plain wall-clock time per phase of the step, without the profiler.

    python benchmarks/step_profile.py                          # mlp, batch 64, bf16, 200 steps
    python benchmarks/step_profile.py --variant dcgan --precision fp32 --batch-size 256
    python benchmarks/step_profile.py --phases --precision fp32 bf16

The profiler's per-op figures are not wall time: recording every op distorts them, small ops
most. ``--phases`` times the
forward passes, optimiser steps and EMA update by wrapping the trainer's own callables, so the step
that runs is ``train_step`` itself; the rest of the step (the backward passes, drawing the batch
and the noise) is what remains of the step's time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")

import torch
from torch.profiler import ProfilerActivity, profile

from ganforge import TrainConfig
from ganforge.nn import trusted_labels
from ganforge.accel.speed import cpu_description
from ganforge.training import Trainer


def _trainer(args: argparse.Namespace, precision: str, tmp: str) -> Trainer:
    trainer = Trainer(TrainConfig(variant=args.variant, steps=args.steps, batch_size=args.batch_size,
                                  precision=precision, device="cpu", out=Path(tmp) / precision))
    trainer.fit()  # warm-up, and sets up the loss accumulators train_step adds to
    return trainer


def _timed(name: str, fn: Callable[..., Any], spent: dict[str, float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - start
    return wrapper


def phases(trainer: Trainer, steps: int) -> dict[str, float]:
    """Median seconds per step of each phase of ``train_step``, over ``steps`` steps."""
    spent: dict[str, float] = defaultdict(float)
    # The accelerator is the seam through which the step runs every forward and update: time it there.
    accel = trainer.accel
    accel.g = _timed("G forward", accel.g, spent)
    accel.d = _timed("D forward (D update)", accel.d, spent)
    accel.d_frozen = _timed("D forward (G update)", accel.d_frozen, spent)
    accel.opt_d.step = _timed("Adam step, D", accel.opt_d.step, spent)  # type: ignore[method-assign]
    accel.opt_g.step = _timed("Adam step, G", accel.opt_g.step, spent)  # type: ignore[method-assign]
    if trainer.ema is not None:
        trainer.ema.update = _timed("EMA update", trainer.ema.update, spent)  # type: ignore[method-assign]
    per_step: dict[str, list[float]] = defaultdict(list)
    with trusted_labels():
        for _ in range(steps):
            spent.clear()
            start = time.perf_counter()
            trainer.train_step()
            total = time.perf_counter() - start
            for name, seconds in spent.items():
                per_step[name].append(seconds)
            per_step["backward passes, batch, noise"].append(total - sum(spent.values()))
            per_step["step"].append(total)
    return {name: statistics.median(values) for name, values in per_step.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="mlp")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", nargs="+", default=["bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--phases", action="store_true", help="wall time per phase, no profiler")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        if args.phases:
            table = {p: phases(_trainer(args, p, tmp), args.steps) for p in args.precision}
            print(f"{args.variant}, batch {args.batch_size}, {threads} threads, {cpu_description()}, median ms per step "
                  f"over {args.steps} steps")
            print(f"{'phase':32s}" + "".join(f"{p:>10s}" for p in args.precision))
            for name in next(iter(table.values())):
                print(f"{name:32s}" + "".join(f"{table[p][name] * 1e3:10.3f}" for p in args.precision))
            return
        for precision in args.precision:
            trainer = _trainer(args, precision, tmp)
            with trusted_labels():
                start = time.perf_counter()
                for _ in range(args.steps):
                    trainer.train_step()
                plain = (time.perf_counter() - start) / args.steps
                with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                    for _ in range(args.steps):
                        trainer.train_step()
            print(f"{args.variant}, batch {args.batch_size}, {precision}, {threads} threads: "
                  f"{plain * 1e3:.2f} ms per step unprofiled ({args.batch_size / plain:.0f} img/s)")
            print(prof.key_averages(group_by_input_shape=True).table(
                sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=28, max_shapes_column_width=60))


if __name__ == "__main__":
    main()
