"""Agents: models, tools made from modules, messages, structured output, streaming, limits.

Everything agent-related is public here; the most used names (:class:`mai.Agent`,
:class:`mai.Tool`, :func:`mai.tool`, :class:`mai.ModelRetry`, ...) are also re-exported by
:mod:`mai`. The implementation lives in ``mai.core.agents``.
"""

from mai._errors import ModelRetry as ModelRetry
from mai.core.agents._agent import Agent as Agent
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
from mai.core.agents._limits import UsageLimits as UsageLimits
from mai.core.agents._messages import ModelMessage as ModelMessage
from mai.core.agents._messages import ModelRequest as ModelRequest
from mai.core.agents._messages import ModelResponse as ModelResponse
from mai.core.agents._messages import RetryPrompt as RetryPrompt
from mai.core.agents._messages import SystemPrompt as SystemPrompt
from mai.core.agents._messages import TextPart as TextPart
from mai.core.agents._messages import ToolCall as ToolCall
from mai.core.agents._messages import ToolReturn as ToolReturn
from mai.core.agents._messages import Usage as Usage
from mai.core.agents._messages import UserPrompt as UserPrompt
from mai.core.agents._messages import dump_messages as dump_messages
from mai.core.agents._messages import load_messages as load_messages
from mai.core.agents._messages import messages_adapter as messages_adapter
from mai.core.agents._model import Model as Model
from mai.core.agents._model import ModelSettings as ModelSettings
from mai.core.agents._model import ModelStreamEvent as ModelStreamEvent
from mai.core.agents._model import RequestParameters as RequestParameters
from mai.core.agents._model import ResponseDone as ResponseDone
from mai.core.agents._model import TextDelta as TextDelta
from mai.core.agents._model import ToolCallDelta as ToolCallDelta
from mai.core.agents._model import resolve_model as resolve_model
from mai.core.agents._openai import MissingDependencyError as MissingDependencyError
from mai.core.agents._openai import OpenAIModel as OpenAIModel
from mai.core.agents._run import AgentRunResult as AgentRunResult
from mai.core.agents._stream import AgentEvent as AgentEvent
from mai.core.agents._stream import AgentStream as AgentStream
from mai.core.agents._stream import FinalOutput as FinalOutput
from mai.core.agents._stream import OutputDelta as OutputDelta
from mai.core.agents._stream import ToolCallFinished as ToolCallFinished
from mai.core.agents._stream import ToolCallStarted as ToolCallStarted
from mai.core.agents._tools import Dep as Dep
from mai.core.agents._tools import Tool as Tool
from mai.core.agents._tools import ToolDefinition as ToolDefinition
from mai.core.agents._tools import strict_schema as strict_schema
from mai.core.agents._tools import tool as tool
from mai.core.agents._tools import tool_definition as tool_definition
from mai.core.plugins import register_model as register_model
from mai.core.plugins import unregister_model as unregister_model

__all__ = [
    "Agent",
    "AgentError",
    "AgentEvent",
    "AgentRunResult",
    "AgentStream",
    "Dep",
    "FinalOutput",
    "HistoryError",
    "MissingDependencyError",
    "Model",
    "ModelAPIError",
    "ModelConnectionError",
    "ModelHTTPError",
    "ModelMessage",
    "ModelNotFoundError",
    "ModelRequest",
    "ModelRequestsBlocked",
    "ModelResponse",
    "ModelRetry",
    "ModelSettings",
    "ModelStreamEvent",
    "OpenAIModel",
    "OutputDelta",
    "OutputRetriesExceeded",
    "RequestParameters",
    "ResponseDone",
    "RetryPrompt",
    "SystemPrompt",
    "TextDelta",
    "TextPart",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolDefinition",
    "ToolRetriesExceeded",
    "ToolReturn",
    "Usage",
    "UsageLimitExceeded",
    "UsageLimits",
    "UserPrompt",
    "dump_messages",
    "load_messages",
    "messages_adapter",
    "register_model",
    "resolve_model",
    "strict_schema",
    "tool",
    "tool_definition",
    "unregister_model",
]
