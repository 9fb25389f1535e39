"""The graph documentation's scripts run and check what docs/graphs.rst claims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(ROOT.glob("docs/examples/graph_*.py"))


def test_the_graph_page_has_scripts():
    """docs/graphs.rst includes scripts that exist (and each is run below)."""
    page = (ROOT / "docs" / "graphs.rst").read_text()
    included = {
        line.split("examples/")[1].split()[0]
        for line in page.splitlines()
        if line.startswith(".. code from docs/examples/")
    }
    assert included == {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_graph_doc_script_runs(script: Path):
    """Each docs/examples/graph_*.py script runs to completion and shows what it did."""
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "every claim holds" in proc.stdout
