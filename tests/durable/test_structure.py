"""The durable package's structure: no import cycle, no hidden imports, a typed seam."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mai
from mai._context import RunState

PACKAGE = Path(mai.__file__).parent / "core" / "durable"


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
    """Module-level (run-time) imports between the package's modules, and function-level ones."""
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
                hidden.extend(
                    f"{name}.{node.name} imports {_sibling(inner)}"
                    for inner in ast.walk(node)
                    if isinstance(inner, ast.ImportFrom) and _sibling(inner)
                )
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
    """No function of mai.core.durable imports another of its modules (they hide cycles)."""
    _, hidden = _imports()
    assert hidden == []


def test_the_kernel_run_state_has_a_typed_durability_attribute() -> None:
    """RunState.durable is the seam's Durability protocol, never Any."""
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
    """Opening a store that lacks methods of the protocol names each missing method."""
    with pytest.raises(mai.StoreError, match=r"lacks requeue_run, load_history") as info:
        async with mai.Runtime(_OldStore()):
            pass
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
