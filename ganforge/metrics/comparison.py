"""``ganforge compare``: several runs scored on the same sample sets, with a mean and 95% interval per
metric, and a test per pair of whether one is better beyond the noise of the samples and, where the
data set has a second evaluator, whether the second agrees."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import Catalog, load_catalog
from ..errors import GanforgeError
from .protocols import protocol as named_protocol
from .scoring import (COMPARED, MAX_REPEATS, SMALLER_IS_BETTER, check_sample_seeds, interval, permutation_test,
                      prepare_scoring, score_generator)

PAIRED_TEST = "paired sign-flip permutation test over sample sets"
UNPAIRED_TEST = "permutation test over sample sets"


@dataclass
class Group:
    """Runs scored together: one run, or runs that differ only by their training seed (pooled)."""

    names: list[str]
    evaluator: str
    sets: list[dict[str, Any]] = field(default_factory=list)
    """Each sample set's figures, from every run of the group."""
    cross_evaluator: str | None = None
    cross_sets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " + ".join(self.names)

    def summary(self, metric: str, cross: bool = False) -> tuple[float, float]:
        """Mean and 95% half-interval of ``metric`` over the sample sets."""
        return interval([s[metric] for s in (self.cross_sets if cross else self.sets)])


@dataclass(frozen=True)
class PairTest:
    """Whether ``a`` or ``b`` is better at ``metric``: ``better`` is the label of the winner, or None
    where the noise cannot tell them apart or the two evaluators disagree (``verdict`` says which)."""

    metric: str
    a: str
    b: str
    test: str
    p_value: float
    cross_p_value: float | None
    better: str | None
    verdict: str


@dataclass
class Comparison:
    groups: list[Group]
    metrics: list[str]
    tests: list[PairTest]
    alpha: float


def _group_key(config: dict[str, Any], pool_seeds: bool, path: Path) -> str:
    """Runs that differ only by their seed (and where they were written) pool into one group."""
    if not pool_seeds:
        return str(path)
    train = {k: v for k, v in config["train"].items() if k not in ("seed", "out")}
    return json.dumps({"variant": config["variant"], "model": config["model"], "train": train}, sort_keys=True)


