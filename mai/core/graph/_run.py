"""Running a validated graph: a dataflow in one nursery.

Each node keeps a count of the node outputs it still waits for. When a node finishes, the
counts of its consumers drop; a consumer whose count reaches zero is ready. The finishing task
runs the first ready consumer itself and starts a task for each other one, so a chain costs no
task spawns and a fan-out of ``k`` costs ``k - 1``. The first failure cancels the nursery.

Node ``k`` (creation order) is always child step ``k`` of the graph call: its frame is built
from the reserved index, never from completion order. Calls go straight to the kernel's
``_run_frame`` (interceptors, deadlines, retries and threads all apply) with arguments that
the graph has already cast where the plan says a cast is needed, so an edge whose types match
runs no cast at all.

Fused chains of sync nodes run in one worker-thread hop. Fusion is skipped when the run has
interceptors (tracing, durability): interceptors are async and wrap each call separately.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mai._casting import Caster, caster_for
from mai._composites import _Failures
from mai._context import Frame, child_frame, current_frame, thread_cancel
from mai._errors import ArgumentError
from mai._module import _ASYNC, _in_thread, _tag_cancelled

from ._nodes import CONST, INPUT, MISSING, NODE
from ._reach import dump_models

if TYPE_CHECKING:
    from mai._backend import Spawner
    from mai._context import RunState
    from mai._module import Module

    from ._graph import Graph
    from ._nodes import Arg, NodeSpec, Source
    from ._reach import Rule


class _Cast:
    """A casting layer on one edge: the kernel caster, once, after dumping models if needed."""

    __slots__ = ("caster", "dump", "module", "parameter")

    def __init__(self, rule: Rule, annotation: Any, module: str, parameter: str) -> None:
        self.caster: Caster = caster_for(annotation)  # type: ignore[assignment]
        self.dump = rule.dump
        self.module = module
        self.parameter = parameter

    def __call__(self, value: Any) -> Any:
        if self.dump:
            value = dump_models(value)
        return self.caster.cast(value, self.module, self.parameter)


_Fill = tuple[int, int, "_Cast | None"]
_KwFill = tuple[str, int, "_Cast | None"]


class Step:
    """A node ready to run: its module, argument templates and consumers."""

    __slots__ = (
        "chain",
        "consumers",
        "fast",
        "fills",
        "fn",
        "index",
        "kw",
        "kwfills",
        "module",
        "name",
        "pos",
        "ret",
        "single",
        "slot",
        "spec",
        "timeout",
    )

    def __init__(self, node: NodeSpec, slot: int, slots: dict[str, int]) -> None:
        module = node.module
        self.module = module
        self.name = module.name
        self.index = node.index + 1
        self.slot = slot
        self.timeout = module._cfg.timeout
        self.fn = module._fn or module.forward
        self.spec = module._spec
        self.ret = module._spec.ret
        self.fast = module._mode == _ASYNC and module._cfg.plain
        self.consumers: tuple[int, ...] = ()
        self.chain: tuple[Step, ...] | None = None
        pos, kw = layout(node)
        self.pos: list[Any] = []
        fills: list[_Fill] = []
        for i, (arg, value) in enumerate(pos):
            self.pos.append(value)
            if arg is not None:
                fills.append((i, _slot(arg.source, slots), _caster(arg, self.name)))
        self.kw: dict[str, Any] = {}
        kwfills: list[_KwFill] = []
        for key, (arg, value) in kw.items():
            self.kw[key] = value
            if arg is not None:
                kwfills.append((key, _slot(arg.source, slots), _caster(arg, self.name)))
        self.fills = tuple(fills)
        self.kwfills = tuple(kwfills)
        one = len(self.pos) == 1 and not self.kw and len(fills) == 1 and fills[0][2] is None
        self.single = fills[0][1] if one else -1

    def gather(self, vals: list[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Build the call's arguments from the values produced so far."""
        args = self.pos.copy()
        for i, s, c in self.fills:
            v = vals[s]
            args[i] = v if c is None else c(v)
        kwargs = self.kw.copy()
        for k, s, c in self.kwfills:
            v = vals[s]
            kwargs[k] = v if c is None else c(v)
        return tuple(args), kwargs


def _slot(source: Source, slots: dict[str, int]) -> int:
    return slots[f"input:{source.value}"] if source.kind == INPUT else slots[f"n{source.value}"]


def _caster(arg: Arg, module: str) -> _Cast | None:
    rule = arg.rule
    if rule is None or caster_for(arg.annotation) is None:
        return None
    return _Cast(rule, arg.annotation, module, arg.key)


# A placed argument: the graph argument it comes from (None for a constant or a bound value),
# and its constant value (None when it is filled at run time).
_Placed = tuple["Arg | None", Any]


