"""Count the kernel's lines of code (DP-8: under 2,000).

The kernel is every module directly under ``mai/`` (``mai/core/`` is not kernel). Counted:
physical lines holding code; not counted: blank lines, comments and docstrings (as cloc does).
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
    """The kernel: every ``.py`` file directly under ``mai/``."""
    return sorted(ROOT.glob("*.py"))


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
