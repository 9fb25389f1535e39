"""``mai.Graph``: a dataflow graph built by calling modules on symbolic references.

::

    with mai.Graph(name="rag") as g:
        question = g.input("question", str)
        docs = retrieve(question)
        g.output(answer(question, docs))

    text = await g(question="What is Trio?")

Inside the ``with`` block every module call is recorded as a node (the kernel's builder hook,
``mai._seam.building``) and returns a :class:`Ref` to its future output. Leaving the block
validates the graph; nothing runs before that succeeds. The finished graph is a module: it can
be awaited, nested, given ``with_`` and traced.
"""

from __future__ import annotations

import inspect
import keyword
from typing import TYPE_CHECKING, Any, Self

from mai._casting import Payload, caster_for
from mai._composites import Composite
from mai._context import ROOT, current_frame
from mai._seam import building

from ._describe import register_graph
from ._errors import Edge, GraphError, GraphInputError, GraphOutputError
from ._nodes import CONST, DEFERRED, INPUT, MISSING, NODE, Arg, InputSpec, NodeSpec, Source

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from contextvars import Token
    from types import TracebackType

    from mai._context import Frame
    from mai._module import Module

    from ._run import Program

_NEW, _BUILDING, _BUILT, _FAILED = range(4)
_P = inspect.Parameter
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
_NO_VALUE: Any = object()


class Ref:
    """A symbolic reference to a value that exists only when the graph runs.

    Refs are what ``g.input(...)`` and module calls inside a graph's ``with`` block return. Pass
    them to other module calls or to ``g.output(...)``; they have no value while the graph is
    built, so using one as a value (``if ref:``, ``len(ref)``, ``await ref``) is an error.
    """

    __slots__ = ("_graph", "_label", "_source", "annotation")

    def __init__(self, graph: Graph, source: Source, annotation: Any, label: str) -> None:
        """Only a graph under construction creates refs."""
        self._graph = graph
        self._source = source
        self._label = label
        self.annotation = annotation

    def __repr__(self) -> str:
        """Return ``<mai.Ref n2 ('answer')>``."""
        return f"<mai.Ref {self._label}>"

    def _refusal(self, what: str) -> GraphError:
        return GraphError(
            f"graph {self._graph.name!r}: {self!r} {what}: it is a symbolic reference that has "
            "a value only when the graph runs; pass it to a module call (a module can branch, "
            "loop or measure it)",
            graph=self._graph.name,
        )

    def __bool__(self) -> bool:
        """Refuse: a reference has no truth value while the graph is built."""
        raise self._refusal("has no truth value")

    def __len__(self) -> int:
        """Refuse: a reference has no length while the graph is built."""
        raise self._refusal("has no length")

    def __iter__(self) -> Iterator[Any]:
        """Refuse: a reference cannot be iterated while the graph is built."""
        raise self._refusal("cannot be iterated")

    def __await__(self) -> Generator[Any, None, Any]:
        """Refuse: module calls inside a graph's ``with`` block are recorded, not awaited."""
        raise self._refusal("cannot be awaited (calls inside a graph's with block are recorded)")


class Deferred(Ref):
    """A reference used before the value it stands for is declared; :meth:`set` wires it.

    Made by :meth:`Graph.deferred`. Every deferred reference must be set before the ``with``
    block ends; setting one to a value that depends on its own users is a cycle.
    """

    __slots__ = ("name", "target")

    def __init__(self, graph: Graph, name: str, annotation: Any) -> None:
        """Only :meth:`Graph.deferred` creates these."""
        super().__init__(graph, Source(DEFERRED, None), annotation, f"deferred {name!r}")
        self._source.value = self
        self.name = name
        self.target: Ref | None = None

    def set(self, ref: Ref) -> None:
        """Make this reference stand for ``ref`` (once).

        Raises:
            GraphInputError: When already set, or when ``ref`` belongs to another graph.
        """
        g = self._graph
        if self.target is not None:
            raise GraphInputError(
                f"graph {g.name!r}: deferred {self.name!r} is already set to {self.target!r}",
                graph=g.name,
            )
        if not isinstance(ref, Ref) or ref._graph is not g:
            raise GraphInputError(
                f"graph {g.name!r}: deferred {self.name!r} can only be set to a reference of "
                f"the same graph, received {ref!r}",
                graph=g.name,
            )
        self.target = ref


