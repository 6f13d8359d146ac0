"""The one exception type a user is meant to read: the CLI prints it as one line and exits 2."""

from __future__ import annotations


class GanforgeError(Exception):
    """Bad input or state that the user can fix; the message says what is wrong and how to fix it."""
