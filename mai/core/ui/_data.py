"""Everything ``mai ui`` reads or changes, through the public :class:`~mai.Runtime` API.

This is the one place that knows how the runtime is asked: pages of runs (the store's optional
:class:`~mai.core.durable.PagedRunStore` capability through the runtime's async store interface,
else ``list_runs``), a run with its steps
and trace, its plan, and the actions (cancel, send, requeue).
Everything returned is plain JSON data for the routes.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from mai.core.durable import (
    RunNotRetryableError,
    RunQuery,
    RunStatus,
    RunSummary,
    Runtime,
    StepInfo,
    StepRecord,
    redact_url,
)
from mai.core.durable._pages import page_from_list
from mai.core.durable._trace import trace_of_run
from mai.core.tracing._span import Span

from ._conversation import conversation
from ._plansvg import plan_svg

if TYPE_CHECKING:
    from collections.abc import Callable

    from mai import Module
    from mai.core.durable import AsyncStore

#: Runs read by the fallback (a store without pages): at most this many, newest first.
FALLBACK_LIMIT = 5000
#: Steps of a run sent by default (``GET /api/runs/ID?steps=N`` asks for more).
STEP_WINDOW = 300
#: Seconds a run's page is answered again without reading the store (the page polls every 1.5).
RUN_PAGE_FRESH = 1.0
#: Steps an agent's conversation is read from (besides ``event`` steps: durable waits).
_AGENT_STEPS = frozenset({"model_request", "approval_request"})
_SPAN_FIELDS = tuple(f.name for f in fields(Span))


def _record_order(r: StepRecord) -> tuple[tuple[int, ...], float]:
    try:
        return tuple(int(p) for p in r.step_id.split(".")), r.finished_at
    except ValueError:
        return (), r.finished_at


def _span_json(span: Span) -> dict[str, Any]:
    """A span as ``TraceHandle.to_dict`` writes it, without ``asdict``'s deep copies."""
    out = {name: getattr(span, name) for name in _SPAN_FIELDS}
    if out.get("attributes") is not None:
        out["attributes"] = dict(out["attributes"])
    return out


def _agent_step(r: StepRecord) -> bool:
    return r.name in _AGENT_STEPS or r.kind == "event"


def summary_json(s: RunSummary, now: float) -> dict[str, Any]:
    """A run of the list as JSON (duration: until its last update, or until now if live)."""
    end = s.updated_at if s.status.terminal else now
    return {
        "run_id": s.run_id,
        "workflow": s.workflow,
        "status": s.status.value,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "duration": max(end - s.created_at, 0.0),
        "attempts": s.attempts,
        "queue": s.queue,
    }


