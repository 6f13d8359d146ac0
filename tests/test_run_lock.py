"""One training process per run directory: an OS lock held for the life of the process, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

SMALL = ["--set", "g_hidden=[32]", "--set", "d_hidden=[32]"]
ENV = {**os.environ, "TQDM_DISABLE": "1"}


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ganforge", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_logged_steps(proc: subprocess.Popen[str], metrics: Path, lines: int) -> None:
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= lines):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)


def test_a_second_process_on_a_run_in_training_is_refused_naming_the_holder(cli, one_line_error, tmp_path: Path) -> None:
    assert cli("train", "mlp", "--steps", "4", "--out", "run", *SMALL, "--set", "checkpoint_every=2").returncode == 0
    first = start("train", "--resume", "run", "--steps", "1000000", "--set", "log_every=10", cwd=tmp_path)
    try:
        wait_for_logged_steps(first, tmp_path / "run" / "metrics.jsonl", 4)
        error = one_line_error(cli("train", "--resume", "run", "--steps", "2000000"))
        assert f"run is being trained by process {first.pid}" in error
        assert "ganforge sample, eval and report can read the run meanwhile" in error
        # A fresh run over it is refused too, without touching what the first process writes.
        assert f"run is being trained by process {first.pid}" in one_line_error(cli("train", "mlp", "--out", "run", *SMALL))
        # Readers do not need the lock.
        assert cli("sample", "run", "--n", "4", "--out", "grid.png").returncode == 0
        assert cli("report", "run").returncode == 0
        assert cli("eval", "run", "--n", "100").returncode == 0
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if '"d_loss"' in line]
    assert steps == sorted(set(steps)), "one writer: every step logged once, in order"


def test_a_run_whose_trainer_was_killed_can_be_continued_at_once(cli, tmp_path: Path) -> None:
    # The lock is the kernel's: a process killed with SIGKILL leaves none behind.
    first = start("train", "mlp", "--steps", "1000000", "--out", "run", *SMALL, "--set", "log_every=10",
                  "--set", "checkpoint_every=20", cwd=tmp_path)
    wait_for_logged_steps(first, tmp_path / "run" / "metrics.jsonl", 3)
    first.kill()
    first.communicate(timeout=60)
    (tmp_path / "run" / "checkpoints" / "last.pt.tmp").write_bytes(b"half a checkpoint")  # as a kill mid-write leaves
    reached = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"]
    resumed = cli("train", "--resume", "run", "--steps", str(reached + 5))
    assert resumed.returncode == 0 and f"trained to step {reached + 5}" in resumed.stdout, resumed.stderr
    assert not list((tmp_path / "run").rglob("*.tmp")), "the next process to hold the lock clears what a killed one left"


def test_two_new_runs_in_one_folder_at_once_leave_one_run(tmp_path: Path) -> None:
    procs = [start("train", "mlp", "--steps", "30", "--out", "run", *SMALL, cwd=tmp_path) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], results
    refused = next(err for p, (_, err) in zip(procs, results) if p.returncode == 2)
    assert "Traceback" not in refused and ("already holds a run" in refused or "is being trained by process" in refused)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [30]
