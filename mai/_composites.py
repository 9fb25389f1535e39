"""Composites: modules that run other modules, always inside a nursery or task group.

Failure rule for :class:`Parallel` and :class:`Map` (:class:`Race` differs: its first
*success* cancels the rest): the first branch that fails cancels its siblings, and the caller
sees that branch's own exception, unchanged. An ``ExceptionGroup`` is raised only when several
branches failed on their own (each raised something other than the cancellation its siblings'
failure caused).
Cancellation from outside is never wrapped: it propagates as the backend's cancellation.

Child step ids come from structure: child ``i`` of a composite with step id ``s`` is ``s.i``,
assigned before any child starts, so they never depend on scheduling order.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._casting import Payload, caster_for
from ._config import FRAMEWORK_KEYS
from ._context import Frame, current_frame
from ._errors import CastError, ConfigError, LoopLimitExceeded, short_repr
from ._module import Module, module
from ._signature import Spec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._backend import Spawner


def _passthrough(*args, **kwargs):  # type: ignore[no-untyped-def] # noqa: ANN002, ANN003, ANN202 - unannotated on purpose: Spec.passthrough needs it  # pragma: no cover
    """Stand-in whose signature marks a composite as taking whatever its children take."""


_PASSTHROUGH = Spec(_passthrough)


def _as_module(obj: Any, role: str) -> Module[..., Any]:
    if isinstance(obj, Module):
        return obj
    if callable(obj):
        return module(obj)
    raise ConfigError(f"{role} must be a module or a function, received {obj!r}")


class Composite(Module[..., Any]):
    """Base of the modules that compose others; its input passes through to its children."""

    #: Composites orchestrate other modules; leaves (``composite = False``) run opaque code.
    composite = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Composites never cast their own input: each child casts what it receives."""
        super().__init_subclass__(**kwargs)
        cls._spec = _PASSTHROUGH

    def __init__(self, name: str, **config: Any) -> None:
        """Name the composite and apply framework configuration."""
        self._cfg = self._cfg.replace(name, name=name)
        super().__init__(**config)
        #: The module whose code built this composite (where a durable run looks for it by name).
        self.defined_in = _caller_module()

    async def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        """Run the children."""
        raise NotImplementedError

    def _spawns_background(self) -> bool:
        return any(c._spawns_background() for c in self.children())

    def cast_output(self, value: Any) -> Any:
        """Cast a value to :attr:`output_type` (children cast their own results when running)."""
        if "_out" not in self.__dict__:
            self.__dict__["_out"] = caster_for(self.output_type)
        caster = self.__dict__["_out"]
        return value if caster is None else caster.cast(value, self.name, "return value")

    def _top_needs_nursery(self) -> bool:
        return self._spawns_background()

    def _input_from(self, child: Module[..., Any]) -> None:
        """Describe this composite's input with ``child``'s signature (used by Payload)."""
        self._input_child = child

    @property
    def payload(self) -> Any:
        """Input described by the first child, output by :attr:`output_type`."""
        p = self._payload
        if p is None:
            child = getattr(self, "_input_child", None)
            params = child.payload.parameters if child is not None else {}
            p = self._payload = Payload(self.name, params, self.output_type)
        return p


