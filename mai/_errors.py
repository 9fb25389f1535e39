"""The exception tree of pymai.

Every error pymai raises on its own account derives from :class:`MaiError` and, where one fits,
also from the matching builtin, so ``except TimeoutError`` or ``except ValueError`` keep working::

    MaiError(Exception)
    ├── ConfigError(MaiError, TypeError)          bad decorator / with_() / composite configuration
    ├── ArgumentError(MaiError, TypeError)        arguments that do not bind to a module's signature
    ├── CastError(MaiError, TypeError, ValueError) a value that does not fit an annotation
    ├── DeadlineExceeded(MaiError, TimeoutError)  a module's deadline fired
    ├── LoopLimitExceeded(MaiError, RuntimeError) a Loop ran out of iterations
    ├── EventLoopRunningError(MaiError, RuntimeError) mai.run() inside a running event loop
    │
    │   MCP (mai/core/mcp/_errors.py)
    ├── MCPToolError(ModelRetry, RuntimeError)    an MCP server's tool reported an error
    ├── MCPServerError(MaiError, RuntimeError)    an MCP server failed a request
    ├── MCPConnectionError(MaiError, ConnectionError) unreachable, or died during a call
    ├── MCPToolChangedError(MaiError, LookupError) a tool a durable run recorded changed
    │
    │   graphs and plans (mai/core/graph/_errors.py)
    ├── GraphError(MaiError, ValueError)          a graph or a plan is not valid
    │   ├── GraphInputError(GraphError)           unknown or missing inputs
    │   ├── GraphCycleError(GraphError)           the edges form a cycle
    │   ├── GraphTypeError(GraphError, TypeError) an edge's types cannot be cast
    │   ├── GraphOutputError(GraphError)          no output, or an output declared twice
    │   ├── PlanFormatError(GraphError)           not a plan this version reads
    │   └── PlanResolutionError(GraphError, LookupError) an import path no longer resolves
    │
    │   durable runtime (mai/core/durable/_errors.py)
    ├── DurableError(MaiError, RuntimeError)
    │   ├── NonDeterminismError(DurableError)     a replayed step's input differs from the record
    │   ├── PlanMismatchError(DurableError)       changed code is incompatible with the run's plan
    │   ├── LeaseLostError(DurableError)          another owner took the run over (fencing)
    │   ├── RunFailedError(DurableError)          a run failed (from RunHandle.result())
    │   ├── RunCancelledError(DurableError)       a run was cancelled
    │   └── RunDeadLetteredError(DurableError)    a run was dead-lettered
    ├── RunNotFoundError(MaiError, LookupError)   no run with that id
    ├── WorkflowNotFoundError(MaiError, LookupError)  this process cannot find a run's workflow
    ├── WorkflowIdentityError(MaiError, ValueError)   no stable, unique workflow name
    ├── RunNotRetryableError(MaiError, ValueError)    only DEAD or FAILED runs are requeued
    ├── SerializationError(MaiError, TypeError)   a value cannot be recorded as JSON
    ├── WaitTimeoutError(MaiError, TimeoutError)  mai.wait_for() timed out
    └── StoreError(MaiError, OSError)             the store cannot do what was asked
        ├── StoreFullError(StoreError)            database or disk full
        ├── StoreInterfaceError(StoreError, TypeError)  a store lacks methods of the protocol
        ├── StoreReadOnlyError(StoreError)        file, -wal/-shm or directory not writable
        ├── StoreCorruptError(StoreError)         not a valid database
        ├── StoreSchemaError(StoreError)          stamped with a newer schema version
        ├── StoreBusyError(StoreError)            still locked after the retry policy
        └── StoreUnavailableError(StoreError)     the database server cannot be reached

The agent layer adds its errors (``mai.agents``; drawn in ``mai/core/agents/_errors.py``) and
:class:`ModelRetry`, which a tool or an output validator raises to send the model a retry
prompt instead of failing.

Cancellation is never wrapped or replaced: the backend's own cancellation exception
(``trio.Cancelled``, ``asyncio.CancelledError``) always propagates unchanged.

Errors carry structured attributes (``module_name``, ``step_id``, ...) so that tools can read
them without parsing messages.
"""

from __future__ import annotations

from typing import Any

_REPR_LIMIT = 120


