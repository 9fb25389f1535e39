"""Graphs and workflow plans: declarative dataflow DAGs of modules, validated when built.

The public names are re-exported from :mod:`mai`; the modules of this package are private.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from mai.core._lazy import lazy_exports as _lazy_exports

from ._errors import Edge as Edge
from ._errors import GraphCycleError as GraphCycleError
from ._errors import GraphError as GraphError
from ._errors import GraphInputError as GraphInputError
from ._errors import GraphOutputError as GraphOutputError
from ._errors import GraphTypeError as GraphTypeError
from ._errors import PlanFormatError as PlanFormatError
from ._errors import PlanResolutionError as PlanResolutionError
from ._plan import WorkflowPlan as WorkflowPlan
from ._plan import plan as plan

if _TYPE_CHECKING:
    from ._diff import PlanChange as PlanChange
    from ._graph import Deferred as Deferred
    from ._graph import Graph as Graph
    from ._graph import Ref as Ref
    from ._reach import LAX as LAX

__all__ = [
    "LAX",
    "Deferred",
    "Edge",
    "Graph",
    "GraphCycleError",
    "GraphError",
    "GraphInputError",
    "GraphOutputError",
    "GraphTypeError",
    "PlanChange",
    "PlanFormatError",
    "PlanResolutionError",
    "Ref",
    "WorkflowPlan",
    "plan",
]

# Loaded on first use: the plan of a plain module or a composite (what a durable run records
# when it starts) needs none of the graph-building, validation and cast-rule machinery, nor
# the differences between two plans.
_LAZY = {
    "Graph": "._graph",
    "Deferred": "._graph",
    "Ref": "._graph",
    "LAX": "._reach",
    "PlanChange": "._diff",
}

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())
