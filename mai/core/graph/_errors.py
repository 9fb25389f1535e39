"""Errors of graphs and plans.

Every one names the graph, the node and (where there is one) the edge it is about::

    MaiError
    └── GraphError(MaiError, ValueError)              a graph or a plan is not valid
        ├── GraphInputError                           unknown or missing inputs (or references)
        ├── GraphCycleError                           the edges form a cycle
        ├── GraphTypeError(GraphError, TypeError)     an edge's types cannot be cast
        ├── GraphOutputError                          no output, or an output declared twice
        ├── PlanFormatError                           not a plan, or an unsupported format version
        └── PlanResolutionError(GraphError, LookupError)
                                                      a module import path no longer resolves

Errors are raised when the graph is built (at the end of its ``with`` block) or when a plan is
loaded or rebuilt, never while it runs: nothing runs before validation passes.
"""

from __future__ import annotations

from mai._errors import MaiError
from mai.core._records import record


@record
class Edge:
    """One edge of a graph: ``source`` feeds ``target``'s ``parameter``.

    Attributes:
        source: A node id (``"n1"``) or a graph input (``"input:question"``).
        target: The consuming node's id.
        parameter: The consuming parameter (``"query"``; ``"xs[0]"`` for an item of ``*xs``;
            ``"args[0]"`` for a positional argument of a composite).
    """

    source: str
    target: str
    parameter: str

    def __str__(self) -> str:
        """Return ``source -> target.parameter``."""
        return f"{self.source} -> {self.target}.{self.parameter}"


class GraphError(MaiError, ValueError):
    """A graph or a plan is not valid.

    Attributes:
        graph: Name of the graph (or plan) concerned.
        node: Id of the node concerned (``"n2"``), when there is one.
        node_name: Name of that node's module.
        edge: The edge concerned, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        graph: str | None = None,
        node: str | None = None,
        node_name: str | None = None,
        edge: Edge | None = None,
    ) -> None:
        """Create the error naming the graph, node and edge."""
        super().__init__(message, module_name=node_name)
        self.graph = graph
        self.node = node
        self.node_name = node_name
        self.edge = edge


class GraphInputError(GraphError):
    """A node was given an unknown parameter, misses a required one, or uses a foreign reference.

    Attributes:
        parameter: The parameter concerned, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        graph: str | None = None,
        node: str | None = None,
        node_name: str | None = None,
        edge: Edge | None = None,
        parameter: str | None = None,
    ) -> None:
        """Create the error naming the node and the parameter."""
        super().__init__(message, graph=graph, node=node, node_name=node_name, edge=edge)
        self.parameter = parameter


class GraphCycleError(GraphError):
    """The graph's edges form a cycle.

    Attributes:
        cycle: The node ids around the cycle, the first repeated at the end.
    """

    def __init__(
        self,
        message: str,
        *,
        graph: str | None = None,
        node: str | None = None,
        node_name: str | None = None,
        edge: Edge | None = None,
        cycle: tuple[str, ...] = (),
    ) -> None:
        """Create the error with the cycle's node ids."""
        super().__init__(message, graph=graph, node=node, node_name=node_name, edge=edge)
        self.cycle = cycle


class GraphTypeError(GraphError, TypeError):
    """A value cannot reach the type it must have: no pydantic conversion and no adapter.

    Attributes:
        producer: Id of the producing node, or ``"input:<name>"`` for a graph input.
        consumer: Id of the consuming node.
        parameter: The consuming parameter.
        source_type: Readable producer type.
        target_type: Readable parameter type.
    """

    def __init__(
        self,
        message: str,
        *,
        graph: str | None = None,
        node: str | None = None,
        node_name: str | None = None,
        edge: Edge | None = None,
        producer: str = "",
        consumer: str = "",
        parameter: str = "",
        source_type: str = "",
        target_type: str = "",
    ) -> None:
        """Create the error naming producer, consumer, parameter and both types."""
        super().__init__(message, graph=graph, node=node, node_name=node_name, edge=edge)
        self.producer = producer
        self.consumer = consumer
        self.parameter = parameter
        self.source_type = source_type
        self.target_type = target_type


class GraphOutputError(GraphError):
    """A graph declares no output, or declares the same output twice.

    Attributes:
        output: The output name concerned (``None`` for the single unnamed output).
    """

    def __init__(
        self,
        message: str,
        *,
        graph: str | None = None,
        node: str | None = None,
        node_name: str | None = None,
        output: str | None = None,
    ) -> None:
        """Create the error naming the output."""
        super().__init__(message, graph=graph, node=node, node_name=node_name)
        self.output = output


class PlanFormatError(GraphError):
    """A document is not a workflow plan this version can read."""


class PlanResolutionError(GraphError, LookupError):
    """A plan names a module (or function) by an import path that no longer resolves.

    Attributes:
        path: The import path, ``"package.module:qualified.name"``.
    """

    def __init__(
        self,
        message: str,
        *,
        graph: str | None = None,
        node: str | None = None,
        node_name: str | None = None,
        path: str = "",
    ) -> None:
        """Create the error naming the node and the path."""
        super().__init__(message, graph=graph, node=node, node_name=node_name)
        self.path = path
