"""The code shown in docs/*.rst is the code the tests run, and reads on a forge as plain .rst.

Every sample is an inline ``.. code-block::`` (so the page shows it without Sphinx), preceded by
a comment naming the file it comes from: ``.. code from PATH (...)``. That file is executed by
tests/test_examples.py (or is a test fixture); here each block must appear in it verbatim, as
consecutive lines at one indentation.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.rst"))
MARK = re.compile(r"^(?P<ind>[ ]*)\.\. code from (?P<path>\S+) \(")


def _blocks(page: Path) -> list[tuple[int, str, list[str]]]:
    """``(line number, source path, block lines)`` for each marked code block of a page."""
    lines = page.read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        m = MARK.match(line)
        if m is None:
            continue
        ind = m.group("ind")
        j = i + 1
        while not lines[j].strip():
            j += 1
        assert lines[j].startswith(f"{ind}.. code-block::"), f"{page.name}:{j + 1}"
        j += 1
        while lines[j].strip().startswith(":") or not lines[j].strip():  # options, blank line
            j += 1
        body_ind = len(lines[j]) - len(lines[j].lstrip())
        body = []
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith(" " * body_ind)):
            body.append(lines[j][body_ind:])
            j += 1
        while body and not body[-1].strip():
            body.pop()
        found.append((i + 1, m.group("path"), body))
    return found


def _contains(source: list[str], block: list[str]) -> bool:
    """Whether ``block`` is a run of consecutive lines of ``source`` at one extra indentation."""
    first = block[0]
    for i, line in enumerate(source):
        extra = len(line) - len(first)
        if extra < 0 or line[extra:] != first or line[:extra].strip():
            continue
        pad = line[:extra]
        window = source[i : i + len(block)]
        if len(window) == len(block) and all(
            (not b.strip() and not s.strip()) or s == pad + b
            for s, b in zip(window, block, strict=True)
        ):
            return True
    return False


BLOCKS = [(page, *b) for page in PAGES for b in _blocks(page)]


def test_pages_have_inline_samples():
    """The docs show dozens of samples inline, each tied to its source."""
    assert len(BLOCKS) >= 80


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_hides_its_code_in_an_include(page):
    """No code sample is a literalinclude (it would show nothing on a forge)."""
    text = page.read_text()
    includes = re.findall(r"^\s*\.\. literalinclude:: (\S+)", text, re.MULTILINE)
    assert [p for p in includes if not p.endswith("CHANGELOG.md")] == []


@pytest.mark.parametrize(
    ("page", "line", "source", "block"),
    BLOCKS,
    ids=[f"{p.name}:{line}" for p, line, _, _ in BLOCKS],
)
def test_inline_block_matches_its_source(page, line, source, block):
    """Each inline sample appears verbatim in the file it names (which the tests execute)."""
    path = ROOT / source
    assert path.exists(), f"{page.name}:{line} names a missing file {source}"
    assert block, f"{page.name}:{line} has an empty block"
    assert _contains(path.read_text().splitlines(), block), (
        f"{page.name}:{line}: the block differs from {source}; copy it again from the file"
    )


def test_every_sample_source_is_executed():
    """Each file a sample comes from is run by the examples test or is part of the test suite."""
    sources = {s for _, _, s, _ in BLOCKS}
    run = {
        str(p.relative_to(ROOT))
        for p in [*ROOT.glob("examples/*.py"), *ROOT.glob("docs/examples/*.py")]
    }
    assert {s for s in sources if not s.startswith("tests/")} <= run


def test_a_changed_block_is_caught(tmp_path):
    """The check fails when a block no longer matches its source (it can fail)."""
    source = ["def f():", "    return 1", "", "x = f()"]
    assert _contains(source, ["    return 1"])
    assert _contains(source, ["return 1"])
    assert _contains(source, ["def f():", "    return 1"])
    assert not _contains(source, ["def f():", "    return 2"])
    assert not _contains(source, ["x = f()", "def f():"])
