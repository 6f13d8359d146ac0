"""Models you can share: ``ganforge export`` writes the sampling generator of a run (its EMA where it
keeps one) as safetensors, the config that rebuilds it, and a model card filled from its evaluation;
:func:`from_pretrained` loads such a folder, or a Hugging Face Hub repository with the same layout,
ready to sample.

The layout is huggingface_hub's convention for PyTorch models (``config.json`` beside
``model.safetensors``, ``README.md`` as the model card with YAML front matter), so a folder uploads
to the Hub as it is and ``from_pretrained("user/model")`` downloads it when the user is online.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from ._version import __version__
from .catalog import Catalog, load_catalog
from .config import validation_message
from .devices import pick_device
from .durable import atomic_write_bytes
from .errors import GanforgeError
from .evalfile import read_evaluation
from .metrics.protocols import PROTOCOLS
from .metrics.scoring import COMPARED, interval, prepare_scoring, score_generator
from .records import Resolved
from .sampling import LoadedRun, load_run
from .variant import DataShape, build_models

EXPORT_FORMAT = "ganforge-export/1"
WEIGHTS_FILE = "model.safetensors"


class ExportRecord(BaseModel):
    """An exported folder's config.json."""

    model_config = ConfigDict(extra="allow")

    format: str
    variant: str
    model: dict[str, Any]
    train: dict[str, Any]
    resolved: Resolved
    step: int
    provider: dict[str, Any]