def _caller_module() -> str | None:
    """The name of the first module outside pymai on the call stack (who built a composite)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if not isinstance(name, str) or not (name == "mai" or name.startswith("mai.")):
            return name if isinstance(name, str) else None
        frame = frame.f_back  # type: ignore[assignment]
    return None


class _Failures:
    """Collects branch failures; the first one cancels the group."""

    __slots__ = ("errors", "scope")

    def __init__(self, scope: Any) -> None:
        self.scope = scope
        self.errors: list[Exception] = []

    def add(self, exc: Exception) -> None:
        self.errors.append(exc)
        self.scope.cancel()

    def raise_for(self, what: str) -> None:
        errors = self.errors
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup(f"{len(errors)} branches of {what} failed", errors)


async def _branch(
    m: Module[..., Any],
    parent: Frame,
    index: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    results: list[Any],
    slot: int,
    failures: _Failures,
) -> None:
    """One concurrent branch: the call of ``m``, its result or failure collected."""
    try:
        results[slot] = await m._step(parent, index, args, kwargs)
    except Exception as exc:
        failures.add(exc)


class Sequential(Composite):
    """Run modules one after another; each output is the next input (cast on the way).

    ``Sequential(a, b, c)`` is also written ``a >> b >> c``.
    """

    def __init__(
        self, *steps: Module[..., Any] | Callable[..., Any], name: str = "Sequential", **config: Any
    ) -> None:
        """Compose ``steps`` in order (plain functions are wrapped with :func:`module`)."""
        if not steps:
            raise ConfigError("Sequential needs at least one step")
        flat: list[Module[..., Any]] = []
        for s in steps:
            m = _as_module(s, "a Sequential step")
            if type(m) is Sequential and m._cfg == Sequential._default_cfg(m):
                flat.extend(m.steps)
            else:
                flat.append(m)
        self.steps: tuple[Module[..., Any], ...] = tuple(flat)
        super().__init__(name, **config)
        self._input_from(self.steps[0])

    @staticmethod
    def _default_cfg(m: Sequential) -> Any:
        return type(m._cfg)(name="Sequential")

    def children(self) -> tuple[Module[..., Any], ...]:
        """The steps, in order."""
        return self.steps

    @property
    def output_type(self) -> Any:
        """The last step's output type."""
        return self.steps[-1].output_type

    async def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Feed the input to the first step and each output to the next."""
        frame = current_frame.get()
        steps = self.steps
        base = frame.reserve(len(steps))
        x = await steps[0]._step(frame, base + 1, args, kwargs)
        for i in range(1, len(steps)):
            x = await steps[i]._step(frame, base + i + 1, (x,), {})
        return x


class Parallel(Composite):
    """Run branches concurrently on the same input; a tuple (or a dict, for keywords) out.

    ``Parallel(a, b)(x)`` returns ``(a(x), b(x))``; ``Parallel(x=a, y=b)(v)`` returns
    ``{"x": a(v), "y": b(v)}``. See the module docstring for the failure rule.
    """

    def __init__(
        self,
        *branches: Module[..., Any] | Callable[..., Any],
        name: str = "Parallel",
        **named: Any,
    ) -> None:
        """Compose branches given positionally or by keyword (not both)."""
        config = {k: named.pop(k) for k in list(named) if k in FRAMEWORK_KEYS}
        if branches and named:
            raise ConfigError("Parallel takes branches positionally or by keyword, not both")
        if not branches and not named:
            raise ConfigError("Parallel needs at least one branch")
        self.keys: tuple[str, ...] | None = tuple(named) if named else None
        self.branches: tuple[Module[..., Any], ...] = tuple(
            _as_module(b, "a Parallel branch") for b in (branches or tuple(named.values()))
        )
        super().__init__(name, **config)
        self._input_from(self.branches[0])

    def children(self) -> tuple[Module[..., Any], ...]:
        """The branches, in order."""
        return self.branches

    @property
    def output_type(self) -> Any:
        """``tuple[...]`` of the branch output types, or ``dict[str, Any]``."""
        if self.keys is not None:
            return dict[str, Any]
        return tuple[tuple(b.output_type for b in self.branches)]  # type: ignore[misc]

    async def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run every branch on the input in one nursery."""
        frame = current_frame.get()
        branches = self.branches
        n = len(branches)
        base = frame.reserve(n)
        results: list[Any] = [None] * n
        backend = frame.run.backend  # type: ignore[union-attr]
        async with backend.open_nursery() as nursery:
            failures = _Failures(nursery.cancel_scope)
            for i in range(n):
                b = branches[i]
                nursery.start_soon(
                    _branch, b, frame, base + i + 1, args, kwargs, results, i, failures, name=b.name
                )
        failures.raise_for(f"Parallel {self.name!r}")
        if self.keys is not None:
            return dict(zip(self.keys, results, strict=True))
        return tuple(results)


