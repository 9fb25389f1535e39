"""Messages between an agent and its model: pydantic models, saved and loaded as JSON.

A conversation is a list of :data:`ModelMessage`: a :class:`ModelRequest` (what the agent sends:
system prompt, user text, tool returns, retry prompts) or a :class:`ModelResponse` (what the
model answered: text and tool calls, with its usage). One ``TypeAdapter`` (:data:`messages_adapter`)
turns a history into JSON and back: :func:`dump_messages` / :func:`load_messages`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from . import _genai as genai
from ._errors import HistoryError

_FROZEN = ConfigDict(frozen=True)


def _now() -> datetime:
    return datetime.now(UTC)


class Usage(BaseModel):
    """Tokens and requests spent (by one response, or summed over a run).

    Attributes:
        requests: Model requests made.
        tool_calls: Tool calls executed.
        input_tokens: Prompt tokens.
        output_tokens: Completion tokens.
        cache_read_tokens: Prompt tokens served from the provider's cache.
        reasoning_tokens: Completion tokens spent on reasoning.
    """

    requests: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """``input_tokens + output_tokens``."""
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        """Add ``other``'s figures to this usage, in place."""
        # The fields are plain ints in __dict__: adding there skips pydantic's __setattr__ (an
        # agent adds a usage per turn).
        mine, theirs = self.__dict__, other.__dict__
        for name in _USAGE_FIELDS:
            mine[name] += theirs[name]

    def __add__(self, other: Usage) -> Usage:
        """Return the sum of two usages."""
        out = self.model_copy()
        out.add(other)
        return out


_USAGE_FIELDS = tuple(Usage.model_fields)


# -- request parts ---------------------------------------------------------------------------------


class SystemPrompt(BaseModel):
    """A system prompt (an agent's instructions are sent as one, first).

    Attributes:
        content: The text.
    """

    model_config = _FROZEN
    kind: Literal["system"] = "system"
    content: str


class UserPrompt(BaseModel):
    """The user's text.

    It carries no timestamp: a request's content is deterministic, so that a durable run can
    compare it on resume.

    Attributes:
        content: The text.
    """

    model_config = _FROZEN
    kind: Literal["user"] = "user"
    content: str


class ToolReturn(BaseModel):
    """A tool's result (or error) for one tool call.

    Attributes:
        tool_name: The tool that was called.
        tool_call_id: The id of the call it answers.
        content: The result (any JSON value), or the error text when ``error`` is set.
        error: Whether the call failed (``content`` then says how).
    """

    model_config = _FROZEN
    kind: Literal["tool-return"] = "tool-return"
    tool_name: str
    tool_call_id: str
    content: Any = None
    error: bool = False

    def content_text(self) -> str:
        """The content as text for the model (JSON unless it already is a string)."""
        c = self.content
        if isinstance(c, str):
            return c
        from pydantic_core import to_json  # noqa: PLC0415

        return to_json(c).decode()


class RetryPrompt(BaseModel):
    """Tells the model what was wrong so it can try again.

    Sent for arguments that do not fit a tool's schema, an unknown tool, a tool raising
    :class:`~mai.ModelRetry`, or output that failed validation.

    Attributes:
        content: What was wrong (each problem naming the field).
        tool_name: The tool concerned (``None`` for the output given as text).
        tool_call_id: The call it answers, when it answers one.
    """

    model_config = _FROZEN
    kind: Literal["retry-prompt"] = "retry-prompt"
    content: str
    tool_name: str | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The prompt's text as sent to the model."""
        return f"{self.content}\n\nFix the errors and try again."


RequestPart = Annotated[
    SystemPrompt | UserPrompt | ToolReturn | RetryPrompt, Field(discriminator="kind")
]


# -- response parts --------------------------------------------------------------------------------


class TextPart(BaseModel):
    """Text the model answered.

    Attributes:
        content: The text.
    """

    model_config = _FROZEN
    kind: Literal["text"] = "text"
    content: str


class ToolCall(BaseModel):
    """A tool call the model asked for.

    Attributes:
        tool_name: The tool's name.
        args: The arguments: JSON text as the model sent it, or an already decoded mapping.
        tool_call_id: The id the tool's return must carry.
    """

    model_config = _FROZEN
    kind: Literal["tool-call"] = "tool-call"
    tool_name: str
    args: str | dict[str, Any] = "{}"
    tool_call_id: str

    def args_json(self) -> str:
        """The arguments as JSON text."""
        a = self.args
        return a if isinstance(a, str) else json.dumps(a)