class _Binder:
    """How the calls of one module bind to parameters (computed once per module and graph)."""

    __slots__ = ("named", "positional", "required", "types", "var_kw", "var_pos")

    def __init__(self, module: Module[..., Any]) -> None:
        if isinstance(module, Graph):
            params = list(module.__signature__.parameters.values())
            types = {p.name: p.annotation for p in params}
        else:
            params = list(module.__signature__.parameters.values())
            casters = module._spec.casters
            types = {
                p.name: (c.annotation if (c := casters.get(p.name)) is not None else Any)
                for p in params
            }
        self.types = types
        self.positional = [p.name for p in params if p.kind in _POSITIONAL]
        self.var_pos = next((p.name for p in params if p.kind is _P.VAR_POSITIONAL), None)
        self.var_kw = next((p.name for p in params if p.kind is _P.VAR_KEYWORD), None)
        self.named = {
            p.name: p
            for p in params
            if p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY) and p.name not in module.bound
        }
        self.required = [
            p.name
            for p in params
            if p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD) and p.default is _P.empty
        ]


class Graph(Composite):
    """A dataflow graph of module calls; a module itself.

    Build it in a ``with`` block: declare inputs with :meth:`input`, call modules on the
    references they return, and declare what the graph returns with :meth:`output`::

        with mai.Graph(name="rag") as g:
            question = g.input("question", str)
            docs = retrieve(question)
            g.output(answer(question, docs))

    Leaving the block validates the graph (unknown or missing inputs, cycles, types that
    cannot be cast, duplicate outputs) and raises a :class:`~mai.GraphError` naming the node
    and edge; nothing runs before that succeeds.

    Calling the graph runs it as a dataflow: every node starts as soon as all its inputs
    exist, all nodes in one nursery, so independent branches run concurrently. The first
    failure cancels the other nodes; the graph's deadline bounds every node. Arguments bind to
    the declared inputs, by position (declaration order) or by name. With one unnamed output
    the graph returns its value; with named outputs it returns a ``dict``.

    Node ``k`` (in creation order, ids ``n1``, ``n2``, ...) is always the graph call's child
    step ``k``, whatever order the nodes finish in.
    """

    def __init__(self, name: str = "Graph", **config: Any) -> None:
        """Create an empty graph; build it in a ``with`` block.

        Args:
            name: The graph's name (step ids, traces, errors, plans).
            **config: Framework keys (``timeout``, ``retries``, ...), as for any module.
        """
        super().__init__(name, **config)
        self._inputs: list[InputSpec] = []
        self._nodes: list[NodeSpec] = []
        self._outputs: list[tuple[str | None, Source]] = []
        self._deferred: list[Deferred] = []
        self._binders: dict[int, _Binder] = {}
        self._phase = _NEW
        self._tokens: tuple[Token[Any], Token[Frame]] | None = None
        self._program: Program | None = None
        self._chains: list[list[int]] = []
        self._background: bool | None = None

    # -- building ------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        """Start recording module calls into this graph."""
        if self._phase != _NEW:
            raise GraphError(
                f"graph {self.name!r} was already built; a graph is built once (make a new "
                "mai.Graph to build another)",
                graph=self.name,
            )
        # A fresh root frame: module calls record even when the graph is built inside a run.
        self._tokens = (building.set(self), current_frame.set(ROOT))
        self._phase = _BUILDING
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop recording and validate; raise a :class:`~mai.GraphError` when invalid."""
        from ._validate import finish  # noqa: PLC0415 - validation imports this module

        tokens = self._tokens
        if tokens is not None:
            current_frame.reset(tokens[1])
            building.reset(tokens[0])
            self._tokens = None
        self._binders.clear()
        if exc_type is not None:
            self._phase = _FAILED
            return
        self._phase = _FAILED
        finish(self)
        self._phase = _BUILT

    def _check_building(self, what: str) -> None:
        if self._phase != _BUILDING:
            raise GraphError(
                f"graph {self.name!r}: {what} is only possible inside the graph's with block",
                graph=self.name,
            )

    def input(self, name: str, annotation: Any = Any, *, default: Any = MISSING) -> Any:
        """Declare an input of the graph and return a reference to it.

        Inputs bind to the graph's call arguments in declaration order, or by name.

        Args:
            name: A Python identifier (the keyword argument of the graph call).
            annotation: The input's type; arguments are cast to it when the graph is called.
            default: The value used when the call does not give one.

        Returns:
            A :class:`Ref` (typed ``Any`` so that calls on it type-check).

        Raises:
            GraphInputError: For a name that is not an identifier or already declared, or an
                input without a default after one with a default.
        """
        self._check_building("g.input()")
        if not name.isidentifier() or keyword.iskeyword(name):
            raise GraphInputError(
                f"graph {self.name!r}: input name {name!r} is not a Python identifier",
                graph=self.name,
                parameter=name,
            )
        if any(i.name == name for i in self._inputs):
            raise GraphInputError(
                f"graph {self.name!r}: input {name!r} is declared twice",
                graph=self.name,
                parameter=name,
            )
        if default is MISSING and any(i.default is not MISSING for i in self._inputs):
            raise GraphInputError(
                f"graph {self.name!r}: input {name!r} has no default but follows an input that "
                "has one; declare inputs with defaults last",
                graph=self.name,
                parameter=name,
            )
        caster = caster_for(annotation)
        if default is not MISSING and caster is not None:
            default = caster.cast(default, self.name, name)
        spec = InputSpec(name, annotation, default, caster)
        self._inputs.append(spec)
        self._payload = None
        return Ref(self, Source(INPUT, name), annotation, spec.id)

    def deferred(self, name: str, annotation: Any = Any) -> Any:
        """Return a reference to a value declared later; wire it with ``ref.set(value)``.

        Args:
            name: Names the reference in error messages.
            annotation: Shown in messages; types are checked against the value it is set to.

        Returns:
            A :class:`Deferred` reference.
        """
        self._check_building("g.deferred()")
        ref = Deferred(self, name, annotation)
        self._deferred.append(ref)
        return ref

    def output(self, value: Any = _NO_VALUE, /, **named: Any) -> None:
        """Declare what the graph returns: one value, or several by name (a ``dict``).

        ``g.output(ref)`` makes the graph return that value; ``g.output(answer=a, docs=d)``
        makes it return ``{"answer": ..., "docs": ...}`` (calls may be repeated to add names).

        Raises:
            GraphOutputError: When an output is declared twice, or unnamed and named outputs
                are mixed, or the value is not a reference of this graph.
        """
        self._check_building("g.output()")
        items: list[tuple[str | None, Any]] = list(named.items())
        if value is not _NO_VALUE:
            items.insert(0, (None, value))
        if not items:
            raise GraphOutputError(
                f"graph {self.name!r}: g.output() needs a reference (or named references)",
                graph=self.name,
            )
        for out_name, ref in items:
            self._add_output(out_name, ref)
        self._payload = None

    def _add_output(self, out_name: str | None, ref: Any) -> None:
        if not isinstance(ref, Ref) or ref._graph is not self:
            raise GraphOutputError(
                f"graph {self.name!r}: output {out_name or '(unnamed)'} must be a reference "
                f"returned inside this graph's with block, received {ref!r}",
                graph=self.name,
                output=out_name,
            )
        for prev_name, prev in self._outputs:
            if prev_name == out_name or (prev_name is None) != (out_name is None):
                what = (
                    f"output {out_name!r} is declared twice"
                    if prev_name == out_name and out_name is not None
                    else "the unnamed output is declared twice"
                    if prev_name == out_name
                    else "a graph has one unnamed output or several named ones, not both"
                )
                raise GraphOutputError(
                    f"graph {self.name!r}: {what} (first from {self._label(prev)}, now from "
                    f"{ref._label})",
                    graph=self.name,
                    node=self._source_id(ref._source),
                    output=out_name,
                )
        self._outputs.append((out_name, ref._source))

    def _label(self, source: Source) -> str:
        if source.kind == NODE:
            return self._nodes[int(source.value)].label()
        if source.kind == INPUT:
            return f"input:{source.value}"
        if source.kind == DEFERRED:
            return f"deferred {str(source.value.name)!r}"
        return "a constant"

    def _source_id(self, source: Source) -> str | None:
        if source.kind == NODE:
            return self._nodes[int(source.value)].id
        if source.kind == INPUT:
            return f"input:{source.value}"
        return None

    def record(
        self, module: Module[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Record ``module(*args, **kwargs)`` as a node; return a :class:`Ref` to its output.

        The kernel calls this for every module call made inside the ``with`` block.

        Raises:
            GraphInputError: For an unknown or missing parameter, or a reference from another
                graph.
            GraphError: When the module is this graph, or a graph that is not built yet.
        """
        self._check_building("recording a module call")
        index = len(self._nodes)
        nid = f"n{index + 1}"
        if module is self:
            raise GraphError(
                f"graph {self.name!r}: node {nid} calls the graph itself", graph=self.name, node=nid
            )
        if isinstance(module, Graph) and module._program is None:
            raise GraphError(
                f"graph {self.name!r}: node {nid} uses graph {module.name!r} before its with "
                "block ended (a graph is usable once built)",
                graph=self.name,
                node=nid,
                node_name=module.name,
            )
        try:
            output_type = module.output_type
        except NameError as exc:
            raise GraphError(
                f"graph {self.name!r}: node {nid} ({module.name!r}): cannot resolve the "
                f"module's annotations ({exc})",
                graph=self.name,
                node=nid,
                node_name=module.name,
            ) from exc
        passthrough = module._spec.passthrough and not isinstance(module, Graph)
        if passthrough:
            bound = self._bind_passthrough(nid, module, args, kwargs)
        else:
            bound = self._bind(nid, module, args, kwargs)
        node = NodeSpec(index, module, bound, output_type, passthrough)
        self._nodes.append(node)
        return Ref(self, Source(NODE, index), output_type, node.label())

    def _source(self, nid: str, module: Module[..., Any], key: str, value: Any) -> Source:
        if isinstance(value, Ref):
            if value._graph is not self:
                raise GraphInputError(
                    f"graph {self.name!r}: node {nid} ({module.name!r}) parameter {key!r} "
                    f"received {value!r} from graph {value._graph.name!r}, which is unknown "
                    "here; pass values into a nested graph through its inputs",
                    graph=self.name,
                    node=nid,
                    node_name=module.name,
                    parameter=key,
                )
            return value._source
        if _holds_ref(value):
            raise GraphInputError(
                f"graph {self.name!r}: node {nid} ({module.name!r}) parameter {key!r} received "
                "a container holding references; pass each reference as its own argument "
                "(a *args parameter gathers several)",
                graph=self.name,
                node=nid,
                node_name=module.name,
                parameter=key,
            )
        return Source(CONST, value)

    def _bind_passthrough(
        self, nid: str, module: Module[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Arg]:
        """Composites take what their first child takes: keep the call's shape."""
        params = list(module.payload.parameters.items())
        out: list[Arg] = []
        for i, value in enumerate(args):
            ann = params[i][1][0] if i < len(params) else Any
            key = f"args[{i}]"
            out.append(Arg(key, i, self._source(nid, module, key, value), ann))
        types = dict(params)
        for k, value in kwargs.items():
            ann = types[k][0] if k in types else Any
            out.append(Arg(k, None, self._source(nid, module, k, value), ann))
        return out

    def _bind(
        self, nid: str, module: Module[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Arg]:
        binder = self._binders.get(id(module))
        if binder is None:
            binder = self._binders[id(module)] = _Binder(module)
        free = [p for p in binder.positional if p not in module.bound]
        out: list[Arg] = []
        filled: set[str] = set()
        for i, value in enumerate(args):
            if i < len(free):
                name = key = free[i]
            elif binder.var_pos is not None:
                name, key = binder.var_pos, f"{binder.var_pos}[{i - len(free)}]"
            else:
                raise self._input_error(
                    nid,
                    module,
                    None,
                    f"takes {len(free)} positional argument{'' if len(free) == 1 else 's'} but "
                    f"{len(args)} were given",
                )
            filled.add(name)
            out.append(Arg(key, None, self._source(nid, module, key, value), binder.types[name]))
        for k, value in kwargs.items():
            if k in binder.named:
                if k in filled:
                    raise self._input_error(nid, module, k, f"got two values for {k!r}")
                name = key = k
            elif binder.var_kw is not None and k not in module.bound:
                name, key = binder.var_kw, f"{binder.var_kw}.{k}"
            else:
                known = ", ".join(binder.named) or "(none)"
                source = self._source_id(value._source) if isinstance(value, Ref) else None
                edge = Edge(source, nid, k) if source is not None else None
                raise self._input_error(
                    nid, module, k, f"has no parameter {k!r}; its parameters: {known}", edge
                )
            filled.add(name)
            out.append(Arg(key, None, self._source(nid, module, key, value), binder.types[name]))
        missing = [p for p in binder.required if p not in filled and p not in module.bound]
        if missing:
            names = ", ".join(repr(m) for m in missing)
            raise self._input_error(
                nid,
                module,
                missing[0],
                f"is missing required input{'' if len(missing) == 1 else 's'} {names}",
            )
        return out

    def _input_error(
        self,
        nid: str,
        module: Module[..., Any],
        parameter: str | None,
        what: str,
        edge: Edge | None = None,
    ) -> GraphInputError:
        return GraphInputError(
            f"graph {self.name!r}: node {nid} ({module.name!r}) {what}",
            graph=self.name,
            node=nid,
            node_name=module.name,
            edge=edge,
            parameter=parameter,
        )

    # -- what the graph is, as a module --------------------------------------------------------

    def children(self) -> tuple[Module[..., Any], ...]:
        """The node modules, in creation order."""
        return tuple(n.module for n in self._nodes)

    def _spawns_background(self) -> bool:
        spawns = self._background
        if spawns is None:
            spawns = any(n.module._spawns_background() for n in self._nodes)
            if self._phase == _BUILT:
                self._background = spawns
        return spawns

    @property
    def inputs(self) -> tuple[str, ...]:
        """The input names, in declaration order."""
        return tuple(i.name for i in self._inputs)

    @property
    def output_type(self) -> Any:
        """The single output's type, or ``dict[str, Any]`` for named outputs."""
        outs = self._outputs
        if len(outs) == 1 and outs[0][0] is None:
            source = outs[0][1]
            if source.kind == NODE:
                return self._nodes[source.value].output_type
            if source.kind == INPUT:
                return next(i.annotation for i in self._inputs if i.name == source.value)
            return Any
        return dict[str, Any] if outs else Any

    @property
    def __signature__(self) -> inspect.Signature:
        """The graph's inputs as parameters."""
        return inspect.Signature(
            [
                _P(i.name, _P.POSITIONAL_OR_KEYWORD, default=i.default, annotation=i.annotation)
                for i in self._inputs
            ],
            return_annotation=self.output_type,
        )

    @property
    def payload(self) -> Any:
        """Input: one field per graph input; output: :attr:`output_type`."""
        p = self._payload
        if p is None:
            params = {i.name: (i.annotation, i.default) for i in self._inputs}
            p = self._payload = Payload(self.name, params, self.output_type)
        return p

    async def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the graph as a dataflow (see the class docstring)."""
        program = self._program
        if program is None:
            raise GraphError(
                f"graph {self.name!r} is not built: call its modules inside "
                f"`with mai.Graph(...) as g:` and let the block end without an error",
                graph=self.name,
            )
        return await program.execute(self.name, args, kwargs)


register_graph(Graph)


def _holds_ref(value: Any, depth: int = 0) -> bool:
    if isinstance(value, Ref):
        return True
    if depth > 3:  # constants are shallow; deeper nesting is not searched
        return False
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_ref(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_holds_ref(v, depth + 1) for v in value.values())
    return False
