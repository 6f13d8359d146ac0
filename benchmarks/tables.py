"""Benchmark tables as Markdown blocks in a results page, each headed by the command that produced
it and the date, ganforge version and machine it ran on. Running the same command again replaces
its block; another command adds one."""

from __future__ import annotations

import datetime
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

import ganforge
from ganforge.accel.speed import cpu_description


def command_line(skip: str = "--markdown") -> str:
    """How this script was run, without the ``--markdown FILE`` that only says where the table goes."""
    args, kept = sys.argv[1:], []
    while args:
        arg = args.pop(0)
        if arg == skip:
            del args[:1]
        elif not arg.startswith(skip + "="):
            kept.append(arg)
    script = Path(sys.argv[0]).resolve()
    root = Path(__file__).resolve().parent.parent
    shown = script.relative_to(root) if script.is_relative_to(root) else script
    return " ".join(["python", str(shown), *map(shlex.quote, kept)])


def machine_line() -> str:
    """The date, ganforge and torch versions and the machine, in one line."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_description()
    return (f"{datetime.date.today().isoformat()} · ganforge {ganforge.__version__} · torch {torch.__version__} · "
            f"{torch.get_num_threads()} thread{'' if torch.get_num_threads() == 1 else 's'} · {device}")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_block(page: Path, title: str, header: Sequence[str], rows: Sequence[Sequence[str]], notes: str = "") -> None:
    """Put this run's table into ``page``: in place of the block the same command wrote before, else
    after the page's ``<!-- SCRIPT.py -->`` line where it has one, else at the end."""
    command = command_line()
    key = re.sub(r"\s+", " ", command)
    block = (f"<!-- begin {key} -->\n### {title}\n\n`{command}`\n\n{machine_line()}\n\n{table(header, rows)}"
             + (f"\n{notes.strip()}\n" if notes.strip() else "") + f"<!-- end {key} -->\n")
    text = page.read_text() if page.exists() else ""
    begin, end = f"<!-- begin {key} -->\n", f"<!-- end {key} -->\n"
    if begin in text and end in text:
        start = text.index(begin)
        text = text[:start] + block + text[text.index(end, start) + len(end):]
    elif (anchor := f"<!-- {Path(sys.argv[0]).name} -->\n") in text:
        at = text.index(anchor) + len(anchor)
        text = text[:at] + block + text[at:]
    else:
        text = text + ("\n" if text and not text.endswith("\n\n") else "") + block
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text)
