"""TraceHandle as an object: lookup, iteration, JSON round trips and the terminal tree."""

from __future__ import annotations

import io
import json

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import mai
from mai import Span, TraceHandle


@mai.module
async def fetch(url: str) -> str:
    """Pretend to download a page."""
    await trio.sleep(0.25)
    return f"<html>{url}</html>"


@mai.module(timeout=1)
async def stuck(page: str) -> int:
    """Never finish in time."""
    await trio.sleep(5)
    return len(page)


@mai.module
async def measure(page: str) -> int:
    """Count characters."""
    return len(page)


PIPELINE = mai.Sequential(fetch, mai.Parallel(measure, measure.with_(name="again")))


async def _trace(autojump_clock) -> TraceHandle:
    _, trace = await mai.trace(PIPELINE, "a.example")
    return trace


async def test_lookup_by_name_and_step(autojump_clock):
    """trace[name] gives the first span of a module; find() filters by name, step and status."""
    trace = await _trace(autojump_clock)
    assert trace["fetch"].step_id == "1.1"
    assert "again" in trace
    assert "missing" not in trace
    assert [s.step_id for s in trace.find("measure")] == ["1.2.1"]
    assert trace.find(step_id="1.2.2")[0].name == "again"
    assert len(trace.find(status="ok")) == len(trace) == 5
    with pytest.raises(KeyError, match="modules traced: Sequential, fetch, Parallel"):
        trace["nope"]
    with pytest.raises(ValueError, match="unknown span status"):
        trace.find(status="weird")  # type: ignore[arg-type]


async def test_iteration_is_depth_first_and_stable(autojump_clock):
    """Iteration yields parents before children, siblings in step-id order."""
    trace = await _trace(autojump_clock)
    assert [s.step_id for s in trace] == ["1", "1.1", "1.2", "1.2.1", "1.2.2"]
    assert list(trace) == list(trace.spans)
    assert trace.roots == (trace.root,)
    assert trace.parent(trace.root) is None


def test_an_empty_trace_has_no_root():
    """An empty trace is empty: no root, no errors, zero duration."""
    trace = TraceHandle(())
    assert len(trace) == 0
    assert trace.errors == []
    assert trace.duration == 0.0
    with pytest.raises(LookupError):
        _ = trace.root
    assert trace.render() == ""
    assert repr(trace) == "<TraceHandle empty: 0 spans>"


async def test_to_dict_and_json_round_trip(autojump_clock):
    """from_dict(to_dict()) and from_json(to_json()) give an equal trace."""
    trace = await _trace(autojump_clock)
    data = trace.to_dict()
    assert data["format"] == "mai.trace/1"
    assert json.loads(json.dumps(data)) == data
    assert TraceHandle.from_dict(data) == trace
    assert TraceHandle.from_json(trace.to_json(indent=2)) == trace
    assert trace != TraceHandle(trace.spans[1:])
    assert trace.__eq__(object()) is NotImplemented


def test_from_dict_rejects_what_is_not_a_trace():
    """from_dict names the problem: wrong format, or the span field that is invalid."""
    with pytest.raises(ValueError, match=r"expected format 'mai\.trace/1'"):
        TraceHandle.from_dict({"spans": []})
    with pytest.raises(ValueError, match="received 'list'"):
        TraceHandle.from_dict([])  # type: ignore[arg-type]
    bad = {"format": "mai.trace/1", "spans": [{"name": "x"}]}
    with pytest.raises(ValueError, match=r"invalid span in trace at spans\.0\.step_id"):
        TraceHandle.from_dict(bad)


_names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8)
_times = st.floats(min_value=0, max_value=2e9, allow_nan=False)


@st.composite
def _spans(draw: st.DrawFn) -> list[Span]:
    n = draw(st.integers(min_value=1, max_value=6))
    spans = []
    for i in range(1, n + 1):
        parent = None if i == 1 else draw(st.integers(min_value=1, max_value=i - 1))
        start = draw(_times)
        spans.append(
            Span(
                name=draw(_names),
                step_id=str(i) if parent is None else f"{parent}.{i}",
                parent_step_id=None if parent is None else str(parent),
                span_id=i,
                parent_id=parent,
                start=start,
                end=start + draw(_times),
                duration=draw(_times),
                input_bytes=draw(st.integers(min_value=0, max_value=10**9)),
                output_bytes=draw(st.none() | st.integers(min_value=0, max_value=10**9)),
                sizes_exact=draw(st.booleans()),
                retries=draw(st.integers(min_value=0, max_value=5)),
                status=draw(st.sampled_from(["ok", "error", "cancelled", "timed_out"])),
                error_type=draw(st.none() | _names),
                error_message=draw(st.none() | st.text(max_size=30)),
                deadline=draw(st.none() | _times),
            )
        )
    return spans


