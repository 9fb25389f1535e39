"""Read-side views of runs and steps, and the handle on one run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mai._backend import current_backend

from . import _serde

if TYPE_CHECKING:
    from ._runtime import Runtime
    from ._store import RunRecord, RunStatus, StepRecord


class RunInfo:
    """A run as stored, with its JSON fields decoded.

    Attributes:
        run_id: The run's id.
        workflow: Name of the workflow module.
        status: Current :class:`RunStatus`.
        output: Decoded result (``None`` unless SUCCEEDED).
        error: Decoded ``{"type": ..., "message": ...}`` (FAILED) or the dead-letter reason.
        input: Decoded ``{"args": [...], "kwargs": {...}}``.
        deadline: Absolute wall-clock deadline (epoch seconds) or ``None``.
        attempts: How many times an execution of the run started.
        owner: The process holding the run's lease, if any.
        record: The raw :class:`RunRecord`.
    """

    def __init__(self, record: RunRecord) -> None:
        """Wrap a stored record."""
        self.record = record
        self.run_id = record.run_id
        self.workflow = record.workflow
        self.status = record.status
        self.deadline = record.deadline
        self.attempts = record.attempts
        self.owner = record.owner
        self.created_at = record.created_at
        self.updated_at = record.updated_at
        self.plan_hash = record.plan_hash
        self.output = _decode(record.output)
        self.error = _decode_error(record.error)
        self.input = _decode(record.input)

    def __repr__(self) -> str:
        """Return a short description."""
        return f"<RunInfo {self.run_id!r} {self.workflow} {self.status}>"


class StepInfo:
    """A committed step, with its JSON fields decoded.

    Attributes:
        step_id: Hierarchical step id.
        name: Module name (or ``mai.now``, ``mai.sleep``, ``mai.wait_for``).
        kind: ``call``, ``now``, ``timer`` or ``event``.
        input: Decoded input ``{"args": [...], "kwargs": {...}}`` (``None`` if unrecorded).
        output: Decoded output.
        started_at: Wall-clock start (epoch seconds).
        finished_at: Wall-clock end (epoch seconds).
        duration: Seconds the step took.
        attempts: Attempts the body took (retries + 1).
        worker: The process that committed it.
    """

    def __init__(self, record: StepRecord) -> None:
        """Wrap a stored record."""
        self.record = record
        self.step_id = record.step_id
        self.name = record.name
        self.kind = record.kind
        self.input = _decode(record.input)
        self.output = _decode(record.output)
        self.started_at = record.started_at
        self.finished_at = record.finished_at
        self.duration = max(record.finished_at - record.started_at, 0.0)
        self.attempts = record.attempts
        self.worker = record.worker

    def __repr__(self) -> str:
        """Return a short description."""
        return f"<StepInfo {self.step_id} {self.name} {self.kind}>"


def _decode(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return _serde.loads(text)
    except ValueError:
        return text


def _decode_error(text: str | None) -> Any:
    value = _decode(text)
    return (
        value
        if isinstance(value, dict)
        else ({"type": "DeadLetter", "message": value} if value else None)
    )


def _step_sort_key(info: StepInfo) -> tuple[tuple[int, ...], float]:
    try:
        return tuple(int(p) for p in info.step_id.split(".")), info.finished_at
    except ValueError:
        return (), info.finished_at


class RunHandle:
    """A handle on one durable run (returned by :meth:`Runtime.start` and friends)."""

    def __init__(self, runtime: Runtime, run_id: str) -> None:
        """Bind the handle to its runtime."""
        self.runtime = runtime
        self.run_id = run_id

    def __repr__(self) -> str:
        """Return a short description."""
        return f"<RunHandle {self.run_id!r}>"

    async def status(self) -> RunStatus:
        """The run's current status."""
        return (await self.runtime._read_run(self.run_id)).status

    async def cancel(self) -> None:
        """Cancel the run."""
        await self.runtime.cancel(self.run_id)

    async def result(self, *, poll: float = 0.05) -> Any:
        """Wait for the run to finish; return its typed result or raise its error.

        Raises:
            Exception: The run's own exception when it ran in this process; otherwise
                :class:`RunFailedError` with the recorded type and message.
            RunCancelledError: When the run was cancelled.
            RunDeadLetteredError: When the run was dead-lettered.
        """
        rt = self.runtime
        active = rt._active.get(self.run_id)
        if active is not None:
            await active.done.wait()
            if active.error is not None:
                raise active.error
            if active.succeeded:  # ran here: the very values the workflow returned
                return active.value
        delay = poll
        while True:
            record = await rt._read_run(self.run_id)
            if record.status.terminal:
                break
            active = rt._active.get(self.run_id)
            if active is not None:
                await active.done.wait()
                if active.error is not None:
                    raise active.error
                if active.succeeded:
                    return active.value
                continue
            adopted = rt._adopted.get(self.run_id)
            if adopted is not None and rt.claimable(record):
                # the owner we were waiting for is gone: take the run over (fencing it)
                await rt._attach(record, adopted)
                if self.run_id in rt._active:
                    continue
            await current_backend().sleep(delay)
            delay = min(delay * 1.5, 1.0)
        return rt._outcome(record)