def layout(node: NodeSpec) -> tuple[list[_Placed], dict[str, _Placed]]:
    """Arrange a node's arguments as the module body is called: positional, then keywords.

    Composites keep the shape of the recorded call. Other modules are called like the kernel
    calls them: parameters in signature order, positionally while every one is given, values
    bound with ``with_()`` included.
    """
    args = node.args

    def slot(a: Arg) -> _Placed:
        return (None, a.source.value) if a.source.kind == CONST else (a, None)

    if node.passthrough:
        pos = sorted((a for a in args if a.position is not None), key=lambda a: a.position or 0)
        return [slot(a) for a in pos], {a.key: slot(a) for a in args if a.position is None}
    module = node.module
    by_key = {a.key: a for a in args}
    bound = module.bound
    out_pos: list[_Placed] = []
    out_kw: dict[str, _Placed] = {}
    positional = True
    for p in _params(module):
        kind = p.kind
        if kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            if p.name in by_key:
                s = slot(by_key[p.name])
            elif p.name in bound:
                s = (None, bound[p.name])
            else:
                positional = False
                continue
            if positional:
                out_pos.append(s)
            else:
                out_kw[p.name] = s
        elif kind is p.VAR_POSITIONAL:
            out_pos.extend(slot(a) for a in args if a.key.startswith(f"{p.name}["))
        elif kind is p.KEYWORD_ONLY:
            if p.name in by_key:
                out_kw[p.name] = slot(by_key[p.name])
            elif p.name in bound:
                out_kw[p.name] = (None, bound[p.name])
        else:
            prefix = f"{p.name}."
            for a in args:
                if a.key.startswith(prefix):
                    out_kw[a.key[len(prefix) :]] = slot(a)
    return out_pos, out_kw


def _params(module: Module[..., Any]) -> list[Any]:
    from ._graph import Graph  # noqa: PLC0415 - the graph module imports this one

    if isinstance(module, Graph):
        return list(module.__signature__.parameters.values())
    return module._spec.params


