"""The trace of a durable run, rebuilt from its recorded steps and plan.

Leaf steps are recorded with their timings, inputs and outputs; composites are not (they re-run
their orchestration on resume). The trace therefore takes each recorded step as a span and adds
one span per enclosing composite, named from the run's recorded plan, spanning its children.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mai.core.tracing import Span, TraceHandle

if TYPE_CHECKING:
    from ._store import RunRecord, StepRecord


def _parent(step_id: str) -> str | None:
    head, dot, _ = step_id.rpartition(".")
    return head if dot else None


def _order(step_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in step_id.split("."))


def _plan_name(nodes: dict[str, Any], step_id: str) -> str:
    """The plan's name for a step path (Map items match the plan's ``*`` child)."""
    node = nodes.get(step_id)
    if node is None:
        parts = step_id.split(".")
        for i in range(len(parts) - 1, 0, -1):
            node = nodes.get(".".join([*parts[:i], "*", *parts[i + 1 :]]))
            if node is not None:
                break
    return str(node["name"]) if node else "(composite)"


def _names(plan: dict[str, Any], step: str, out: dict[str, Any]) -> None:
    """Map absolute step paths to ``{"name": ...}`` from a WorkflowPlan's JSON."""
    out[step] = {"name": plan.get("name", "?")}
    for node in plan.get("nodes", []):
        path = f"{step}.{node.get('step', '?')}"
        out[path] = {"name": node.get("name", "?")}
        inner = node.get("plan")
        if isinstance(inner, dict):
            _names({**inner, "name": node.get("name", "?")}, path, out)


def _usage_attributes(output: str) -> dict[str, Any] | None:
    """Tokens of a recorded model response (an agent's model request step), else ``None``."""
    if '"kind":"response"' not in output:  # cheap test before decoding every step's output
        return None
    try:
        value = json.loads(output)
    except ValueError:
        return None
    usage = value.get("usage") if isinstance(value, dict) else None
    if value.get("kind") != "response" or not isinstance(usage, dict):
        return None
    return {
        "gen_ai.usage.input_tokens": int(usage.get("input_tokens", 0)),
        "gen_ai.usage.output_tokens": int(usage.get("output_tokens", 0)),
    }


def trace_of_run(run: RunRecord, steps: list[StepRecord]) -> TraceHandle:
    """Rebuild a :class:`~mai.TraceHandle` of a durable run from its records."""
    nodes: dict[str, Any] = {}
    try:
        _names(json.loads(run.plan), "1", nodes)
    except (ValueError, AttributeError, TypeError):
        nodes = {}
    rows: dict[str, dict[str, Any]] = {}
    for s in steps:
        rows[s.step_id] = {
            "name": s.name,
            "start": s.started_at,
            "end": max(s.finished_at, s.started_at),
            "input_bytes": len(s.input.encode()) if s.input is not None else 0,
            "output_bytes": len(s.output.encode()),
            "sizes_exact": s.input is not None,
            "retries": max(s.attempts - 1, 0),
            "attributes": _usage_attributes(s.output),
        }
    for sid in list(rows):
        child = rows[sid]
        parent = _parent(sid)
        while parent is not None:
            row = rows.get(parent)
            if row is None:
                row = rows[parent] = {
                    "name": _plan_name(nodes, parent),
                    "start": child["start"],
                    "end": child["end"],
                    "input_bytes": 0,
                    "output_bytes": 0,
                    "sizes_exact": True,
                    "retries": 0,
                    "first": sid,
                    "last": sid,
                }
            if "first" in row:  # a composite: it spans its children, first input to last output
                row["start"] = min(row["start"], child["start"])
                row["end"] = max(row["end"], child["end"])
                if _order(sid) < _order(row["first"]):
                    row["first"] = sid
                if _order(sid) > _order(row["last"]):
                    row["last"] = sid
            child, parent = row, _parent(parent)
    for row in rows.values():
        if "first" in row:
            row["input_bytes"] = rows[row["first"]]["input_bytes"]
            row["output_bytes"] = rows[row["last"]]["output_bytes"]
    order = sorted(rows, key=_order)
    ids = {sid: i for i, sid in enumerate(order, 1)}
    spans = []
    for sid in order:
        row = rows[sid]
        parent = _parent(sid)
        spans.append(
            Span(
                name=row["name"],
                step_id=sid,
                parent_step_id=parent,
                span_id=ids[sid],
                parent_id=ids.get(parent) if parent is not None else None,
                start=row["start"],
                end=row["end"],
                duration=row["end"] - row["start"],
                input_bytes=row["input_bytes"],
                output_bytes=row["output_bytes"],
                sizes_exact=row["sizes_exact"],
                retries=row["retries"],
                deadline=run.deadline,
                attributes=row.get("attributes"),
            )
        )
    return TraceHandle(spans, run_id=run.run_id)
