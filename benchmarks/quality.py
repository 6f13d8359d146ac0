"""The quality each variant's default recipe reaches, against the seed-style reference loops, scored in
the same run by the same two evaluators on the same number of steps.

    python benchmarks/quality.py --data mnist5k fashion-mnist --epochs 20
    python benchmarks/quality.py --data fashion-mnist --variants cgan --seeds 0 1 2   # and their mean
    python benchmarks/quality.py --data mnist5k --variants dcgan --subset 500 --augment none diffaugment ada --seeds 0 1 2

``--subset N`` trains on a class-balanced N-image subset for as many steps as the full data would
take, scored against the full data; ``--augment`` and ``--reg`` add one row group per choice ("none"
for neither).

Two reference rows: ``reference`` is the seed's loop as written (its data in [0, 1]);
``reference-normalised`` adds the one fix a careful reader makes, data normalised to [-1, 1]
like the generator's output, and is the stronger bar.

Each row: variant, data, steps, wall time, FID on the evaluator's features (cFID), the same on the
data set's independent second evaluator (cFID2: a change counts as better only when both agree),
KID, precision, recall, classes covered, and for conditional variants the share of samples
classified as the class asked for, with its standard error in brackets (the sampling noise of
5,000 samples, not the spread between training seeds). 5,000 samples against 5,000 training
images (seed 0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import seed_loop, write_for_torchvision  # noqa: E402

from ganforge import TrainConfig, load_catalog, load_run, train  # noqa: E402
from ganforge.config import DataConfig  # noqa: E402
from ganforge.data import load_data  # noqa: E402
from ganforge.metrics.evaluate import Evaluation, embed_images, score  # noqa: E402
from ganforge.sampling import generate_chunks  # noqa: E402
from ganforge.variant import build_models  # noqa: E402
from ganforge.variant import DataShape  # noqa: E402

SAMPLES = 5000
HEADER = (f"{'variant':22} {'seed':>4} {'data':14} {'steps':>6} {'wall s':>7} {'cFID':>8} {'cFID2':>8} {'KID':>8} "
          f"{'prec':>5} {'recall':>6} {'modes':>5} {'cond acc (se)':>13}")
MEAN_KEYS = ("fid", "fid2", "kid", "precision", "recall", "modes", "conditional_accuracy")


def row(variant: str, seed: int | str, data: str, steps: int, wall: float, f: dict) -> str:
    cond = "-"
    if "conditional_accuracy" in f:
        se = f.get("conditional_accuracy_se")
        cond = f"{f['conditional_accuracy']:.3f}" + (f" ({se:.3f})" if se is not None else "")
    modes = f"{f['modes']:g}" if "modes" in f else "-"
    second = f"{f['fid2']:8.3f}" if "fid2" in f else f"{'-':>8}"
    return (f"{variant:22} {seed:>4} {data:14} {steps:6d} {wall:7.0f} {f['fid']:8.3f} {second} {f['kid']:8.4f} "
            f"{f['precision']:5.2f} {f['recall']:6.2f} {modes:>5} {cond:>13}")


def mean_figures(runs: list[dict]) -> dict:
    """Each figure's mean over training seeds."""
    return {k: statistics.fmean(r[k] for r in runs) for k in MEAN_KEYS if k in runs[0]}


def sd_figures(runs: list[dict]) -> dict:
    """Each figure's standard deviation over training seeds: how far a seed moves it."""
    return {k: statistics.stdev(r[k] for r in runs) for k in MEAN_KEYS if k in runs[0]}


def arms(augments: list[str], regs: list[str]) -> list[tuple[str, dict]]:
    """(label suffix, extra TrainConfig settings) for each pairing of an augmentation and a regulariser."""
    out = []
    for augment in augments:
        for reg in regs:
            settings: dict = {}
            label = ""
            if augment != "none":
                settings["augment"] = {"name": augment}
                label += f"+{augment}"
            if reg != "none":
                settings["regularizers"] = [{"name": reg}]
                label += f"+{reg}"
            out.append((label, settings))
    return out


class Scorer:
    """The data set's evaluator and its second one, each with its reference features, made once."""

    def __init__(self, dataset, data, metrics: list) -> None:
        self.first = Evaluation(dataset, data, metrics, SAMPLES, 0, torch.device("cpu"))
        self.second = (Evaluation(dataset, data, metrics, SAMPLES, 0, torch.device("cpu"), evaluator=dataset.cross_evaluator)
                       if dataset.cross_evaluator else None)

    def generator(self, generator: torch.nn.Module) -> dict:
        figures = self.first.run(generator)
        if self.second is not None:
            figures["fid2"] = self.second.run(generator)["fid"]
        return figures

    def images(self, images: torch.Tensor) -> dict:
        first = self.first
        figures = score(embed_images(first.evaluator, images), first.reference, first.evaluator, first.metrics)
        if self.second is not None:
            second = self.second
            figures["fid2"] = score(embed_images(second.evaluator, images), second.reference, second.evaluator,
                                    second.metrics)["fid"]
        return figures

    def names(self) -> list[str]:
        return [f"{e.evaluator.name} (sha256 {e.evaluator.sha256[:16]}...)" for e in (self.first, self.second) if e]


