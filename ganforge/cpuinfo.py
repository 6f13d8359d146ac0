"""What /proc/cpuinfo says of this CPU: its vendor, family and model, which CPU speed defaults and figures depend on."""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_fields(cpuinfo: Path = CPUINFO) -> dict[str, str]:
    """The ``key: value`` fields of the first processor in ``cpuinfo``; empty where there is no such file."""
    try:
        with open(cpuinfo) as info:
            return dict(_first_processor(info))
    except OSError:
        return {}


def cpu_vendor(cpuinfo: Path = CPUINFO) -> str:
    """``AuthenticAMD``, ``GenuineIntel`` or another CPUID vendor string; empty where neither source names one.

    Outside Linux, Windows names the vendor at the end of ``platform.processor()``.
    """
    vendor = cpu_fields(cpuinfo).get("vendor_id", "")
    if vendor:
        return vendor
    return next((name for name in ("AuthenticAMD", "GenuineIntel") if name in platform.processor()), "")


def _first_processor(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """The ``key: value`` fields up to the blank line that ends the first processor's block."""
    for line in lines:
        if not line.strip():
            return
        key, sep, value = line.partition(":")
        if sep:
            yield key.strip(), value.strip()
