"""Shared fixtures: the installed catalog and a runner for the real `ganforge` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ganforge import Catalog, load_catalog


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m ganforge ARGS`` in ``tmp_path`` and return the finished process."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "TQDM_DISABLE": "1", **(env or {})}
        return subprocess.run([sys.executable, "-m", "ganforge", *args], cwd=cwd or tmp_path, env=full_env,
                              capture_output=True, text=True, timeout=timeout)

    return run
