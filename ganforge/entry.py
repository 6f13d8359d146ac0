"""The ``ganforge`` command's entry point. Everything is imported inside it, so that Ctrl-C at any
moment of the start (torch takes a while to import) ends the command quietly with status 130."""

from __future__ import annotations

import sys


def run() -> None:
    """Run the CLI with the process's arguments and exit with its status."""
    try:
        from .cli import main

        status = main()
    except KeyboardInterrupt:
        sys.stderr.write("ganforge: interrupted\n")
        status = 130
    raise SystemExit(status)
