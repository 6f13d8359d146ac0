"""The quality each variant's default recipe reaches, against a textbook reference loop, scored in
the same run by the same two evaluators on the same number of steps.

    python benchmarks/quality.py --data mnist5k fashion-mnist --epochs 20
    python benchmarks/quality.py --data fashion-mnist --variants cgan --seeds 0 1 2   # and their mean
    python benchmarks/quality.py --data mnist5k --variants dcgan --subset 500 --augment none diffaugment ada --seeds 0 1 2

``--subset N`` trains on a class-balanced N-image subset for as many steps as the full data would
take, scored against the full data; ``--augment`` and ``--reg`` add one row group per choice ("none"
for neither). With several ``--seeds``, each group is tested against the first, paired by training
seed, on both evaluators; it counts as better or worse only when both agree.

Two reference rows: ``reference`` is a textbook PyTorch loop as written (its data in [0, 1]);
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
from tables import write_block  # noqa: E402

from ganforge import TrainConfig, load_catalog, load_run, train  # noqa: E402
from ganforge.config import DataConfig  # noqa: E402
from ganforge.data import load_data  # noqa: E402
from ganforge.metrics.evaluate import Evaluation, embed_images, score  # noqa: E402
from ganforge.metrics.comparison import fewest_paired_sets, smallest_p  # noqa: E402
from ganforge.metrics.scoring import permutation_test  # noqa: E402
from ganforge.sampling import generate_chunks  # noqa: E402
from ganforge.variant import build_models  # noqa: E402
from ganforge.variant import DataShape  # noqa: E402

SAMPLES = 5000
MEAN_KEYS = ("fid", "fid2", "kid", "precision", "recall", "modes", "conditional_accuracy")


COLUMNS = ("variant", "seed", "data", "steps", "wall s", "cFID", "cFID2", "KID", "prec", "recall", "modes",
           "cond acc (se)")
WIDTHS = (22, 4, 14, 6, 7, 8, 8, 8, 5, 6, 5, 13)


def cells(variant: str, seed: int | str, data: str, steps: int, wall: float, f: dict) -> list[str]:
    """One row's cells, as the printed table and the Markdown one show them."""
    cond = "-"
    if "conditional_accuracy" in f:
        se = f.get("conditional_accuracy_se")
        cond = f"{f['conditional_accuracy']:.3f}" + (f" ({se:.3f})" if se is not None else "")
    return [variant, str(seed), data, str(steps), f"{wall:.0f}", f"{f['fid']:.3f}",
            f"{f['fid2']:.3f}" if "fid2" in f else "-", f"{f['kid']:.4f}", f"{f['precision']:.2f}",
            f"{f['recall']:.2f}", f"{f['modes']:g}" if "modes" in f else "-", cond]


def line(values: list[str]) -> str:
    return " ".join(v.ljust(w) if i in (0, 2) else v.rjust(w) for i, (v, w) in enumerate(zip(values, WIDTHS)))


HEADER = line(list(COLUMNS))


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


def arm_verdicts(by_arm: dict[str, list[dict]], alpha: float = 0.05) -> list[str]:
    """Each arm against the first (no augmentation, no regulariser), seed by seed: a paired
    permutation test on cFID and on cFID2. An arm counts as better only when both evaluators say so."""
    labels = list(by_arm)
    if len(labels) < 2 or len(by_arm[labels[0]]) < 2:
        return []
    base, out = by_arm[labels[0]], []
    for label in labels[1:]:
        runs = by_arm[label]
        parts, signs = [], set()
        for key, name in (("fid", "cFID"), ("fid2", "cFID2")):
            if key not in runs[0]:
                continue
            a, b = [r[key] for r in runs], [r[key] for r in base]
            p = permutation_test(a, b, paired=True)
            signs.add(("lower" if statistics.fmean(a) < statistics.fmean(b) else "higher") if p < alpha else "same")
            parts.append(f"{name} {statistics.fmean(a):.3f} vs {statistics.fmean(b):.3f} (p = {p:.3g})")
        if signs == {"lower"}:
            verdict = "better: both evaluators agree"
        elif signs == {"higher"}:
            verdict = "worse: both evaluators agree"
        elif smallest_p(len(runs), len(runs), paired=True) >= alpha:
            verdict = (f"not shown either way: {len(runs)} seeds cannot reach p < {alpha} in a paired test "
                       f"({fewest_paired_sets(alpha)} can)")
        else:
            verdict = "no difference beyond the seeds' spread on both evaluators"
        out.append(f"{label} against {labels[0]}, paired by training seed: {'; '.join(parts)}: {verdict}")
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
    parser.add_argument("--markdown", type=Path, help="also write the table into this Markdown page (docs/results/...)")
    args = parser.parse_args()
    table: list[list[str]] = []
    verdicts: list[str] = []

    def show(*values) -> None:
        table.append(cells(*values))
        print(line(table[-1]), flush=True)

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
                if variant in ("reference", "reference-normalised"):  # the textbook loop: seed 0 only
                    wall, figures = reference_figures(data_name, data, steps, scorer, Path(tmp),
                                                      normalise=variant == "reference-normalised")
                    show(variant, 0, data_name, steps, wall, figures)
                    continue
                by_arm: dict[str, list[dict]] = {}
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
                        show(label, seed, data_name, steps, walls[-1], runs[-1])
                    if len(runs) > 1:
                        show(label, "mean", data_name, steps, statistics.fmean(walls), mean_figures(runs))
                        show(label, "sd", data_name, steps, statistics.stdev(walls), sd_figures(runs))
                    by_arm[label] = runs
                verdicts.extend(arm_verdicts(by_arm))
    names = ", ".join(evaluators)
    trained_on = f"a class-balanced subset of {args.subset} images (seed 0) for as many steps as all of them take" \
        if args.subset else "all of it"
    summary = (f"evaluators: {names}; {SAMPLES} samples vs {SAMPLES} training images (seed 0); trained on {trained_on}; "
               "reference = a textbook MLP GAN loop (BCE, Adam 2e-4, batch 64), -normalised with its data in [-1, 1]")
    print(f"\n{summary}")
    for verdict in verdicts:
        print(verdict)
    if args.markdown is not None:
        title = f"{', '.join(args.data)}: {args.epochs:g} epochs at batch 64"
        write_block(args.markdown, title, COLUMNS, table, "\n\n".join([summary, *verdicts]))


if __name__ == "__main__":
    main()
