"""Run pymai modules and composites as Temporal workflows.

Installing this distribution registers the ``temporal`` scheme in the ``mai.stores`` entry-point
group as a remote executor: ``mai.Runtime("temporal://127.0.0.1:7233/default?task_queue=q")``
returns a :class:`TemporalRuntime`, and ``mai worker --executor temporal --app pkg.mod`` serves
runs. Composite control flow runs as workflow code; each leaf module call is an activity whose
id is its step id.
"""

from ._options import TemporalOptions as TemporalOptions
from ._options import parse_options as parse_options
from ._runtime import TemporalRunHandle as TemporalRunHandle
from ._runtime import TemporalRuntime as TemporalRuntime
from ._runtime import connect as connect
from ._runtime import make_replayer as make_replayer
from ._runtime import make_worker as make_worker
from ._runtime import open_runtime as open_runtime
from ._workflow import ACTIVITY as ACTIVITY
from ._workflow import SIGNAL as SIGNAL
from ._workflow import WORKFLOW as WORKFLOW
from ._workflow import MaiRun as MaiRun
from ._workflow import mai_step as mai_step

__all__ = [
    "ACTIVITY",
    "SIGNAL",
    "WORKFLOW",
    "MaiRun",
    "TemporalOptions",
    "TemporalRunHandle",
    "TemporalRuntime",
    "connect",
    "mai_step",
    "make_replayer",
    "make_worker",
    "open_runtime",
    "parse_options",
]
