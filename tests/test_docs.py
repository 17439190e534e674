"""Every Python code block in README.md and docs/ runs, so the docs cannot rot."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
from conftest import requires_opencl

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks():
    for path in DOCS:
        for number, match in enumerate(BLOCK.finditer(path.read_text()), 1):
            marks = [requires_opencl] if 'backend="opencl"' in match.group(1) else []
            yield pytest.param(match.group(1), id=f"{path.name}-{number}", marks=marks)


@pytest.mark.parametrize("code", list(_blocks()))
def test_code_block_runs(code: str, tmp_path, monkeypatch) -> None:
    """Run as a user would after pasting it into a file of their own."""
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    script = tmp_path / "pasted.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__doc__")


def test_every_doc_has_been_found() -> None:
    assert (ROOT / "docs" / "eager.md") in DOCS
    assert len(list(_blocks())) >= 2