def _better(metric: str, a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` is better than ``b`` at ``metric`` on average."""
    lower = statistics.fmean(a) < statistics.fmean(b)
    return lower if metric in SMALLER_IS_BETTER else not lower


def _test(metric: str, a: Group, b: Group, alpha: float) -> PairTest:
    paired = len(a.names) == len(b.names) == 1  # the same sample seeds through two generators
    name = PAIRED_TEST if paired else UNPAIRED_TEST
    va, vb = [s[metric] for s in a.sets], [s[metric] for s in b.sets]
    p = permutation_test(va, vb, paired=paired)
    winner = a if _better(metric, va, vb) else b
    cross_p = None
    if a.cross_evaluator and b.cross_evaluator and all(metric in s for s in a.cross_sets + b.cross_sets):
        ca, cb = [s[metric] for s in a.cross_sets], [s[metric] for s in b.cross_sets]
        cross_p = permutation_test(ca, cb, paired=paired)
        cross_winner = a if _better(metric, ca, cb) else b
    if p >= alpha:
        return PairTest(metric, a.label, b.label, name, p, cross_p, None, f"not told apart (p = {p:.3g})")
    if cross_p is None:
        return PairTest(metric, a.label, b.label, name, p, None, winner.label, f"{winner.label} is better (p = {p:.3g})")
    if cross_p < alpha and cross_winner is winner:
        return PairTest(metric, a.label, b.label, name, p, cross_p, winner.label,
                        f"{winner.label} is better (p = {p:.3g}; {a.cross_evaluator} agrees, p = {cross_p:.3g})")
    return PairTest(metric, a.label, b.label, name, p, cross_p, None,
                    f"not settled: {a.evaluator} finds {winner.label} better (p = {p:.3g}), {a.cross_evaluator} "
                    + ("finds the other better" if cross_p < alpha else "cannot tell them apart") + f" (p = {cross_p:.3g})")


def smallest_p(m: int, n: int, *, paired: bool) -> float:
    """The smallest two-sided p-value a permutation test can give: 2 of the 2^n sign flips of ``n``
    paired differences, or 2 of the C(m+n, m) splits of ``m`` and ``n`` values."""
    return 2 / 2 ** n if paired else 2 / math.comb(m + n, m)


def fewest_paired_sets(alpha: float) -> int:
    """The fewest paired sample sets whose sign-flip test can reach ``alpha``."""
    return next(k for k in range(2, 64) if smallest_p(k, k, paired=True) < alpha)


def compare_models(paths: Sequence[Path], *, repeats: int = 10, n: int = 5000, seed: int = 0, protocol: str | None = None,
                   evaluator: str | None = None, weights: Path | None = None, checkpoint: str | int = "last",
                   device: str = "auto", pool_seeds: bool = True, alpha: float = 0.05,
                   catalog: Catalog | None = None) -> Comparison:
    """Score each run (or exported model) on ``repeats`` sample sets of ``n`` and test every pair.

    Every run draws its sample sets from the same seeds, so two single runs are compared set by set
    (paired); runs that differ only by their training seed pool into one group (``pool_seeds``),
    compared unpaired. A pair counts as told apart only where the data set's second evaluator, if it
    has one, agrees (``evaluator`` names one evaluator instead, with no second opinion).
    """
    from ..export import load_model

    if len(paths) < 2:
        raise GanforgeError("name at least two runs to compare")
    if not 2 <= repeats <= MAX_REPEATS:
        raise GanforgeError(f"--repeats {repeats}: a comparison needs 2 to {MAX_REPEATS} sample sets per run")
    check_sample_seeds(seed, repeats)
    if not 0 < alpha < 1:
        raise GanforgeError(f"--alpha {alpha}: give a significance level between 0 and 1, e.g. 0.05")
    if protocol is not None:
        named_protocol(protocol)
    catalog = catalog or load_catalog()
    groups: dict[str, Group] = {}
    scorings: dict[str, Any] = {}
    data_names: set[str] = set()
    for path in paths:
        loaded = load_model(path, checkpoint, device=device, catalog=catalog)
        data_names.add(catalog.datasets.get(loaded.config["train"]["data"]["name"]).name)
        if len(data_names) > 1:
            raise GanforgeError(f"{path}: trained on other data than the runs before it ({', '.join(sorted(data_names))}); "
                                "compare runs on the same data set")
        key = _group_key(loaded.config, pool_seeds, path)
        if key not in scorings:
            scorings[key] = prepare_scoring(loaded.config, catalog, loaded.device, n=n, seed=seed, protocol=protocol,
                                            evaluator=evaluator, weights=weights)
        scoring = scorings[key]
        scored = score_generator(scoring, loaded.generator, repeats=repeats)
        group = groups.setdefault(key, Group([], scoring.evaluation.evaluator.name,
                                             cross_evaluator=scoring.cross.evaluator.name if scoring.cross else None))
        group.names.append(str(path))
        group.sets.extend(scored["per_repeat"])
        if "cross_check" in scored:
            group.cross_sets.extend(scored["cross_check"]["per_repeat"])
    ordered = list(groups.values())
    if len(ordered) < 2:
        raise GanforgeError("these runs differ only by their seed and pool into one group; pass --no-pool-seeds to "
                            "compare them with each other")
    smallest = max(smallest_p(len(a.sets), len(b.sets), paired=len(a.names) == len(b.names) == 1)
                   for i, a in enumerate(ordered) for b in ordered[i + 1:])
    if smallest >= alpha:
        raise GanforgeError(f"--repeats {repeats}: with so few sample sets no test can reach p < {alpha} (the smallest "
                            f"p-value possible is {smallest:.3g}); use --repeats {fewest_paired_sets(alpha)} or more")
    metrics = [m for m in COMPARED if all(m in g.sets[0] for g in ordered)]
    tests = [_test(m, a, b, alpha) for i, a in enumerate(ordered) for b in ordered[i + 1:] for m in metrics]
    return Comparison(ordered, metrics, tests, alpha)
