"""Scoring a trained model as ``ganforge eval``, ``verify`` and ``compare`` do: on the data it was
trained on, with the evaluator recorded for it (a changed evaluator is refused, not silently used),
under a named protocol, and beside the data set's independent second evaluator."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..catalog import Catalog, load_catalog
from ..config import DataConfig
from ..data import load_data
from ..errors import GanforgeError
from .evaluate import Evaluation
from .protocols import protocol as named_protocol

T_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042}
"""Student's t quantile for a two-sided 95% interval, by degrees of freedom (interpolated between)."""
SMALLER_IS_BETTER = ("fid", "kid", "modes_kl")
COMPARED = ("fid", "kid", "precision", "recall", "modes", "conditional_accuracy", "is")


@dataclass
class Scoring:
    """The evaluations that score a model: with its evaluator, and with the data set's second one."""

    evaluation: Evaluation
    cross: Evaluation | None


def prepare_scoring(config: dict[str, Any], catalog: Catalog, device: torch.device, *, n: int, seed: int,
                    protocol: str | None = None, evaluator: str | None = None, weights: Path | None = None,
                    data_dir: Path | None = None, cross: bool = True) -> Scoring:
    """The evaluations for a model whose recorded config is ``config`` (a run's or an export's)."""
    data_config = DataConfig.model_validate(config["train"]["data"])
    if data_dir is not None:
        data_config = data_config.model_copy(update={"data_dir": data_dir})
    dataset = catalog.datasets.get(data_config.name)
    data, _ = load_data(dataset, data_config, catalog.origin("datasets", dataset.name))
    recorded = config.get("resolved", {}).get("evaluator") or {}
    name = evaluator or recorded.get("name") or dataset.evaluator
    chosen = named_protocol(protocol) if protocol else None
    metrics = [e.value for e in catalog.metrics]
    evaluation = Evaluation(dataset, data, metrics, n, seed, device, weights, evaluator=name, protocol=chosen)
    if evaluator is None and recorded.get("sha256") and recorded["sha256"] != evaluation.evaluator.sha256:
        raise GanforgeError(
            f"this model was scored with evaluator {name!r} sha256 {recorded['sha256'][:16]}..., and the one installed "
            f"now is {evaluation.evaluator.sha256[:16]}...; their figures do not compare: install the ganforge that "
            f"shipped it, or pass --evaluator {name} to score with the installed one anyway")
    second = None
    if cross and evaluator is None and dataset.cross_evaluator:
        second = Evaluation(dataset, data, metrics, n, seed, device, weights, evaluator=dataset.cross_evaluator,
                            protocol=chosen)
    return Scoring(evaluation, second)


MAX_REPEATS = 1000
"""The most sample sets one evaluation scores: each is a whole evaluation, and an interval narrows
as one over the square root of their number, so a larger request is a mistake, not a plan."""


def check_sample_seeds(seed: int, repeats: int) -> None:
    """Refuse sample sets whose seeds (``seed`` to ``seed + repeats - 1``) run past 2**32 - 1, the largest
    seed KID's subset sampling takes."""
    if seed + repeats - 1 > 2**32 - 1:
        raise GanforgeError(f"--seed {seed} with --repeats {repeats}: the sample sets' seeds run to {seed + repeats - 1}, "
                            f"past 2**32 - 1; give --seed {2**32 - repeats} or less")


def score_generator(scoring: Scoring, generator: torch.nn.Module, *, repeats: int = 1, truncation: float | None = None,
                    psi: float | None = None) -> dict[str, Any]:
    """The figures of ``repeats`` sample sets (their means and spreads where more than one), with the
    second evaluator's under ``cross_check``."""
    def one(evaluation: Evaluation, by_class: bool) -> dict[str, Any]:
        if repeats == 1:
            return evaluation.run(generator, truncation, by_class=by_class, psi=psi)
        return evaluation.repeat(generator, repeats, truncation, by_class=by_class, psi=psi)

    figures = one(scoring.evaluation, True)
    if scoring.cross is not None:
        second = one(scoring.cross, False)
        figures["cross_check"] = second
    return figures


def interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student's t; 0 for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    df = len(values) - 1
    known = sorted(T_95)
    t = T_95[df] if df in T_95 else (1.96 if df > known[-1] else T_95[min(k for k in known if k > df)])
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def permutation_test(a: Sequence[float], b: Sequence[float], *, paired: bool, rounds: int = 10_000,
                     seed: int = 0) -> float:
    """Two-sided p-value that ``a`` and ``b`` have the same mean: by flipping the signs of the
    differences of paired sets (the same sample seeds through two generators), else by shuffling the
    pooled values. Exact where there are fewer arrangements than ``rounds``."""
    rng = random.Random(seed)
    if paired:
        diffs = [x - y for x, y in zip(a, b)]
        observed = abs(statistics.fmean(diffs))
        if 2 ** len(diffs) <= rounds:
            signs = [[1 if (i >> j) & 1 else -1 for j in range(len(diffs))] for i in range(2 ** len(diffs))]
        else:
            signs = [[rng.choice((-1, 1)) for _ in diffs] for _ in range(rounds)]
        extreme = sum(abs(statistics.fmean(s * d for s, d in zip(flip, diffs))) >= observed - 1e-12 for flip in signs)
        return extreme / len(signs)
    pooled, n = list(a) + list(b), len(a)
    observed = abs(statistics.fmean(a) - statistics.fmean(b))
    extreme = 0
    for _ in range(rounds):
        rng.shuffle(pooled)
        extreme += abs(statistics.fmean(pooled[:n]) - statistics.fmean(pooled[n:])) >= observed - 1e-12
    return (extreme + 1) / (rounds + 1)


def evaluate_model(path: Path, *, n: int = 5000, seed: int = 0, repeats: int = 1, protocol: str | None = None,
                   evaluator: str | None = None, weights: Path | None = None, data_dir: Path | None = None,
                   checkpoint: str | int = "last", truncation: float | None = None, psi: float | None = None,
                   device: str = "auto", catalog: Catalog | None = None) -> dict[str, Any]:
    """Score a run directory's model (at ``checkpoint``) or an exported folder's, and write the figures
    to its eval.json: what ``ganforge eval`` does. ``protocol`` (e.g. ``fid50k_full``) overrides ``n``."""
    from ..evalfile import write_evaluation
    from ..export import load_model

    if protocol is None and n < 100:
        raise GanforgeError(f"--n {n}: use at least 100 samples (5000 or more for figures worth comparing)")
    if not 1 <= repeats <= MAX_REPEATS:
        raise GanforgeError(f"--repeats {repeats}: give 1 (one set of samples) to {MAX_REPEATS} (their mean and spread; "
                            "5 to 30 sets give an interval worth reporting)")
    check_sample_seeds(seed, repeats)
    if protocol is not None:
        named_protocol(protocol)
    catalog = catalog or load_catalog()
    loaded = load_model(path, checkpoint, device=device, catalog=catalog)
    scoring = prepare_scoring(loaded.config, catalog, loaded.device, n=n, seed=seed, protocol=protocol,
                              evaluator=evaluator, weights=weights, data_dir=data_dir)
    scored = score_generator(scoring, loaded.generator, repeats=repeats, truncation=truncation, psi=psi)
    figures = {"checkpoint": str(checkpoint), "step": loaded.step, "seed": seed, "truncation": truncation, "psi": psi,
               **scored}
    write_evaluation(loaded.path, figures)
    return figures
