"""Two sets of training settings, alternating in one process: milliseconds per step of each, and the ratio.

For a speed setting whose gain is smaller than this machine's noise between runs: both trainers warm
up, then short rounds of ``train_step`` alternate (A, B, A, B, ...), so drift hits both alike, and the
table gives each side's median round and the median of the paired ratios.

    python benchmarks/settings_ab.py --precision bf16 --a bf16_weights=true --b bf16_weights=false
    python benchmarks/settings_ab.py --variant dcgan --a channels_last=true --b channels_last=false
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")

import torch

from ganforge import GanforgeError, TrainConfig, load_catalog
from ganforge.config import apply_sets
from ganforge.nn import trusted_labels
from ganforge.accel.speed import cpu_description
from ganforge.training import Trainer


def _trainer(args: argparse.Namespace, side: str, sets: list[str], out: Path) -> Trainer:
    settings: dict[str, Any] = {"variant": args.variant, "steps": args.warmup, "batch_size": args.batch_size,
                                "precision": args.precision, "device": "cpu", "out": out}
    catalog = load_catalog()
    apply_sets(settings, sets, catalog.variants.get(args.variant).config.model_fields, flag=f"--{side}")
    trainer = Trainer(TrainConfig.model_validate(settings), catalog)
    trainer.fit()  # warm-up, and sets up the loss accumulators train_step adds to
    return trainer


def _round(trainer: Trainer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="mlp")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--a", nargs="+", default=[], metavar="KEY=VALUE", help="settings of side A (as --set)")
    parser.add_argument("--b", nargs="+", default=[], metavar="KEY=VALUE", help="settings of side B (as --set)")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=25, help="steps per round")
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            a, b = _trainer(args, "a", args.a, Path(tmp) / "a"), _trainer(args, "b", args.b, Path(tmp) / "b")
        except GanforgeError as exc:
            sys.exit(f"settings_ab.py: error: {exc}")
        times: dict[str, list[float]] = {"a": [], "b": []}
        with trusted_labels():
            for _ in range(args.rounds):
                times["a"].append(_round(a, args.steps))
                times["b"].append(_round(b, args.steps))
    ratio = statistics.median(tb / ta for ta, tb in zip(times["a"], times["b"]))
    print(f"{args.variant}, batch {args.batch_size}, {args.precision}, {torch.get_num_threads()} threads, "
          f"{cpu_description()}, {args.rounds} alternating rounds of {args.steps} steps")
    print(f"{'side':4} {'settings':40} {'ms/step':>8} {'img/s':>8}")
    for side, sets in (("A", args.a), ("B", args.b)):
        ms = statistics.median(times[side.lower()]) * 1e3
        print(f"{side:4} {' '.join(sets) or '(defaults)':40} {ms:8.3f} {args.batch_size / ms * 1e3:8.0f}")
    print(f"A is {ratio:.3f}x as fast as B (median of the paired round ratios)")


if __name__ == "__main__":
    main()
