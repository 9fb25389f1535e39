"""Errors of the durable runtime and its stores.

::

    MaiError
    ├── DurableError(MaiError, RuntimeError)
    │   ├── NonDeterminismError          a replayed step's input differs from the recorded one
    │   ├── PlanMismatchError            the code's plan is incompatible with the recorded run
    │   ├── LeaseLostError               this process no longer owns the run (fencing)
    │   ├── RunFailedError               a run failed (raised by RunHandle.result())
    │   ├── RunCancelledError            a run was cancelled
    │   └── RunDeadLetteredError         a run was dead-lettered (poisoned)
    ├── RunNotFoundError(MaiError, LookupError)
    ├── WorkflowNotFoundError(MaiError, LookupError)  this process cannot find a run's workflow
    ├── WorkflowIdentityError(MaiError, ValueError)   a workflow has no stable, unique name
    ├── RunNotRetryableError(MaiError, ValueError)    only a DEAD or FAILED run can be requeued
    ├── SerializationError(MaiError, TypeError)   a step input/output cannot be recorded as JSON
    ├── WaitTimeoutError(MaiError, TimeoutError)  mai.wait_for() timed out
    └── StoreError(MaiError, OSError)             the store cannot do what was asked
        ├── StoreFullError                        the database or disk is full
        ├── StoreReadOnlyError                    the database (or its -wal/-shm) is not writable
        ├── StoreCorruptError                     the file is not a valid database
        ├── StoreSchemaError                      stamped with a schema newer than this code
        ├── StoreBusyError                        still locked after the retry policy gave up
        └── StoreUnavailableError                 the database server cannot be reached

    UserWarning
    └── StorePermissionWarning                    other users can read a store you chose

A store error never carries the store URL's password: its ``url`` is redacted and its message
cleaned of the password when it is created (see :func:`mai.redact_url`).
"""

from __future__ import annotations

from mai._errors import MaiError

from ._urls import redact_text, redact_url


class DurableError(MaiError, RuntimeError):
    """Base of the durable runtime's own errors.

    Attributes:
        run_id: The run concerned, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        module_name: str | None = None,
        step_id: str | None = None,
    ) -> None:
        """Create the error with the run, module and step it is about."""
        super().__init__(message, module_name=module_name, step_id=step_id)
        self.run_id = run_id


class NonDeterminismError(DurableError):
    """On resume, a step was called with an input different from the one recorded."""


class PlanMismatchError(DurableError):
    """The code's plan is incompatible with the plan the run was recorded under."""


class LeaseLostError(DurableError):
    """This process lost ownership of the run: another owner (higher epoch) took it over."""


class RunFailedError(DurableError):
    """A durable run failed; raised by :meth:`RunHandle.result` when the original is not at hand.

    Attributes:
        error_type: Qualified name of the exception type that failed the run.
        error_message: Its message.
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        error_type: str = "",
        error_message: str = "",
    ) -> None:
        """Create the error with the recorded failure."""
        super().__init__(message, run_id=run_id)
        self.error_type = error_type
        self.error_message = error_message


class RunCancelledError(DurableError):
    """The run was cancelled."""


class RunDeadLetteredError(DurableError):
    """The run was dead-lettered; ``reason`` says why."""

    def __init__(self, message: str, *, run_id: str | None = None, reason: str = "") -> None:
        """Create the error with the stored reason."""
        super().__init__(message, run_id=run_id)
        self.reason = reason


class RunNotFoundError(MaiError, LookupError):
    """No run with this id exists in the store.

    Attributes:
        run_id: The id that was looked up.
    """

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        """Create the error naming the run id."""
        super().__init__(message)
        self.run_id = run_id

    @classmethod
    def for_id(cls, run_id: str) -> RunNotFoundError:
        """The error for a missing ``run_id``."""
        return cls(f"no durable run with id {run_id!r} in this store", run_id=run_id)


class WorkflowNotFoundError(MaiError, LookupError):
    """This process cannot find the workflow a run was recorded with; the run is left alone.

    Attributes:
        run_id: The run concerned.
        workflow: The workflow name recorded with the run.
    """

    def __init__(self, message: str, *, run_id: str | None = None, workflow: str = "") -> None:
        """Create the error naming the run and its workflow."""
        super().__init__(message)
        self.run_id = run_id
        self.workflow = workflow


class WorkflowIdentityError(MaiError, ValueError):
    """A workflow has no stable name another process could find it by, or its name is taken.

    Raised by :meth:`Runtime.start` (and ``submit``) for a workflow that could never be found
    again, and by :meth:`Runtime.register` when two different workflows claim one name.
    """


class RunNotRetryableError(MaiError, ValueError):
    """Only a DEAD or FAILED run can be requeued with :meth:`Runtime.retry`.

    Attributes:
        run_id: The run concerned.
        status: Its current status.
    """

    def __init__(self, message: str, *, run_id: str | None = None, status: str = "") -> None:
        """Create the error naming the run and its status."""
        super().__init__(message)
        self.run_id = run_id
        self.status = status


class SerializationError(MaiError, TypeError):
    """A step's input or output cannot be recorded as JSON."""