@given(_spans(), st.none() | _names)
def test_any_trace_round_trips_through_json(spans, run_id):
    """Every trace, whatever its spans hold, survives to_json/from_json unchanged."""
    trace = TraceHandle(spans, run_id=run_id)
    assert TraceHandle.from_json(trace.to_json()) == trace
    assert len(trace) == len(spans)


async def test_render_draws_an_indented_tree(autojump_clock):
    """render() shows one line per call, indented under its parent, with duration and sizes."""
    trace = await _trace(autojump_clock)
    assert trace.render() == (
        "Sequential  [1]  250.0 ms  11 B → 7 B\n"
        "├── fetch  [1.1]  250.0 ms  11 B → 24 B\n"
        "└── Parallel  [1.2]  0 µs  24 B → 7 B\n"
        "    ├── measure  [1.2.1]  0 µs  24 B → 2 B\n"
        "    └── again  [1.2.2]  0 µs  24 B → 2 B"
    )
    assert str(trace) == trace.render()


async def test_render_shows_failures_once_and_the_deadline(autojump_clock):
    """A failure is spelled out where it happened; the parents that passed it on point up."""
    with pytest.raises(mai.DeadlineExceeded) as info:
        await mai.trace(mai.Sequential(fetch, stuck), "a")
    trace = TraceHandle.of(info.value)
    assert trace is not None
    lines = trace.render(unicode=False).splitlines()
    assert lines[0] == "Sequential  [1]  1.25 s  3 B -> -  timed out ^"
    assert lines[2] == (
        "`-- stuck  [1.2]  1.00 s  16 B -> -  deadline=+1s  timed out mai.DeadlineExceeded: "
        "module 'stuck' (step 1.2) exceeded its timeout of 1s"
    )


async def test_retries_and_estimated_sizes_are_shown(autojump_clock):
    """Retries appear as retries=N, and a size estimated from repr is marked with ~."""
    attempts = []

    @mai.module(retries=1, backoff=0)
    async def flaky(x: int) -> object:
        attempts.append(x)
        if len(attempts) == 1:
            raise ConnectionError
        return object()

    _, trace = await mai.trace(flaky, 1)
    line = trace.render()
    assert "retries=1" in line
    assert "1 B → ~" in line


class _Stream(io.StringIO):
    def __init__(self, *, tty: bool, encoding: str = "utf-8") -> None:
        super().__init__()
        self._tty = tty
        self._encoding = encoding

    def isatty(self) -> bool:
        return self._tty

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding


async def test_show_colours_only_on_a_tty(autojump_clock, monkeypatch):
    """show() writes ANSI colours to a TTY only, and never when NO_COLOR is set."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    trace = await _trace(autojump_clock)
    plain = _Stream(tty=False)
    trace.show(plain)
    assert "\x1b[" not in plain.getvalue()
    assert plain.getvalue() == trace.render() + "\n"
    tty = _Stream(tty=True)
    trace.show(tty)
    assert "\x1b[1mfetch\x1b[0m" in tty.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    tty = _Stream(tty=True)
    trace.show(tty)
    assert "\x1b[" not in tty.getvalue()


async def test_show_falls_back_to_ascii(autojump_clock):
    """show() draws with ASCII on a stream that cannot encode box-drawing characters."""
    trace = await _trace(autojump_clock)
    latin = _Stream(tty=False, encoding="latin-1")
    trace.show(latin)
    assert latin.getvalue() == trace.render(unicode=False) + "\n"
    assert "|-- fetch" in latin.getvalue()


async def test_show_defaults_to_stdout(autojump_clock, capsys):
    """show() with no file prints to sys.stdout."""
    trace = await _trace(autojump_clock)
    trace.show()
    assert capsys.readouterr().out == trace.render() + "\n"


def test_span_flags():
    """Span.ok and Span.failed read the status (a cancellation is not a failure)."""
    base = {
        "name": "m",
        "step_id": "1",
        "parent_step_id": None,
        "span_id": 1,
        "parent_id": None,
        "start": 0.0,
        "end": 1.0,
        "duration": 1.0,
        "input_bytes": 1,
        "output_bytes": None,
    }
    assert Span(**base).ok
    assert Span(**base, status="timed_out").failed
    assert not Span(**base, status="cancelled").failed
    assert not Span(**base, status="cancelled").ok


def test_observability_names_are_public():
    """The tracing, logging and plugin API is exported from mai, with docstrings."""
    names = {
        "trace",
        "TraceHandle",
        "Span",
        "inject_trace_context",
        "extract_trace_context",
        "log_context",
        "plugins",
        "PluginInfo",
        "PluginWarning",
        "register_caster",
        "unregister_caster",
        "register_tracer",
        "unregister_tracer",
        "register_store",
        "unregister_store",
        "store_factory",
    }
    assert names <= set(mai.__all__)
    assert all((getattr(mai, n).__doc__ or "").strip() for n in names)
    assert issubclass(mai.PluginWarning, UserWarning)
