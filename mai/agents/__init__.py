"""Agents: models, tools made from modules, messages, structured output, streaming, limits.

Everything agent-related is public here; the most used names (:class:`mai.Agent`,
:class:`mai.Tool`, :func:`mai.tool`, :class:`mai.ModelRetry`, ...) are also re-exported by
:mod:`mai`. The implementation lives in ``mai.core.agents``.
"""

from mai._errors import ModelRetry as ModelRetry
from mai.core.agents._errors import AgentError as AgentError
from mai.core.agents._errors import HistoryError as HistoryError
from mai.core.agents._errors import ModelAPIError as ModelAPIError
from mai.core.agents._errors import ModelConnectionError as ModelConnectionError
from mai.core.agents._errors import ModelHTTPError as ModelHTTPError
from mai.core.agents._errors import ModelNotFoundError as ModelNotFoundError
from mai.core.agents._errors import ModelRequestsBlocked as ModelRequestsBlocked
from mai.core.agents._errors import OutputRetriesExceeded as OutputRetriesExceeded
from mai.core.agents._errors import ToolArgumentsError as ToolArgumentsError
from mai.core.agents._errors import ToolRetriesExceeded as ToolRetriesExceeded
from mai.core.agents._errors import UsageLimitExceeded as UsageLimitExceeded
from mai.core.agents._tools import Dep as Dep
from mai.core.agents._tools import Tool as Tool
from mai.core.agents._tools import ToolDefinition as ToolDefinition
from mai.core.agents._tools import strict_schema as strict_schema
from mai.core.agents._tools import tool as tool
from mai.core.agents._tools import tool_definition as tool_definition

__all__ = [
    "AgentError",
    "Dep",
    "HistoryError",
    "ModelAPIError",
    "ModelConnectionError",
    "ModelHTTPError",
    "ModelNotFoundError",
    "ModelRequestsBlocked",
    "ModelRetry",
    "OutputRetriesExceeded",
    "Tool",
    "ToolArgumentsError",
    "ToolDefinition",
    "ToolRetriesExceeded",
    "UsageLimitExceeded",
    "strict_schema",
    "tool",
    "tool_definition",
]
