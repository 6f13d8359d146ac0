"""Memory a request needs against memory the device has: a request that cannot fit is refused up
front with one line, instead of dying in the allocator (or being killed by the system) halfway."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch

from .errors import GanforgeError

MEMINFO = Path("/proc/meminfo")


def available_memory(device: torch.device) -> int | None:
    """Bytes that ``device`` can still hand out; None where that cannot be known (MPS, an unknown OS)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    with contextlib.suppress(OSError, ValueError):
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


def size_text(n: float) -> str:
    """Bytes as "1.5 GB"."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def require_memory(needed: float, what: str, device: torch.device, fix: str) -> None:
    """Refuse ``what`` (needing about ``needed`` bytes) where ``device`` has less available; ``fix`` says what to do."""
    available = available_memory(device)
    if available is not None and needed > available:
        raise GanforgeError(f"{what} needs about {size_text(needed)} of memory and {device} has "
                            f"{size_text(available)} available; {fix}")


def parameter_counts(build: Any) -> tuple[int, ...] | None:
    """The parameter counts of the models ``build()`` returns, built on the meta device (no memory is
    allocated); None where the models cannot be built there (a plugin that reads tensor values while
    building them)."""
    try:
        with torch.device("meta"):
            models = build()
    except Exception:  # noqa: BLE001 - the real build reports the plugin's own error
        return None
    return tuple(sum(p.numel() for p in model.parameters()) for model in models)