class Map(Composite):
    """Apply one module to every item of the input, concurrently, keeping input order.

    ``max_concurrency`` bounds how many items run at once (``None``: all of them). This is the
    item limit; ``with_(max_concurrency=...)`` on the Map bounds concurrent calls of the Map.
    """

    def __init__(
        self,
        fn: Module[..., Any] | Callable[..., Any],
        max_concurrency: int | None = None,
        *,
        name: str = "Map",
        **config: Any,
    ) -> None:
        """Map ``fn`` over the input items, at most ``max_concurrency`` at a time."""
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ConfigError(
                f"Map max_concurrency expects a positive integer, received {max_concurrency!r}"
            )
        self.fn = _as_module(fn, "the Map function")
        self.max_items = max_concurrency
        super().__init__(name, **config)

    def children(self) -> tuple[Module[..., Any], ...]:
        """The mapped module."""
        return (self.fn,)

    @property
    def payload(self) -> Any:
        """The input is a list of the mapped module's input; the output a list of its output."""
        p = self._payload
        if p is None:
            params = list(self.fn.payload.parameters.values())
            item: Any = params[0][0] if len(params) == 1 else Any
            items = (list.__class_getitem__(item), inspect.Parameter.empty)
            p = self._payload = Payload(self.name, {"items": items}, self.output_type)
        return p

    @property
    def output_type(self) -> Any:
        """``list`` of the mapped module's output type."""
        return list[self.fn.output_type]  # type: ignore[name-defined]

    async def forward(self, items: Iterable[Any]) -> list[Any]:
        """Run the module on every item; results in input order."""
        frame = current_frame.get()
        values = _items(self.name, frame.step_id, items)
        n = len(values)
        base = frame.reserve(n)
        results: list[Any] = [None] * n
        fn = self.fn
        backend = frame.run.backend  # type: ignore[union-attr]
        limit = self.max_items
        async with backend.open_nursery() as nursery:
            failures = _Failures(nursery.cancel_scope)
            if limit is None or limit >= n:
                name = fn.name
                for i in range(n):
                    nursery.start_soon(
                        _branch,
                        fn,
                        frame,
                        base + i + 1,
                        (values[i],),
                        {},
                        results,
                        i,
                        failures,
                        name=name,
                    )
            else:
                todo = iter(range(n))
                for _ in range(limit):
                    nursery.start_soon(
                        _worker, fn, frame, base, values, todo, results, failures, name=fn.name
                    )
        failures.raise_for(f"Map {self.name!r}")
        return results


_HINTS: dict[type, str] = {
    str: "a str would be mapped character by character; pass list(text) to do that on purpose, "
    "or [text] to map over one text",
    bytes: "bytes would be mapped byte by byte as integers; pass list(data) to do that on purpose",
    bytearray: "bytes would be mapped byte by byte as integers; pass list(data) to do that on "
    "purpose",
}


def _items(name: str, step_id: str, items: Any) -> list[Any]:
    """The list a Map runs over; a str, bytes, mapping or non-iterable is a clear CastError."""
    hint = _HINTS.get(type(items))
    if hint is None and isinstance(items, Mapping):
        hint = (
            "a mapping would be mapped over its keys; pass list(d) for the keys, "
            "list(d.values()) or list(d.items()) to choose on purpose"
        )
    if hint is None:
        try:
            return list(items)
        except TypeError:
            hint = "it is not iterable; pass a list (or any iterable) of items"
    raise CastError(
        f"Map {name!r} (step {step_id}) expects a list of items, received {short_repr(items)}: "
        f"{hint}",
        module_name=name,
        step_id=step_id,
        parameter="items",
        value=items,
        expected="list",
    )


async def _worker(
    fn: Module[..., Any],
    frame: Frame,
    base: int,
    values: list[Any],
    todo: Any,
    results: list[Any],
    failures: _Failures,
) -> None:
    for i in todo:
        try:
            results[i] = await fn._step(frame, base + i + 1, (values[i],), {})
        except Exception as exc:
            failures.add(exc)
            return


