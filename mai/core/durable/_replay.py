"""The interceptor that checkpoints and replays the steps of one run, and the durable primitives."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import anyio

from mai._backend import current_backend
from mai._composites import Composite
from mai._context import Frame, current_frame

from . import _serde
from ._crash import crash_point
from ._errors import NonDeterminismError, StoreError, WaitTimeoutError
from ._store import EventRecord, StepRecord, Store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mai._seam import Call, Durability

    from ._runtime import Runtime, _Active


class _DurableCalls:
    """The interceptor that checkpoints and replays the steps of one run."""

    def __init__(self, runtime: Runtime, active: _Active) -> None:
        self.runtime = runtime
        self.active = active

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.active.run_id

    async def __call__(self, call: Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        frame = call.frame
        run = frame.run
        if run is not None and run.durable is None:
            run.durable = self
            run.run_id = self.active.run_id
        module = call.module
        if isinstance(module, Composite):
            return await proceed()
        sid = frame.step_id
        active = self.active
        input_text = _serde.fingerprint({"args": call.args, "kwargs": call.kwargs})
        while True:
            recorded = active.recorded.get(sid)
            if recorded is not None:
                self._check(recorded, sid, module.name, "call", input_text)
                call.replayed = True
                span = frame.span
                if span is not None and hasattr(span, "set_attribute"):
                    # a replayed step did no work now: marked, and no usage (tokens) on its span
                    span.set_attribute("mai.replayed", True)
                return module.cast_output(_serde.loads(recorded.output, recorded.format))
            done = active.uncommitted.get(sid)
            if done is not None:
                # The body finished in this process but its commit did not land (the branch
                # was cancelled while the store was failing): commit it now, never re-run it.
                self._check(done, sid, module.name, "call", input_text)
                await self.runtime.commit(active, done)
                return module.cast_output(_serde.loads(done.output, done.format))
            if sid not in active.inflight:
                break
            # The same step is already executing here (a retried parent scheduled background
            # work again): wait for that call instead of running the body a second time.
            running = active.inflight[sid]
            if running is None:
                running = active.inflight[sid] = anyio.Event()
            await running.wait()
        active.inflight[sid] = None  # an event is made only if a second call has to wait
        try:
            await self.runtime.hold_lease(active)  # a fenced owner starts no body
            crash_point("before_body")
            started = self.runtime.clock()
            result = await proceed()
            crash_point("after_body")
            output = _serde.dumps(result, what=f"the output of step {sid} ({module.name})")
            record = StepRecord(
                run_id=active.run_id,
                step_id=sid,
                name=module.name,
                kind="call",
                input=input_text,
                output=output,
                started_at=started,
                finished_at=self.runtime.clock(),
                attempts=frame.attempts,
                worker=self.runtime.owner,
            )
            active.uncommitted[sid] = record
            await self.runtime.commit(active, record)
        finally:
            finished = active.inflight.pop(sid)
            if finished is not None:
                finished.set()
        return result

    def _check(
        self, recorded: StepRecord, sid: str, name: str, kind: str, input_text: str | None
    ) -> None:
        if recorded.kind != kind or recorded.name != name:
            raise NonDeterminismError(
                f"run {self.active.run_id!r}: step {sid} was recorded as {recorded.kind} "
                f"{recorded.name!r} but the code now makes a {kind} {name!r} there; the workflow "
                "is not deterministic (or changed) at this step",
                run_id=self.active.run_id,
                step_id=sid,
                module_name=name,
            )
        if recorded.input is not None and input_text is not None and recorded.input != input_text:
            raise NonDeterminismError(
                f"run {self.active.run_id!r}: step {sid} ({name}) was recorded with input "
                f"{recorded.input[:200]} but is now called with {input_text[:200]}; the workflow "
                "is not deterministic at this step",
                run_id=self.active.run_id,
                step_id=sid,
                module_name=name,
            )

    # -- durable primitives --------------------------------------------------------------------

    def _child(self, frame: Frame) -> str:
        index = frame.reserve(1) + 1
        return f"{frame.step_id}.{index}" if frame.step_id else str(index)

    def _record(self, sid: str, name: str, kind: str, output: str, started: float) -> StepRecord:
        return StepRecord(
            run_id=self.active.run_id,
            step_id=sid,
            name=name,
            kind=kind,
            input=None,
            output=output,
            started_at=started,
            finished_at=self.runtime.clock(),
            worker=self.runtime.owner,
        )

    def now(self, frame: Frame) -> float:
        """A recorded reading of the runtime's clock.

        The reading is committed with the next commit of the run (in the same transaction),
        and again on every retry of that commit: it is never dropped while later commits land.
        """
        sid = self._child(frame)
        active = self.active
        recorded = active.recorded.get(sid)
        if recorded is not None:
            self._check(recorded, sid, "mai.now", "now", None)
            return float(_serde.loads(recorded.output))
        value = self.runtime.clock()
        record = self._record(sid, "mai.now", "now", repr(value), value)
        active.recorded[sid] = record
        active.pending.append(record)
        return value

    def seed(self, frame: Frame) -> str:
        """A deterministic seed for this position in the run."""
        return f"{self.active.run_id}/{self._child(frame)}"

    async def sleep(self, frame: Frame, seconds: float) -> None:
        """A durable timer: the wake-up time is committed; a restart waits only for the rest."""
        sid = self._child(frame)
        recorded = self.active.recorded.get(sid)
        if recorded is not None:
            self._check(recorded, sid, "mai.sleep", "timer", None)
            wake_at = float(_serde.loads(recorded.output))
        else:
            started = self.runtime.clock()
            wake_at = started + seconds
            await self.runtime.commit(
                self.active, self._record(sid, "mai.sleep", "timer", repr(wake_at), started)
            )
        remaining = wake_at - self.runtime.clock()
        if remaining > 0:
            await self.runtime.note_progress(self.active)  # idle: a crash now is not our fault
            backend = current_backend()
            await backend.sleep_until(backend.current_time() + remaining)

    async def wait_for(self, frame: Frame, topic: str, timeout: float | None) -> Any:  # noqa: ASYNC109 - a durable timeout, not a cancel scope
        """Wait durably for a message sent with ``Runtime.send(run_id, topic, ...)``."""
        sid = self._child(frame)
        active = self.active
        recorded = active.recorded.get(sid)
        if recorded is not None:
            self._check(recorded, sid, "mai.wait_for", "event", None)
            return _event_result(_serde.loads(recorded.output), topic, sid)
        wake_at = math.inf
        if timeout is not None:
            timer = active.recorded.get(f"{sid}.1")
            if timer is not None:
                wake_at = float(_serde.loads(timer.output))
            else:
                started = self.runtime.clock()
                wake_at = started + timeout
                await self.runtime.commit(
                    active,
                    self._record(f"{sid}.1", "mai.wait_for.timer", "timer", repr(wake_at), started),
                )
        await self.runtime.note_progress(active)  # waiting: a crash now is not our fault
        rt = self.runtime
        while True:
            started = rt.clock()
            timed_out = started >= wake_at
            try:
                got = await rt.executor.write(
                    _take_event,
                    rt.store,
                    active.run_id,
                    topic,
                    sid,
                    active.owner,
                    active.epoch,
                    timed_out,
                    rt.owner,
                )
            except StoreError as exc:  # the store is away (e.g. restarting): keep waiting
                rt._report_store_error(exc)
                await anyio.sleep(rt.poll_interval)
                continue
            if got is not None:
                active.recorded[sid] = got
                return _event_result(_serde.loads(got.output), topic, sid)
            event = active.waiters.setdefault(topic, anyio.Event())
            wait = min(wake_at - rt.clock(), rt.poll_interval * 5)
            with anyio.move_on_after(max(wait, 0)):
                await event.wait()


def _event_result(value: Any, topic: str, sid: str) -> Any:
    if isinstance(value, dict) and value.get("timeout"):
        raise WaitTimeoutError(f"mai.wait_for({topic!r}) at step {sid} timed out", step_id=sid)
    return value.get("payload") if isinstance(value, dict) else value


def _take_event(
    store: Store,
    run_id: str,
    topic: str,
    sid: str,
    owner: str,
    epoch: int,
    timed_out: bool,
    worker: str,
) -> StepRecord | None:
    """Consume a message and record the wait's outcome in one transaction."""
    event: EventRecord | None = store.take_event(run_id, topic, sid)
    if event is None and not timed_out:
        return None
    now = store.now()
    body = {"payload": _serde.loads(event.payload)} if event is not None else {"timeout": True}
    record = StepRecord(
        run_id,
        sid,
        "mai.wait_for",
        "event",
        None,
        _serde.dumps(body, what="event"),
        started_at=now,
        finished_at=now,
        worker=worker,
    )
    store.put_step(record, owner, epoch)
    return record


def current_durable() -> Durability | None:
    """The durable run the current task belongs to, if any."""
    frame = current_frame.get()
    run = frame.run
    return run.durable if run is not None else None
