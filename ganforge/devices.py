"""Choosing the torch device: CUDA, then Apple's MPS, then the CPU, or what the user names."""

from __future__ import annotations

import torch

from .errors import GanforgeError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks the fastest available device; a named device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps") or (device.type != "cuda" and device.index not in (None, 0)):
        raise GanforgeError(f"--device {name!r}: ganforge trains on auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GanforgeError(f"--device {name}: CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GanforgeError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise GanforgeError(f"--device {name}: MPS is not available here; use --device cpu")
    return device
