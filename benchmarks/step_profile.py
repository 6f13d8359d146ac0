"""Where one training step's time goes: torch.profiler over ganforge's ``train_step``, by op and shape.

    python benchmarks/step_profile.py                          # mlp, batch 64, bf16, 200 steps
    python benchmarks/step_profile.py --variant dcgan --precision fp32 --batch-size 256
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch
from torch.profiler import ProfilerActivity, profile

from ganforge import TrainConfig
from ganforge.nn import trusted_labels
from ganforge.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="mlp")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(TrainConfig(variant=args.variant, steps=args.steps, batch_size=args.batch_size,
                                      precision=args.precision, device="cpu", out=Path(tmp) / "run"))
        trainer.fit()  # warm-up, and sets up the loss accumulators train_step adds to
        with trusted_labels():
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step()
            plain = (time.perf_counter() - start) / args.steps
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                for _ in range(args.steps):
                    trainer.train_step()
    print(f"{args.variant}, batch {args.batch_size}, {args.precision}, {torch.get_num_threads()} threads: "
          f"{plain * 1e3:.2f} ms per step unprofiled ({args.batch_size / plain:.0f} img/s)")
    print(prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=28, max_shapes_column_width=60))


if __name__ == "__main__":
    main()
