"""pymai: compose AI agents from plain Python functions, on Trio.

The public surface is exactly what this module re-exports; everything else is private.

The kernel (modules, context, casting, composites, errors) is imported eagerly. The heavier
machinery under :mod:`mai.core` (durable runtime, graph and plans, tracing handles, ...) is
imported on first use of one of its names (the agent layer, :mod:`mai.agents`, too), as anyio
loads its backends: ``import mai`` costs
about what the kernel's own dependencies cost. The re-exports are written out below for type
checkers (``TYPE_CHECKING``) and in ``_LAZY`` for the interpreter; ``tests/test_exports.py``
checks that the two lists agree and that every lazy name resolves.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING
from typing import Any as _Any

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
from ._context import is_cancelled as is_cancelled
from ._errors import ArgumentError as ArgumentError
from ._errors import CastError as CastError
from ._errors import ConfigError as ConfigError
from ._errors import DeadlineExceeded as DeadlineExceeded
from ._errors import EventLoopRunningError as EventLoopRunningError
from ._errors import LoopLimitExceeded as LoopLimitExceeded
from ._errors import MaiError as MaiError
from ._errors import ModelRetry as ModelRetry
from ._module import Module as Module
from ._module import module as module
from ._run import run as run
from ._seam import Call as Call
from ._seam import Interceptor as Interceptor
from ._seam import intercept as intercept

# Run hooks: small modules that attach OpenTelemetry, plugin tracers and structlog binding to
# every top-level run through the seam. They must be registered before the first run, so they
# load eagerly; each is cheap and imports its heavy dependency only when it is configured.
from .core import logging as _logging
from .core import plugins as _plugins
from .core.tracing import _otel

if TYPE_CHECKING:
    from ._ctxmodel import Context as Context
    from .agents import Agent as Agent
    from .agents import AgentRunResult as AgentRunResult
    from .agents import ModelSettings as ModelSettings
    from .agents import Tool as Tool
    from .agents import UsageLimits as UsageLimits
    from .agents import tool as tool
    from .core.durable import DurableError as DurableError
    from .core.durable import LeaseLostError as LeaseLostError
    from .core.durable import NonDeterminismError as NonDeterminismError
    from .core.durable import PlanMismatchError as PlanMismatchError
    from .core.durable import RunCancelledError as RunCancelledError
    from .core.durable import RunDeadLetteredError as RunDeadLetteredError
    from .core.durable import RunFailedError as RunFailedError
    from .core.durable import RunHandle as RunHandle
    from .core.durable import RunInfo as RunInfo
    from .core.durable import RunNotFoundError as RunNotFoundError
    from .core.durable import RunNotRetryableError as RunNotRetryableError
    from .core.durable import RunStatus as RunStatus
    from .core.durable import Runtime as Runtime
    from .core.durable import SerializationError as SerializationError
    from .core.durable import StepInfo as StepInfo
    from .core.durable import StoreBusyError as StoreBusyError
    from .core.durable import StoreCorruptError as StoreCorruptError
    from .core.durable import StoreError as StoreError
    from .core.durable import StoreFullError as StoreFullError
    from .core.durable import StoreInterfaceError as StoreInterfaceError
    from .core.durable import StorePermissionWarning as StorePermissionWarning
    from .core.durable import StoreReadOnlyError as StoreReadOnlyError
    from .core.durable import StoreSchemaError as StoreSchemaError
    from .core.durable import StoreUnavailableError as StoreUnavailableError
    from .core.durable import WaitTimeoutError as WaitTimeoutError
    from .core.durable import Worker as Worker
    from .core.durable import WorkflowIdentityError as WorkflowIdentityError
    from .core.durable import WorkflowNotFoundError as WorkflowNotFoundError
    from .core.durable import now as now
    from .core.durable import random as random
    from .core.durable import redact_url as redact_url
    from .core.durable import sleep as sleep
    from .core.durable import wait_for as wait_for
    from .core.graph import Graph as Graph
    from .core.graph import GraphCycleError as GraphCycleError
    from .core.graph import GraphError as GraphError
    from .core.graph import GraphInputError as GraphInputError
    from .core.graph import GraphOutputError as GraphOutputError
    from .core.graph import GraphTypeError as GraphTypeError
    from .core.graph import PlanChange as PlanChange
    from .core.graph import PlanFormatError as PlanFormatError
    from .core.graph import PlanResolutionError as PlanResolutionError
    from .core.graph import Ref as Ref
    from .core.graph import WorkflowPlan as WorkflowPlan
    from .core.graph import plan as plan
    from .core.logging import log_context as log_context
    from .core.mcp import MCPConnectionError as MCPConnectionError
    from .core.mcp import MCPServerError as MCPServerError
    from .core.mcp import MCPSession as MCPSession
    from .core.mcp import MCPTool as MCPTool
    from .core.mcp import MCPToolChangedError as MCPToolChangedError
    from .core.mcp import MCPToolError as MCPToolError
    from .core.mcp import MCPToolset as MCPToolset
    from .core.mcp import mcp_http_app as mcp_http_app
    from .core.mcp import serve_mcp as serve_mcp
    from .core.plugins import PluginInfo as PluginInfo
    from .core.plugins import PluginWarning as PluginWarning
    from .core.plugins import plugins as plugins
    from .core.plugins import register_caster as register_caster
    from .core.plugins import register_store as register_store
    from .core.plugins import register_tracer as register_tracer
    from .core.plugins import store_factory as store_factory
    from .core.plugins import unregister_caster as unregister_caster
    from .core.plugins import unregister_store as unregister_store
    from .core.plugins import unregister_tracer as unregister_tracer
    from .core.progress import Progress as Progress
    from .core.tracing import Span as Span
    from .core.tracing import TraceHandle as TraceHandle
    from .core.tracing import extract_trace_context as extract_trace_context
    from .core.tracing import inject_trace_context as inject_trace_context
    from .core.tracing import trace as trace

#: Public name -> the module that defines it, for the names loaded on first use.
_LAZY: dict[str, str] = {
    "Context": "mai._ctxmodel",
    "Agent": "mai.agents",
    "AgentRunResult": "mai.agents",
    "ModelSettings": "mai.agents",
    "Tool": "mai.agents",
    "UsageLimits": "mai.agents",
    "tool": "mai.agents",
    "DurableError": "mai.core.durable",
    "LeaseLostError": "mai.core.durable",
    "NonDeterminismError": "mai.core.durable",
    "PlanMismatchError": "mai.core.durable",
    "RunCancelledError": "mai.core.durable",
    "RunDeadLetteredError": "mai.core.durable",
    "RunFailedError": "mai.core.durable",
    "RunHandle": "mai.core.durable",
    "RunInfo": "mai.core.durable",
    "RunNotFoundError": "mai.core.durable",
    "RunNotRetryableError": "mai.core.durable",
    "RunStatus": "mai.core.durable",
    "Runtime": "mai.core.durable",
    "SerializationError": "mai.core.durable",
    "StepInfo": "mai.core.durable",
    "StoreBusyError": "mai.core.durable",
    "StoreCorruptError": "mai.core.durable",
    "StoreError": "mai.core.durable",
    "StoreFullError": "mai.core.durable",
    "StoreInterfaceError": "mai.core.durable",
    "StorePermissionWarning": "mai.core.durable",
    "StoreReadOnlyError": "mai.core.durable",
    "StoreSchemaError": "mai.core.durable",
    "StoreUnavailableError": "mai.core.durable",
    "WaitTimeoutError": "mai.core.durable",
    "Worker": "mai.core.durable",
    "WorkflowIdentityError": "mai.core.durable",
    "WorkflowNotFoundError": "mai.core.durable",
    "now": "mai.core.durable",
    "random": "mai.core.durable",
    "redact_url": "mai.core.durable",
    "sleep": "mai.core.durable",
    "wait_for": "mai.core.durable",
    "Graph": "mai.core.graph",
    "GraphCycleError": "mai.core.graph",
    "GraphError": "mai.core.graph",
    "GraphInputError": "mai.core.graph",
    "GraphOutputError": "mai.core.graph",
    "GraphTypeError": "mai.core.graph",
    "PlanChange": "mai.core.graph",
    "PlanFormatError": "mai.core.graph",
    "PlanResolutionError": "mai.core.graph",
    "Ref": "mai.core.graph",
    "WorkflowPlan": "mai.core.graph",
    "plan": "mai.core.graph",
    "log_context": "mai.core.logging",
    "MCPConnectionError": "mai.core.mcp",
    "MCPServerError": "mai.core.mcp",
    "MCPSession": "mai.core.mcp",
    "MCPTool": "mai.core.mcp",
    "MCPToolChangedError": "mai.core.mcp",
    "MCPToolError": "mai.core.mcp",
    "MCPToolset": "mai.core.mcp",
    "mcp_http_app": "mai.core.mcp",
    "serve_mcp": "mai.core.mcp",
    "PluginInfo": "mai.core.plugins",
    "PluginWarning": "mai.core.plugins",
    "plugins": "mai.core.plugins",
    "register_caster": "mai.core.plugins",
    "register_store": "mai.core.plugins",
    "register_tracer": "mai.core.plugins",
    "store_factory": "mai.core.plugins",
    "unregister_caster": "mai.core.plugins",
    "unregister_store": "mai.core.plugins",
    "unregister_tracer": "mai.core.plugins",
    "Progress": "mai.core.progress",
    "Span": "mai.core.tracing",
    "TraceHandle": "mai.core.tracing",
    "extract_trace_context": "mai.core.tracing",
    "inject_trace_context": "mai.core.tracing",
    "trace": "mai.core.tracing",
}

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentRunResult",
    "ArgumentError",
    "Backoff",
    "BlockingDelay",
    "Call",
    "CastError",
    "Composite",
    "Conditional",
    "Config",
    "ConfigError",
    "Context",
    "DeadlineExceeded",
    "DurableError",
    "EventLoopRunningError",
    "Graph",
    "GraphCycleError",
    "GraphError",
    "GraphInputError",
    "GraphOutputError",
    "GraphTypeError",
    "Interceptor",
    "LeaseLostError",
    "Loop",
    "LoopLimitExceeded",
    "MCPConnectionError",
    "MCPServerError",
    "MCPSession",
    "MCPTool",
    "MCPToolChangedError",
    "MCPToolError",
    "MCPToolset",
    "MaiError",
    "Map",
    "ModelRetry",
    "ModelSettings",
    "Module",
    "NonBlockingDelay",
    "NonDeterminismError",
    "Parallel",
    "Payload",
    "PlanChange",
    "PlanFormatError",
    "PlanMismatchError",
    "PlanResolutionError",
    "PluginInfo",
    "PluginWarning",
    "Progress",
    "Race",
    "Ref",
    "RunCancelledError",
    "RunDeadLetteredError",
    "RunFailedError",
    "RunHandle",
    "RunInfo",
    "RunNotFoundError",
    "RunNotRetryableError",
    "RunStatus",
    "Runtime",
    "Sequential",
    "SerializationError",
    "Span",
    "StepInfo",
    "StoreBusyError",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreInterfaceError",
    "StorePermissionWarning",
    "StoreReadOnlyError",
    "StoreSchemaError",
    "StoreUnavailableError",
    "Tool",
    "TraceHandle",
    "UsageLimits",
    "WaitTimeoutError",
    "Worker",
    "WorkflowIdentityError",
    "WorkflowNotFoundError",
    "WorkflowPlan",
    "extract_trace_context",
    "inject_trace_context",
    "intercept",
    "is_cancelled",
    "log_context",
    "mcp_http_app",
    "module",
    "now",
    "plan",
    "plugins",
    "random",
    "redact_url",
    "register_caster",
    "register_store",
    "register_tracer",
    "run",
    "serve_mcp",
    "sleep",
    "store_factory",
    "tool",
    "trace",
    "unregister_caster",
    "unregister_store",
    "unregister_tracer",
    "wait_for",
]

# Keep the namespace to the public names: helpers of this module are not part of the surface.
del _logging, _plugins, _otel, annotations, TYPE_CHECKING


def __getattr__(name: str) -> _Any:
    """Import a lazily exported name on first use and cache it in the module's namespace."""
    target = _LAZY.get(name)
    if target is None:
        if name == "agents":  # the public subpackage, loaded on first use like its names
            return _importlib.import_module("mai.agents")
        raise AttributeError(f"module 'mai' has no attribute {name!r}")
    value = getattr(_importlib.import_module(target), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the module's attributes, the lazily loaded public names included."""
    return sorted(set(globals()) | set(__all__))
