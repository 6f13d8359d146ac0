"""``ganforge ...``: an argparse front over the library; bad input is one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from .config import validation_message
from .errors import GanforgeError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, like every other ganforge error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"ganforge: error: {message} (see `{self.prog} --help`)\n")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- listing commands
def cmd_variants(args: argparse.Namespace) -> int:
    from .catalog import load_catalog

    catalog = load_catalog()
    variants = catalog.variants
    if args.options:
        spec = variants.get(args.options)
        print(json.dumps(spec.config.model_json_schema(), indent=2))
        return 0
    entries = list(variants)
    if args.json:
        print(json.dumps([
            {"name": e.name, "aliases": list(e.aliases), "plugin": e.plugin,
             "distribution": getattr(catalog.pm.ganforge_info.get(e.plugin), "distribution", None),
             "description": e.value.description,
             "conditional": e.value.conditional, "default_loss": e.value.default_loss, "recipe": dict(e.value.recipe)}
            for e in entries
        ], indent=2))
        return 0
    infos = catalog.pm.ganforge_info  # type: ignore[attr-defined]
    rows = [[e.name, ",".join(e.aliases) or "-", e.plugin, infos[e.plugin].distribution if e.plugin in infos else "-",
             e.value.description] for e in entries]
    print(_table(rows, ["NAME", "ALIASES", "PLUGIN", "DISTRIBUTION", "DESCRIPTION"]))
    return 0


def _list_entries(args: argparse.Namespace, kind: str) -> int:
    """List what plugins registered of ``kind``, with provenance; ``--options NAME`` prints one entry's option schema."""
    from .catalog import load_catalog

    catalog = load_catalog()
    registry = getattr(catalog, kind)
    if getattr(args, "options", None):
        print(json.dumps(registry.get(args.options).options.model_json_schema(), indent=2))
        return 0
    rows = [[e.name, ",".join(e.aliases) or "-", e.plugin, catalog.distribution(e.plugin) or "-", e.value.description]
            for e in registry]
    print(_table(rows, ["NAME", "ALIASES", "PLUGIN", "DISTRIBUTION", "DESCRIPTION"]))
    return 0


def cmd_losses(args: argparse.Namespace) -> int:
    return _list_entries(args, "losses")


def cmd_regularizers(args: argparse.Namespace) -> int:
    return _list_entries(args, "regularizers")


def cmd_augmentations(args: argparse.Namespace) -> int:
    return _list_entries(args, "augmentations")


def cmd_datasets(args: argparse.Namespace) -> int:
    return _list_entries(args, "datasets")


def cmd_metrics(args: argparse.Namespace) -> int:
    return _list_entries(args, "metrics")


def cmd_evaluators(args: argparse.Namespace) -> int:
    return _list_entries(args, "evaluators")


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import make_plugin_manager, plugin_hooks

    pm = make_plugin_manager()
    infos = pm.ganforge_info  # type: ignore[attr-defined]
    if args.json:
        print(json.dumps([
            {"name": i.name, "distribution": i.distribution, "version": i.version, "hooks": plugin_hooks(pm, i.name)}
            for i in infos.values()
        ], indent=2))
        return 0
    rows = [[i.name, i.distribution, i.version, ", ".join(h.removeprefix("ganforge_") for h in plugin_hooks(pm, i.name))]
            for i in infos.values()]
    print(_table(rows, ["NAME", "DISTRIBUTION", "VERSION", "HOOKS"]))
    return 0


