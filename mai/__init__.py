"""pymai: compose AI agents from plain Python functions, on Trio.

The public surface is exactly what this module re-exports; everything else is private.
"""

from ._casting import Payload as Payload
from ._composites import BlockingDelay as BlockingDelay
from ._composites import Composite as Composite
from ._composites import Conditional as Conditional
from ._composites import Loop as Loop
from ._composites import Map as Map
from ._composites import NonBlockingDelay as NonBlockingDelay
from ._composites import Parallel as Parallel
from ._composites import Race as Race
from ._composites import Sequential as Sequential
from ._config import Backoff as Backoff
from ._config import Config as Config
from ._context import Context as Context
from ._context import is_cancelled as is_cancelled
from ._errors import ArgumentError as ArgumentError
from ._errors import CastError as CastError
from ._errors import ConfigError as ConfigError
from ._errors import DeadlineExceeded as DeadlineExceeded
from ._errors import LoopLimitExceeded as LoopLimitExceeded
from ._errors import MaiError as MaiError
from ._module import Module as Module
from ._module import module as module
from ._run import run as run

__version__ = "0.1.0"

__all__ = [
    "ArgumentError",
    "Backoff",
    "BlockingDelay",
    "CastError",
    "Composite",
    "Conditional",
    "Config",
    "ConfigError",
    "Context",
    "DeadlineExceeded",
    "Loop",
    "LoopLimitExceeded",
    "MaiError",
    "Map",
    "Module",
    "NonBlockingDelay",
    "Parallel",
    "Payload",
    "Race",
    "Sequential",
    "is_cancelled",
    "module",
    "run",
]
