"""The model protocol, model settings, what a request carries, and model strings.

A :class:`Model` answers a list of messages with a :class:`~mai.agents.ModelResponse`, either at
once (:meth:`Model.request`) or as a stream of events that ends with the full response
(:meth:`Model.stream`). Providers plug in through the ``mai.models`` entry-point group: the
entry point's name is the provider (``"openai"``), its object a factory ``factory(model_name)``;
:func:`resolve_model` turns ``"openai:gpt-4o-mini"`` into a model through it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from mai.core import plugins

from ._errors import ModelNotFoundError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from contextlib import AbstractAsyncContextManager

    from ._messages import ModelMessage, ModelResponse
    from ._tools import ToolDefinition

#: ``"auto"``, ``"none"``, ``"required"``, or the name of the tool to force.
ToolChoice = str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSettings:
    """How a model should generate; given per agent and per call (the call's values win).

    Every field defaults to ``None``: "the provider's default".

    Attributes:
        temperature: Sampling temperature.
        max_tokens: Upper bound of generated tokens.
        seed: Seed for providers that sample deterministically with one.
        stop_sequences: Generation stops at any of these.
        top_p: Nucleus sampling.
        tool_choice: ``"auto"``, ``"none"``, ``"required"``, or a tool's name to force it.
        parallel_tool_calls: Whether the model may ask for several tool calls in one response.
        extra_body: Provider-specific fields sent as they are.
    """

    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop_sequences: tuple[str, ...] | None = None
    top_p: float | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    extra_body: dict[str, Any] | None = None

    def merge(self, other: ModelSettings | None) -> ModelSettings:
        """Return these settings overridden by ``other``'s non-``None`` values."""
        if other is None:
            return self
        changes = {
            f.name: v
            for f in dataclasses.fields(other)
            if (v := getattr(other, f.name)) is not None
        }
        return dataclasses.replace(self, **changes) if changes else self


OutputMode = Literal["text", "tool", "native", "prompted"]


@dataclass(frozen=True, slots=True)
class RequestParameters:
    """What a request offers the model besides the messages.

    Attributes:
        tools: The function tools.
        output_tools: The final-result tool(s) (``output_mode == "tool"``).
        output_mode: ``"text"`` (plain text wanted), ``"tool"`` (a final-result tool),
            ``"native"`` (the provider's JSON Schema response format) or ``"prompted"``
            (JSON asked for in the instructions).
        output_schema: The JSON Schema of the output (``native`` and ``prompted``).
        output_name: A name for the output schema.
        allow_text: Whether a text answer ends the run (plain ``str`` output).
    """

    tools: tuple[ToolDefinition, ...] = ()
    output_tools: tuple[ToolDefinition, ...] = ()
    output_mode: OutputMode = "text"
    output_schema: dict[str, Any] | None = None
    output_name: str = "final_result"
    allow_text: bool = True

    @property
    def all_tools(self) -> tuple[ToolDefinition, ...]:
        """The function tools followed by the output tools."""
        return self.tools + self.output_tools


# -- streaming events of a model --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the model's text, as it streams.

    Attributes:
        content: The new text.
    """

    content: str
    kind: Literal["text-delta"] = "text-delta"


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call, as it streams.

    Attributes:
        index: Which tool call of the response (0-based).
        tool_name: The tool's name (on the first delta of a call), else ``None``.
        args_delta: A piece of the JSON arguments.
        tool_call_id: The call's id (on the first delta of a call), else ``None``.
    """

    index: int
    tool_name: str | None = None
    args_delta: str = ""
    tool_call_id: str | None = None
    kind: Literal["tool-call-delta"] = "tool-call-delta"


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """The last event of a model stream: the whole response.

    Attributes:
        response: The complete response, usage included.
    """

    response: ModelResponse
    kind: Literal["response-done"] = "response-done"


ModelStreamEvent = TextDelta | ToolCallDelta | ResponseDone


@runtime_checkable
class Model(Protocol):
    """A language model an agent can ask (implemented by providers and by the scripted model).

    ``stream`` returns an async context manager that yields an async iterator of
    :data:`ModelStreamEvent`; the last event is always :class:`ResponseDone`. Leaving the
    context closes the underlying connection, also when the iteration was cut short.
    """

    @property
    def model_name(self) -> str:
        """The model's name as the provider knows it."""
        ...

    @property
    def provider(self) -> str:
        """The provider's name (``"openai"``, ...), for traces."""
        ...

    async def request(
        self,
        messages: Sequence[ModelMessage],
        settings: ModelSettings,
        params: RequestParameters,
    ) -> ModelResponse:
        """Answer ``messages``."""
        ...

    def stream(
        self,
        messages: Sequence[ModelMessage],
        settings: ModelSettings,
        params: RequestParameters,
    ) -> AbstractAsyncContextManager[AsyncIterator[ModelStreamEvent]]:
        """Answer ``messages`` as a stream of events ending with :class:`ResponseDone`."""
        ...


def resolve_model(model: Model | str) -> Model:
    """Return ``model``, or the model a ``"provider:model-name"`` string names.

    The provider is looked up in the ``mai.models`` plugins (entry points, or
    :func:`mai.agents.register_model`); ``openai`` is built in.

    Raises:
        ModelNotFoundError: For an unknown provider or a string without ``:``; the message
            lists the providers known.
        TypeError: When ``model`` is neither a string nor a model.
    """
    if isinstance(model, str):
        provider, sep, name = model.partition(":")
        if not sep or not provider or not name:
            raise ModelNotFoundError(
                f"a model string is 'provider:model-name' (e.g. 'openai:gpt-4o-mini'), "
                f"received {model!r}",
                provider=provider,
            )
        factory = plugins.model_factory(provider)
        if factory is None and provider == "openai":
            from ._openai import OpenAIModel  # noqa: PLC0415 - only when asked for

            factory = OpenAIModel
        if factory is None:
            known = ", ".join(sorted({*plugins.model_providers(), "openai"}))
            raise ModelNotFoundError(
                f"no model provider {provider!r} for {model!r}; known providers: {known} "
                "(providers plug in through the 'mai.models' entry-point group)",
                provider=provider,
            )
        made = factory(name)
        if not isinstance(made, Model):
            raise TypeError(
                f"the mai.models provider {provider!r} returned {type(made).__name__}, "
                "not a model (request and stream methods, model_name and provider)"
            )
        return made
    if not isinstance(model, Model):
        raise TypeError(
            f"an agent's model is a mai.agents.Model or a 'provider:model' string, "
            f"received {type(model).__name__}"
        )
    return model
