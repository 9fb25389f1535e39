"""The exception tree: one root, the matching builtins, structured and picklable errors."""

import builtins
import pickle
import re

import pytest
import trio

import mai
from mai import _errors

_TREE_LINE = re.compile(r"^\W*(\w+)\(([\w, ]+)\)", re.MULTILINE)


def _documented_tree() -> dict[str, tuple[str, ...]]:
    """Parse ``Name(Base, Base)`` lines of the tree drawn in mai/_errors.py's docstring."""
    doc = _errors.__doc__ or ""
    tree = {}
    for name, bases in _TREE_LINE.findall(doc):
        tree[name] = tuple(b.strip() for b in bases.split(","))
    return tree


TREE = _documented_tree()
ERRORS = sorted(
    n
    for n in mai.__all__
    if isinstance(getattr(mai, n), type) and n.endswith(("Error", "Exceeded"))
)


def test_docstring_draws_every_public_error():
    """The errors docstring draws the whole tree: every public error class appears in it."""
    assert "MaiError" in TREE
    assert set(ERRORS) == set(TREE)
    expected = {
        "MaiError",
        "ConfigError",
        "ArgumentError",
        "CastError",
        "DeadlineExceeded",
        "LoopLimitExceeded",
    }
    assert expected <= set(TREE)


@pytest.mark.parametrize("name", sorted(TREE))
def test_error_has_the_documented_bases(name):
    """Each error derives from MaiError and from every builtin its docstring line names."""
    cls = getattr(mai, name)
    assert issubclass(cls, mai.MaiError)
    assert issubclass(cls, Exception)
    for base in TREE[name]:
        base_cls = getattr(mai, base, None) or getattr(builtins, base)
        assert issubclass(cls, base_cls), f"{name} should subclass {base}"


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (mai.ConfigError, TypeError),
        (mai.ArgumentError, TypeError),
        (mai.CastError, ValueError),
        (mai.CastError, TypeError),
        (mai.DeadlineExceeded, TimeoutError),
        (mai.LoopLimitExceeded, RuntimeError),
        (mai.EventLoopRunningError, RuntimeError),
    ],
)
def test_error_is_caught_by_the_matching_builtin(cls, builtin):
    """Raising a pymai error is caught by `except <matching builtin>` and `except MaiError`."""
    with pytest.raises(builtin):
        raise cls("boom")
    with pytest.raises(mai.MaiError):
        raise cls("boom")


def test_no_error_is_a_cancellation():
    """No pymai error is (or subclasses) a cancellation type."""
    import asyncio

    for name in TREE:
        cls = getattr(mai, name)
        assert not issubclass(cls, trio.Cancelled)
        assert not issubclass(cls, asyncio.CancelledError)