def reference_figures(data_name: str, data, steps: int, scorer: Scorer, workdir: Path, normalise: bool) -> tuple[float, dict]:
    from torchvision.datasets import MNIST, FashionMNIST

    folder, cls = ("FashionMNIST", FashionMNIST) if data_name == "fashion-mnist" else ("MNIST", MNIST)
    root = write_for_torchvision(data, workdir / f"tv-{data_name}", folder)
    spec = load_catalog().variants.get("mlp")
    torch.manual_seed(0)
    generator, discriminator = build_models(spec, spec.make_config(), DataShape(1, 28, 28))
    start = time.perf_counter()
    seed_loop(generator, discriminator, generator.latent_dim, root, steps, dataset_class=cls, normalise=normalise)
    wall = time.perf_counter() - start
    images = torch.cat([chunk for chunk, _ in generate_chunks(generator, SAMPLES)])
    # The seed as written trains on ToTensor's [0, 1] images, so its samples mean [0, 1]; map them to [-1, 1].
    return wall, scorer.images(images if normalise else images * 2 - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["mnist5k", "fashion-mnist"])
    parser.add_argument("--variants", nargs="+",
                        default=["reference", "reference-normalised", "mlp", "dcgan", "cgan", "cdcgan"])
    parser.add_argument("--epochs", type=float, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="train each variant once per seed; with several, a 'mean' row follows")
    parser.add_argument("--out", type=Path, default=Path("runs/quality"))
    parser.add_argument("--subset", type=int, help="train on a class-balanced subset of this many images")
    parser.add_argument("--augment", nargs="+", default=["none"], help="augmentations to compare (none: without)")
    parser.add_argument("--reg", nargs="+", default=["none"], help="regularisers to compare (none: without)")
    args = parser.parse_args()
    catalog = load_catalog()
    evaluators: dict[str, None] = {}
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for data_name in args.data:
            dataset = catalog.datasets.get(data_name)
            data = load_data(dataset, DataConfig(name=data_name, download=False))[0].resident()
            scorer = Scorer(dataset, data, [e.value for e in catalog.metrics])
            evaluators.update(dict.fromkeys(scorer.names()))
            steps = int(args.epochs * (len(data.images) // 64))
            for variant in args.variants:
                if variant in ("reference", "reference-normalised"):  # the seed's loop: seed 0 only
                    wall, figures = reference_figures(data_name, data, steps, scorer, Path(tmp),
                                                      normalise=variant == "reference-normalised")
                    print(row(variant, 0, data_name, steps, wall, figures), flush=True)
                    continue
                for suffix, extra in arms(args.augment, args.reg):
                    label = variant + suffix
                    data_settings = {"name": data_name, **({"subset": args.subset} if args.subset else {})}
                    runs, walls = [], []
                    for seed in args.seeds:
                        out = args.out / f"{label}-{data_name}-seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
                        start = time.perf_counter()
                        train(TrainConfig(variant=variant, steps=steps, seed=seed, data=data_settings, out=out,
                                          sample_every=max(1, steps // 4), **extra))
                        walls.append(time.perf_counter() - start)
                        runs.append(scorer.generator(load_run(out, device="cpu").generator))
                        (out / "quality.json").write_text(json.dumps(runs[-1], indent=2))
                        print(row(label, seed, data_name, steps, walls[-1], runs[-1]), flush=True)
                    if len(runs) > 1:
                        print(row(label, "mean", data_name, steps, statistics.fmean(walls), mean_figures(runs)), flush=True)
                        print(row(label, "sd", data_name, steps, statistics.stdev(walls), sd_figures(runs)), flush=True)
    names = ", ".join(evaluators)
    trained_on = f"a class-balanced subset of {args.subset} images (seed 0) for as many steps as all of them take" \
        if args.subset else "all of it"
    print(f"\nevaluators: {names}; {SAMPLES} samples vs {SAMPLES} training images (seed 0); trained on {trained_on}; "
          "reference = the seed's loop (MLP, BCE, Adam 2e-4, batch 64), -normalised with its data in [-1, 1]")


if __name__ == "__main__":
    main()
