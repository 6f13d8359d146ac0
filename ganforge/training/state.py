"""A run's state across processes and restarts: the RNG states in a checkpoint, which settings a
continued run may change, and what config.json says after a resume."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch

from ..accel.distributed import DistContext
from ..errors import GanforgeError

RESUMABLE = frozenset({
    "steps", "epochs", "out", "device",
    "precision", "compile", "cuda_graphs", "capture_step", "onednn_linear", "bf16_weights", "channels_last",
    "log_every", "checkpoint_every", "sample_every", "num_samples", "eval_every", "eval_samples", "loggers",
    "lr_g", "lr_d",
})
"""Settings a continued run may change: how long and where it trains, how fast, how often it reports
and saves, and its learning rates. Every other setting defines the run (its model, data, batch size,
loss, noise and data order) and stays the one it started with."""

_WHY_FIXED = {
    "model": "it decides the networks' shapes, which the checkpoint's weights must fit",
    "data": "the checkpoint continues that data's order",
    "batch_size": "the checkpoint continues its data order",
    "seed": "it decides the noise and the data order the checkpoint continues",
    "n_critic": "the checkpoint continues its data order",
}


def rng_state(noise: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """This process's random states: torch's global one, the step's noise and, on CUDA, the device's."""
    state = {"torch": torch.get_rng_state(), "noise": noise.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(states: list[dict[str, torch.Tensor]], noise: torch.Generator, device: torch.device,
                dist: DistContext) -> None:
    """Put back this rank's random states from a checkpoint's list of every rank's."""
    if len(states) != dist.world_size:
        raise GanforgeError(
            f"the checkpoint was written by {len(states)} process(es), this run has {dist.world_size}; "
            "resume with the same number of processes (torchrun --nproc-per-node)"
        )
    mine = states[dist.rank]
    torch.set_rng_state(mine["torch"].cpu())
    noise.set_state(mine["noise"].cpu())
    if "cuda" in mine and device.type == "cuda":
        torch.cuda.set_rng_state(mine["cuda"].cpu(), device)


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"latent_dim": 64}}`` as ``{"model.latent_dim": 64}``, through JSON so that tuples
    and paths compare as config.json holds them."""
    flat: dict[str, Any] = {}
    for key, value in json.loads(json.dumps(dict(settings), default=str)).items():
        if isinstance(value, dict) and key in ("model", "data"):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def setting_changes(recorded: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, tuple[Any, Any]], list[str]]:
    """How ``new`` settings differ from a run's ``recorded`` ones (both TrainConfig-shaped, with ``model``).

    Returns the changes a continued run may make (``{key: (old, new)}``) and, for each change it
    may not, one phrase naming the setting, its recorded value, the new one and why it stays.
    """
    before, after = flatten(recorded), flatten(new)
    allowed: dict[str, tuple[Any, Any]] = {}
    refused = []
    for key in sorted((before.keys() | after.keys()) - {"out", "variant"}):
        old, value = before.get(key), after.get(key)
        if old == value:
            continue
        top = key.split(".", 1)[0]
        if top in RESUMABLE:
            allowed[key] = (old, value)
        else:
            why = _WHY_FIXED.get(top, "it is part of what the run is")
            refused.append(f"{key} is {old!r} in the run and {value!r} here, and a continued run keeps it ({why})")
    return allowed, refused


def resumed_description(saved: dict[str, Any], now: dict[str, Any], changes: Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
    """config.json for a resumed run: ``now`` describes the segment it trains, ``earlier_segments`` the ones
    before, and ``changed_on_resume`` the settings this segment changed (old and new value).

    A resume may run on another machine, device, precision or version, which change the numbers a
    run produces; each segment keeps its own settings, resolved defaults, versions and machine.
    """
    earlier = {key: saved[key] for key in ("train", "resolved", "versions", "machine") if key in saved}
    described = {**now, "earlier_segments": [*saved.get("earlier_segments", []), {"from_step": saved.get("from_step", 0), **earlier}]}
    if changes:
        described["changed_on_resume"] = {key: {"from": old, "to": new} for key, (old, new) in changes.items()}
    return described
