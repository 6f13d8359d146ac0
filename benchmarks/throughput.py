"""Images per second of ganforge's shared loop against a textbook reference loop, same run.

Both loops train the same architecture on the same 5,000 digits for the same number of steps.
ganforge's rounds time a whole ``fit()`` with the default checkpoint and sample cadence (every 1,000
steps), so a round of 1,000 steps pays for the one checkpoint and sample grid a real run writes
per 1,000 steps. Rounds alternate (reference, ganforge, reference, ...) so drift on a shared machine hits both;
the table reports each side's median and the ratio of medians.

    python benchmarks/throughput.py                       # mlp, batch 64, fp32
    python benchmarks/throughput.py --batch-sizes 16 64 256 1024 --precisions fp32 bf16
    python benchmarks/throughput.py --variants dcgan --data photos.zip   # streamed against resident
    python benchmarks/throughput.py --variants stylegan2 --image-size 32 --batch-sizes 32 --steps 20 \
        --set channel_base=4096 --set channel_max=128      # a smaller StyleGAN2, in both loops

With ``--data`` (a ZIP that `ganforge prepare` wrote, or a folder of images) the rows compare the two
ways ganforge feeds a run: the images held on the device ("resident") and read from their files by
DataLoader workers ("streamed"). Each round is a real ``ganforge train`` process, so that its peak
resident memory is measured too; its images per second are the median of its logged windows after
the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import seed_loop, write_mnist5k_for_torchvision  # noqa: E402
from tables import write_block  # noqa: E402

from ganforge import GanforgeError, TrainConfig, load_catalog  # noqa: E402
from ganforge.config import apply_sets  # noqa: E402
from ganforge.accel.speed import cpu_description  # noqa: E402
from ganforge.training import Trainer  # noqa: E402
from ganforge.variant import DataShape, build_models  # noqa: E402


def ganforge_rate(variant: str, batch: int, steps: int, precision: str, workdir: Path, compile_: bool,
                  device: str = "cpu", **settings: object) -> float:
    """Real images per second that D sees in a whole ``fit()`` (its final checkpoint and sample grid
    included): ``n_critic`` batches per step, as the reference loop counts its one."""
    config = TrainConfig(variant=variant, steps=steps, batch_size=batch, precision=precision, compile=compile_,
                         device=device, out=workdir / f"run-{time.monotonic_ns()}", **settings)
    trainer = Trainer(config)
    start = time.perf_counter()
    trainer.fit()
    return steps * batch * trainer.config.n_critic / (time.perf_counter() - start)


def reference_rate(variant: str, batch: int, steps: int, root: Path, device: str = "cpu",
                   image_size: int | None = None, model: dict[str, object] | None = None) -> float:
    spec = load_catalog().variants.get(variant)
    model_config = spec.make_config(model)
    torch.manual_seed(0)
    side = image_size or 28
    classes = 10 if spec.is_conditional(model_config) else None
    generator, discriminator = build_models(spec, model_config, DataShape(1, side, side, classes))
    return seed_loop(generator.to(device), discriminator.to(device), generator.latent_dim, root, steps,
                     batch_size=batch, device=device, image_size=image_size, num_classes=classes)


def model_settings(variant: str, sets: list[str]) -> dict[str, object]:
    """The ``--set KEY=VALUE`` model settings for ``variant``, validated; anything but a model setting is refused."""
    spec = load_catalog().variants.get(variant)
    settings: dict[str, object] = {}
    model: dict[str, object] = {}
    try:
        apply_sets(settings, sets, spec.config.model_fields)
        model = dict(settings.get("model", {}))  # type: ignore[call-overload]
        spec.make_config(model)
    except GanforgeError as exc:
        raise SystemExit(f"throughput.py: error: {exc}") from None
    if others := sorted(set(settings) - {"model"}):
        raise SystemExit(f"throughput.py: error: --set: only {variant}'s model settings apply here, not {', '.join(others)}")
    return model


def cli_round(variant: str, batch: int, steps: int, precision: str, data: Path, stream: bool, workdir: Path,
              model: dict[str, object]) -> tuple[float, int]:
    """Images per second and peak resident memory (bytes) of one ``ganforge train`` process."""
    out = workdir / f"run-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "ganforge", "train", variant, "--data", str(data), "--steps", str(steps),
               "--batch-size", str(batch), "--precision", precision, "--device", "cpu", "--out", str(out),
               "--set", f"data.stream={str(stream).lower()}", "--set", f"log_every={max(1, steps // 6)}",
               "--set", "checkpoint_every=1000000", "--set", "sample_every=1000000",
               *[arg for key, value in model.items() for arg in ("--set", f"model.{key}={json.dumps(value)}")]]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TQDM_DISABLE": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"throughput.py: {' '.join(command)} failed: {proc.stderr.read() if proc.stderr else ''}")
    rates = [json.loads(line)["images_per_s"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(rates[1:] or rates), usage.ru_maxrss * 1024


def compare_paths(args: argparse.Namespace, models: dict[str, dict[str, object]]) -> None:
    """Streamed against resident for each variant and batch size, with each process's peak memory."""
    from ganforge.data import load_data
    from ganforge.config import DataConfig
    from ganforge.resources import size_text

    name = "image-zip" if args.data.suffix.lower() == ".zip" else "image-folder"
    images, _ = load_data(load_catalog().datasets.get(name), DataConfig(name=name, data_dir=args.data))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_description()}")
    print(f"data: {args.data}, {len(images):,} images of {'x'.join(map(str, images.shape))}, "
          f"{size_text(images.nbytes)} decoded")
    header = (f"{'variant':8} {'batch':>5} {'precision':9} {'resident img/s':>15} {'streamed img/s':>15} {'ratio':>6} "
              f"{'resident RSS':>13} {'streamed RSS':>13}")
    print(header, flush=True)
    cells: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            for batch in args.batch_sizes:
                steps = max(20, args.steps * 64 // batch)
                for precision in args.precisions:
                    rounds: dict[bool, list[tuple[float, int]]] = {False: [], True: []}
                    for _ in range(args.rounds):
                        for stream in (False, True):
                            rounds[stream].append(cli_round(variant, batch, steps, precision, args.data, stream, Path(tmp),
                                                            models[variant]))
                    resident = statistics.median(r for r, _ in rounds[False])
                    streamed = statistics.median(r for r, _ in rounds[True])
                    peak = {s: max(m for _, m in rounds[s]) for s in rounds}
                    print(f"{variant:8} {batch:5d} {precision:9} {resident:15.0f} {streamed:15.0f} {streamed / resident:5.2f}x "
                          f"{size_text(peak[False]):>13} {size_text(peak[True]):>13}", flush=True)
                    cells.append([variant, str(batch), precision, f"{resident:.0f}", f"{streamed:.0f}",
                                  f"{streamed / resident:.2f}x", size_text(peak[False]), size_text(peak[True])])
    if args.markdown is not None:
        note = (f"{len(images):,} images of {'x'.join(map(str, images.shape))}, {size_text(images.nbytes)} decoded; "
                f"each cell the median of {args.rounds} `ganforge train` processes, RSS the largest peak among them")
        write_block(args.markdown, f"Streamed against resident: {args.data.name}",
                    ["variant", "batch", "precision", "resident img/s", "streamed img/s", "ratio", "resident peak RSS",
                     "streamed peak RSS"], cells, note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["mlp"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64])
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=1000, help="steps per timed round at batch 64 (scaled by 64/batch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also torch.compile ganforge's models")
    parser.add_argument("--image-size", type=int, help="resize the digits to this side, for variants that need "
                                                       "another (stylegan2: 32)")
    parser.add_argument("--data", type=Path, help="a prepared ZIP or a folder of images: compare streamed with resident")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a model setting (channel_base=4096) for every variant measured, in both loops")
    parser.add_argument("--markdown", type=Path, help="also write the table into this Markdown page (docs/results/...)")
    args = parser.parse_args()
    models = {variant: model_settings(variant, args.sets) for variant in args.variants}  # refuse a bad --set up front
    if args.data is not None:
        compare_paths(args, models)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_description()}")
    header = f"{'variant':8} {'batch':>5} {'precision':9} {'reference img/s':>16} {'ganforge img/s':>15} {'ratio':>6}"
    rows: list[str] = []
    cells: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_mnist5k_for_torchvision(Path(tmp) / "data")
        for variant in args.variants:
            for batch in args.batch_sizes:
                steps = max(20, args.steps * 64 // batch)
                model = models[variant]
                sized = {"data": {"name": "mnist5k", "image_size": args.image_size}} if args.image_size else {}
                sized["model"] = model
                reference_rate(variant, batch, 10, root, image_size=args.image_size, model=model)  # warm-up
                refs = []
                for precision in args.precisions:
                    ganforge_rate(variant, batch, 10, precision, Path(tmp), args.compile, **sized)  # warm-up
                    ours = []
                    for _ in range(args.rounds):
                        if len(refs) < args.rounds:
                            refs.append(reference_rate(variant, batch, steps, root, image_size=args.image_size,
                                                       model=model))
                        ours.append(ganforge_rate(variant, batch, steps, precision, Path(tmp), args.compile, **sized))
                    ref, gf = statistics.median(refs), statistics.median(ours)
                    rows.append(f"{variant:8} {batch:5d} {precision:9} {ref:16.0f} {gf:15.0f} {gf / ref:5.2f}x")
                    cells.append([variant, str(batch), precision, f"{ref:.0f}", f"{gf:.0f}", f"{gf / ref:.2f}x"])
                    print(rows[-1] if len(rows) > 1 else header + "\n" + rows[-1], flush=True)
    note = ("reference: a textbook PyTorch loop over the same networks (fp32, BCE, one D step per G step, DataLoader + "
            "per-sample ToTensor, two G forwards, D loss into G, a print and host sync per step); ganforge: the variant's "
            "own recipe (its loss, D steps per G step, step terms, EMA); img/s: real images D sees per second; "
            f"medians of {args.rounds} alternating rounds")
    print(f"\n{note}\n{header}\n" + "\n".join(rows))
    if args.markdown is not None:
        write_block(args.markdown, "Training images per second against the reference loop",
                    ["variant", "batch", "precision", "reference img/s", "ganforge img/s", "ratio"], cells, note)


if __name__ == "__main__":
    main()