class Race(Composite):
    """Run branches concurrently on the same input; the first success wins, the rest are cancelled.

    If every branch fails, the caller sees the failures: the exception itself when there was
    one branch, otherwise an ``ExceptionGroup`` of all of them.
    """

    def __init__(
        self, *branches: Module[..., Any] | Callable[..., Any], name: str = "Race", **config: Any
    ) -> None:
        """Race ``branches``."""
        if not branches:
            raise ConfigError("Race needs at least one branch")
        self.branches: tuple[Module[..., Any], ...] = tuple(
            _as_module(b, "a Race branch") for b in branches
        )
        super().__init__(name, **config)
        self._input_from(self.branches[0])

    def children(self) -> tuple[Module[..., Any], ...]:
        """The branches."""
        return self.branches

    @property
    def output_type(self) -> Any:
        """The first branch's output type."""
        return self.branches[0].output_type

    async def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Return the first branch result that arrives."""
        frame = current_frame.get()
        branches = self.branches
        base = frame.reserve(len(branches))
        backend = frame.run.backend  # type: ignore[union-attr]
        won: list[Any] = []
        errors: list[Exception] = []

        async def contender(i: int, nursery: Spawner) -> None:
            try:
                value = await branches[i]._step(frame, base + i + 1, args, kwargs)
            except Exception as exc:
                errors.append(exc)
                return
            if not won:
                won.append(value)
                nursery.cancel_scope.cancel()

        async with backend.open_nursery() as nursery:
            for i in range(len(branches)):
                nursery.start_soon(contender, i, nursery, name=branches[i].name)
        if won:
            return won[0]
        if len(errors) == 1:
            raise errors[0]
        raise ExceptionGroup(f"all {len(errors)} branches of Race {self.name!r} failed", errors)


async def _decide(test: Any, frame: Frame, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Evaluate a predicate: a module (the next child step of ``frame``) or a plain function."""
    if isinstance(test, Module):
        return bool(await test._step(frame, frame.reserve(1) + 1, args, kwargs))
    value = test(*args, **kwargs)
    if inspect.isawaitable(value):
        value = await value
    return bool(value)


