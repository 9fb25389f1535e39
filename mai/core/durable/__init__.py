"""The durable runtime: checkpointed steps, replay, resume, timers and events."""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from mai.core._lazy import lazy_exports as _lazy_exports

from ._astore import AsyncStore as AsyncStore
from ._astore import ExecutorStore as ExecutorStore
from ._errors import DurableError as DurableError
from ._errors import LeaseLostError as LeaseLostError
from ._errors import NonDeterminismError as NonDeterminismError
from ._errors import PlanMismatchError as PlanMismatchError
from ._errors import RunCancelledError as RunCancelledError
from ._errors import RunDeadLetteredError as RunDeadLetteredError
from ._errors import RunFailedError as RunFailedError
from ._errors import RunNotFoundError as RunNotFoundError
from ._errors import RunNotRetryableError as RunNotRetryableError
from ._errors import SerializationError as SerializationError
from ._errors import StoreBusyError as StoreBusyError
from ._errors import StoreCorruptError as StoreCorruptError
from ._errors import StoreError as StoreError
from ._errors import StoreFullError as StoreFullError
from ._errors import StoreInterfaceError as StoreInterfaceError
from ._errors import StorePermissionWarning as StorePermissionWarning
from ._errors import StoreReadOnlyError as StoreReadOnlyError
from ._errors import StoreSchemaError as StoreSchemaError
from ._errors import StoreUnavailableError as StoreUnavailableError
from ._errors import WaitTimeoutError as WaitTimeoutError
from ._errors import WorkflowIdentityError as WorkflowIdentityError
from ._errors import WorkflowNotFoundError as WorkflowNotFoundError
from ._faults import FAULT_POINTS as FAULT_POINTS
from ._faults import fault_point as fault_point
from ._faults import set_fault_hook as set_fault_hook
from ._info import RunHandle as RunHandle
from ._info import RunInfo as RunInfo
from ._info import StepInfo as StepInfo
from ._memory import MemoryStore as MemoryStore
from ._primitives import now as now
from ._primitives import random as random
from ._primitives import sleep as sleep
from ._primitives import wait_for as wait_for
from ._runtime import Runtime as Runtime
from ._runtime import open_store as open_store
from ._sqlite import SQLiteStore as SQLiteStore
from ._store import RUN_COLUMNS as RUN_COLUMNS
from ._store import STEP_COLUMNS as STEP_COLUMNS
from ._store import RunRecord as RunRecord
from ._store import RunStatus as RunStatus
from ._store import StepRecord as StepRecord
from ._store import Store as Store
from ._store import run_from_row as run_from_row
from ._store import step_values as step_values
from ._trace import trace_of_run as trace_of_run
from ._urls import redact_text as redact_text
from ._urls import redact_url as redact_url
from ._versioning import plan_for as plan_for

if _TYPE_CHECKING:
    from ._history import AttemptRecord as AttemptRecord
    from ._history import EventRecord as EventRecord
    from ._pages import PageCursorError as PageCursorError
    from ._pages import PagedRunStore as PagedRunStore
    from ._pages import RunQuery as RunQuery
    from ._pages import RunSummary as RunSummary
    from ._pages import decode_cursor as decode_cursor
    from ._pages import merge_pages as merge_pages
    from ._worker import Worker as Worker
    from ._worker import load_app as load_app
    from ._worker import run_worker as run_worker

# Loaded on first use: a process that only runs workflows needs neither the worker machinery,
# nor the pages of runs that lists (``mai ui``, ``mai runs``) read, nor the records of requeued
# attempts and events.
_LAZY = {
    "AttemptRecord": "._history",
    "EventRecord": "._history",
    "Worker": "._worker",
    "load_app": "._worker",
    "run_worker": "._worker",
    "PageCursorError": "._pages",
    "PagedRunStore": "._pages",
    "RunQuery": "._pages",
    "RunSummary": "._pages",
    "decode_cursor": "._pages",
    "merge_pages": "._pages",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())
