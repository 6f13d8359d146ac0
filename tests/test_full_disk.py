"""A full disk: one line naming what could not be written, no temporary file left, the last good
checkpoint intact. On a real small file system (a tmpfs mount, where this machine allows one) and
by injecting ENOSPC into the same write path."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ganforge import TrainConfig, train
from ganforge.durable import StorageError, _RecordingWriter
from ganforge.runs import RunDir

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

SMALL = ["--set", "g_hidden=[32]", "--set", "d_hidden=[32]"]


@contextlib.contextmanager
def small_file_system(where: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted at ``where``; skips the test where mounting is not allowed."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def checkpoint_bytes(cli, tmp_path: Path) -> int:
    assert cli("train", "mlp", "--steps", "4", "--out", "probe", *SMALL).returncode == 0
    return (tmp_path / "probe" / "checkpoints" / "last.pt").stat().st_size


def test_a_checkpoint_that_fills_the_disk_is_one_line_and_the_last_one_survives(cli, one_line_error, tmp_path: Path) -> None:
    size = checkpoint_bytes(cli, tmp_path)
    # Room for two checkpoints (last.pt is a second name of the newest step's file) and the small files, not three.
    with small_file_system(tmp_path / "disk", int(2.6 * size)) as disk:
        proc = cli("train", "mlp", "--steps", "12", "--out", str(disk / "run"), *SMALL, "--set", "checkpoint_every=4")
        error = one_line_error(proc, status=1)
        assert f"no space left on the device holding {disk / 'run' / 'checkpoints'}/step_0000012.pt writing checkpoint " \
               "step_0000012.pt of step 12; the previous checkpoint (step 8) is intact" in error
        assert not list(disk.rglob("*.tmp"))
        run = RunDir(disk / "run")
        assert run.load_checkpoint("last")["step"] == 8
        # After room is made, the run continues from there.
        (run.checkpoints / "step_0000004.pt").unlink()
        resumed = cli("train", "--resume", str(run.path))
        assert resumed.returncode == 0 and "trained to step 12" in resumed.stdout, resumed.stderr


def test_a_new_run_on_a_full_disk_leaves_no_half_made_folder(cli, one_line_error, tmp_path: Path) -> None:
    with small_file_system(tmp_path / "disk", 64 * 1024) as disk:
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
        error = one_line_error(cli("train", "mlp", "--steps", "2", "--out", str(disk / "run"), *SMALL), status=1)
        assert f"no space left on the device holding {disk / 'run' / 'config.json'} writing the run's config.json" in error
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_enospc_in_a_checkpoint_write_removes_the_temporary_file(tmp_path: Path, monkeypatch) -> None:
    # The same path without a mount: the write itself fails as a full disk makes it fail.
    settings = {"variant": "mlp", "model": {"g_hidden": [32], "d_hidden": [32]}, "batch_size": 16, "device": "cpu",
                "checkpoint_every": 4, "out": tmp_path / "run"}
    train(TrainConfig(steps=8, **settings))
    write = _RecordingWriter.write
    written = {"bytes": 0}

    def fill_up(self, data):
        if self.file.name.endswith(".pt.tmp"):
            written["bytes"] += len(memoryview(data).cast("B"))
        if written["bytes"] > 50_000:
            self.error = self.error or OSError(errno.ENOSPC, "No space left on device")
            raise self.error
        return write(self, data)

    monkeypatch.setattr(_RecordingWriter, "write", fill_up)
    from ganforge import resume

    with pytest.raises(StorageError, match=r"no space left on the device holding .*step_0000012.pt writing checkpoint "
                                           r"step_0000012.pt of step 12; the previous checkpoint \(step 8\) is intact"):
        resume(tmp_path / "run", steps=12)
    run = RunDir(tmp_path / "run")
    assert not list(run.path.rglob("*.tmp"))
    state = run.load_checkpoint("last")
    assert state["step"] == 8 and torch.isfinite(state["generator"]["net.0.weight"]).all()
