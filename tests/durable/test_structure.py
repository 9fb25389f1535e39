"""The durable package's structure: no import cycle, no hidden imports, a typed seam.

Import edges are read with ``ast``: only statements executed at import time count. Imports
under ``if TYPE_CHECKING:`` are for annotations only (never executed), so they are not run-time
edges and may point anywhere; an import inside a function is a hidden run-time edge and is
refused between the package's own modules, except for the modules loaded on first use
(``ON_DEMAND``: what only listing runs, requeues and events need); those edges count in the
cycle check too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import mai
from mai._context import RunState
from mai.core.durable import MemoryStore

PACKAGE = Path(mai.__file__).parent / "core" / "durable"
#: Modules a function may import (loaded when first needed, so a process that only runs
#: workflows never loads them); their edges still take part in the cycle check.
ON_DEMAND = {"_history", "_pages"}


def _sibling(node: ast.ImportFrom) -> list[str]:
    """The sibling modules of mai.core.durable an import statement names."""
    if node.level == 1:
        if node.module:
            return [node.module.split(".")[0]]
        return [alias.name for alias in node.names]
    if node.level == 0 and (node.module or "").startswith("mai.core.durable."):
        return [(node.module or "").split(".")[3]]
    return []


def _imports() -> tuple[dict[str, set[str]], list[str]]:
    """Run-time imports between the package's modules, and the refused function-level ones.

    Top-level statements are run-time edges, and so are a function's imports of an
    ``ON_DEMAND`` module: an ``if TYPE_CHECKING:`` block is an ``ast.If`` and is skipped on
    purpose (annotation-only imports do not count).
    """
    graph: dict[str, set[str]] = {}
    hidden: list[str] = []
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        tree = ast.parse(path.read_text())
        graph[name] = set()
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom):
                graph[name].update(_sibling(stmt))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and _sibling(inner):
                        targets = set(_sibling(inner))
                        graph[name].update(targets & ON_DEMAND)
                        if targets - ON_DEMAND:
                            hidden.append(f"{name}.{node.name} imports {sorted(targets)}")
    return graph, hidden


def test_the_durable_package_has_no_import_cycle() -> None:
    """The run-time imports between mai.core.durable's modules form no cycle."""
    graph, _ = _imports()
    assert len(graph) > 10
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_no_function_level_imports_between_durable_modules() -> None:
    """No function of mai.core.durable imports a sibling but an on-demand one (cycle-checked)."""
    graph, hidden = _imports()
    assert hidden == []
    assert "_pages" in graph["_sqlite"]  # its function-level edge is counted, not ignored


def test_a_process_that_only_runs_workflows_does_not_load_the_on_demand_modules() -> None:
    """A durable run of a plain module loads neither pages, anyio, nor the graph machinery."""
    code = (
        "import sys, tempfile, trio, mai\n"
        "@mai.module\n"
        "async def one(x: int) -> int:\n"
        "    return x + 1\n"
        "async def main():\n"
        "    with tempfile.TemporaryDirectory() as d:\n"
        "        async with mai.Runtime(f'sqlite:///{d}/r.db') as rt:\n"
        "            assert await (await rt.start(one, 1)).result() == 2\n"
        "trio.run(main)\n"
        "for name in ('_pages', '_history'):\n"
        "    assert f'mai.core.durable.{name}' not in sys.modules, name\n"
        "assert 'anyio' not in sys.modules, 'anyio loaded under Trio'\n"
        "for name in ('_graph', '_validate', '_reach', '_run'):\n"
        "    assert f'mai.core.graph.{name}' not in sys.modules, name\n"
        "from mai.core.graph import Graph, LAX\n"
        "assert mai.core.graph.plan(one).to_dict()['kind'] == 'module'\n"
        "with Graph(name='g') as g:\n"
        "    g.output(one(g.input('x', int)))\n"
        "assert mai.plan(g).to_dict()['kind'] == 'graph'\n"
        "from mai.core.durable import RunQuery\n"
        "assert RunQuery().status is None\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_kernel_run_state_has_a_typed_durability_attribute() -> None:
    """RunState.durable is the seam's Durability protocol, never Any (source check)."""
    assert "durable" in RunState.__slots__
    source = (Path(mai.__file__).parent / "_context.py").read_text()
    assert "self.durable: Durability | None = None" in source
    assert "durable: Any" not in source
    seam = (Path(mai.__file__).parent / "_seam.py").read_text()
    assert "run_binding" not in seam
    assert "class Durability(Protocol):" in seam


class _OldStore:
    """A third-party store written against the protocol before requeueing existed."""

    def __init__(self) -> None:
        self._inner = mai.core.durable.MemoryStore()
        self.url = "old://store"

    def __getattr__(self, name: str) -> object:
        if name in {"requeue_run", "load_history"}:
            raise AttributeError(name)
        return getattr(self._inner, name)


async def test_a_store_written_for_the_old_protocol_gets_a_clear_error() -> None:
    """Opening a store that lacks protocol methods raises StoreInterfaceError naming each one."""
    with pytest.raises(mai.StoreInterfaceError, match=r"lacks requeue_run, load_history") as info:
        async with mai.Runtime(_OldStore()):
            pass
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, mai.MaiError)
    assert info.value.missing == ["requeue_run", "load_history"]
    assert "_OldStore" in str(info.value)
    async with mai.Runtime(mai.core.durable.MemoryStore()) as rt:  # a complete one is fine
        assert await rt.list_runs() == []


