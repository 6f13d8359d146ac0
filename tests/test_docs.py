"""The generated reference pages match the code, and the links in the README and docs lead somewhere."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "make_reference.py"


def test_the_committed_reference_is_what_the_code_generates() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_stale_reference_page_is_named_with_the_command_that_fixes_it(tmp_path: Path) -> None:
    pages = tmp_path / "reference"
    shutil.copytree(ROOT / "docs" / "reference", pages)
    settings = pages / "settings.md"
    settings.write_text(settings.read_text().replace("`batch_size` | int", "`batch_size` | float"))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check", "--out", str(pages)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"out of date: {settings}; regenerate with `python scripts/make_reference.py`")


def test_every_relative_link_in_the_readme_and_docs_names_a_file_that_exists() -> None:
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        if "examples" in page.parts:
            continue
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken

