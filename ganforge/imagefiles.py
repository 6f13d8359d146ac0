"""Reading image files that a user gave (or that a run holds): a broken, foreign or oversized file
is an :class:`ImageFileError` naming it, never whatever exception the decoder happens to raise."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import IO, Any

from .errors import GanforgeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageFileError(GanforgeError):
    """An image file that cannot be read, or whose decoded size is beyond what ganforge decodes."""


def open_image(source: Path | IO[bytes], mode: str, name: str | None = None) -> Any:
    """The image in ``source`` (a path or an open binary file), decoded and converted to ``mode``
    ("RGB" or "L"); ``name`` names it in errors (the path by default).

    An image larger than PIL's decompression-bomb limit is refused, as is any file the decoder
    rejects (PIL raises OSError, SyntaxError, ValueError, zlib and struct errors for broken files).
    """
    from PIL import Image

    label = name or str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                image.load()
                return image.convert(mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageFileError(f"{label}: too large to decode ({' '.join(str(exc).split()).rstrip('.')})") from None
    except Exception as exc:  # noqa: BLE001 - a broken file can make the decoder raise almost anything
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ImageFileError(f"{label}: not a readable image ({detail})") from None