class Program:
    """A compiled graph: steps in creation order, dependency counts and outputs."""

    __slots__ = ("fusable", "inputs", "n_inputs", "ndeps", "outputs", "roots", "single", "steps")

    def __init__(self, g: Graph) -> None:
        """Compile a validated graph."""
        self.inputs = [(i.name, i.caster, i.default) for i in g._inputs]
        n_in = self.n_inputs = len(self.inputs)
        slots = {f"input:{i.name}": k for k, i in enumerate(g._inputs)}
        slots.update({f"n{n.index}": n_in + n.index for n in g._nodes})
        self.steps = [Step(n, n_in + n.index, slots) for n in g._nodes]
        consumers: list[list[int]] = [[] for _ in g._nodes]
        ndeps = [0] * len(g._nodes)
        for n in g._nodes:
            producers = {a.source.value for a in n.args if a.source.kind == NODE}
            ndeps[n.index] = len(producers)
            for p in sorted(producers):
                consumers[p].append(n.index)
        for step, cons in zip(self.steps, consumers, strict=True):
            step.consumers = tuple(cons)
        for chain in g._chains:
            self.steps[chain[0]].chain = tuple(self.steps[k] for k in chain)
        self.fusable = bool(g._chains)
        self.ndeps = ndeps
        self.roots = [k for k, d in enumerate(ndeps) if d == 0]
        self.outputs = [(name, _slot(s, slots)) for name, s in g._outputs]
        self.single = len(self.outputs) == 1 and self.outputs[0][0] is None

    def bind(self, graph: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """Bind call arguments to the graph inputs and cast them; return the value slots."""
        inputs = self.inputs
        n = self.n_inputs
        if not kwargs and len(args) == n:
            values = list(args)
        else:
            if len(args) > n:
                raise ArgumentError(
                    f"graph {graph!r} takes {n} input{'' if n == 1 else 's'} but {len(args)} "
                    "were given",
                    module_name=graph,
                )
            values = [*args, *([MISSING] * (n - len(args)))]
            names = [name for name, _, _ in inputs]
            for k, v in kwargs.items():
                if k not in names:
                    raise ArgumentError(
                        f"graph {graph!r} has no input {k!r}; inputs: {', '.join(names) or '-'}",
                        module_name=graph,
                    )
                i = names.index(k)
                if values[i] is not MISSING:
                    raise ArgumentError(
                        f"graph {graph!r} got two values for input {k!r}", module_name=graph
                    )
                values[i] = v
            for i, (name, _, default) in enumerate(inputs):
                if values[i] is MISSING:
                    if default is MISSING:
                        raise ArgumentError(
                            f"graph {graph!r} is missing input {name!r}", module_name=graph
                        )
                    values[i] = default
        for i, (name, caster, _) in enumerate(inputs):
            if caster is not None and type(values[i]) is not caster.exact:
                values[i] = caster.cast(values[i], graph, name)
        values.extend([None] * len(self.steps))
        return values

    async def execute(self, graph: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the graph in the current module call's frame."""
        vals = self.bind(graph, args, kwargs)
        frame = current_frame.get()
        run: RunState = frame.run  # type: ignore[assignment]
        base = frame.reserve(len(self.steps))
        fuse = self.fusable and not run.interceptors and frame.enforced
        async with run.backend.open_nursery() as nursery:
            ex = _Execution(self, vals, frame, base, run, nursery, fuse)
            roots = self.roots
            for k in roots[1:]:
                nursery.start_soon(ex.drive, k, name=self.steps[k].name)
            if roots:
                await ex.drive(roots[0])
        ex.failures.raise_for(f"Graph {graph!r}")
        if self.single:
            return vals[self.outputs[0][1]]
        return {name: vals[s] for name, s in self.outputs}


class _Execution:
    """The state of one graph call."""

    __slots__ = (
        "base",
        "direct",
        "failures",
        "frame",
        "fuse",
        "missing",
        "nursery",
        "run",
        "steps",
        "vals",
    )

    def __init__(
        self,
        program: Program,
        vals: list[Any],
        frame: Frame,
        base: int,
        run: RunState,
        nursery: Spawner,
        fuse: bool,
    ) -> None:
        self.steps = program.steps
        self.missing = program.ndeps.copy()
        self.vals = vals
        self.frame = frame
        self.base = base
        self.run = run
        self.nursery = nursery
        self.fuse = fuse
        self.direct = not run.interceptors and frame.enforced
        self.failures = _Failures(nursery.cancel_scope)

    async def drive(self, k: int) -> None:
        """Run node ``k``, then every consumer it makes ready (the first one in this task)."""
        steps = self.steps
        vals = self.vals
        missing = self.missing
        parent = self.frame
        base = self.base
        direct = self.direct
        run, deadline, owner = parent.run, parent.deadline, parent.deadline_owner
        timeout, metadata, span = parent.timeout, parent.metadata, parent.span
        while True:
            st = steps[k]
            try:
                if st.fast and direct:
                    # The kernel's hot path, inlined: an async body, nothing to enforce or
                    # intercept (what Module._step does once the arguments are cast).
                    frame = Frame(
                        parent,
                        base + st.index,
                        st.name,
                        run,
                        deadline,
                        owner,
                        True,
                        timeout,
                        metadata,
                        span,
                    )
                    if st.single >= 0:
                        coro = st.fn(vals[st.single])
                    else:
                        args, kwargs = st.gather(vals)
                        coro = st.fn(*args, **kwargs)
                    token = current_frame.set(frame)
                    try:
                        result = await coro
                    except BaseException as exc:
                        _tag_cancelled(frame, exc)  # a deadline names the nodes it cut off
                        raise
                    finally:
                        current_frame.reset(token)
                    rc = st.ret
                    if rc is not None and type(result) is not rc.exact:
                        result = rc.cast(result, st.name, "return value", frame.step_id)
                    vals[st.slot] = result
                elif st.chain is not None and self.fuse:
                    st = await self._chain(st.chain)
                else:
                    await self._call(st)
            except Exception as exc:
                self.failures.add(exc)
                return
            nxt = -1
            for c in st.consumers:
                m = missing[c] - 1
                missing[c] = m
                if m == 0:
                    if nxt < 0:
                        nxt = c
                    else:
                        self.nursery.start_soon(self.drive, c, name=steps[c].name)
            if nxt < 0:
                return
            k = nxt

    async def _call(self, st: Step) -> None:
        """Call one node through the kernel (interceptors, deadline, retries, thread)."""
        parent = self.frame
        if st.single >= 0:
            args: tuple[Any, ...] = (self.vals[st.single],)
            kwargs: dict[str, Any] = {}
        else:
            args, kwargs = st.gather(self.vals)
        frame = child_frame(parent, self.base + st.index, st.name, st.timeout)
        self.vals[st.slot] = await st.module._run_frame(frame, args, kwargs)

    async def _chain(self, chain: tuple[Step, ...]) -> Step:
        """Run a fused chain of sync nodes in one worker-thread hop; return its last step."""
        await _in_thread(self.run.backend, self._chain_body, (chain,), {})
        return chain[-1]

    def _chain_body(self, chain: tuple[Step, ...]) -> None:
        """The body of a fused chain, in a worker thread: each node in turn."""
        event = thread_cancel.get()
        vals = self.vals
        parent = self.frame
        for st in chain:
            if event is not None and event.is_set():
                return
            args, kwargs = st.gather(vals)
            frame = child_frame(parent, self.base + st.index, st.name, None)
            token = current_frame.set(frame)
            try:
                result = st.fn(*args, **kwargs)
            finally:
                current_frame.reset(token)
            rc = st.spec.ret
            if rc is not None and type(result) is not rc.exact:
                result = rc.cast(result, st.name, "return value", frame.step_id)
            vals[st.slot] = result


def compile_program(g: Graph) -> Program:
    """Compile a validated graph into a :class:`Program`."""
    return Program(g)
