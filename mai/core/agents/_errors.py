"""The errors of the agent layer.

They extend the tree drawn in ``mai/_errors.py``::

    MaiError
    ├── ModelRetry(MaiError)                         a tool or validator asks the model again
    ├── AgentError(MaiError, RuntimeError)           an agent run cannot go on
    │   ├── ToolRetriesExceeded(AgentError)          a tool's retry prompts ran out
    │   ├── OutputRetriesExceeded(AgentError, ValueError) the output never validated
    │   ├── UsageLimitExceeded(AgentError)           a usage limit was reached
    │   ├── ModelRequestsBlocked(AgentError)         mai.testing blocked a real model request
    │   └── ModelAPIError(AgentError)                the model's endpoint failed
    │       ├── ModelHTTPError(ModelAPIError)        an HTTP error status (after retries)
    │       └── ModelConnectionError(ModelAPIError, ConnectionError) endpoint unreachable
    ├── HistoryError(MaiError, ValueError)           a saved message history of the wrong shape
    ├── ToolArgumentsError(MaiError, ValueError)     arguments that do not fit a tool's schema
    └── ModelNotFoundError(MaiError, LookupError)    a model string no provider resolves
"""

from __future__ import annotations

from typing import Any

from mai._errors import MaiError


class AgentError(MaiError, RuntimeError):
    """An agent run cannot go on.

    Attributes:
        agent: The name of the agent, when known.
    """

    def __init__(self, message: str, *, agent: str | None = None) -> None:
        """Create the error naming the agent."""
        super().__init__(message, module_name=agent)
        self.agent = agent


class ToolRetriesExceeded(AgentError):
    """A tool sent the model more consecutive retry prompts than its limit allows.

    Attributes:
        tool_name: The tool (or the unknown tool name the model kept calling).
        max_retries: The limit that was exceeded.
        last_error: The last retry prompt's text.
    """

    def __init__(
        self,
        message: str,
        *,
        agent: str | None = None,
        tool_name: str = "",
        max_retries: int = 0,
        last_error: str = "",
    ) -> None:
        """Create the error naming the tool and the limit."""
        super().__init__(message, agent=agent)
        self.tool_name = tool_name
        self.max_retries = max_retries
        self.last_error = last_error


class OutputRetriesExceeded(AgentError, ValueError):
    """The model's output failed validation more often than ``output_retries`` allows.

    Attributes:
        turn: The model turn (1-based) whose output failed last.
        max_retries: The limit that was exceeded.
        last_error: Why the last output was rejected.
    """

    def __init__(
        self,
        message: str,
        *,
        agent: str | None = None,
        turn: int = 0,
        max_retries: int = 0,
        last_error: str = "",
    ) -> None:
        """Create the error naming the turn and the limit."""
        super().__init__(message, agent=agent)
        self.turn = turn
        self.max_retries = max_retries
        self.last_error = last_error


class UsageLimitExceeded(AgentError):
    """A usage limit (requests, tool calls or tokens) was reached.

    Attributes:
        limit: The limit's name (``"request_limit"``, ``"total_tokens_limit"``, ...).
        value: The figure that would exceed it (or exceeded it).
        maximum: The limit's value.
    """

    def __init__(
        self,
        message: str,
        *,
        agent: str | None = None,
        limit: str = "",
        value: int = 0,
        maximum: int = 0,
    ) -> None:
        """Create the error naming the limit and the figure."""
        super().__init__(message, agent=agent)
        self.limit = limit
        self.value = value
        self.maximum = maximum


class ModelRequestsBlocked(AgentError):
    """A real model request was made while :func:`mai.testing.block_model_requests` was on."""


class ModelAPIError(AgentError):
    """The model's endpoint failed.

    Attributes:
        model_name: The model requested.
        base_url: The endpoint's base URL (never a key).
    """

    def __init__(
        self, message: str, *, model_name: str = "", base_url: str = "", agent: str | None = None
    ) -> None:
        """Create the error naming the model and the endpoint."""
        super().__init__(message, agent=agent)
        self.model_name = model_name
        self.base_url = base_url


class ModelHTTPError(ModelAPIError):
    """The endpoint answered with an error status (after pymai's retries, for 429 and 5xx).

    Attributes:
        status_code: The HTTP status.
        body: The start of the response body.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 0,
        body: str = "",
        model_name: str = "",
        base_url: str = "",
    ) -> None:
        """Create the error naming the status."""
        super().__init__(message, model_name=model_name, base_url=base_url)
        self.status_code = status_code
        self.body = body


class ModelConnectionError(ModelAPIError, ConnectionError):
    """The endpoint could not be reached (after pymai's retries within the deadline)."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle through ``__init__`` (``OSError`` cannot be made with ``__new__`` alone)."""
        return (type(self), (self.message,), dict(self.__dict__))


class HistoryError(MaiError, ValueError):
    """A message history does not have the shape of pymai messages.

    Attributes:
        index: The index of the first message that is wrong (``None`` when the whole value is).
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        """Create the error naming the message index."""
        super().__init__(message)
        self.index = index


class ToolArgumentsError(MaiError, ValueError):
    """Arguments that do not fit a tool's input schema (sent back to the model as a retry).

    Attributes:
        tool_name: The tool.
        errors: One line per problem, each naming the field.
    """

    def __init__(self, message: str, *, tool_name: str = "", errors: tuple[str, ...] = ()) -> None:
        """Create the error naming the tool and the fields."""
        super().__init__(message)
        self.tool_name = tool_name
        self.errors = errors


class ModelNotFoundError(MaiError, LookupError):
    """A model string (``"provider:model"``) names a provider no plugin provides.

    Attributes:
        provider: The provider part of the string.
    """

    def __init__(self, message: str, *, provider: str = "") -> None:
        """Create the error naming the provider."""
        super().__init__(message)
        self.provider = provider
