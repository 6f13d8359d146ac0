"""File-system primitives that a run directory relies on: durable atomic writes and an OS lock.

A file is written to ``NAME.tmp``, flushed to the disk, renamed over ``NAME`` and its folder synced,
so that a crash or a power cut leaves either the old file or the new one, never half of either. A
write that fails (a full disk) removes its temporary file and says which file and why in one line.
The lock is the operating system's (``flock``, or ``msvcrt.locking`` on Windows), so a process
that dies, however it dies, holds it no longer.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import GanforgeError, RunFailed

TEMP_SUFFIX = ".tmp"


class StorageError(RunFailed):
    """A file could not be written (no space left, a read-only or vanished file system)."""


def temp_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place."""
    return path.with_name(path.name + TEMP_SUFFIX)


class _RecordingWriter:
    """A binary file that keeps the first OSError its writes raise: ``torch.save`` turns that error into
    an opaque RuntimeError ("unexpected pos ..."), and the original (ENOSPC, EROFS) is what to report."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        try:
            self.file.flush()
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name: str) -> Any:
        # seek, tell, seekable...: the file's own (zipfile seeks back to write its headers).
        return getattr(self.file, name)


def describe_os_error(exc: OSError, path: Path) -> str:
    """One line for a failed write: "no space left on the device holding PATH" and the like."""
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device holding {path}"
    if exc.errno == errno.EROFS:
        return f"{path} is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to write {path}"
    return f"cannot write {path} ({exc.strerror or exc})"


def atomic_write(path: Path, write: Callable[[Any], None], what: str) -> None:
    """Write ``path`` through ``write(file)``, durably and atomically; ``what`` names it in errors."""
    tmp = temp_path(path)
    recorder: _RecordingWriter | None = None
    try:
        with open(tmp, "wb") as file:
            recorder = _RecordingWriter(file)
            write(recorder)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        sync_folder(path.parent)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        cause = recorder.error if recorder is not None and recorder.error is not None else exc
        if isinstance(cause, OSError):
            raise StorageError(f"{describe_os_error(cause, path)} writing {what}") from None
        raise


def atomic_write_bytes(path: Path, data: bytes, what: str) -> None:
    """``atomic_write`` of a byte string."""
    atomic_write(path, lambda file: file.write(data), what)


def atomic_copy(source: Path, path: Path, what: str) -> None:
    """Put the content of ``source`` at ``path`` atomically: as a second name of the same file where the
    file system allows it (ganforge never changes a written file in place, so the two stay equal), else
    as a durable copy."""
    tmp = temp_path(path)
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, path)
        sync_folder(path.parent)
        return
    except OSError:
        tmp.unlink(missing_ok=True)

    def copy(file: Any) -> None:
        with open(source, "rb") as fin:
            shutil.copyfileobj(fin, file, 1 << 20)

    atomic_write(path, copy, what)


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class FileLock:
    """An exclusive OS lock on ``path`` that records the holder's PID in the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, busy: Callable[[str], str]) -> None:
        """Take the lock or raise a GanforgeError with ``busy(pid)``: the holder's PID as the file names it.

        A holder may remove the file before it lets go (:meth:`release` with ``remove``); a lock taken
        on a file that is no longer at the path is let go and taken again on the one that is.
        """
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StorageError(f"{describe_os_error(exc, self.path)} taking the lock") from None
            try:
                _lock(fd)
            except OSError:
                os.close(fd)
                raise GanforgeError(busy(self.holder())) from None
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
            _unlock(fd)
            os.close(fd)
        try:  # the PID only names the holder in another process's message: a full disk must not stop us here
            os.ftruncate(fd, _PID_OFFSET)
            os.lseek(fd, _PID_OFFSET, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        self._fd = fd

    def holder(self) -> str:
        """The PID written by the process that holds the lock ("unknown" where it cannot be read)."""
        try:
            with open(self.path, "rb") as file:
                file.seek(_PID_OFFSET)
                return file.read(32).decode(errors="replace").strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self, *, remove: bool = False) -> None:
        """Let go of the lock; with ``remove``, delete the file first (while still holding it)."""
        if self._fd is not None:
            if remove:
                self.path.unlink(missing_ok=True)
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None


if os.name == "nt":  # pragma: no cover - Windows
    import msvcrt

    # Windows locks byte ranges, and a locked byte cannot be read by others: lock byte 0, write the PID after it.
    _PID_OFFSET = 1

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    _PID_OFFSET = 0

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
