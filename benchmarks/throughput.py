"""Images per second of ganforge's shared loop against the seed-style reference loop, same run.

Both loops train the same architecture on the same 5,000 digits for the same number of steps.
ganforge's rounds time a whole ``fit()`` with the default checkpoint and sample cadence (every 1,000
steps), so a round of 1,000 steps pays for the one checkpoint and sample grid a real run writes
per 1,000 steps. Rounds alternate (reference, ganforge, reference, ...) so drift on a shared machine hits both;
the table reports each side's median and the ratio of medians.

    python benchmarks/throughput.py                       # mlp, batch 64, fp32
    python benchmarks/throughput.py --batch-sizes 16 64 256 1024 --precisions fp32 bf16
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import seed_loop, write_mnist5k_for_torchvision  # noqa: E402

from ganforge import TrainConfig, load_catalog  # noqa: E402
from ganforge.accel.speed import cpu_description  # noqa: E402
from ganforge.training import Trainer  # noqa: E402
from ganforge.variant import DataShape, build_models  # noqa: E402


def ganforge_rate(variant: str, batch: int, steps: int, precision: str, workdir: Path, compile_: bool,
                  device: str = "cpu", **settings: object) -> float:
    """Images per second of a whole ``fit()`` (its final checkpoint and sample grid included)."""
    config = TrainConfig(variant=variant, steps=steps, batch_size=batch, precision=precision, compile=compile_,
                         device=device, out=workdir / f"run-{time.monotonic_ns()}", **settings)
    trainer = Trainer(config)
    start = time.perf_counter()
    trainer.fit()
    return steps * batch / (time.perf_counter() - start)


def reference_rate(variant: str, batch: int, steps: int, root: Path, device: str = "cpu") -> float:
    spec = load_catalog().variants.get(variant)
    model_config = spec.make_config()
    torch.manual_seed(0)
    generator, discriminator = build_models(spec, model_config, DataShape(1, 28, 28))
    return seed_loop(generator.to(device), discriminator.to(device), generator.latent_dim, root, steps,
                     batch_size=batch, device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["mlp"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64])
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=1000, help="steps per timed round at batch 64 (scaled by 64/batch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also torch.compile ganforge's models")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_description()}")
    header = f"{'variant':8} {'batch':>5} {'precision':9} {'reference img/s':>16} {'ganforge img/s':>15} {'ratio':>6}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_mnist5k_for_torchvision(Path(tmp) / "data")
        for variant in args.variants:
            for batch in args.batch_sizes:
                steps = max(20, args.steps * 64 // batch)
                reference_rate(variant, batch, 10, root)  # warm-up
                refs = []
                for precision in args.precisions:
                    ganforge_rate(variant, batch, 10, precision, Path(tmp), args.compile)  # warm-up
                    ours = []
                    for _ in range(args.rounds):
                        if len(refs) < args.rounds:
                            refs.append(reference_rate(variant, batch, steps, root))
                        ours.append(ganforge_rate(variant, batch, steps, precision, Path(tmp), args.compile))
                    ref, gf = statistics.median(refs), statistics.median(ours)
                    rows.append(f"{variant:8} {batch:5d} {precision:9} {ref:16.0f} {gf:15.0f} {gf / ref:5.2f}x")
                    print(rows[-1] if len(rows) > 1 else header + "\n" + rows[-1], flush=True)
    print()
    print("reference: the seed's loop (fp32, DataLoader + per-sample ToTensor, two G forwards, D loss into G, "
          "a print and host sync per step)")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