def is_export(path: Path) -> bool:
    """Whether ``path`` is a folder that ``ganforge export`` wrote."""
    config = path / "config.json"
    if not (path.is_dir() and (path / WEIGHTS_FILE).is_file() and config.is_file()):
        return False
    try:
        return json.loads(config.read_text()).get("format") == EXPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def export_run(run_dir: Path, out: Path, *, checkpoint: str | int = "last", force: bool = False,
               catalog: Catalog | None = None) -> Path:
    """Write ``out``/model.safetensors, config.json and README.md for the run's sampling generator."""
    from safetensors.torch import save

    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise GanforgeError(f"--out {out}: {'exists' if out.is_dir() else 'is a file'}; name a new or empty folder, "
                            "or pass --force to replace what a folder holds")
    catalog = catalog or load_catalog()
    loaded = load_run(run_dir, checkpoint, device="cpu", catalog=catalog)
    entry = catalog.variants.entry(loaded.spec.name)
    info = catalog.pm.ganforge_info.get(entry.plugin)  # type: ignore[attr-defined]
    evaluation = _evaluation(loaded.run.path)
    record = {
        "format": EXPORT_FORMAT,
        "variant": loaded.spec.name,
        "model": loaded.config["model"],
        "train": loaded.config["train"],
        "resolved": loaded.config["resolved"],
        "step": loaded.step,
        "checkpoint": str(checkpoint),
        "provider": {"plugin": entry.plugin, "distribution": getattr(info, "distribution", None),
                     "version": getattr(info, "version", None)},
        "ganforge_version": __version__,
        "weights": "the EMA of G" if loaded.ema else "G",
        "evaluation": evaluation,
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GanforgeError(f"--out {out}: cannot make the folder ({exc.strerror or exc})") from None
    weights = {k: v.detach().contiguous() for k, v in loaded.generator.state_dict().items()}
    metadata = {"format": EXPORT_FORMAT, "variant": loaded.spec.name}
    atomic_write_bytes(out / WEIGHTS_FILE, save(weights, metadata=metadata), "the exported weights")
    atomic_write_bytes(out / "config.json", (json.dumps(record, indent=2, sort_keys=True) + "\n").encode(),
                       "the exported config.json")
    atomic_write_bytes(out / "README.md", model_card(record).encode(), "the model card")
    return out


def _evaluation(run_path: Path) -> dict[str, Any] | None:
    """The figures of the run's last ``ganforge eval`` that a card reports, with 95% intervals where
    it scored several sample sets; None where it was never evaluated."""
    figures = read_evaluation(run_path)
    if figures is None:
        return None
    repeats = int(figures.get("repeats", 1))
    summary: dict[str, Any] = {}
    for key in COMPARED:
        if isinstance(figures.get(key), (int, float)):
            per = [r[key] for r in figures.get("per_repeat", []) if isinstance(r.get(key), (int, float))]
            mean, half = interval(per) if len(per) > 1 else (figures[key], None)
            summary[key] = {"value": mean, "interval95": half}
    keys = ("protocol", "evaluator", "evaluator_sha256", "comparable_with_published", "resize", "n", "reference", "seed",
            "truncation", "psi", "step")
    return {**{k: figures.get(k) for k in keys}, "repeats": repeats, "figures": summary}


def model_card(record: dict[str, Any]) -> str:
    """README.md for an exported model: what it is, how to sample it, how it was trained and scored."""
    train, resolved, evaluation = record["train"], record["resolved"], record.get("evaluation")
    provider = record["provider"]
    install = provider["distribution"] if provider["distribution"] not in (None, "ganforge") else "ganforge"
    c, h, w, classes = resolved["data_shape"]
    lines = [
        "---", "library_name: ganforge", f"tags: [gan, ganforge, {record['variant']}]", "---", "",
        f"# {record['variant']} on {train['data']['name']}", "",
        f"A `{record['variant']}` generator ({record['weights']}) trained by ganforge {record['ganforge_version']} for "
        f"{record['step']:,} steps on `{train['data']['name']}`: {c}x{h}x{w} images"
        + (f", {classes} classes." if classes else "."), "",
        "## Use it", "", "```", f"pip install {install}",
        "ganforge sample THIS_FOLDER --n 64 --out grid.png", "```", "", "```python",
        "import ganforge", 'model = ganforge.from_pretrained("THIS_FOLDER")   # or "user/repo" on the Hub',
        "images, labels = model.sample(16)                  # in [-1, 1]", "```", "",
        "## Training", "",
        f"- variant `{record['variant']}` from {provider['plugin']} ({provider['distribution']} {provider['version']})",
        f"- loss `{resolved['loss']}`, batch {train['batch_size']}, n_critic {train['n_critic']}, seed {train['seed']}, "
        f"precision {resolved.get('precision', 'fp32')}",
        f"- settings: `{json.dumps(record['model'], sort_keys=True)}`", "",
        "## Evaluation", "",
    ]
    if not evaluation:
        lines.append("Not evaluated before export: run `ganforge eval RUN --protocol fid10k --repeats 5` and export again.")
    else:
        lines += [
            f"Protocol `{evaluation['protocol']}`: {evaluation['n']:,} samples against {evaluation['reference']}; "
            f"evaluator `{evaluation['evaluator']}` (sha256 `{evaluation['evaluator_sha256']}`); resize: {evaluation['resize']}. "
            + ("Comparable with published figures computed the same way." if evaluation["comparable_with_published"]
               else "Not comparable with published figures: they use another network."), "",
            "| metric | value | 95% interval |", "| --- | --- | --- |",
            *(f"| {k} | {v['value']:.4g} | {'±' + format(v['interval95'], '.3g') if v['interval95'] is not None else 'one sample set'} |"
              for k, v in evaluation["figures"].items()),
            "", f"Reproduce with `ganforge verify THIS_FOLDER` ({evaluation['repeats']} sample sets, seed {evaluation['seed']}).",
        ]
    return "\n".join(lines) + "\n"


def read_export(path: Path) -> dict[str, Any]:
    """An exported folder's config.json, checked; a run directory or a damaged file is named in one line."""
    if not is_export(path):
        raise GanforgeError(f"{path}: not a folder that `ganforge export` wrote (config.json and {WEIGHTS_FILE}); "
                            "write one with `ganforge export RUN --out DIR`")
    try:
        return ExportRecord.model_validate(json.loads((path / "config.json").read_text())).model_dump(mode="json")
    except ValidationError as exc:
        raise GanforgeError(f"{path / 'config.json'}: not an exported ganforge model "
                            f"({validation_message(exc).removeprefix('bad config: ')})") from None
    except (OSError, ValueError) as exc:
        raise GanforgeError(f"{path / 'config.json'}: unreadable ({str(exc).splitlines()[0]})") from None


def load_export(path: Path, *, device: str = "auto", catalog: Catalog | None = None) -> LoadedRun:
    """An exported folder's generator, rebuilt by the installed variant and loaded from its safetensors."""
    from safetensors.torch import load_file

    config = read_export(path)
    catalog = catalog or load_catalog()
    if config["variant"] not in catalog.variants:
        distribution = config["provider"].get("distribution")
        raise GanforgeError(f"{path}: its variant {config['variant']!r} is not installed"
                            + (f"; pip install {distribution}" if distribution else ""))
    spec = catalog.variants.get(config["variant"])
    shape = DataShape(*config["resolved"]["data_shape"])
    generator, _ = build_models(spec, spec.recorded_config(config["model"]), shape, catalog.origin("variants", spec.name))
    try:
        weights = load_file(str(path / WEIGHTS_FILE))
        generator.load_state_dict(weights)
    except Exception as exc:  # noqa: BLE001 - safetensors and load_state_dict raise several types on a bad file
        raise GanforgeError(f"{path / WEIGHTS_FILE}: does not hold this variant's generator "
                            f"({str(exc).splitlines()[0][:200]})") from None
    target = pick_device(device)
    generator.to(target).eval()
    return LoadedRun(None, spec, config, generator, None, int(config["step"]), path=path, ema=config.get("weights") == "the EMA of G")


def load_model(path: Path, checkpoint: str | int = "last", *, device: str = "auto",
               catalog: Catalog | None = None) -> LoadedRun:
    """A run directory's model at ``checkpoint``, or an exported folder's: what sample and eval take."""
    if is_export(path):
        return load_export(path, device=device, catalog=catalog)
    return load_run(path, checkpoint, device=device, catalog=catalog)


def from_pretrained(name_or_path: str | Path, *, device: str = "auto", revision: str | None = None) -> LoadedRun:
    """A generator ready to sample (``.sample(n)``): from a folder ``ganforge export`` wrote, or from a
    Hugging Face Hub repository ("user/name") with the same files, downloaded when online."""
    path = Path(name_or_path)
    if not path.exists():
        if str(name_or_path).count("/") != 1:
            raise GanforgeError(f"{name_or_path}: no such folder, and not a Hub repository id (user/name)")
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(str(name_or_path), revision=revision))
        except Exception as exc:  # noqa: BLE001 - offline, unknown repository, or a gated one
            raise GanforgeError(f"{name_or_path}: cannot fetch it from the Hugging Face Hub ({str(exc).splitlines()[0][:200]})") from None
    if not is_export(path):
        raise GanforgeError(f"{path}: not a folder that `ganforge export` wrote (config.json and {WEIGHTS_FILE})")
    return load_export(path, device=device)


