"""Shared fixtures: the installed catalog and a runner for the real `ganforge` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ganforge import Catalog, load_catalog


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory) -> Iterator[None]:
    """Reference statistics cached by the tests stay in the session's own folder, not the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GANFORGE_CACHE", str(tmp_path_factory.getbasetemp() / "ganforge-cache"))
        yield


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m ganforge ARGS`` in ``tmp_path`` and return the finished process."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "TQDM_DISABLE": "1", "GANFORGE_CACHE": str(tmp_path / "cache"), **(env or {})}
        return subprocess.run([sys.executable, "-m", "ganforge", *args], cwd=cwd or tmp_path, env=full_env,
                              capture_output=True, text=True, timeout=timeout)

    return run


def write_distribution(site: Path, name: str, module: str, code: str, entry: str | None = None) -> Path:
    """A plugin distribution installed into ``site`` as pip's ``--target`` leaves one: the module and a
    dist-info folder whose entry point (group ``ganforge``) names it. Put ``site`` on PYTHONPATH to use it."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(code)
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[ganforge]\n{entry or module} = {module}\n")
    return site


@pytest.fixture
def one_line_error() -> Callable[[subprocess.CompletedProcess[str]], str]:
    """Assert that a finished command failed with status 2 and exactly one line, ``ganforge: error: ...``; return it."""

    def check(proc: subprocess.CompletedProcess[str], status: int = 2) -> str:
        assert proc.returncode == status, (proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("ganforge: note:")]
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("ganforge: error: "), proc.stderr
        return lines[0]

    return check
