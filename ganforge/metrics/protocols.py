"""Evaluation protocols by name, and the cache of reference features they score against.

A figure can be set beside another, or beside a published one, only when the two share their
protocol: the evaluator (and its weights), how images are resized for it, how many images are
generated and which real images they are compared with. ``fid50k_full`` is StyleGAN2-ADA's: 50,000
generated images against every training image; ``fid10k`` compares 10,000 with 10,000.

The reference's features are computed once per data set, evaluator and protocol and cached under
``$GANFORGE_CACHE`` (default ``~/.cache/ganforge``), keyed by the data's content hash, the evaluator's
SHA-256 and the protocol, so a changed file or another evaluator never reuses stale figures.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..durable import atomic_write
from ..errors import GanforgeError


@dataclass(frozen=True)
class Protocol:
    """How a generator is scored: ``samples`` generated images against ``reference`` training images
    (None: every one), chosen with the evaluation's seed."""

    name: str
    description: str
    samples: int
    reference: int | None


PROTOCOLS = {
    "fid50k_full": Protocol("fid50k_full", "StyleGAN2-ADA's: 50,000 generated images against the whole training set",
                            50_000, None),
    "fid10k": Protocol("fid10k", "10,000 generated images against 10,000 training images", 10_000, 10_000),
}


def protocol(name: str) -> Protocol:
    """The protocol called ``name``; an unknown name lists the known ones."""
    if name not in PROTOCOLS:
        raise GanforgeError(f"--protocol {name!r}: unknown; known: {', '.join(sorted(PROTOCOLS))}, or --n N for "
                            "N samples against N training images")
    return PROTOCOLS[name]


def custom(n: int) -> Protocol:
    """``n`` generated images against ``n`` training images: ``ganforge eval --n N`` and training's evaluations."""
    return Protocol(f"n{n}", f"{n} generated images against {n} training images", n, n)


def cache_dir() -> Path:
    return Path(os.environ.get("GANFORGE_CACHE") or Path.home() / ".cache" / "ganforge") / "references"


def cache_key(fingerprint: str, evaluator_sha256: str, protocol_name: str, seed: int) -> str:
    return hashlib.sha256(f"{fingerprint}|{evaluator_sha256}|{protocol_name}|{seed}".encode()).hexdigest()


def load_cached(key: str) -> dict[str, Any] | None:
    """The cached reference under ``key``; None where there is none, or it cannot be read (it is then made again)."""
    path = cache_dir() / f"{key}.pt"
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed, never trusted
        return None
    return state if isinstance(state, dict) and "features" in state else None


def store(key: str, state: dict[str, Any]) -> None:
    """Cache a reference; where the cache cannot be written, the evaluation goes on without it."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"{key}.pt", lambda file: torch.save(state, file), "a cached reference")
    except (OSError, GanforgeError):
        pass