@dataclass(frozen=True)
class Check:
    """One figure of a card against the same figure scored again."""

    metric: str
    card: float
    now: float
    tolerance: float

    @property
    def agrees(self) -> bool:
        return abs(self.now - self.card) <= self.tolerance


def verify_export(path: Path, *, device: str = "auto", weights: Path | None = None, data_dir: Path | None = None,
                  catalog: Catalog | None = None) -> list[Check]:
    """Score an exported model again as its card says (protocol, evaluator and its digest, sample
    count, sample sets, seed) and set each figure beside the card's. A figure agrees when the two
    differ by less than the sum of their 95% intervals (1% of the card's value for one sample set,
    which the same seed on the same kind of machine reproduces)."""
    card = read_export(path).get("evaluation")
    if not card:
        raise GanforgeError(f"{path}: its card holds no evaluation to verify; export the run again after `ganforge eval`")
    catalog = catalog or load_catalog()
    loaded = load_export(path, device=device, catalog=catalog)
    protocol = card["protocol"] if card["protocol"] in PROTOCOLS else None
    scoring = prepare_scoring(loaded.config, catalog, loaded.device, n=card["n"], seed=card["seed"] or 0,
                              protocol=protocol, evaluator=card["evaluator"], weights=weights, data_dir=data_dir,
                              cross=False)
    installed = scoring.evaluation.evaluator.sha256
    if installed != card["evaluator_sha256"]:
        raise GanforgeError(f"{path}: its card was scored with {card['evaluator']!r} sha256 {card['evaluator_sha256'][:16]}..., "
                            f"and the installed one is {installed[:16]}...; the figures would not compare: install the "
                            "evaluator the card names")
    scored = score_generator(scoring, loaded.generator, repeats=card["repeats"], truncation=card["truncation"],
                             psi=card["psi"])
    checks = []
    for metric, claimed in card["figures"].items():
        mean, half = interval([s[metric] for s in scored.get("per_repeat", [scored])])
        tolerance = (claimed["interval95"] or 0.0) + half or abs(claimed["value"]) * 0.01
        checks.append(Check(metric, claimed["value"], mean, tolerance))
    return checks
