"""The public surface of mai.agents: exact, sorted, documented, consistent with mai."""

import inspect
import types

import pytest

import mai
import mai.agents


def test_all_is_sorted_unique_and_complete():
    """mai.agents.__all__ is sorted, unique, and lists every public attribute."""
    names = list(mai.agents.__all__)
    assert names == sorted(set(names))
    public = {
        n
        for n in dir(mai.agents)
        if not n.startswith("_") and not isinstance(getattr(mai.agents, n), types.ModuleType)
    }
    assert public == set(names)


@pytest.mark.parametrize("name", mai.agents.__all__)
def test_every_agents_name_is_documented(name):
    """Every name of mai.agents has a docstring (type aliases aside)."""
    obj = getattr(mai.agents, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        assert (obj.__doc__ or "").strip()


def test_names_in_both_namespaces_are_the_same_objects():
    """A name exported by both mai and mai.agents is the same object."""
    shared = set(mai.__all__) & set(mai.agents.__all__)
    assert {"Tool", "tool", "ModelRetry"} <= shared
    for name in shared:
        assert getattr(mai, name) is getattr(mai.agents, name)
