"""The seam: how tracing and durability attach to every module call.

An *interceptor* wraps module calls. The kernel hands it a :class:`Call` and a ``proceed``
function; the interceptor may look at the call, run code before and after ``await proceed()``,
or return a value without calling ``proceed`` at all (that is how a durable run replays a
recorded step).

Where a call's own configuration applies: ``proceed()`` enforces the call's deadline (its
``timeout``, when tighter than the inherited deadline), runs the attempts with ``retries`` and
``backoff`` under ``retry_on``, and holds the ``max_concurrency`` limit around each attempt.
:meth:`Call.execute` does exactly the same around a replacement body (a remote executor runs each
attempt elsewhere that way). An interceptor that calls neither takes all of them over: the kernel
then applies none of the call's own timeout, retries or concurrency limit; only deadlines
inherited from enclosing calls still cancel it. :attr:`Call.config` tells it what they are.

Interceptors are installed for the duration of a run with :func:`intercept` (run-scoped, in a
``ContextVar``) or process-wide with :func:`add_interceptor` (for plugins).

The kernel imports nothing above this module: the tracer and the durable runtime plug in here.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractContextManager

    from ._config import Config
    from ._context import Frame
    from ._module import Module


class Call:
    """One module call, as an interceptor sees it (see :func:`mai.intercept`).

    Attributes:
        module: The module being called.
        frame: The kernel's record of the call (read :attr:`step_id` and :attr:`name`).
        args: Positional arguments, already cast to the module's parameter types.
        kwargs: Keyword arguments, already cast.
        replayed: ``True`` once an interceptor further in returned the call's result without
            running its body: a durable run replaying a step committed by an earlier attempt.
            Read it after ``await proceed()``.
    """

    __slots__ = ("args", "frame", "kwargs", "module", "replayed")

    def __init__(
        self,
        module: Module[..., Any],
        frame: Frame,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """Describe one call; only the kernel creates these."""
        self.module = module
        self.frame = frame
        self.args = args
        self.kwargs = kwargs
        self.replayed = False

    @property
    def step_id(self) -> str:
        """The call's hierarchical step id."""
        return self.frame.step_id

    @property
    def name(self) -> str:
        """The called module's name."""
        return self.module.name

    @property
    def config(self) -> Config:
        """The called module's configuration: ``timeout``, ``retries``, ``backoff``, ..."""
        return self.module.config

    @property
    def leaf(self) -> bool:
        """Whether the module is a leaf (its body is opaque code), not a composite of modules."""
        return not getattr(self.module, "composite", False)

    @property
    def run_id(self) -> str | None:
        """The id of the run the call belongs to (set by a durable runtime or executor)."""
        run = self.frame.run
        return run.run_id if run is not None else None

    @property
    def deadline(self) -> float:
        """The call's deadline on the running loop's clock (``inf`` when nothing bounds it)."""
        return self.frame.deadline

    async def execute(
        self, body: Callable[[tuple[Any, ...], dict[str, Any]], Awaitable[Any]]
    ) -> Any:
        """Run the call under its deadline, retries and concurrency limit, with ``body``.

        ``await body(args, kwargs)`` stands in for the module's own body on every attempt; its
        result is cast to the module's return type. Inside ``body``, ``Context.get()`` reports
        the attempt's ``retry_count``. Use it instead of ``proceed`` to run attempts elsewhere.
        """
        return await self.module._execute(self.frame, self.args, self.kwargs, body)

    @property
    def parent_step_id(self) -> str | None:
        """The step id of the calling module, ``None`` for a top-level call."""
        parent = self.frame.parent
        return parent.step_id if parent is not None and parent.parent is not None else None


class Interceptor(Protocol):
    """Something that wraps every module call of a run."""

    async def __call__(self, call: Call, proceed: Callable[[], Awaitable[Any]]) -> Any:
        """Handle ``call``; ``await proceed()`` runs the rest of the chain and the body."""
        ...


