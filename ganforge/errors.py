"""The exceptions a user is meant to read: the CLI prints each as one line and exits with its status."""

from __future__ import annotations


class GanforgeError(Exception):
    """Bad input or state that the user can fix; the message says what is wrong and how to fix it."""

    exit_status = 2


class RunFailed(GanforgeError):
    """A run that started could not go on (it diverged, or the disk filled up); its last checkpoint is intact."""

    exit_status = 1