class WaitTimeoutError(MaiError, TimeoutError):
    """``mai.wait_for(topic, timeout=...)`` timed out before an event arrived."""


class StoreError(MaiError, OSError):
    """The durable store cannot do what was asked.

    Attributes:
        url: The store URL, with its password redacted (:func:`mai.redact_url`).
        kind: A short classification (``full``, ``read_only``, ``corrupt``, ``schema``, ``busy``,
            ``io``).
    """

    kind = "io"

    def __init__(self, message: str, *, url: str = "") -> None:
        """Create the error naming the store; ``url``'s password is removed from both."""
        super().__init__(redact_text(message, url) if url else message)
        self.url = redact_url(url)


class StoreInterfaceError(StoreError, TypeError):
    """The store object lacks methods of the :class:`~mai.core.durable.Store` protocol.

    Raised when a runtime opens a store written for an older protocol; the message names the
    store's class and every missing method.

    Attributes:
        missing: The names of the missing methods.
    """

    kind = "interface"

    def __init__(self, message: str, *, missing: list[str] | None = None, url: str = "") -> None:
        """Create the error naming what the store lacks."""
        super().__init__(message, url=url)
        self.missing = list(missing or [])


class StoreFullError(StoreError):
    """The database reached its size limit or the disk is full."""

    kind = "full"


class StoreReadOnlyError(StoreError):
    """The database file (or its ``-wal``/``-shm`` companions or directory) is not writable."""

    kind = "read_only"


class StoreCorruptError(StoreError):
    """The file is not a valid database."""

    kind = "corrupt"


class StoreSchemaError(StoreError):
    """The store is stamped with a schema version newer than this code understands."""

    kind = "schema"


class StoreBusyError(StoreError):
    """The database stayed locked longer than the retry policy allows."""

    kind = "busy"


class StoreUnavailableError(StoreError):
    """The database server cannot be reached (connection refused or lost, server restarting).

    Attributes:
        retryable: ``True`` when the failed transaction can simply be run again once the store
            has reconnected (the store thread does so by itself, within the store's reconnect
            limit); ``False`` once the store gave up reconnecting.
    """

    kind = "unavailable"

    def __init__(self, message: str, *, url: str = "", retryable: bool = True) -> None:
        """Create the error naming the store."""
        super().__init__(message, url=url)
        self.retryable = retryable


class StorePermissionWarning(UserWarning):
    """A store at a location you chose can be read by other users of the machine.

    pymai creates its own ``.mai/`` folder private (0700, database files 0600) and tightens one
    an earlier release created, but leaves the permissions of a location you chose alone: it
    warns once per file instead. The message names the file, its mode and the ``chmod`` that
    makes it private.
    """