class Conditional(Composite):
    """Route the input to ``then`` or ``otherwise`` by ``pred(input)``.

    ``pred`` may be a plain function (sync or async, called directly, not a step) or a module
    (a step of its own). Without ``otherwise`` a false predicate passes the input through.
    """

    def __init__(
        self,
        pred: Module[..., Any] | Callable[..., Any],
        then: Module[..., Any] | Callable[..., Any],
        otherwise: Module[..., Any] | Callable[..., Any] | None = None,
        *,
        name: str = "Conditional",
        **config: Any,
    ) -> None:
        """Route by ``pred``."""
        if not callable(pred):
            raise ConfigError(f"Conditional pred must be callable, received {pred!r}")
        self.pred = pred
        self.then = _as_module(then, "Conditional then")
        self.otherwise = (
            None if otherwise is None else _as_module(otherwise, "Conditional otherwise")
        )
        super().__init__(name, **config)
        self._input_from(self.then)

    def children(self) -> tuple[Module[..., Any], ...]:
        """The predicate (when a module) and both routes."""
        kids: list[Module[..., Any]] = [self.pred] if isinstance(self.pred, Module) else []
        kids.append(self.then)
        if self.otherwise is not None:
            kids.append(self.otherwise)
        return tuple(kids)

    @property
    def output_type(self) -> Any:
        """The ``then`` route's output type."""
        return self.then.output_type

    async def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Evaluate the predicate, then run one route."""
        frame = current_frame.get()
        route = self.then if await _decide(self.pred, frame, args, kwargs) else self.otherwise
        if route is not None:
            return await route._step(frame, frame.reserve(1) + 1, args, kwargs)
        return args[0] if len(args) == 1 and not kwargs else (args or kwargs)


async def _sleep(frame: Frame, seconds: float) -> None:
    """Sleep in a branch; a durable run makes it a durable timer (a step of its own)."""
    run = frame.run
    durable = run.durable  # type: ignore[union-attr]
    if durable is not None:
        await durable.sleep(frame, seconds)
        return
    backend = run.backend  # type: ignore[union-attr]
    await backend.sleep_until(backend.current_time() + seconds)


def _check_seconds(seconds: float, what: str) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ConfigError(f"{what} expects a non-negative number of seconds, received {seconds!r}")
    return float(seconds)


class BlockingDelay(Composite):
    """Pause this branch for ``seconds``, then pass the input on; siblings keep running."""

    def __init__(self, seconds: float, *, name: str = "BlockingDelay", **config: Any) -> None:
        """Delay by ``seconds``."""
        self.seconds = _check_seconds(seconds, "BlockingDelay")
        super().__init__(name, **config)

    async def forward(self, x: Any) -> Any:
        """Sleep, then return the input."""
        await _sleep(current_frame.get(), self.seconds)
        return x


class NonBlockingDelay(Composite):
    """Pass the input on at once and run ``fn(input)`` ``seconds`` later, in the background.

    The background call still belongs to the top-level call: that call does not return before it
    finishes, cancelling the top-level call cancels it, and its failure fails the top-level call.
    It is bounded by the top-level call's deadline, not by the deadlines of the composites
    between (they have usually returned by then).
    """

    def __init__(
        self,
        seconds: float,
        fn: Module[..., Any] | Callable[..., Any],
        *,
        name: str = "NonBlockingDelay",
        **config: Any,
    ) -> None:
        """Schedule ``fn`` ``seconds`` after each call."""
        self.seconds = _check_seconds(seconds, "NonBlockingDelay")
        self.fn = _as_module(fn, "the NonBlockingDelay function")
        super().__init__(name, **config)

    def children(self) -> tuple[Module[..., Any], ...]:
        """The delayed module."""
        return (self.fn,)

    def _spawns_background(self) -> bool:
        return True

    async def forward(self, x: Any) -> Any:
        """Schedule the background call and return the input unchanged."""
        frame = current_frame.get()
        index = frame.reserve(1) + 1
        top = frame
        while top.parent is not None and top.parent.parent is not None:
            top = top.parent
        later = frame.derive()
        later.deadline, later.deadline_owner, later.timeout = (
            top.deadline,
            top.deadline_owner,
            top.timeout,
        )
        later.enforced = later.deadline == math.inf
        run = frame.run
        if run is None or run.nursery is None:
            raise ConfigError(
                f"NonBlockingDelay {self.name!r} was called inside a plain module nested in a "
                "composite, where the run has no background nursery; put the NonBlockingDelay "
                "in the composite itself, or call it from the top-level module"
            )
        run.spawn(self._later, later, index, x)
        return x

    async def _later(self, frame: Frame, index: int, x: Any) -> None:
        await _sleep(frame, self.seconds)
        await self.fn._step(frame, index, (x,), {})


class Loop(Composite):
    """Run ``body`` repeatedly, feeding each output back in, until ``until(output)`` holds.

    Raises :class:`~mai.LoopLimitExceeded` when ``until`` still fails after
    ``max_iterations`` iterations. Without ``until`` the body runs exactly ``max_iterations``
    times and the last output is returned.
    """

    def __init__(
        self,
        body: Module[..., Any] | Callable[..., Any],
        until: Module[..., Any] | Callable[..., Any] | None = None,
        max_iterations: int = 10,
        *,
        name: str = "Loop",
        **config: Any,
    ) -> None:
        """Loop ``body`` until ``until`` holds, at most ``max_iterations`` times."""
        if (
            isinstance(max_iterations, bool)
            or not isinstance(max_iterations, int)
            or max_iterations < 1
        ):
            raise ConfigError(
                f"Loop max_iterations expects a positive integer, received {max_iterations!r}"
            )
        if until is not None and not callable(until):
            raise ConfigError(f"Loop until must be callable, received {until!r}")
        self.body = _as_module(body, "the Loop body")
        self.until = until
        self.max_iterations = max_iterations
        super().__init__(name, **config)
        self._input_from(self.body)

    def children(self) -> tuple[Module[..., Any], ...]:
        """The body (and ``until`` when it is a module)."""
        return (self.body, self.until) if isinstance(self.until, Module) else (self.body,)

    @property
    def output_type(self) -> Any:
        """The body's output type."""
        return self.body.output_type

    async def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Iterate; each iteration's output is the next one's input."""
        frame = current_frame.get()
        body, until = self.body, self.until
        x = await body._step(frame, frame.reserve(1) + 1, args, kwargs)
        for _ in range(1, self.max_iterations):
            if until is not None and await _decide(until, frame, (x,), {}):
                return x
            x = await body._step(frame, frame.reserve(1) + 1, (x,), {})
        if until is None or await _decide(until, frame, (x,), {}):
            return x
        raise LoopLimitExceeded(
            f"Loop {self.name!r} (step {frame.step_id}) reached max_iterations="
            f"{self.max_iterations} without its until condition holding; last value: {x!r:.120}",
            module_name=self.name,
            step_id=frame.step_id,
            max_iterations=self.max_iterations,
            last_value=x,
        )
