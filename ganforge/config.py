"""The validated settings of a run: what data, how long, how to optimise, where to write."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import GanforgeError

SEED_LIMIT = 2**32
"""Seeds lie in [0, 2^32): every RNG that ganforge seeds takes them, with room for its offsets."""

Beta = Annotated[float, Field(ge=0, lt=1)]
M = TypeVar("M", bound=BaseModel)


class TermChoice(BaseModel):
    """A step term picked by name (a regulariser or an augmentation), with its options as further keys:
    ``{"name": "r1", "gamma": 10}``. The options are checked against the term's own model when a run starts."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(description="registered name (see `ganforge regularizers` and `ganforge augmentations`)")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def parse_term(text: str, flag: str) -> dict[str, Any]:
    """``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` (the CLI's ``--reg`` and ``--augment``) as a TermChoice dict.

    A value is read as JSON where it parses, as a string otherwise; a comma-separated piece without
    ``=`` continues the value before it, so ``diffaugment:policy=color,translation`` keeps its list.
    """
    name, _, rest = text.partition(":")
    if not name.strip():
        raise GanforgeError(f"{flag} {text!r}: expected NAME or NAME:KEY=VALUE,..., e.g. {flag} r1:gamma=10")
    choice: dict[str, Any] = {"name": name.strip()}
    raw: dict[str, str] = {}
    key = None
    for piece in rest.split(",") if rest else []:
        if "=" in piece:
            key, _, value = piece.partition("=")
            key = key.strip()
            if not key or key == "name":
                raise GanforgeError(f"{flag} {text!r}: {piece!r} names no option; expected KEY=VALUE")
            raw[key] = value
        elif key is None:
            raise GanforgeError(f"{flag} {text!r}: {piece!r} is not KEY=VALUE")
        else:
            raw[key] += "," + piece
    choice.update({k: _parse_value(v) for k, v in raw.items()})
    return choice


class DataConfig(BaseModel):
    """Which data set to train on and how to read it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field("mnist5k", description="registered data set name (see `ganforge datasets`)")
    data_dir: Path | None = Field(None, description="folder holding the files; default: a per-user cache")
    image_size: int | None = Field(None, ge=4, le=1024, description="resize images to this square size")
    channels: Literal[1, 3] | None = Field(None, description="force grey (1) or colour (3) images")
    download: bool = Field(True, description="let torchvision download the data set when it is missing")
    subset: int | None = Field(
        None, ge=1, description="train on this many images only: a seeded, class-balanced subset (limited-data experiments)")
    subset_seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="picks the subset's images")
    xflip: bool = Field(False, description="double the data with each image mirrored left to right, on the fly")
    stream: bool | None = Field(
        None, description="read the images from their files through a DataLoader (true) or hold them on the device "
                          "(false); default: on the device when they fit resident_mb")
    resident_mb: int = Field(2048, ge=0, description="decoded data up to this many MB is held on the device")
    workers: int | None = Field(None, ge=0, le=64, description="DataLoader worker processes when streaming; default: "
                                                               "the CPU count, at most 8")
    options: dict[str, Any] = Field(default_factory=dict, description="the data set's own options "
                                                                      "(`ganforge datasets --options NAME`)")


class TrainConfig(BaseModel):
    """Everything the shared loop needs besides the variant; ``None`` means "the variant's default"."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    variant: str = Field(description="registered variant name (see `ganforge variants`)")
    model: dict = Field(default_factory=dict, description="the variant's config (see `ganforge variants --options`)")
    data: DataConfig = Field(default_factory=DataConfig, description="the data set and how it is read (below)")
    steps: int | None = Field(None, ge=1, description="generator updates in total")
    epochs: float | None = Field(None, gt=0, description="passes over the data, if steps is not given")
    batch_size: int = Field(64, ge=1, description="images per step (per process under torchrun)")
    loss: str | None = Field(None, description="adversarial loss name; default: the variant's")
    lr_g: float | None = Field(None, gt=0, description="G's Adam learning rate; default: the variant's")
    lr_d: float | None = Field(None, gt=0, description="D's Adam learning rate; default: the variant's")
    betas: tuple[Beta, Beta] | None = Field(None, description="Adam's (beta1, beta2), each in [0, 1)")
    fake_labels: Literal["uniform", "data"] = Field(
        "uniform", description="conditional variants: draw fake labels uniformly or at the data's class frequencies")
    n_critic: int = Field(1, ge=1, le=100, description="discriminator updates per generator update")
    gradient_penalty: float = Field(0.0, ge=0, description="weight of the WGAN-GP penalty on D: a shorthand for "
                                                          "regularizers=[{name: wgan-gp, weight: W}]")
    regularizers: list[TermChoice] = Field(
        default_factory=list, description="step terms on D's or G's objective, e.g. [{name: r1, gamma: 10}] (`ganforge regularizers`)")
    augment: TermChoice | None = Field(
        None, description="augmentation of every image D sees, e.g. {name: diffaugment} (`ganforge augmentations`)")
    ema: float | None = Field(None, gt=0, lt=1, description="decay of an exponential moving average of G")
    ema_kimg: float | None = Field(
        None, gt=0, description="the EMA's half-life in thousands of images (StyleGAN's ema_kimg): sets the decay from "
                                "the images per step; give it or ema, not both")
    ema_start: int = Field(
        0, ge=0, description="steps before the EMA starts averaging (until then it copies G): early generators average to blur")
    seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="seeds the weights, the data order and the noise")
    device: str = Field("auto", description="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA devices that support it, fp32 elsewhere; "
                            "fp16: fp16 autocast with loss scaling, for GPUs without bf16 (V100, T4)")
    compile: bool | None = Field(None, description="torch.compile G and D (off by default: it does not pay for these models)")
    cuda_graphs: bool = Field(False, description="with compile on CUDA, capture CUDA graphs (mode reduce-overhead)")
    capture_step: bool | None = Field(
        None, description="replay the whole training step as one CUDA graph; default: on for one-process CUDA runs without compile")
    onednn_linear: bool | None = Field(
        None, description="run fp32 Linear layers on oneDNN's AVX-512 kernels; default: on for x86 CPUs, without compile")
    bf16_weights: bool | None = Field(
        None, description="with bf16 on the CPU, keep bf16 copies of Linear weights instead of casting them at every use; "
                          "default: on for one process without compile when G and D hold only Linear layers")
    channels_last: bool | None = Field(
        None, description="channels-last memory format; default: on for variants with convolutions")
    log_every: int = Field(100, ge=1, description="write losses and images/s to metrics.jsonl every this many steps")
    checkpoint_every: int = Field(1000, ge=1, description="write checkpoints/step_NNNNNNN.pt and last.pt every this many steps (and last.pt at the end)")
    sample_every: int = Field(1000, ge=1, description="write a sample grid to samples/ every this many steps")
    num_samples: int = Field(64, ge=1, le=1024, description="images in each sample grid")
    eval_every: int | None = Field(None, ge=1, description="score samples every this many steps; keeps best.pt by FID")
    eval_samples: int = Field(2000, ge=100, le=100_000,
                              description="samples (and reference images) per evaluation during training")
    loggers: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list, description="trackers to log to besides metrics.jsonl: tensorboard, wandb, mlflow")
    init_from: Path | None = Field(
        None, description="start from another run's weights (G, D and the EMA of G): its run directory or a checkpoint; "
                          "fresh optimisers, step 0")
    freeze_d: int = Field(0, ge=0, description="freeze D's first K blocks, from the input side (FreezeD, Mo et al. 2020)")
    out: Path | None = Field(None, description="run directory; default runs/VARIANT-TIMESTAMP")

    @model_validator(mode="after")
    def _one_length(self) -> TrainConfig:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        if self.ema is not None and self.ema_kimg is not None:
            raise ValueError("give ema (a decay) or ema_kimg (a half-life), not both")
        return self


