"""Graphs and workflow plans: declarative dataflow DAGs of modules, validated when built.

The public names are re-exported from :mod:`mai`; the modules of this package are private.
"""

from ._errors import Edge as Edge
from ._errors import GraphCycleError as GraphCycleError
from ._errors import GraphError as GraphError
from ._errors import GraphInputError as GraphInputError
from ._errors import GraphOutputError as GraphOutputError
from ._errors import GraphTypeError as GraphTypeError
from ._errors import PlanFormatError as PlanFormatError
from ._errors import PlanResolutionError as PlanResolutionError
from ._graph import Deferred as Deferred
from ._graph import Graph as Graph
from ._graph import Ref as Ref
from ._plan import PlanChange as PlanChange
from ._plan import WorkflowPlan as WorkflowPlan
from ._plan import plan as plan
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