# ----------------------------------------------------------------------------- train
def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise GanforgeError(f"--config {path}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GanforgeError(f"--config {path}: not valid TOML ({exc})") from None


def _settings_from_flags(args: argparse.Namespace, model_fields: Any) -> dict[str, Any]:
    """What the flags, ``--set`` and ``--config`` ask for (and nothing else), shaped as a TrainConfig dict."""
    from .config import apply_sets, parse_term

    settings: dict[str, Any] = _read_toml(args.config) if args.config else {}
    for table in ("data", "model"):
        if not isinstance(settings.setdefault(table, {}), dict):
            raise GanforgeError(f"--config {args.config}: [{table}] must be a table")
    data = settings["data"]
    for flag, key in (("data", "name"), ("data_dir", "data_dir"), ("image_size", "image_size")):
        if getattr(args, flag) is not None:
            data[key] = getattr(args, flag)
    if args.data is not None and args.data_dir is None and _names_files(args.data):
        # --data photos.zip or --data ./photos: the files themselves, read as a ZIP or a folder of images.
        data["name"], data["data_dir"] = ("image-zip" if args.data.lower().endswith(".zip") else "image-folder"), args.data
    if args.init_from is not None:
        settings["init_from"] = args.init_from
    for key in ("steps", "epochs", "batch_size", "loss", "out", "device", "seed", "precision", "ema", "n_critic"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.compile is not None:
        settings["compile"] = args.compile
    if args.loggers:
        settings["loggers"] = args.loggers
    if args.regularizers:
        settings["regularizers"] = [parse_term(text, "--reg") for text in args.regularizers]
    if args.augment is not None:
        settings["augment"] = None if args.augment == "none" else parse_term(args.augment, "--augment")
    apply_sets(settings, args.set, model_fields)
    return {key: value for key, value in settings.items() if value != {} or key not in ("data", "model")}


def _names_files(data: str) -> bool:
    """Whether ``--data`` names files (a ZIP, or a path to a folder) rather than a registered data set."""
    path = Path(data)
    return (data.lower().endswith(".zip") and path.is_file()) or (any(sep in data for sep in ("/", os.sep)) and path.is_dir())


def _new_run_config(args: argparse.Namespace) -> Any:
    """The TrainConfig of a new run from the command line, validated strictly (a bad value is one line)."""
    from .catalog import load_catalog
    from .config import TrainConfig, validate_settings, validation_message

    catalog = load_catalog()
    toml_variant = _read_toml(args.config).get("variant") if args.config else None
    variant = args.variant or toml_variant
    if not variant:
        raise GanforgeError("name a variant (`ganforge train mlp`) or continue a run with --resume RUN_DIR")
    if not isinstance(variant, str):
        raise GanforgeError(f"--config {args.config}: variant must be a name (a string), got {variant!r}")
    spec = catalog.variants.get(variant)
    settings = _settings_from_flags(args, spec.config.model_fields)
    settings["variant"] = spec.name
    spec.make_config(settings.get("model"), catalog.origin("variants", spec.name))
    try:
        return validate_settings(TrainConfig, settings)
    except ValidationError as exc:
        raise GanforgeError(validation_message(exc)) from None


def cmd_train(args: argparse.Namespace) -> int:
    from .accel.distributed import close_distributed
    from .training import resume, train

    try:
        if args.resume:
            if args.variant:
                raise GanforgeError("--resume continues the run's own variant; drop the variant name")
            if args.resume_if_exists:
                raise GanforgeError("--resume and --resume-if-exists do not combine: `--resume RUN_DIR` continues a run, "
                                    "`VARIANT --out RUN_DIR --resume-if-exists` starts one or continues it")
            result = resume(args.resume, settings=_resume_settings(args))
        else:
            result = train(_new_run_config(args), resume_if_exists=args.resume_if_exists)
    finally:
        close_distributed()
    if result.status == "interrupted":
        if os.environ.get("RANK", "0") == "0":
            print(f"interrupted at step {result.step}; checkpoint saved; continue with "
                  f"`ganforge train --resume {result.run_dir}`", file=sys.stderr)
        return EXIT_INTERRUPTED
    if os.environ.get("RANK", "0") == "0":
        print(f"trained to step {result.step}; run directory: {result.run_dir}")
    return 0


def _resume_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a ``--resume`` command line asks to change, read against the run's own variant."""
    from .catalog import load_catalog
    from .runs import RunDir

    saved = RunDir(args.resume).read_config()
    spec = load_catalog().variants.get(saved["variant"])
    return _settings_from_flags(args, spec.config.model_fields)


# ----------------------------------------------------------------------------- sample
def cmd_prepare(args: argparse.Namespace) -> int:
    from .data.prepare import prepare
    from .outputs import check_output, make_parent

    if not 4 <= args.size <= 4096:
        raise GanforgeError(f"--size {args.size}: give a side between 4 and 4096 pixels")
    if args.workers < 1:
        raise GanforgeError(f"--workers {args.workers}: give at least 1")
    check_output(args.out, (".zip",), args.force)
    make_parent(args.out)
    result = prepare(args.source, args.out, args.size, channels=args.channels, labels=args.labels, workers=args.workers)
    for path, why in result.skipped[:SKIPPED_SHOWN]:
        print(f"ganforge: skipped {path}: {why}", file=sys.stderr)
    if len(result.skipped) > SKIPPED_SHOWN:
        print(f"ganforge: skipped {len(result.skipped) - SKIPPED_SHOWN} more", file=sys.stderr)
    classes = f", {len(result.classes)} classes" if result.classes else ""
    print(f"wrote {result.images} images ({args.size}x{args.size}, {args.channels} channel{'s' if args.channels > 1 else ''}"
          f"{classes}) to {args.out}; skipped {len(result.skipped)} files")
    return 0


SKIPPED_SHOWN = 20
"""Skipped files `ganforge prepare` names one by one before it only counts them."""

GRID_LIMIT = 10_000
"""Images in one PNG grid at most: beyond that, write raw samples (.npz) instead."""


def cmd_sample(args: argparse.Namespace) -> int:
    import math

    import torch

    from .outputs import check_output, make_parent, write_samples
    from .resources import require_memory
    from .runs import write_grid
    from .export import load_model
    from .sampling import generate_chunks, interpolation_grid, mixing_grid

    if args.n < 1:
        raise GanforgeError(f"--n {args.n}: must be at least 1")
    kind = args.out.suffix.lower()
    check_output(args.out, (".png", ".npz", ".pt"), args.force)
    if kind == ".png" and args.n > GRID_LIMIT:
        raise GanforgeError(f"--n {args.n}: a PNG grid holds at most {GRID_LIMIT} images; write raw samples with --out FILE.npz")
    loaded = load_model(args.run_dir, args.checkpoint, device=args.device)
    generator = loaded.generator
    classes = generator.num_classes
    n, per_row, labels = args.n, max(1, round(args.n ** 0.5)), None
    if args.class_ is not None:
        if classes is None:
            raise GanforgeError(f"variant {loaded.spec.name!r} is unconditional; it takes no --class")
        if not 0 <= args.class_ < classes:
            raise GanforgeError(f"--class {args.class_}: this run has classes 0 to {classes - 1}")
        labels = torch.full((n,), args.class_, dtype=torch.long, device=loaded.device)
    elif classes and kind == ".png":
        # One row per class: the count is rounded to a whole number of images per class.
        per_row = max(1, round(args.n / classes))
        n = per_row * classes
    pixels = math.prod(generator.image_shape)
    if kind == ".png":
        require_memory(n * pixels * 4 * 2, f"a grid of {n} images", torch.device("cpu"), "ask for fewer with --n")
    elif kind == ".pt":
        require_memory(n * pixels, f"{n} samples in one .pt file", torch.device("cpu"),
                       "write them with --out FILE.npz, which is written as they are generated")
    make_parent(args.out)
    if args.mix or args.interpolate:
        if kind != ".png":
            raise GanforgeError("--mix and --interpolate draw a PNG grid: give --out FILE.png")
        if args.mix and args.interpolate:
            raise GanforgeError("--mix and --interpolate draw different grids: give one of them")
        if args.mix:
            images = mixing_grid(generator, args.mix, seed=args.seed, psi=args.psi)
            rows, what = args.mix + 1, f"a style-mixing grid of {args.mix} x {args.mix} images"
        else:
            rows_of = max(1, round(n / args.interpolate))
            images = interpolation_grid(generator, rows_of, args.interpolate, seed=args.seed, psi=args.psi)
            rows, what = args.interpolate, f"{rows_of} interpolations of {args.interpolate} steps"
        write_grid(args.out, images, rows, what)
        print(f"wrote {what} from {args.run_dir} (step {loaded.step}) to {args.out}")
        return 0
    chunks = generate_chunks(generator, n, labels=labels, seed=args.seed, truncation=args.truncation, psi=args.psi)
    what = f"{n} samples"
    if kind == ".png":
        write_grid(args.out, torch.cat([images.float().cpu() for images, _ in chunks]), per_row, what)
    else:
        write_samples(args.out, n, generator.image_shape, chunks, what)
    print(f"wrote {n} samples from {args.run_dir} (step {loaded.step}) to {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    if args.out is not None:
        from .outputs import check_output, make_parent

        check_output(args.out, (".png",), args.force)
        make_parent(args.out)
    png, page = write_report(args.run_dir, args.out)
    print(f"wrote {png} and {page}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .metrics.scoring import evaluate_model

    figures = evaluate_model(args.run_dir, n=args.n, seed=args.seed, repeats=args.repeats, protocol=args.protocol,
                             evaluator=args.evaluator, weights=args.inception_weights, data_dir=args.data_dir,
                             checkpoint=args.checkpoint, truncation=args.truncation, psi=args.psi, device=args.device)
    nested = ("per_repeat", "confusion", "per_class", "cross_check")
    rows = [[k, f"{v:.4f}" if isinstance(v, float) else str(v)] for k, v in figures.items() if k not in nested]
    print(_table(rows, ["METRIC", "VALUE"]))
    if "per_class" in figures:
        print()
        print(_class_table(figures["per_class"]))
    if "cross_check" in figures:
        second = figures["cross_check"]
        keys = [k for k in ("fid", "kid", "precision", "recall", "modes", "conditional_accuracy") if k in second]
        print(f"\nsecond opinion, {second['evaluator']}: " + ", ".join(f"{k} {second[k]:.4g}" for k in keys))
    print(f"wrote {Path(args.run_dir) / 'eval.json'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_run

    out = export_run(args.run_dir, args.out, checkpoint=args.checkpoint, force=args.force)
    print(f"exported {args.run_dir} to {out}: model.safetensors, config.json, README.md")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .export import read_export, verify_export

    checks = verify_export(args.model, device=args.device, weights=args.inception_weights, data_dir=args.data_dir)
    card = read_export(args.model)["evaluation"]
    print(_table([[c.metric, f"{c.card:.4g}", f"{c.now:.4g}", f"{c.tolerance:.3g}", "agrees" if c.agrees else "DIFFERS"]
                  for c in checks], ["METRIC", "CARD", "NOW", "TOLERANCE", "VERDICT"]))
    agree = all(c.agrees for c in checks)
    print(f"{args.model}: the figures {'agree with' if agree else 'differ from'} its card (protocol {card['protocol']}, "
          f"{card['repeats']} sample set(s), evaluator {card['evaluator']})")
    return 0 if agree else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from .metrics.comparison import compare_models

    result = compare_models(args.runs, repeats=args.repeats, n=args.n, seed=args.seed, protocol=args.protocol,
                            evaluator=args.evaluator, weights=args.inception_weights, checkpoint=args.checkpoint,
                            device=args.device, pool_seeds=args.pool_seeds, alpha=args.alpha)
    def cell(mean_half: tuple[float, float]) -> str:
        return f"{mean_half[0]:.4g} ± {mean_half[1]:.2g}"

    rows = [[g.label, g.evaluator, str(len(g.sets)), *(cell(g.summary(m)) for m in result.metrics)] for g in result.groups]
    rows += [[g.label, g.cross_evaluator, str(len(g.cross_sets)),
              *(cell(g.summary(m, cross=True)) if m in g.cross_sets[0] else "-" for m in result.metrics)]
             for g in result.groups if g.cross_evaluator and g.cross_sets]
    print(_table(rows, ["RUN", "EVALUATOR", "SETS", *(m.upper() for m in result.metrics)]))
    print("\n± is half of a 95% confidence interval of the mean over sample sets (Student's t)")
    for t in result.tests:
        print(f"{t.metric}: {t.a} vs {t.b}: {t.verdict}; {t.test}, alpha {result.alpha}")
    return 0


def _class_table(records: list[dict[str, Any]]) -> str:
    """Per-class figures of a conditional run: where its conditional accuracy is lost, and to what."""
    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    rows = [[f"{r['class']} {r['name']}" if r["name"] != str(r["class"]) else r["name"], str(r["asked"]),
             share(r["accuracy"]), share(r["real_accuracy"]),
             f"{r['most_read_as']} ({share(r['most_read_as_share'])})" if r["most_read_as"] else "-"]
            for r in records]
    return _table(rows, ["CLASS", "ASKED", "READ AS ASKED", "REAL IMAGES", "MOST OFTEN READ AS"])


# ----------------------------------------------------------------------------- parser
TRUNCATION_HELP = "redraw latent entries beyond +-T (truncation trick): more typical images, less variety"


PSI_HELP = "StyleGAN's truncation: pull w towards its average (1: none, 0: the average image)"


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: give a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give at least 1")
    return value


def _seed(text: str) -> int:
    """An argparse type: a seed in [0, 2^32)."""
    from .config import SEED_LIMIT

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: give a whole number") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed {value} is outside [0, {SEED_LIMIT - 1}]")
    return value


RUN_HELP = "a run directory, or a folder `ganforge export` wrote"
DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps"
INCEPTION_HELP = ("the FID Inception's weights (pt_inception-2015-12-05-6726825d.pth, checked by SHA-256); "
                  "default: $GANFORGE_INCEPTION_WEIGHTS or torch hub's cache")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="ganforge", description="Train and sample GAN variants provided by plugins.")
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("variants", help="list installed GAN variants")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--options", metavar="NAME", help="print the JSON schema of a variant's config")
    p.set_defaults(func=cmd_variants)

    p = sub.add_parser("plugins", help="list loaded plugins and the hooks they implement")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    sub.add_parser("losses", help="list adversarial losses").set_defaults(func=cmd_losses)
    p = sub.add_parser("regularizers", help="list step terms on D's or G's objective (--reg)")
    p.add_argument("--options", metavar="NAME", help="print the JSON schema of a regulariser's options")
    p.set_defaults(func=cmd_regularizers)
    p = sub.add_parser("augmentations", help="list augmentations of what D sees (--augment)")
    p.add_argument("--options", metavar="NAME", help="print the JSON schema of an augmentation's options")
    p.set_defaults(func=cmd_augmentations)
    p = sub.add_parser("datasets", help="list data sets")
    p.add_argument("--options", metavar="NAME", help="print the JSON schema of a data set's own options")
    p.set_defaults(func=cmd_datasets)
    sub.add_parser("metrics", help="list evaluation metrics").set_defaults(func=cmd_metrics)
    sub.add_parser("evaluators", help="list evaluators (the networks figures are computed on)").set_defaults(func=cmd_evaluators)

    p = sub.add_parser("train", help="train a variant (or continue a run with --resume)")
    p.add_argument("variant", nargs="?", help="variant name or alias (see `ganforge variants`)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run from checkpoints/last.pt")
    p.add_argument("--resume-if-exists", action="store_true",
                   help="if --out holds a run with these settings, continue it from its last checkpoint: the same "
                        "command then survives torchrun --max-restarts and scheduler restarts")
    p.add_argument("--data", help="data set name (default mnist5k; see `ganforge datasets`), or a ZIP of images "
                                   "(`ganforge prepare`) or a path to a folder of images")
    p.add_argument("--data-dir", type=Path, help="folder holding the data set's files")
    p.add_argument("--image-size", type=int, help="resize images to this square size")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="generator updates in total (with --resume: the new total)")
    length.add_argument("--epochs", type=float, help="passes over the data (default 20)")
    p.add_argument("--batch-size", type=int, help="images per step, per process under torchrun (default 64)")
    p.add_argument("--loss", help="adversarial loss (see `ganforge losses`)")
    p.add_argument("--n-critic", type=int, help="D updates per G update")
    p.add_argument("--ema", type=float, help="keep an EMA of G with this decay, e.g. 0.999")
    p.add_argument("--out", type=Path, help="run directory (default runs/VARIANT-TIMESTAMP)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=_seed, help="seeds the weights, the data order and the noise (0 to 2^32-1)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto (default): bf16 on CUDA GPUs that support it; fp16: autocast with loss scaling, "
                        "for GPUs without bf16 (V100, T4)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile G and D (default: off; on one CUDA process the whole step is "
                        "captured as a CUDA graph instead, --set capture_step=false to turn that off)")
    p.add_argument("--reg", action="append", dest="regularizers", metavar="NAME[:KEY=VALUE,...]",
                   help="add a regulariser, e.g. --reg r1:gamma=10 --reg lecam:weight=0.3 (`ganforge regularizers`); "
                        "weight=0 drops one the variant's recipe adds")
    p.add_argument("--augment", metavar="NAME[:KEY=VALUE,...]",
                   help="augment every image D sees, e.g. --augment diffaugment:policy=color,translation or --augment ada "
                        "(`ganforge augmentations`); none: no augmentation")
    p.add_argument("--logger", action="append", dest="loggers", choices=["tensorboard", "wandb", "mlflow"],
                   help="also log to TensorBoard (RUN_DIR/tensorboard), Weights & Biases (offline under RUN_DIR/wandb "
                        "without an account) or MLflow (RUN_DIR/mlflow.db, or MLFLOW_TRACKING_URI)")
    p.add_argument("--init-from", type=Path, metavar="RUN_OR_CHECKPOINT",
                   help="start from another run's weights (G, D, the EMA of G) with fresh optimisers, e.g. to fine-tune "
                        "on other data; --set freeze_d=K freezes D's first K blocks")
    p.add_argument("--config", type=Path, metavar="FILE.toml", help="settings file; flags override it")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config field: a variant field (latent_dim=64), a train field (lr_d=1e-4), data.FIELD")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("prepare", help="pack a folder of images into a ZIP of same-size PNGs to train on")
    p.add_argument("source", type=Path, help="a folder of images (searched recursively)")
    p.add_argument("--out", type=Path, required=True, help="the ZIP to write, e.g. data.zip")
    p.add_argument("--size", type=int, default=64, help="side of the square images (default 64): the shorter side is "
                                                       "resized to it and the rest cropped about the centre")
    p.add_argument("--channels", type=int, choices=[1, 3], default=3, help="3 (colour, default) or 1 (grey)")
    p.add_argument("--labels", choices=["none", "from-folders"], default="none",
                   help="from-folders: each image's class is its top folder under SOURCE")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="processes that decode images")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("sample", help="write a grid of samples from a trained run")
    p.add_argument("run_dir", type=Path, help=RUN_HELP)
    p.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--out", type=Path, default=Path("samples.png"),
                   help="a .png grid (default samples.png), or raw uint8 images and labels as .npz or .pt")
    p.add_argument("--checkpoint", default="last", help="last, best or a step number")
    p.add_argument("--class", dest="class_", type=int, help="draw only this class (conditional variants)")
    p.add_argument("--seed", type=_seed, default=0, help="seeds the latent codes (and classes) drawn")
    p.add_argument("--truncation", type=float, metavar="T", help=TRUNCATION_HELP)
    p.add_argument("--psi", type=float, help=PSI_HELP)
    p.add_argument("--interpolate", type=_positive, metavar="STEPS",
                   help="a grid of about N/STEPS rows, each walking between two latent codes in STEPS images")
    p.add_argument("--mix", type=_positive, metavar="K",
                   help="StyleGAN's style-mixing grid: K sources across, K destinations down, each cell the "
                        "destination with the source's coarse styles")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("report", help="draw loss and metric curves and sample grids into report.png and report.html")
    p.add_argument("run_dir", type=Path, help=RUN_HELP)
    p.add_argument("--out", type=Path, help="PNG path (default RUN_DIR/report.png); the HTML goes beside it")
    p.add_argument("--force", action="store_true", help="replace --out (and the HTML beside it) if it exists")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("eval", help="score a trained run (FID, KID, precision/recall, modes; "
                       "for conditional runs, accuracy per class) and write eval.json")
    p.add_argument("run_dir", type=Path, help=RUN_HELP)
    p.add_argument("--n", type=int, default=5000, help="samples, and reference images (default 5000)")
    p.add_argument("--checkpoint", default="last", help="last, best or a step number")
    p.add_argument("--seed", type=_seed, default=0, help="picks the reference images and the (first) samples")
    p.add_argument("--repeats", type=int, default=1, metavar="K",
                   help="score K sample sets (seeds SEED..SEED+K-1; 1 to 1000) against one reference: means and their sd")
    p.add_argument("--truncation", type=float, metavar="T", help=TRUNCATION_HELP)
    p.add_argument("--psi", type=float, help=PSI_HELP)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--protocol", help="fid50k_full (StyleGAN2-ADA's) or fid10k: sample and reference counts by name, "
                                      "the reference's features cached")
    p.add_argument("--evaluator", help="score with this evaluator instead of the one recorded for the run "
                                       "(`ganforge evaluators`)")
    p.add_argument("--inception-weights", type=Path, help=INCEPTION_HELP)
    p.add_argument("--data-dir", type=Path, help="where the data set's files are now, if not where the run read them")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="write a run's sampling generator as safetensors with its config and a model card")
    p.add_argument("run_dir", type=Path, help=RUN_HELP)
    p.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    p.add_argument("--checkpoint", default="last", help="last, best or a step number")
    p.add_argument("--force", action="store_true", help="write into a folder that holds files")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify", help="score an exported model as its card says and check the figures agree")
    p.add_argument("model", type=Path, help="a folder `ganforge export` wrote")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--inception-weights", type=Path, help=INCEPTION_HELP)
    p.add_argument("--data-dir", type=Path, help="where the data set's files are, if not where the run read them")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compare", help="score runs on several sample sets each; means, intervals and tests for each pair")
    p.add_argument("runs", nargs="+", type=Path, help="run directories or exported folders")
    p.add_argument("--repeats", type=int, default=10, metavar="K",
                   help="sample sets per run (default 10, at most 1000; a paired test needs 6 or more to reach p < 0.05)")
    p.add_argument("--n", type=int, default=5000, help="samples per set, and reference images")
    p.add_argument("--protocol", help="fid50k_full or fid10k: sample and reference counts by name (overrides --n)")
    p.add_argument("--evaluator", help="score every run with this evaluator (`ganforge evaluators`)")
    p.add_argument("--seed", type=_seed, default=0, help="picks the reference images and the first sample set")
    p.add_argument("--checkpoint", default="last", help="last, best or a step number")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of each test (default 0.05)")
    p.add_argument("--pool-seeds", action=argparse.BooleanOptionalAction, default=True,
                   help="pool runs that differ only by their training seed into one group (default)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--inception-weights", type=Path, help=INCEPTION_HELP)
    p.set_defaults(func=cmd_compare)
    return parser


def _one_line_warnings() -> None:
    """Show a plugin's warning as one line on stderr, as errors are, without Python's source-line echo."""
    import warnings

    from .plugins import PluginWarning

    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if issubclass(category, PluginWarning):
            print(f"ganforge: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failed run, 2 bad input, 130 interrupted)."""
    try:
        _one_line_warnings()
        parser = build_parser()
        args = parser.parse_args(argv)
        return args.func(args)
    except GanforgeError as exc:
        print(f"ganforge: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except ValidationError as exc:
        print(f"ganforge: error: {validation_message(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`ganforge variants | head`): nothing is wrong, so no traceback either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
