"""The records a run keeps beyond its steps: earlier attempts, and the events sent to it.

Loaded on first use (see the package's lazy exports): a process that only starts and runs
workflows never requeues a run or sends it an event.
"""

from __future__ import annotations

from mai.core._records import record


@record
class AttemptRecord:
    """The outcome of an earlier attempt of a run, kept when the run was requeued."""

    run_id: str
    seq: int
    status: str
    output: str | None
    error: str | None
    finished_at: float


@record
class EventRecord:
    """A message sent to a run with ``Runtime.send``."""

    event_id: int
    run_id: str
    topic: str
    payload: str
    created_at: float
    consumed_by: str | None = None
