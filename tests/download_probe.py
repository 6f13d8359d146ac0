"""Run under torchrun by test_distributed.py: the real CLI, with torchvision's MNIST downloader pointed
at the test's local HTTP server. Usage: download_probe.py URL GANFORGE-ARGS..."""

from __future__ import annotations

import sys

import torchvision.datasets

from ganforge.cli import main

# The test serves the training split only; torchvision fetches and checks what ``resources`` lists.
TRAIN_FILES = [("train-images-idx3-ubyte.gz", None), ("train-labels-idx1-ubyte.gz", None)]

if __name__ == "__main__":
    torchvision.datasets.MNIST.mirrors = [sys.argv[1]]
    torchvision.datasets.MNIST.resources = TRAIN_FILES
    raise SystemExit(main(sys.argv[2:]))
