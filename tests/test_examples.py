"""Examples and documentation code are executed, so they cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted([*ROOT.glob("examples/*.py"), *ROOT.glob("docs/examples/*.py")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_runs(script: Path) -> None:
    """Every example script (examples/ and docs/examples/) runs to completion."""
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "an example should show what it did"


def test_quickstart_shows_each_feature() -> None:
    """The quickstart demo prints the retry, the deadline and the final summary."""
    proc = subprocess.run(
        [sys.executable, "examples/quickstart.py"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    out = proc.stdout
    assert "after 3 attempts" in out
    assert "exceeded its timeout" in out
    assert "summary" in out


def _code(text: str) -> list[str]:
    return [
        line.rstrip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_readme_example_matches_its_script() -> None:
    """The README's twenty-line example is the script the tests run (docstring aside)."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    script = (ROOT / "examples/readme_example.py").read_text()
    script = re.sub(r'^""".*?"""\n', "", script, flags=re.DOTALL)
    strip = lambda lines: [re.sub(r"\s+#.*$", "", ln) for ln in lines]  # noqa: E731
    assert strip(_code(block.group(1))) == strip(_code(script))
    assert len(_code(block.group(1))) <= 20