def short_repr(value: object) -> str:
    """Return ``repr(value)`` cut to a readable length, with its type name."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<unrepresentable {type(value).__name__}>"
    if len(text) > _REPR_LIMIT:
        text = text[: _REPR_LIMIT - 3] + "..."
    return f"{text} ({type(value).__name__})"


class MaiError(Exception):
    """Root of every exception pymai raises on its own account.

    Attributes:
        module_name: Name of the module the error is about, when there is one.
        step_id: Step id of the module call the error is about, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        module_name: str | None = None,
        step_id: str | None = None,
    ) -> None:
        """Create the error with a message and optional structured attributes."""
        super().__init__(message)
        self.message = message
        self.module_name = module_name
        self.step_id = step_id

    def __str__(self) -> str:
        """Return the message."""
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the keyword attributes (errors cross thread and process boundaries)."""
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[MaiError], message: str, state: dict[str, Any]) -> MaiError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigError(MaiError, TypeError):
    """A decorator, ``with_()`` or composite was given configuration it does not accept.

    Attributes:
        key: The offending configuration key, when there is one.
        valid: The keys that would have been accepted.
    """

    def __init__(
        self,
        message: str,
        *,
        module_name: str | None = None,
        key: str | None = None,
        valid: tuple[str, ...] = (),
    ) -> None:
        """Create the error naming the key and the valid keys."""
        super().__init__(message, module_name=module_name)
        self.key = key
        self.valid = valid


class ArgumentError(MaiError, TypeError):
    """Arguments passed to a module do not bind to its signature (missing, extra, duplicated)."""


class CastError(MaiError, TypeError, ValueError):
    """A value does not fit the annotation it must be cast to.

    Attributes:
        parameter: The parameter name, or ``"return value"``.
        value: The value that was received.
        expected: A readable form of the expected type.
    """

    def __init__(
        self,
        message: str,
        *,
        module_name: str | None = None,
        step_id: str | None = None,
        parameter: str = "",
        value: object = None,
        expected: str = "",
    ) -> None:
        """Create the error naming the module, parameter and value received."""
        super().__init__(message, module_name=module_name, step_id=step_id)
        self.parameter = parameter
        self.value = value
        self.expected = expected


class DeadlineExceeded(MaiError, TimeoutError):
    """A deadline fired while a module was running.

    ``module_name`` names the module whose deadline fired (its own ``timeout``, or the one it
    inherited); ``running_calls`` names every innermost module call that was still running when
    it fired (each branch of a Parallel or item of a Map), the same on every backend.

    Attributes:
        deadline: The deadline that fired, on the running event loop's clock.
        timeout: The timeout in seconds that produced the deadline, when known.
        running: Name of the first (in step order) innermost module that was running.
        running_calls: ``(step id, module name)`` of each innermost call still running, in
            step order; the module itself when nothing inside it was running.
    """

    def __init__(
        self,
        message: str,
        *,
        module_name: str | None = None,
        step_id: str | None = None,
        deadline: float = 0.0,
        timeout: float | None = None,
        running: str | None = None,
        running_calls: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Create the error naming the module whose deadline fired."""
        super().__init__(message, module_name=module_name, step_id=step_id)
        self.deadline = deadline
        self.timeout = timeout
        self.running = running
        self.running_calls = running_calls


class LoopLimitExceeded(MaiError, RuntimeError):
    """A :class:`mai.Loop` reached ``max_iterations`` without its ``until`` condition holding.

    Attributes:
        max_iterations: The limit that was reached.
        last_value: The value the last iteration produced.
    """

    def __init__(
        self,
        message: str,
        *,
        module_name: str | None = None,
        step_id: str | None = None,
        max_iterations: int = 0,
        last_value: object = None,
    ) -> None:
        """Create the error with the limit and the last value."""
        super().__init__(message, module_name=module_name, step_id=step_id)
        self.max_iterations = max_iterations
        self.last_value = last_value


class EventLoopRunningError(MaiError, RuntimeError):
    """:func:`mai.run` was called where an event loop already runs; ``await`` the module there."""


class ModelRetry(MaiError):
    """Raised by an agent's tool or output validator to send the model a retry prompt.

    The message goes back to the model (as a retry prompt for the tool call, or for the output)
    instead of failing the run; a module's own ``retries`` never re-run a body on it. See
    ``docs/agents.rst`` for the two retry budgets.
    """

    def __init__(self, message: str) -> None:
        """Ask the model to try again, telling it ``message``."""
        super().__init__(message)
