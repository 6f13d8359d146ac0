"""Images per second on one CUDA GPU: mlp and dcgan at batch 64 and 1024, eager, with the whole step
captured as a CUDA graph, and with torch.compile (with and without its CUDA graphs), in fp32 and bf16,
and eager fp16 with loss scaling, against the textbook reference loop on the same GPU.

    python benchmarks/gpu.py            # about five minutes on an H100/H200-class GPU
    python benchmarks/gpu.py --variants stylegan2 --image-size 32 --batch-sizes 32

Each ganforge cell is the median of the loop's own images/s over its log windows, leaving out the
first two (compilation, warm-up and CUDA-graph capture happen there). ``--markdown docs/results/gpu.md``
puts the table into the results page.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import write_mnist5k_for_torchvision  # noqa: E402
from tables import write_block  # noqa: E402
from throughput import reference_rate  # noqa: E402

from ganforge import TrainConfig, train  # noqa: E402
from ganforge.runs import RunDir  # noqa: E402

SETTINGS = [  # (label, precision, compile, cuda_graphs, capture_step), cheapest to measure first
    ("fp32", "fp32", False, False, False),
    ("bf16", "bf16", False, False, False),
    ("fp16", "fp16", False, False, False),  # with loss scaling, for GPUs without bf16; never captured
    ("fp32+capture", "fp32", False, False, True),
    ("bf16+capture", "bf16", False, False, True),
    ("bf16+compile", "bf16", True, False, False),
    ("bf16+compile+graphs", "bf16", True, True, False),
]


def steady_rate(variant: str, batch: int, steps: int, precision: str, compile_: bool, graphs: bool, capture: bool,
                workdir: Path, image_size: int | None = None) -> float:
    out = workdir / f"{variant}-{batch}-{precision}-{compile_}-{graphs}-{capture}"
    # Each compiled fit starts from nothing, as a user's own process would (no graphs reused from
    # another batch size, which would make dynamo trace with dynamic shapes).
    torch._dynamo.reset()
    train(TrainConfig(variant=variant, steps=steps, batch_size=batch, precision=precision, compile=compile_,
                      cuda_graphs=graphs, capture_step=capture, device="cuda", log_every=max(1, steps // 10), checkpoint_every=10**9,
                      sample_every=10**9, out=out, data={"name": "mnist5k", "image_size": image_size}))
    rates = sorted(r["images_per_s"] for r in RunDir(out).read_metrics()[2:])
    return rates[len(rates) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["mlp", "dcgan"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 1024])
    parser.add_argument("--settings", nargs="+", default=[s[0] for s in SETTINGS], choices=[s[0] for s in SETTINGS])
    parser.add_argument("--seconds", type=float, default=4.0, help="rough length of each timed fit")
    parser.add_argument("--image-size", type=int, help="resize the digits to this side (stylegan2: 32)")
    parser.add_argument("--markdown", type=Path, help="also write the table into this Markdown page (docs/results/...)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA device")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    header = f"{'variant':8} {'batch':>5} {'settings':22} {'img/s':>10} {'x reference':>11}"
    print(header, flush=True)
    cells = [(variant, batch) for variant in args.variants for batch in args.batch_sizes]
    rows: dict[tuple[str, int], list[str]] = {cell: [] for cell in cells}
    table: dict[tuple[str, int], list[list[str]]] = {cell: [] for cell in cells}
    refs: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = write_mnist5k_for_torchvision(Path(tmp) / "data")
        for variant, batch in cells:
            probe = max(20, 2000 * 64 // batch // (8 if variant == "dcgan" else 1))
            ref = reference_rate(variant, batch, max(10, probe // 10), root, device="cuda", image_size=args.image_size)
            ref_steps = max(20, int(ref * args.seconds / batch))
            refs[variant, batch] = ref = reference_rate(variant, batch, ref_steps, root, device="cuda",
                                                        image_size=args.image_size)
            rows[variant, batch].append(f"{variant:8} {batch:5d} {'reference loop (fp32)':22} {ref:10.0f} {1.0:10.2f}x")
            table[variant, batch].append([variant, str(batch), "reference loop (fp32)", f"{ref:,.0f}", "1.00x"])
            print(rows[variant, batch][-1], flush=True)
        # Cheapest settings first, across every cell, so that a cut-short run still has the main figures.
        for label, precision, compile_, graphs, capture in SETTINGS:
            if label not in args.settings:
                continue
            for variant, batch in cells:
                ref = refs[variant, batch]
                try:
                    steps = max(200, int(ref * args.seconds * (3 if variant == "mlp" else 2) / batch))
                    rate = steady_rate(variant, batch, steps, precision, compile_, graphs, capture, Path(tmp),
                                       args.image_size)
                    row = f"{variant:8} {batch:5d} {label:22} {rate:10.0f} {rate / ref:10.2f}x"
                    table[variant, batch].append([variant, str(batch), label, f"{rate:,.0f}", f"{rate / ref:.2f}x"])
                except Exception as exc:  # noqa: BLE001 - a failing setting is a result too
                    row = f"{variant:8} {batch:5d} {label:22} failed: {type(exc).__name__}: {str(exc)[:80]}"
                    table[variant, batch].append([variant, str(batch), label, "failed", f"{type(exc).__name__}"])
                rows[variant, batch].append(row)
                print(row, flush=True)
    print("\n" + header)
    for cell in cells:
        print("\n".join(rows[cell]))
    if args.markdown is not None:
        write_block(args.markdown, f"{', '.join(args.variants)}, {len(args.settings)} settings",
                    ["variant", "batch", "settings", "img/s", "x reference"], [r for cell in cells for r in table[cell]])


if __name__ == "__main__":
    main()