def validate_settings(model: type[M], values: dict[str, Any]) -> M:
    """``model`` validated strictly from settings a user wrote (flags, ``--set``, TOML, a run's config.json).

    Through pydantic's strict JSON mode, so that what a JSON or TOML value cannot mean is refused:
    ``true`` is no number and ``1.5`` no count, where lax validation would read 1 and 1. Infinite
    and NaN values are refused by the models themselves.
    """
    return model.model_validate_json(json.dumps(values, default=str), strict=True)


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    """A pydantic error as one line: each offending field, what is wrong with it and the value given."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        value = err.get("input")
        got = f" (got {value!r})" if err["type"] != "missing" and not isinstance(value, (dict, list)) else ""
        parts.append(f"{where}: {err['msg']}{got}")
    return "bad config: " + "; ".join(parts)


def apply_sets(settings: dict[str, Any], sets: Sequence[str], model_fields: Iterable[str], flag: str = "--set") -> None:
    """Apply ``KEY=VALUE`` overrides (the CLI's ``--set``) to ``settings``, a :class:`TrainConfig` as a dict.

    A key names a field of the variant's model config (``model_fields``), of :class:`DataConfig` or of
    :class:`TrainConfig`, bare or as ``model.KEY`` / ``data.KEY``; a value is read as JSON where it
    parses and as a string otherwise. A malformed or unknown key is a GanforgeError naming ``flag``.
    """
    model_fields = set(model_fields)
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise GanforgeError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} latent_dim=64")
        value = _parse_value(raw)
        section, _, field = key.rpartition(".")
        if section == "data.options":
            settings.setdefault("data", {}).setdefault("options", {})[field] = value
        elif section == "model" or (not section and field in model_fields):
            settings.setdefault("model", {})[field] = value
        elif section == "data" or (not section and field in DataConfig.model_fields and field not in TrainConfig.model_fields):
            settings.setdefault("data", {})[field] = value
        elif not section and field in TrainConfig.model_fields and field not in ("model", "data"):
            settings[field] = value
        else:
            known = sorted(model_fields) + sorted(set(TrainConfig.model_fields) - {"model", "data", "variant"}) + [
                f"data.{f}" for f in DataConfig.model_fields if f != "options"] + ["data.options.KEY"]
            raise GanforgeError(f"{flag} {key}: unknown key; known keys: {', '.join(known)}")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
