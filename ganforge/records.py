"""The files of a run directory as ganforge reads them back, validated: a damaged or hand-edited
file is one line naming it and what is wrong, never a KeyError deep inside a command."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, Strict

from .config import TrainConfig

CHECKPOINT_FORMAT = "ganforge-checkpoint/1"

Count = Annotated[int, Strict(), Field(ge=0)]
Tensors = dict[str, torch.Tensor]


class Resolved(BaseModel):
    """What a run resolved from its settings and data; only what is read back is required."""

    model_config = ConfigDict(extra="allow")

    loss: str
    data_shape: tuple[Annotated[int, Strict(), Field(ge=1, le=16)], Annotated[int, Strict(), Field(ge=1)],
                      Annotated[int, Strict(), Field(ge=1)], Annotated[int, Strict(), Field(ge=2)] | None]
    world_size: Annotated[int, Strict(), Field(ge=1)] = 1


class RunRecord(BaseModel):
    """config.json: the variant, its settings, the run's settings and what they resolved to."""

    model_config = ConfigDict(extra="allow")

    variant: str
    model: dict[str, Any]
    train: TrainConfig
    resolved: Resolved
    from_step: Count = 0
    earlier_segments: list[dict[str, Any]] = Field(default_factory=list)


class MetricsRecord(BaseModel):
    """One line of metrics.jsonl: a log step's figures or an evaluation's."""

    model_config = ConfigDict(extra="allow")

    step: Count
    d_loss: float | None = None
    g_loss: float | None = None
    d_real: float | None = None
    d_fake: float | None = None
    images_per_s: float | None = None
    fid: float | None = None
    kid: float | None = None
    precision: float | None = None
    recall: float | None = None
    modes: Count | None = None


class CheckpointRecord(BaseModel):
    """A checkpoint's top level: the step, the models' and optimisers' states, the RNG states per rank."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    format: Literal[CHECKPOINT_FORMAT]  # type: ignore[valid-type]
    step: Count
    variant: str
    generator: Tensors
    discriminator: Tensors
    ema: Tensors | None = None
    opt_g: dict[str, Any]
    opt_d: dict[str, Any]
    rng: list[Tensors] = Field(min_length=1)
    batch_cursor: Count
    best_fid: float = math.inf
    max_modes: Count = 0