ResponsePart = Annotated[TextPart | ToolCall, Field(discriminator="kind")]


# -- messages --------------------------------------------------------------------------------------


class ModelRequest(BaseModel):
    """What the agent sends in one turn (the history before it is sent too).

    Attributes:
        parts: System prompts, user text, tool returns and retry prompts, in order.
    """

    model_config = _FROZEN
    kind: Literal["request"] = "request"
    parts: tuple[RequestPart, ...]


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class ModelResponse(BaseModel):
    """What the model answered in one turn.

    Attributes:
        parts: Text and tool calls, in the order the model produced them.
        usage: What this response cost (``requests`` is 1).
        model_name: The model that answered (as the provider names it).
        provider: The provider (``"openai"``, ``"scripted"``, ...).
        finish_reason: Why generation stopped, when the provider says.
        response_id: The provider's id for the response, when it gives one.
        timestamp: When the response was received.
    """

    model_config = _FROZEN
    kind: Literal["response"] = "response"
    parts: tuple[ResponsePart, ...]
    usage: Usage = Field(default_factory=lambda: Usage(requests=1))
    model_name: str | None = None
    provider: str | None = None
    finish_reason: FinishReason | None = None
    response_id: str | None = None
    timestamp: datetime = Field(default_factory=_now)

    @property
    def text(self) -> str:
        """All text parts joined."""
        return "".join(p.content for p in self.parts if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls, in order."""
        return [p for p in self.parts if isinstance(p, ToolCall)]

    def __mai_span_attributes__(self) -> dict[str, Any]:
        """Attributes a trace records for the model step that returned this response."""
        u = self.usage
        attrs: dict[str, Any] = {
            genai.INPUT_TOKENS: u.input_tokens,
            genai.OUTPUT_TOKENS: u.output_tokens,
        }
        if self.model_name:
            attrs[genai.RESPONSE_MODEL] = self.model_name
        if self.finish_reason:
            attrs[genai.FINISH_REASONS] = (self.finish_reason,)
        if self.response_id:
            attrs[genai.RESPONSE_ID] = self.response_id
        return attrs


ModelMessage = Annotated[ModelRequest | ModelResponse, Field(discriminator="kind")]

_M = TypeVar("_M", bound=BaseModel)
_set = object.__setattr__
_templates: dict[type[BaseModel], dict[str, Any]] = {}


def construct(cls: type[_M], **values: Any) -> _M:
    """Build a message part from trusted values, without validation (the agent's hot path).

    Like ``model_construct`` for models whose defaults are constants (every class here), at a
    fraction of its cost: the defaults are computed once per class.
    """
    template = _templates.get(cls)
    if template is None:
        template = _templates[cls] = {
            name: None if f.is_required() else f.get_default(call_default_factory=True)
            for name, f in cls.model_fields.items()
        }
    obj = cls.__new__(cls)
    data = template.copy()
    data.update(values)
    _set(obj, "__dict__", data)
    _set(obj, "__pydantic_fields_set__", set(values))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


#: The one adapter that validates and serialises a message history.
messages_adapter: TypeAdapter[list[ModelMessage]] = TypeAdapter(list[ModelMessage])
_one: TypeAdapter[ModelMessage] = TypeAdapter(ModelMessage)


def dump_messages(messages: list[ModelMessage] | tuple[ModelMessage, ...]) -> bytes:
    """Serialise a history to JSON bytes (:func:`load_messages` reads it back)."""
    return messages_adapter.dump_json(list(messages))


def load_messages(data: str | bytes | list[Any]) -> list[ModelMessage]:
    """Load a history saved with :func:`dump_messages` (JSON text, or already decoded JSON).

    Raises:
        HistoryError: Naming the index of the first message that does not fit, and why.
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise HistoryError(f"a message history must be JSON: {exc}") from None
    if not isinstance(data, list):
        raise HistoryError(
            f"a message history is a list of messages, received {type(data).__name__}"
        )
    return validate_history(data)


def validate_history(items: list[Any] | tuple[Any, ...]) -> list[ModelMessage]:
    """Validate each item as a message (instances pass through).

    Raises:
        HistoryError: Naming the index of the first message that does not fit, and why.
    """
    out: list[ModelMessage] = []
    for i, item in enumerate(items):
        if isinstance(item, ModelRequest | ModelResponse):
            out.append(item)
            continue
        try:
            out.append(_one.validate_python(item))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise HistoryError(
                f"message {i} of the history is not a pymai message: "
                f"{where + ': ' if where else ''}{first['msg']}",
                index=i,
            ) from None
    return out
