"""Module: the unit of composition, and the ``@mai.module`` decorator.

A module call is the unit everything else multiplies, so its path is kept short: arguments are
cast with an exact-type fast path, a light :class:`~mai._context.Frame` is pushed into a
``ContextVar``, and the body is awaited directly. A cancel scope is opened only when a deadline
must be enforced here, interceptors run only when a run installed some, and a worker thread is
used only for sync bodies that are not ``inline``.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import inspect
import math
import sys
import threading
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

import trio

from ._backend import Backend, current_backend
from ._casting import Payload
from ._config import FRAMEWORK_KEYS, Backoff, Config, RetryOn
from ._context import Frame, RunState, child_frame, current_frame, thread_cancel
from ._errors import ConfigError, DeadlineExceeded
from ._seam import Call, active_interceptors, building, durability
from ._signature import Spec

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping

    from ._composites import Sequential

P = ParamSpec("P")
R = TypeVar("R")
R2 = TypeVar("R2")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_ASYNC, _INLINE, _THREAD = 0, 1, 2
_INF = math.inf


class _BodySignature:
    """``Module.__signature__``: an instance's body signature, ``None`` on the class.

    ``None`` lets ``inspect.signature(mai.Map)`` read the constructor, as for any class.
    """

    def __get__(self, obj: Module[..., Any] | None, owner: type | None = None) -> Any:
        return None if obj is None else obj._signature()


class Module(Generic[P, R]):
    """A composable, typed, awaitable unit of work.

    Make one with :func:`module` on a function, or subclass and write ``forward``::

        class Summarize(mai.Module):
            async def forward(self, text: str) -> str:
                return text[:100]

    Calling a module returns an awaitable (``await summarize(text)``). Arguments are cast to
    the parameter annotations and the result to the return annotation; ``async def`` bodies
    run in the caller's task, plain ``def`` bodies in a worker thread unless ``inline``.
    """

    _fn: Callable[..., Any] | None = None
    _spec: Spec
    _cfg: Config
    _bound: Mapping[str, Any] = _EMPTY
    _mode: int = _ASYNC
    _limiter: tuple[object, Any] | None = None
    _payload: Payload | None = None
    __signature__ = _BodySignature()
    #: ``True`` for composites (they orchestrate other modules), ``False`` for leaves.
    composite: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Inspect ``forward`` once per subclass."""
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if forward is not None:
            cls._spec = Spec(forward, skip_first=True)
            cls._cfg = Config(name=cls.__name__)
            cls._mode = _ASYNC if cls._spec.is_async else _THREAD

    def __init__(self, **config: Any) -> None:
        """Configure a subclass instance with framework keys (``name``, ``timeout``, ...)."""
        if config:
            self._set_config(config)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The body of a subclass; ``async def`` or plain ``def``."""
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # -- identity ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The module's name (step ids, traces, errors)."""
        return self._cfg.name

    @property
    def config(self) -> Config:
        """The execution configuration."""
        return self._cfg

    @property
    def bound(self) -> Mapping[str, Any]:
        """Parameter values bound with :meth:`with_`."""
        return self._bound

    @property
    def payload(self) -> Payload:
        """The typed description of this module's input and output."""
        p = self._payload
        if p is None:
            params = {k: v for k, v in self._spec.annotations().items() if k not in self._bound}
            p = self._payload = Payload(self.name, params, self.output_type)
        return p

    @property
    def output_type(self) -> Any:
        """The return annotation (``Any`` when missing)."""
        spec = self._spec
        if not spec.ready:
            spec.resolve()
        return Any if spec.ret is None else spec.ret.annotation

    def _signature(self) -> inspect.Signature:
        """The body's signature, without ``self`` and without bound parameters."""
        sig = self._spec.signature
        if self._bound:
            sig = sig.replace(
                parameters=[p for p in sig.parameters.values() if p.name not in self._bound]
            )
        return sig

    def children(self) -> tuple[Module[..., Any], ...]:
        """The modules this one composes (empty for a leaf)."""
        return ()

    def __repr__(self) -> str:
        """Return ``<mai.Module name>``."""
        return f"<mai.{type(self).__name__} {self.name!r}>"

    # -- configuration -------------------------------------------------------------------------

    def with_(self, **cfg: Any) -> Module[..., R]:
        """Return a new module with parameters bound and/or execution reconfigured.

        Keys that name parameters of the body bind them (like ``functools.partial``); the
        framework keys (``name``, ``timeout``, ``retries``, ``backoff``, ``retry_on``,
        ``max_concurrency``, ``inline``) configure execution. The original is never changed.

        Raises:
            ConfigError: (a ``TypeError``) for an unknown key; the message lists valid keys.
            CastError: When a bound value does not fit its parameter's type.
        """
        params = self._spec.parameter_names
        binds = {k: v for k, v in cfg.items() if k in params}
        config = {k: v for k, v in cfg.items() if k not in params}
        unknown = [k for k in config if k not in FRAMEWORK_KEYS]
        if unknown:
            valid = (*FRAMEWORK_KEYS, *(p for p in params if p not in FRAMEWORK_KEYS))
            raise ConfigError(
                f"module {self.name!r}: with_() got unknown key"
                f"{'' if len(unknown) == 1 else 's'} {', '.join(repr(k) for k in unknown)}; "
                f"valid keys: {', '.join(valid)}",
                module_name=self.name,
                key=unknown[0],
                valid=valid,
            )
        new = copy.copy(self)
        if config:
            new._set_config(config)
        if binds:
            cast = {k: self._spec.cast_one(self.name, k, v) for k, v in binds.items()}
            new._bound = MappingProxyType({**self._bound, **cast})
        new._payload = None
        new._limiter = None
        return new

    def with_config(self, **cfg: Any) -> Module[P, R]:
        """Return a new module with only framework keys changed (never binds parameters)."""
        new = copy.copy(self)
        new._set_config(cfg)
        new._payload = None
        return new

    def _set_config(self, cfg: dict[str, Any]) -> None:
        self._cfg = self._cfg.replace(self._cfg.name, **cfg)
        self._limiter = None
        if self._mode != _ASYNC:
            self._mode = _INLINE if self._cfg.inline else _THREAD

    def __rshift__(self, other: Module[..., R2] | Callable[..., R2]) -> Sequential:
        """``a >> b`` is ``Sequential(a, b)``."""
        from ._composites import Sequential  # noqa: PLC0415 - composites import this module

        return Sequential(self, other)

    def __rrshift__(self, other: Callable[..., Any]) -> Sequential:
        """``fn >> module`` wraps ``fn`` with :func:`module` first."""
        from ._composites import Sequential  # noqa: PLC0415 - composites import this module

        return Sequential(other, self)

    def cast_output(self, value: Any) -> R:
        """Cast a value to this module's return type (used when replaying recorded outputs)."""
        return self._spec.cast_return(self.name, value)  # type: ignore[no-any-return]

    # -- calling -------------------------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        """Start a call; ``await`` the result.

        The call's step id is fixed here, in the calling task, from its parent's counter, so
        ids follow program order even when the awaitable is handed to a nursery.
        """
        parent = current_frame.get()
        if parent.run is None:
            builder = building.get()
            if builder is not None:
                return builder.record(self, args, kwargs)  # type: ignore[no-any-return]
            return self._top(parent, args, kwargs)
        c = parent.counter
        n = c[0] + 1
        c[0] = n
        return self._step(parent, n, args, kwargs)

    def _spawns_background(self) -> bool:
        """Whether this module's tree certainly contains background work (a NonBlockingDelay)."""
        return False

    def _top_needs_nursery(self) -> bool:
        """A leaf body is opaque and may start background work; composites know their tree."""
        return True

    async def _top(self, parent: Frame, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """Run a top-level call: a new run, with a background nursery when one can be needed."""
        backend = current_backend()
        run = RunState(backend, active_interceptors())
        durable = durability.get()
        if durable is not None:
            run.run_id, run.durable = durable.run_id, durable
        root = Frame(
            None,
            0,
            parent.name,
            run,
            parent.deadline,
            parent.deadline_owner,
            parent.deadline == _INF,
            parent.timeout,
            parent.metadata,
            parent.span,
        )
        token = current_frame.set(root)
        try:
            if not self._top_needs_nursery():
                return await self._step(root, 1, args, kwargs)
            return await self._with_nursery(run, root, args, kwargs)
        finally:
            current_frame.reset(token)

    async def _with_nursery(
        self, run: RunState, root: Frame, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        failure: Exception | None = None
        result: Any = None
        try:
            async with run.backend.open_nursery() as nursery:
                run.nursery = nursery
                try:
                    result = await self._step(root, 1, args, kwargs)
                except Exception as exc:
                    failure = exc
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            run.nursery = None
        if failure is not None:
            raise failure
        if run.failures:
            if len(run.failures) == 1:
                raise run.failures[0]
            raise BaseExceptionGroup(f"background work of {self.name!r} failed", run.failures)
        return result  # type: ignore[no-any-return]

    def _enter(
        self, parent: Frame, index: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Frame, tuple[Any, ...], dict[str, Any]]:
        """Cast the arguments and build the call's frame (the synchronous half of a call)."""
        spec = self._spec
        cfg = self._cfg
        if not spec.passthrough:
            if not spec.ready:
                spec.resolve()
            if not kwargs and not self._bound and len(args) == spec.fast_n:
                for i, pname, c in spec.pos_casters:
                    v = args[i]
                    if type(v) is not c.exact:
                        args = (*args[:i], c.cast(v, cfg.name, pname), *args[i + 1 :])
            else:
                args, kwargs = spec.bind(cfg.name, args, kwargs, self._bound)
        frame = child_frame(parent, index, cfg.name, cfg.timeout)
        return frame, args, kwargs

    def _fast(self, frame: Frame) -> bool:
        """Whether a call can skip interceptors, deadline scope, retries and limits."""
        return frame.enforced and not frame.run.interceptors and self._cfg.plain  # type: ignore[union-attr]

    async def _step(
        self, parent: Frame, index: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        """Run one call as child ``index`` of ``parent`` (composites call this directly)."""
        frame, args, kwargs = self._enter(parent, index, args, kwargs)
        if self._mode != _ASYNC or not self._fast(frame):
            return await self._run_frame(frame, args, kwargs)
        # The hot path, inlined: an async body with nothing to enforce or intercept.
        token = current_frame.set(frame)
        try:
            result = await (self._fn or self.forward)(*args, **kwargs)
        except BaseException as exc:
            _tag_cancelled(frame, exc)
            raise
        finally:
            current_frame.reset(token)
        rc = self._spec.ret
        if rc is not None and type(result) is not rc.exact:
            result = rc.cast(result, self._cfg.name, "return value", frame.step_id)
        return result  # type: ignore[no-any-return]

    async def _run_frame(self, frame: Frame, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """Run a call whose frame :meth:`_enter` built."""
        token = current_frame.set(frame)
        chain = frame.run.interceptors  # type: ignore[union-attr]
        try:
            if not chain and frame.enforced and self._cfg.plain:  # nothing to intercept, enforce
                mode = self._mode
                fn = self._fn or self.forward
                if mode == _ASYNC:
                    result = await fn(*args, **kwargs)
                elif mode == _INLINE:
                    result = fn(*args, **kwargs)
                else:
                    result = await _in_thread(frame.run.backend, fn, args, kwargs)  # type: ignore[union-attr]
                rc = self._spec.ret
                if rc is not None and type(result) is not rc.exact:
                    result = rc.cast(result, self._cfg.name, "return value", frame.step_id)
                return result  # type: ignore[no-any-return]
            # Interceptors (if any), then the deadline scope, retries and concurrency limit.
            if not chain:
                return await self._execute(frame, args, kwargs)  # type: ignore[no-any-return]
            proceed = functools.partial(self._execute, frame, args, kwargs)
            call = Call(self, frame, args, kwargs)
            if len(chain) > 1:
                for outer in reversed(chain[1:]):
                    proceed = functools.partial(outer, call, proceed)
            return await chain[0](call, proceed)  # type: ignore[no-any-return]
        except BaseException as exc:
            _tag_cancelled(frame, exc)
            raise
        finally:
            current_frame.reset(token)

    async def _execute(
        self, frame: Frame, args: tuple[Any, ...], kwargs: dict[str, Any], body: Any = None
    ) -> Any:
        """Enforce the deadline (if this call owns it), then run the attempts.

        ``body`` (``await body(args, kwargs)``) replaces the module's own body for each attempt:
        that is :meth:`Call.execute <mai._seam.Call.execute>`, for executors that run it elsewhere.
        """
        if frame.enforced or frame.deadline == _INF:
            frame.enforced = True
            mode = self._mode
            if body is None and mode != _THREAD and self._cfg.plain:  # one attempt, no limit
                fn = self._fn or self.forward
                out = await fn(*args, **kwargs) if mode == _ASYNC else fn(*args, **kwargs)
                return self._spec.cast_return(self._cfg.name, out, frame.step_id)
            return await self._attempts(frame, args, kwargs, body)
        backend = frame.run.backend  # type: ignore[union-attr]
        if frame.deadline <= backend.current_time():  # already past: never start the body
            raise _deadline_error(frame, ())
        result: Any = None
        with backend.scope(deadline=frame.deadline) as scope:
            frame.enforced = True
            result = await self._attempts(frame, args, kwargs, body)
        if scope.cancelled_caught:
            err = _deadline_error(frame, _still_running(frame))
            _log().info(
                "mai.deadline_exceeded", module=frame.name, step_id=err.step_id, error=str(err)
            )
            raise err
        return result

    async def _attempts(
        self, frame: Frame, args: tuple[Any, ...], kwargs: dict[str, Any], body: Any = None
    ) -> Any:
        """Run the body, retrying per the configuration, under the concurrency limit."""
        cfg = self._cfg
        backend = frame.run.backend  # type: ignore[union-attr]
        limiter = self._semaphore(backend) if cfg.max_concurrency is not None else None
        fn = self._fn or self.forward
        run = self._body if body is None else (lambda _b, _f, a, k: body(a, k))
        spec = self._spec
        attempt = 0
        while True:
            token = None
            if attempt:
                f = frame.derive()
                f.retry_count = attempt
                f.counter = [0]
                token = current_frame.set(f)
            try:
                if limiter is not None:
                    async with limiter:
                        result = await run(backend, fn, args, kwargs)
                else:
                    result = await run(backend, fn, args, kwargs)
                return spec.cast_return(cfg.name, result, frame.step_id)
            except Exception as exc:
                if attempt >= cfg.retries or not cfg.retryable(exc):
                    if attempt:
                        exc.add_note(
                            f"mai: module {cfg.name!r} gave up after {attempt + 1} attempts"
                        )
                        _log().error(
                            "mai.retries_exhausted",
                            module=cfg.name,
                            step_id=frame.step_id,
                            attempts=attempt + 1,
                            error=repr(exc),
                        )
                    raise
                delay = cfg.backoff.delay(attempt + 1)
                _log().warning(
                    "mai.retry",
                    module=cfg.name,
                    step_id=frame.step_id,
                    attempt=attempt + 1,
                    delay=delay,
                    error=repr(exc),
                )
            finally:
                if token is not None:
                    current_frame.reset(token)
            attempt += 1
            frame.attempts = attempt + 1
            await backend.sleep_until(backend.current_time() + delay)

    async def _body(
        self,
        backend: Backend,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        mode = self._mode
        if mode == _ASYNC:
            return await fn(*args, **kwargs)
        if mode == _INLINE:
            return fn(*args, **kwargs)
        return await _in_thread(backend, fn, args, kwargs)

    def _semaphore(self, backend: Backend) -> Any:
        """The per-event-loop semaphore that enforces ``max_concurrency``."""
        key = _loop_key(backend)
        cached = self._limiter
        if cached is None or cached[0] is not key:
            import anyio  # noqa: PLC0415 - only modules with max_concurrency need it

            cached = self._limiter = (key, anyio.Semaphore(self._cfg.max_concurrency or 1))
        return cached[1]


def library_logger(name: str = "mai") -> Any:
    """The logger of the library's own events (``mai.retry``, ...), looked up when one is logged.

    When the application configured structlog, its configuration applies. Otherwise the lines go
    to **stderr** with structlog's default rendering: stdout belongs to the program (``mai run``
    prints its result there, and a script's output must stay parseable).
    """
    import structlog  # noqa: PLC0415 - only slow paths log; `import mai` does not load structlog

    if structlog.is_configured():
        return structlog.get_logger(name)
    return structlog.wrap_logger(structlog.PrintLogger(sys.stderr))


_log = library_logger


def _loop_key(backend: Backend) -> object:
    if backend.name == "trio":
        return trio.lowlevel.current_trio_token()
    import asyncio  # noqa: PLC0415

    return asyncio.get_running_loop()


async def _in_thread(
    backend: Backend, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Run a sync body in a worker thread with the caller's context; release it on cancel."""
    ctx = contextvars.copy_context()
    event = threading.Event()
    ctx.run(thread_cancel.set, event)
    call = functools.partial(fn, *args, **kwargs) if kwargs else fn
    try:
        if kwargs:
            return await backend.run_in_thread(ctx.run, call)
        return await backend.run_in_thread(ctx.run, call, *args)
    except backend.cancelled:
        event.set()
        raise


def _tag_cancelled(frame: Frame, exc: BaseException) -> None:
    """Note a call that a passed deadline interrupted (a cancellation, or a group of them).

    Calls finish innermost first, so when the deadline's owner reports, every interrupted call
    under it is in the run's list, on every backend (asyncio folds cancelled branches into one
    exception, so the exception alone cannot tell).
    """
    if isinstance(exc, Exception):
        return
    run = frame.run
    if frame.deadline <= run.backend.current_time():  # type: ignore[union-attr]
        if run.interrupted is None:  # type: ignore[union-attr]
            run.interrupted = []  # type: ignore[union-attr]
        run.interrupted.append(frame)  # type: ignore[union-attr]


def _order(step_id: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in step_id.split("."))


def _still_running(frame: Frame) -> tuple[tuple[str, str], ...]:
    """The innermost calls under ``frame`` that its deadline interrupted: ``(step id, name)``."""
    run = frame.run
    noted = run.interrupted  # type: ignore[union-attr]
    if not noted:
        return ()
    sid = frame.step_id
    prefix = f"{sid}." if sid else ""
    mine = {f.step_id: f.name or "?" for f in noted if f.step_id.startswith(prefix)}
    run.interrupted = [f for f in noted if not f.step_id.startswith(prefix)] or None  # type: ignore[union-attr]
    parents = _parents(mine)
    inner = {s: n for s, n in mine.items() if s not in parents}
    return tuple(sorted(inner.items(), key=lambda item: _order(item[0])))


def _parents(step_ids: dict[str, str]) -> set[str]:
    """Every proper ancestor of the given step ids."""
    out: set[str] = set()
    for s in step_ids:
        head, dot, _ = s.rpartition(".")
        while dot and head not in out:
            out.add(head)
            head, dot, _ = head.rpartition(".")
    return out


def _deadline_error(frame: Frame, running: tuple[tuple[str, str], ...]) -> DeadlineExceeded:
    owner = frame.deadline_owner or frame.name
    sid = frame.step_id
    if owner == frame.name and frame.timeout is not None:
        msg = f"module {frame.name!r} (step {sid}) exceeded its timeout of {frame.timeout:g}s"
    else:
        msg = f"module {frame.name!r} (step {sid}) ran past the deadline set by {owner!r}"
    if running:
        shown = ", ".join(f"{n!r} (step {s})" for s, n in running[:5])
        more = f" and {len(running) - 5} more" if len(running) > 5 else ""
        msg += f"; still running: {shown}{more}"
    else:
        running = ((sid, frame.name or "?"),)
    return DeadlineExceeded(
        msg,
        module_name=owner if owner != "Context.set" else frame.name,
        step_id=sid,
        deadline=frame.deadline,
        timeout=frame.timeout,
        running=running[0][1],
        running_calls=running,
    )


class _FunctionModule(Module[P, R]):
    """A module made from a plain function by :func:`module`."""

    def __init__(self, fn: Callable[..., Any], cfg: Config) -> None:
        self._fn = fn
        try:
            self._spec = Spec(fn)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"@mai.module cannot read the signature of {fn!r} ({exc}); wrap it in a function"
                " with a signature",
                module_name=cfg.name,
            ) from exc
        self._cfg = cfg
        self._mode = _ASYNC if self._spec.is_async else (_INLINE if cfg.inline else _THREAD)
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            with contextlib.suppress(AttributeError):
                setattr(self, attr, getattr(fn, attr))
        self.__wrapped__ = fn

    @property
    def function(self) -> Callable[..., Any]:
        """The decorated function."""
        return self._fn  # type: ignore[return-value]


@overload
def module(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Module[P, R]: ...
@overload
def module(fn: Callable[P, R], /) -> Module[P, R]: ...
@overload
def module(
    *,
    name: str | None = None,
    timeout: float | None = None,
    retries: int = 0,
    backoff: float | Backoff = ...,
    retry_on: RetryOn = ...,
    max_concurrency: int | None = None,
    inline: bool = False,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]] | Callable[P, R]], Module[P, R]]: ...


def module(fn: Callable[..., Any] | None = None, /, **cfg: Any) -> Any:
    """Turn a function into a :class:`Module`; usable bare or with configuration.

    Example::

        @mai.module
        async def double(x: int) -> int:
            return 2 * x

        @mai.module(timeout=5, retries=2)
        def fetch(url: str) -> str:  # runs in a worker thread
            ...

    Args:
        fn: The function (``async def`` or ``def``).
        **cfg: Framework keys: ``name``, ``timeout``, ``retries``, ``backoff``, ``retry_on``,
            ``max_concurrency``, ``inline``.

    Returns:
        A module with the function's name, docstring and signature.

    Raises:
        ConfigError: For an unknown key or a value of the wrong kind, or a generator function.
    """
    if fn is None:
        return lambda f: module(f, **cfg)
    if isinstance(fn, Module):
        return fn.with_config(**cfg) if cfg else fn
    if not callable(fn):
        raise ConfigError(f"@mai.module expects a function, received {fn!r}")
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise ConfigError(
            f"@mai.module cannot wrap the generator function {getattr(fn, '__name__', fn)!r}; "
            "return a list instead"
        )
    name = cfg.pop("name", None) or getattr(fn, "__name__", None) or type(fn).__name__
    base = Config(name=name)
    config = base.replace(name, name=name, **cfg)
    return _FunctionModule(fn, config)