class Builder(Protocol):
    """Something that records module calls instead of running them (a graph under construction)."""

    def record(
        self, module: Module[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Record ``module(*args, **kwargs)`` and return a symbolic reference to its output."""
        ...


#: The builder that module calls are recorded into, while a graph is being built.
building: ContextVar[Builder | None] = ContextVar("mai.building", default=None)


class Durability(Protocol):
    """What a durable runtime provides to a run: its identity and the durable primitives.

    ``mai.sleep``, ``mai.now``, ``mai.random`` and ``mai.wait_for`` (and the composites' delays)
    reach the runtime only through this protocol, bound to a run with :data:`durability`.
    """

    @property
    def run_id(self) -> str:
        """The durable run's id."""
        ...

    async def sleep(self, frame: Frame, seconds: float) -> None:
        """A durable timer: the wake-up time is recorded; a restart waits only for the rest."""
        ...

    def now(self, frame: Frame) -> float:
        """A recorded clock reading (replayed on resume)."""
        ...

    def seed(self, frame: Frame) -> str:
        """A deterministic seed for ``mai.random()`` at this position of the run."""
        ...

    async def wait_for(self, frame: Frame, topic: str, timeout: float | None) -> Any:  # noqa: ASYNC109 - a durable timeout
        """Wait durably for a message sent to the run on ``topic``."""
        ...


#: The durable run the next top-level call belongs to: set by the durable runtime so the run's
#: identity exists before any interceptor sees its first call.
durability: ContextVar[Durability | None] = ContextVar("mai.durability", default=None)

_run_interceptors: ContextVar[tuple[Interceptor, ...]] = ContextVar("mai.interceptors", default=())
_global_interceptors: list[Interceptor] = []
_run_hooks: list[Callable[[], Interceptor | None]] = []


def active_interceptors() -> tuple[Interceptor, ...]:
    """Return the interceptors a run starting now installs.

    Order, outermost first: process-wide interceptors, those produced by run hooks (for example
    the OpenTelemetry tracer, only when an SDK is configured), then run-scoped ones.
    """
    scoped = _run_interceptors.get()
    if not _global_interceptors and not _run_hooks:
        return scoped
    hooked = [i for hook in _run_hooks if (i := hook()) is not None]
    return (*_global_interceptors, *hooked, *scoped)


def add_run_hook(hook: Callable[[], Interceptor | None]) -> None:
    """Call ``hook`` at the start of every top-level run; a non-``None`` result is installed.

    Hooks must be cheap: they run once per top-level call.
    """
    _run_hooks.append(hook)


def remove_run_hook(hook: Callable[[], Interceptor | None]) -> None:
    """Remove a hook added with :func:`add_run_hook`."""
    _run_hooks.remove(hook)


def intercept(*interceptors: Interceptor) -> AbstractContextManager[None]:
    """Install interceptors for the runs started inside the ``with`` block (outermost first).

    An interceptor is an async callable ``(call, proceed)``: it sees every module call of
    those runs (a :class:`Call`), runs code around ``await proceed()`` and returns its result.
    A durable run keeps the interceptors it started with on the worker task that drives it.

    Example::

        async def log_calls(call: mai.Call, proceed):
            print("start", call.step_id, call.name)
            return await proceed()

        with mai.intercept(log_calls):
            await pipeline(x)
    """
    return _Installed(interceptors)


class _Installed:
    """:func:`intercept`'s context manager (a class: a durable run enters one per run)."""

    __slots__ = ("interceptors", "token")

    def __init__(self, interceptors: tuple[Interceptor, ...]) -> None:
        self.interceptors = interceptors

    def __enter__(self) -> None:
        self.token = _run_interceptors.set((*_run_interceptors.get(), *self.interceptors))

    def __exit__(self, *exc: object) -> None:
        _run_interceptors.reset(self.token)


def add_interceptor(interceptor: Interceptor) -> None:
    """Install an interceptor process-wide, for every run started from now on."""
    _global_interceptors.append(interceptor)


def remove_interceptor(interceptor: Interceptor) -> None:
    """Remove an interceptor installed with :func:`add_interceptor`."""
    _global_interceptors.remove(interceptor)
