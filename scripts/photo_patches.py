"""Real colour photographs, offline: square crops of the photographs that scikit-learn and scikit-image
ship (a palace, a flower, an astronaut, a cat, coffee, a rocket, a deep-sky field, a stained tissue
slide), at random places and scales, written as a folder of PNGs, one sub-folder per photograph.

    python scripts/photo_patches.py --n 50000 --size 64 --out photos/
    ganforge prepare photos --out photos.zip --size 64 --labels from-folders

Tests and benchmarks build their colour data sets with it: no colour data set can be downloaded here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

PHOTOS = ("china", "flower", "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def photographs() -> dict[str, np.ndarray]:
    """The shipped colour photographs, by name, as uint8 (H, W, 3)."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    found = {"china": china, "flower": flower}
    found.update({name: getattr(data, name)() for name in PHOTOS[2:]})
    return found


def write_patches(out: Path, n: int, size: int, seed: int = 0) -> Path:
    """``n`` crops of ``size`` x ``size`` pixels under ``out``/PHOTO/, each a square of side between
    ``size`` and a third of the photograph's shorter side, scaled to ``size``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = photographs()
    names = list(images)
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = names[i % len(names)]
        photo = images[name]
        h, w = photo.shape[:2]
        side = int(rng.integers(size, max(size + 1, min(h, w) // 3)))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[top:top + side, left:left + side])
        crop.resize((size, size), Image.Resampling.LANCZOS).save(out / name / f"{i:06d}.png")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    write_patches(args.out, args.n, args.size, args.seed)
    print(f"wrote {args.n} {args.size}x{args.size} crops of {len(PHOTOS)} photographs to {args.out}")


if __name__ == "__main__":
    main()
