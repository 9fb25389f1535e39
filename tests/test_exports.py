"""The public surface: what `mai` exports, and that every public name is documented."""

import inspect
import types

import pytest

import mai

REQUIRED = {
    "module",
    "Module",
    "Context",
    "Sequential",
    "Parallel",
    "Map",
    "Race",
    "Conditional",
    "BlockingDelay",
    "NonBlockingDelay",
    "Loop",
    "run",
    "MaiError",
    "CastError",
    "ConfigError",
    "ArgumentError",
    "DeadlineExceeded",
    "LoopLimitExceeded",
}


def test_all_is_sorted_and_unique():
    """mai.__all__ is sorted and has no duplicates."""
    assert list(mai.__all__) == sorted(mai.__all__)
    assert len(set(mai.__all__)) == len(mai.__all__)


def test_every_exported_name_exists():
    """Every name in mai.__all__ is an attribute of mai."""
    missing = [name for name in mai.__all__ if not hasattr(mai, name)]
    assert missing == []


def test_required_names_are_exported():
    """mai.__all__ includes the documented kernel API."""
    assert set(mai.__all__) >= REQUIRED


def test_no_public_name_outside_all():
    """Every public attribute of mai is listed in __all__ (subpackages like mai.core aside)."""
    public = {
        n
        for n in dir(mai)
        if not n.startswith("_") and not isinstance(getattr(mai, n), types.ModuleType)
    }
    assert public <= set(mai.__all__)


def test_star_import_gives_exactly_all():
    """`from mai import *` binds exactly the names in __all__."""
    namespace: dict = {}
    exec("from mai import *", namespace)  # noqa: S102 - a fixed, trusted statement
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(mai.__all__)


@pytest.mark.parametrize("name", mai.__all__)
def test_every_public_name_has_a_docstring(name):
    """Every exported name has its own docstring."""
    obj = getattr(mai, name)
    doc = obj.__doc__ if (inspect.isclass(obj) or callable(obj)) else None
    assert doc
    assert doc.strip()


def _public_members(cls: type):
    for attr, value in vars(cls).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, property | classmethod | staticmethod) or inspect.isfunction(value):
            yield attr, value


@pytest.mark.parametrize("name", [n for n in mai.__all__ if inspect.isclass(getattr(mai, n))])
def test_every_public_method_has_a_docstring(name):
    """Every public method and property defined on an exported class has a docstring."""
    cls = getattr(mai, name)
    undocumented = []
    for klass in cls.__mro__:
        if not klass.__module__.startswith("mai"):
            continue
        for attr, value in _public_members(klass):
            func = value.__func__ if isinstance(value, classmethod | staticmethod) else value
            if not (func.__doc__ or "").strip():
                undocumented.append(f"{klass.__name__}.{attr}")
    assert undocumented == []


def _type_checking_reexports(path) -> dict[str, str]:
    """Names imported under ``if TYPE_CHECKING:`` in a facade module, with their module."""
    import ast

    tree = ast.parse(path.read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                for alias in imp.names:
                    found[alias.asname or alias.name] = "." * imp.level + (imp.module or "")
    return found


def test_lazy_exports_match_the_type_checking_reexports():
    """The lazily loaded names are exactly the ones written out for type checkers."""
    from pathlib import Path

    declared = _type_checking_reexports(Path(mai.__file__))
    assert {name: "mai" + mod for name, mod in declared.items()} == mai._LAZY
    assert set(mai._LAZY) <= set(mai.__all__)


@pytest.mark.parametrize("name", sorted(mai._LAZY))
def test_every_lazy_export_resolves_to_its_definition(name):
    """A lazily exported name is the very object its defining module holds."""
    import importlib

    assert getattr(mai, name) is getattr(importlib.import_module(mai._LAZY[name]), name)


def test_import_mai_loads_only_the_kernel_and_run_hooks():
    """`import mai` does not load the durable runtime, the graph or the trace renderer."""
    import subprocess
    import sys

    code = "import mai, sys; print(sorted(m for m in sys.modules if m.startswith('mai.core')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    for heavy in ("mai.core.durable", "mai.core.graph", "mai.core.tracing._handle"):
        assert f"'{heavy}'" not in out


def test_dir_lists_every_public_name():
    """dir(mai) shows lazily loaded names before they are first used."""
    assert set(mai.__all__) <= set(dir(mai))