def test_production_code_reads_no_fault_variable() -> None:
    """No module of mai/ or plugins/ mentions a MAI_CRASH* variable: tests inject fault hooks."""
    root = Path(mai.__file__).parent
    sources = [*root.rglob("*.py"), *(root.parent / "plugins").rglob("*.py")]
    assert len(sources) > 50
    offenders = [str(p) for p in sources if "MAI_CRASH" in p.read_text()]
    assert offenders == []


def test_a_fault_hook_is_called_at_each_point_a_run_reaches() -> None:
    """set_fault_hook installs a hook that sees the fault points; None removes it."""
    from mai.core.durable import FAULT_POINTS, fault_point, set_fault_hook

    seen: list[str] = []
    assert set_fault_hook(seen.append) is None
    try:
        for point in FAULT_POINTS:
            fault_point(point)
    finally:
        assert set_fault_hook(None) == seen.append
    fault_point("after_commit")  # no hook: nothing happens
    assert seen == list(FAULT_POINTS)


def _annotations(path: Path) -> list[tuple[str, str]]:
    """Every annotated attribute or variable of a module: (target, annotation source)."""
    tree = ast.parse(path.read_text())
    return [
        (ast.unparse(node.target), ast.unparse(node.annotation))
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign)
    ]


def test_no_kernel_module_types_durability_as_any() -> None:
    """No mai/_*.py annotates a durability attribute or variable as Any: the seam is typed."""
    kernel = sorted(Path(mai.__file__).parent.glob("_*.py"))
    assert len(kernel) > 10
    durable = [
        (path.name, target, annotation)
        for path in kernel
        for target, annotation in _annotations(path)
        if "durab" in target.lower()
    ]
    assert ("_context.py", "self.durable", "Durability | None") in durable
    assert all("Any" not in annotation for _, _, annotation in durable), durable
    assert all("Durability" in annotation for _, _, annotation in durable), durable


def test_durable_primitives_go_through_the_seams_durability_protocol() -> None:
    """mai.sleep/now/random/wait_for find the run through current_durable() -> Durability."""
    import inspect
    import typing

    from mai import _seam
    from mai.core.durable import _primitives
    from mai.core.durable._owner import RunOwner

    names = {**vars(_primitives), "Durability": _seam.Durability}  # a TYPE_CHECKING import
    hints = typing.get_type_hints(_primitives.current_durable, names)
    assert hints["return"] == _seam.Durability | None
    assert _seam.durability.get() is None  # the ContextVar[Durability | None] the runtime binds
    for name in ("sleep", "now", "random", "wait_for"):
        names_used = set(getattr(_primitives, name).__code__.co_names)
        assert "current_durable" in names_used, name
        assert not names_used & {"RunOwner", "Runtime", "_owner", "_runtime"}, name
    # the runtime's run owner implements the protocol, member for member, with its signatures
    for member in ("sleep", "now", "seed", "wait_for"):
        want = inspect.signature(getattr(_seam.Durability, member))
        got = inspect.signature(getattr(RunOwner, member))
        assert list(want.parameters) == list(got.parameters), member
    assert "run_id" in RunOwner.__init__.__code__.co_names  # the protocol's run_id property


def test_store_capabilities_are_checked_with_isinstance_not_probed() -> None:
    """No code in mai/ or plugins/ probes a store with getattr or hasattr (isinstance instead)."""
    import re

    # The one exception is the protocol check at open (``missing_methods``), which must name
    # every missing method of a store written for an older release.

    root = Path(mai.__file__).parent
    sources = [*root.rglob("*.py"), *(root.parent / "plugins").rglob("*.py")]
    probe = re.compile(r"\b(getattr|hasattr)\((self\.|rt\.|self\.rt\.|self\._rt\.)?_?store\b")
    found = [
        f"{path.name}: {line.strip()}"
        for path in sources
        for line in path.read_text().splitlines()
        if probe.search(line)
    ]
    assert len(found) == 1, found
    assert found[0].startswith("_store.py: return [name for name in REQUIRED_METHODS"), found


class _NoUrlStore(MemoryStore):
    """A store whose author forgot the ``url`` attribute."""

    def __getattribute__(self, name: str) -> object:
        if name == "url":
            raise AttributeError(name)
        return super().__getattribute__(name)


async def test_a_store_without_a_url_is_refused_by_name() -> None:
    """A store lacking the url attribute gets the same clear StoreInterfaceError, naming url."""
    with pytest.raises(mai.StoreInterfaceError, match=r"lacks url") as info:
        async with mai.Runtime(_NoUrlStore()):
            pass
    assert info.value.missing == ["url (the redacted URL, a str)"]
