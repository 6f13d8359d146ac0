"""Reading IDX files (the MNIST format), gzipped or not, with errors that name the file."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import torch

from .errors import GanforgeError

_UBYTE = 0x08


def read_idx(path: Path) -> torch.Tensor:
    """The uint8 array in an IDX file (``.gz`` is decompressed), shaped as its header says."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise GanforgeError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise GanforgeError(f"{path}: cannot read it ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise GanforgeError(f"{path}: not an IDX file (bad magic number); expected MNIST-format data")
    type_code, ndim = raw[2], raw[3]
    if type_code != _UBYTE or not 1 <= ndim <= 3:
        raise GanforgeError(f"{path}: IDX type 0x{type_code:02x} with {ndim} dimensions; expected unsigned bytes, 1 to 3 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise GanforgeError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = 1
    for d in dims:
        expected *= d
    if expected == 0:
        raise GanforgeError(f"{path}: holds no images or labels (its header gives dimensions {dims})")
    if len(raw) - header != expected:
        raise GanforgeError(f"{path}: holds {len(raw) - header} data bytes, its header {dims} says {expected}; the file is truncated or corrupt")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).view(*dims)


def find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz`` (also under ``raw/``), whichever exists first."""
    for base in (folder, folder / "raw"):
        for name in (stem, stem + ".gz"):
            if (base / name).is_file():
                return base / name
    return None
