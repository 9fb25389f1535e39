"""Count the kernel's lines of code (DP-8: under 2,000).

The kernel is every private module directly under ``mai/`` (``mai/_*.py``): Module, Context,
casting, composites, errors and their helpers. ``mai/core/`` is not kernel, and neither is the
public facade (``mai/__init__.py``, re-exports only, at the top of the dependency stack) or
``mai/__main__.py``. Counted: physical lines holding code; not counted: blank lines, comments and
docstrings (as cloc does).
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "mai"
BUDGET = 2000


def docstring_lines(source: str) -> set[int]:
    """Return the line numbers covered by docstrings."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if not isinstance(body, list) or not body:
            continue
        first = body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def code_lines(path: Path) -> int:
    """Count the lines of ``path`` that carry code."""
    source = path.read_text()
    skip = docstring_lines(source)
    code: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in {
            tokenize.COMMENT,
            tokenize.NL,
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
        }:
            continue
        for line in range(tok.start[0], tok.end[0] + 1):
            if line not in skip:
                code.add(line)
    return len(code)


def kernel_files() -> list[Path]:
    """The kernel: every private ``_*.py`` module directly under ``mai/``."""
    return sorted(p for p in ROOT.glob("_*.py") if p.name not in {"__init__.py", "__main__.py"})


def main() -> int:
    """Print the count per file and the total; exit 1 when over budget."""
    total = 0
    for path in kernel_files():
        n = code_lines(path)
        total += n
        print(f"{n:5d}  {path.relative_to(ROOT.parent)}")
    print(f"{total:5d}  kernel total (budget {BUDGET})")
    return 0 if total < BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
