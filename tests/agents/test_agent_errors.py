"""The agent errors: documented bases, builtins that catch them, pickling."""

from __future__ import annotations

import pickle
import re

import pytest

import mai
import mai.agents
from mai.core.agents import _errors

_LINE = re.compile(r"^\W*(\w+)\(([\w, ]+)\)", re.MULTILINE)
TREE = {
    n: tuple(b.strip() for b in bases.split(","))
    for n, bases in _LINE.findall(_errors.__doc__ or "")
}

SAMPLES = [
    mai.agents.AgentError("a", agent="x"),
    mai.agents.ToolRetriesExceeded("t", agent="x", tool_name="add", max_retries=1, last_error="e"),
    mai.agents.OutputRetriesExceeded("o", agent="x", turn=2, max_retries=1, last_error="e"),
    mai.agents.UsageLimitExceeded("u", agent="x", limit="request_limit", value=4, maximum=3),
    mai.agents.ModelRequestsBlocked("b"),
    mai.agents.ModelAPIError("m", model_name="gpt", base_url="http://h/v1"),
    mai.agents.ModelHTTPError("h", status_code=429, body="slow", model_name="g", base_url="u"),
    mai.agents.ModelConnectionError("c", model_name="g", base_url="http://h/v1"),
    mai.agents.HistoryError("h", index=3),
    mai.agents.ToolArgumentsError("a", tool_name="add", errors=("a: bad",)),
    mai.agents.ModelNotFoundError("n", provider="acme"),
    mai.ModelRetry("again"),
]


def test_every_documented_error_is_sampled():
    """The tree in the agents' errors docstring lists exactly the sampled classes."""
    assert {type(e).__name__ for e in SAMPLES} == set(TREE)


@pytest.mark.parametrize("name", sorted(TREE))
def test_documented_bases(name):
    """Each agent error derives from MaiError and the builtins its docstring line names."""
    cls = getattr(mai.agents, name)
    assert issubclass(cls, mai.MaiError)
    for base in TREE[name]:
        base_cls = (
            getattr(mai.agents, base, None)
            or getattr(mai, base, None)
            or (__builtins__ if isinstance(__builtins__, dict) else __builtins__.__dict__).get(base)
        )
        assert issubclass(cls, base_cls), f"{name} should subclass {base}"


@pytest.mark.parametrize("err", SAMPLES, ids=lambda e: type(e).__name__)
def test_errors_pickle_round_trip(err):
    """Agent errors keep their type, message and attributes through pickle."""
    back = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own data
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert vars(back) == vars(err)