SAMPLES = [
    mai.MaiError("root", module_name="m", step_id="1.2"),
    mai.ConfigError("bad key", module_name="m", key="tiemout", valid=("name", "timeout")),
    mai.ArgumentError("missing x", module_name="m"),
    mai.CastError(
        "bad value",
        module_name="m",
        step_id="1",
        parameter="x",
        value={"a": [1, 2]},
        expected="int",
    ),
    mai.DeadlineExceeded(
        "late", module_name="outer", step_id="1.1", deadline=12.5, timeout=3.0, running="inner"
    ),
    mai.LoopLimitExceeded("loops", module_name="L", step_id="2", max_iterations=4, last_value=[9]),
    mai.EventLoopRunningError("inside a loop", module_name="m"),
    mai.DurableError("durable", run_id="r1", module_name="m", step_id="1"),
    mai.NonDeterminismError("changed input", run_id="r1", module_name="m", step_id="1.2"),
    mai.PlanMismatchError("changed plan", run_id="r1", step_id="1.3"),
    mai.LeaseLostError("fenced", run_id="r1", step_id="1.4"),
    mai.RunFailedError("failed", run_id="r1", error_type="ValueError", error_message="boom"),
    mai.RunCancelledError("cancelled", run_id="r1"),
    mai.RunDeadLetteredError("dead", run_id="r1", reason="invalid JSON"),
    mai.RunNotFoundError("missing", run_id="r9"),
    mai.WorkflowNotFoundError("unknown workflow", run_id="r9", workflow="wf"),
    mai.WorkflowIdentityError("no name"),
    mai.RunNotRetryableError("still running", run_id="r9", status="RUNNING"),
    mai.SerializationError("not JSON", module_name="m", step_id="1"),
    mai.WaitTimeoutError("no event", step_id="1.5"),
    mai.StoreError("io", url="sqlite:///x.db"),
    mai.StoreFullError("full", url="sqlite:///x.db"),
    mai.StoreInterfaceError("lacks load_history", missing=["load_history"], url="x://s"),
    mai.StoreReadOnlyError("ro", url="sqlite:///x.db"),
    mai.StoreCorruptError("corrupt", url="sqlite:///x.db"),
    mai.StoreSchemaError("newer", url="sqlite:///x.db"),
    mai.StoreBusyError("busy", url="sqlite:///x.db"),
    mai.StoreUnavailableError("down", url="postgresql://db/x", retryable=False),
    mai.GraphError("graph", graph="g", node="n1", node_name="m"),
    mai.GraphInputError("unknown", graph="g", node="n2", parameter="x"),
    mai.GraphCycleError("cycle", graph="g", node="n2", cycle=("n1", "n2", "n1")),
    mai.GraphTypeError(
        "types",
        graph="g",
        node="n2",
        producer="n1",
        consumer="n2",
        parameter="x",
        source_type="int",
        target_type="str",
    ),
    mai.GraphOutputError("twice", graph="g", output="answer"),
    mai.PlanFormatError("not a plan"),
    mai.PlanResolutionError("gone", graph="g", node="n1", node_name="m", path="pkg:fn"),
    mai.MCPToolError("tool failed", server="calc", tool="add", text="no", module_name="c_add"),
    mai.MCPServerError("refused", server="calc", tool="add"),
    mai.MCPConnectionError("went away", server="calc", tool="add", module_name="c_add"),
    mai.MCPToolChangedError("changed", server="calc", tool="add"),
]


@pytest.mark.parametrize("err", SAMPLES, ids=lambda e: type(e).__name__)
def test_error_pickles_round_trip(err):
    """Every error survives pickle with its type, message and structured attributes."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(err, protocol=protocol))  # noqa: S301 - our own data
        assert type(back) is type(err)
        assert str(back) == str(err)
        assert back.args == err.args
        assert vars(back) == vars(err)


def test_every_error_class_is_pickle_tested():
    """The pickle samples cover every error in the documented tree."""
    assert {type(e).__name__ for e in SAMPLES} == set(TREE)


def test_error_with_notes_pickles_round_trip():
    """An error carrying notes (like the retry note) keeps them through pickle."""
    err = mai.CastError("bad", parameter="x")
    err.add_note("mai: module 'm' gave up after 3 attempts")
    back = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own data
    assert back.__notes__ == err.__notes__


async def test_errors_raised_by_the_kernel_pickle_round_trip(autojump_clock):
    """Real CastError and DeadlineExceeded raised by module calls pickle round-trip."""

    @mai.module(timeout=1)
    async def slow(x: int) -> None:
        await trio.sleep(5)

    raised = []
    for arg in ("nope", 1):
        try:
            await slow(arg)
        except mai.MaiError as exc:
            raised.append(exc)
    assert [type(e) for e in raised] == [mai.CastError, mai.DeadlineExceeded]
    for err in raised:
        back = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own data
        assert type(back) is type(err)
        assert str(back) == str(err)
        assert back.module_name == err.module_name == "slow"
        assert vars(back) == vars(err)


def test_errors_have_structured_attributes():
    """module_name and step_id are keyword attributes on every error (None when not given)."""
    for name in TREE:
        err = getattr(mai, name)("message")
        assert err.module_name is None
        assert err.step_id is None
        assert str(err) == "message"