class UIData:
    """The runtime as the web view sees it.

    Args:
        runtime: An open :class:`~mai.Runtime`.
        workflows: Modules of the application given with ``--app`` (plans to compare with).
    """

    def __init__(
        self,
        runtime: Runtime,
        workflows: list[Module[..., Any]] | None = None,
        *,
        fresh_for: float = RUN_PAGE_FRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap an open runtime."""
        self.rt = runtime
        self.workflows = {m.name: m for m in workflows or []}
        self._fresh_for = fresh_for
        self._clock = clock
        self._pages: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}

    # -- capabilities --------------------------------------------------------------------------

    @property
    def _astore(self) -> AsyncStore | None:
        """The runtime's async store interface (``None`` for a runtime not on a pymai store)."""
        return self.rt.async_store if isinstance(self.rt, Runtime) else None

    @property
    def can_requeue(self) -> bool:
        """Whether the store can requeue a DEAD or FAILED run (every pymai store can)."""
        return self._astore is not None

    @property
    def paged(self) -> bool:
        """Whether the store answers pages of runs with indexed queries."""
        astore = self._astore
        return astore is not None and astore.paged

    def session(self) -> dict[str, Any]:
        """What the page needs to know about this server."""
        return {
            "store": redact_url(self.rt.url),
            "paged": self.paged,
            "actions": {"cancel": True, "send": True, "requeue": self.can_requeue},
            "app": sorted(self.workflows),
            "statuses": [s.value for s in RunStatus],
        }

    # -- reads ---------------------------------------------------------------------------------

    async def page(self, query: RunQuery, after: str | None, limit: int) -> dict[str, Any]:
        """One page of runs (raises ``PageCursorError`` for a cursor not of this query)."""
        rt = self.rt
        astore = self._astore
        if astore is not None:  # the store's indexed pages, or computed by the interface
            rows, cursor = await astore.page_runs(query, after, limit)
        else:
            runs = await rt.list_runs(query.status, limit=FALLBACK_LIMIT)
            rows, cursor = page_from_list([r.record for r in runs], query, after, limit)
        now = rt.clock()
        return {"runs": [summary_json(r, now) for r in rows], "next": cursor, "now": now}

    async def run(self, run_id: str, steps_limit: int = STEP_WINDOW) -> dict[str, Any]:
        """A run with its steps, trace, conversation and history (``RunNotFoundError``).

        Only the first ``steps_limit`` steps in step order (and their trace) are decoded and
        sent: a page that polls a long run stays cheap for the process serving it. The
        conversation reads every model, approval and event step of the run. A run's page built
        less than ``fresh_for`` seconds ago is answered again (any number of tabs or clients
        polling one run cost the store one read a second); an action through this view
        forgets it.
        """
        now = self._clock()
        key = (run_id, steps_limit)
        hit = self._pages.get(key)
        if hit is not None and now - hit[0] < self._fresh_for:
            return hit[1]
        data = await self._build_run(run_id, steps_limit)
        self._pages = {k: v for k, v in self._pages.items() if now - v[0] < self._fresh_for}
        self._pages[key] = (now, data)
        return data

    def _forget(self, run_id: str) -> None:
        self._pages = {k: v for k, v in self._pages.items() if k[0] != run_id}

    async def _build_run(self, run_id: str, steps_limit: int) -> dict[str, Any]:
        rt = self.rt
        info = await rt.get(run_id)
        record = info.record
        astore = self._astore
        if astore is not None:
            records: list[StepRecord] = list(await astore.load_steps(run_id))
            records.sort(key=_record_order)
            total = len(records)
            records_shown = records[: max(steps_limit, 0)]
            steps = [StepInfo(r) for r in records_shown]
            spans = [_span_json(sp) for sp in trace_of_run(record, records_shown).spans]
            talk = [StepInfo(r) for r in records if _agent_step(r)]
        else:  # a runtime whose store is not pymai's (its reads are the runtime's own)
            steps = await rt.steps(run_id)
            trace = rt.trace(run_id)
            if inspect.isawaitable(trace):
                trace = await trace
            spans = trace.to_dict()["spans"]
            talk, total = steps, len(steps)
            steps = steps[: max(steps_limit, 0)]
        end = info.updated_at if info.status.terminal else rt.clock()
        data: dict[str, Any] = {
            "run_id": info.run_id,
            "workflow": info.workflow,
            "status": info.status.value,
            "input": info.input,
            "output": info.output,
            "error": info.error,
            "created_at": info.created_at,
            "updated_at": info.updated_at,
            "duration": max(end - info.created_at, 0.0),
            "now": rt.clock(),
            "deadline": info.deadline,
            "attempts": info.attempts,
            "owner": info.owner,
            "queue": record.queue,
            "plan_hash": info.plan_hash,
            "cancel_requested": record.cancel_requested,
            "steps_total": total,
            "steps": [
                {
                    "step_id": s.step_id,
                    "name": s.name,
                    "kind": s.kind,
                    "input": s.input,
                    "output": s.output,
                    "started_at": s.started_at,
                    "finished_at": s.finished_at,
                    "duration": s.duration,
                    "attempts": s.attempts,
                    "worker": s.worker,
                    "input_bytes": len(s.record.input.encode()) if s.record.input else 0,
                    "output_bytes": len(s.record.output.encode()),
                }
                for s in steps
            ],
            "trace": spans,
            "conversation": conversation(talk, info.owner),
        }
        history = getattr(rt, "history", None)
        data["history"] = await history(run_id) if callable(history) else []
        return data

    async def plan(self, run_id: str) -> dict[str, Any]:
        """The run's recorded plan, and its differences from ``--app``'s code when given."""
        info = await self.rt.get(run_id)
        try:
            recorded = json.loads(info.record.plan) if info.record.plan else None
        except ValueError:
            recorded = None
        data: dict[str, Any] = {
            "run_id": run_id,
            "workflow": info.workflow,
            "plan_hash": info.plan_hash,
            "plan": recorded,
            "svg": plan_svg(recorded) if isinstance(recorded, dict) else None,
            "current": None,
        }
        module = self.workflows.get(info.workflow)
        if module is not None and recorded is not None:
            from mai.core.graph import WorkflowPlan, plan  # noqa: PLC0415

            now = plan(module)
            changes = WorkflowPlan.from_dict(recorded).diff(now)
            data["current"] = {
                "plan_hash": now.hash,
                "same": now.hash == info.plan_hash,
                "changes": [
                    {"step": c.step, "description": c.description, "compatible": c.compatible}
                    for c in changes
                ],
            }
        return data

    # -- actions -------------------------------------------------------------------------------

    async def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel the run; report its status afterwards."""
        await self.rt.cancel(run_id)
        self._forget(run_id)
        info = await self.rt.get(run_id)
        return {"ok": True, "status": info.status.value, "message": _cancel_text(info.status)}

    async def send(self, run_id: str, topic: str, payload: Any) -> dict[str, Any]:
        """Send ``payload`` on ``topic`` to the run."""
        await self.rt.send(run_id, topic, payload)
        self._forget(run_id)
        info = await self.rt.get(run_id)
        return {
            "ok": True,
            "status": info.status.value,
            "message": f"sent {topic!r} to run {run_id}",
        }

    async def requeue(self, run_id: str) -> dict[str, Any]:
        """Requeue a DEAD or FAILED run: PENDING again, its id and committed steps kept.

        With ``--app`` defining the run's workflow the run resumes in this process at once
        (:meth:`~mai.Runtime.retry`); otherwise it is only requeued, for a worker or ``mai runs
        resume`` to pick up: the view never imports code named by what a store recorded.

        Raises:
            RunNotFoundError: When no such run exists.
            RunNotRetryableError: When the run is not DEAD or FAILED.
        """
        rt = self.rt
        info = await rt.get(run_id)
        here = info.workflow in self.workflows
        if here:
            await rt.retry(run_id)
        elif self._astore is None or await self._astore.requeue_run(run_id) is None:
            current = await rt.get(run_id)
            raise RunNotRetryableError(
                f"run {run_id!r} is {current.status.value}; only a DEAD or FAILED run can be "
                "requeued",
                run_id=run_id,
                status=current.status.value,
            )
        self._forget(run_id)
        after = await rt.get(run_id)
        where = (
            "it resumes in this mai ui process (--app)"
            if here
            else "a worker (or `mai runs resume`) picks it up"
        )
        return {
            "ok": True,
            "status": after.status.value,
            "message": f"run {run_id} requeued with its committed steps kept; {where}",
        }


def _cancel_text(status: RunStatus) -> str:
    if status == RunStatus.CANCELLED:
        return "the run is cancelled"
    if status.terminal:
        return f"the run had already finished ({status.value})"
    return "cancellation requested; the process running it stops it at its next heartbeat"
