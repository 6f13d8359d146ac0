"""Run under torchrun by test_distributed.py: the real CLI, with torchvision's MNIST downloader pointed
at the test's local HTTP server. Usage: download_probe.py URL GANFORGE-ARGS..."""

from __future__ import annotations

import sys

import torchvision.datasets

from ganforge.cli import main

if __name__ == "__main__":
    torchvision.datasets.MNIST.mirrors = [sys.argv[1]]
    # The test serves the training split only; torchvision checks whatever resources lists.
    torchvision.datasets.MNIST.resources = [(name, None) for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")]
    raise SystemExit(main(sys.argv[2:]))
