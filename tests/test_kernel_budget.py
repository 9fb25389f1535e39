"""DP-8: the kernel stays under 2,000 lines of code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("kernel_loc", ROOT / "tools" / "kernel_loc.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_kernel_is_under_budget() -> None:
    """The kernel (the private mai/_*.py modules) has fewer than 2,000 lines of code."""
    tool = _tool()
    total = sum(tool.code_lines(p) for p in tool.kernel_files())
    assert 500 < total < tool.BUDGET


def test_counter_ignores_comments_and_docstrings(tmp_path: Path) -> None:
    """The counter skips blank lines, comments and docstrings but counts code."""
    f = tmp_path / "m.py"
    f.write_text(
        '"""Doc."""\n\n# comment\nx = 1\n\n\ndef f():\n    """Doc\n    more."""\n    return x\n'
    )
    assert _tool().code_lines(f) == 3
