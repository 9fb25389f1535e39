"""A scripted model for tests, and the switch that blocks real model requests.

Both are public in :mod:`mai.testing` (:class:`ScriptedModel`, :func:`block_model_requests`).
"""

from __future__ import annotations

import contextlib
import inspect
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from ._errors import AgentError, ModelRequestsBlocked
from ._messages import (
    ModelRequest,
    ModelResponse,
    RetryPrompt,
    SystemPrompt,
    TextPart,
    ToolCall,
    ToolReturn,
    Usage,
    UserPrompt,
)
from ._model import ModelSettings, RequestParameters, ResponseDone, TextDelta, ToolCallDelta

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence

    from ._messages import ModelMessage
    from ._model import ModelStreamEvent

#: What a script step may be: text, a tool call, a list of both, or a whole response.
Reply = str | ToolCall | ModelResponse | list[str | ToolCall]


@dataclass(frozen=True, slots=True)
class ScriptedRequest:
    """One request a :class:`ScriptedModel` received.

    Attributes:
        messages: The whole history sent.
        settings: The model settings in force.
        params: The tools and output mode offered.
        streamed: Whether it was a streaming request.
    """

    messages: tuple[ModelMessage, ...]
    settings: ModelSettings
    params: RequestParameters
    streamed: bool

    @property
    def last(self) -> ModelRequest:
        """The last message (the request being answered)."""
        msg = self.messages[-1]
        assert isinstance(msg, ModelRequest)  # noqa: S101 - a request always ends the history
        return msg

    @property
    def tool_names(self) -> list[str]:
        """The names of the tools offered (function tools, then output tools)."""
        return [t.name for t in self.params.all_tools]


def tool_call(
    tool_name: str,
    args: dict[str, Any] | str | None = None,
    *,
    id: str | None = None,  # noqa: A002 - the model's word
) -> ToolCall:
    """A tool call for a script: ``tool_call("search", {"query": "trio"})``.

    Args:
        tool_name: The tool to call.
        args: Its arguments (a mapping, or JSON text sent as it is, even if invalid).
        id: The call id (default: ``call_<n>``, numbered by the model).
    """
    return ToolCall(
        tool_name=tool_name, args=args if args is not None else {}, tool_call_id=id or ""
    )


def _words(text: str) -> int:
    return len(text.split())


def _message_words(messages: Sequence[ModelMessage]) -> int:
    n = 0
    for m in messages:
        for p in m.parts:
            if isinstance(p, SystemPrompt | UserPrompt | TextPart):
                n += _words(p.content)
            elif isinstance(p, ToolReturn):
                n += _words(p.content_text())
            elif isinstance(p, RetryPrompt):
                n += _words(p.content)
            elif isinstance(p, ToolCall):
                n += _words(p.args_json())
    return n


class ScriptedModel:
    """A model that answers from a script: canned replies, or a function of the request.

    Made for tests (fast, deterministic, no network, works on the autojump clock)::

        model = ScriptedModel([tool_call("add", {"a": 1, "b": 2}), "The sum is 3."])
        agent = mai.Agent(model, tools=[add])
        assert await agent("What is 1 + 2?") == "The sum is 3."
        assert model.requests[1].last.parts[0].content == 3

    Args:
        script: The replies, in order (a string is a text answer, :func:`call` a tool call, a
            list several parts of one response, a :class:`~mai.agents.ModelResponse` itself), or
            a function ``fn(messages, params) -> reply`` (sync or async) called for every
            request.
        model_name: The name reported in responses and traces.
        chunk_size: Characters per streamed text or argument delta.
        chunk_delay: Seconds to wait before each streamed chunk (virtual time in tests).

    Attributes:
        requests: Every request received, in order (:class:`ScriptedRequest`).
    """

    provider = "scripted"

    def __init__(
        self,
        script: Iterable[Reply] | Callable[..., Any],
        *,
        model_name: str = "scripted",
        chunk_size: int = 8,
        chunk_delay: float = 0.0,
    ) -> None:
        """Create the model from a script."""
        self._fn: Callable[..., Any] | None = script if callable(script) else None
        self._replies: Iterator[Reply] = iter(()) if callable(script) else iter(list(script))
        self._model_name = model_name
        self.chunk_size = max(1, chunk_size)
        self.chunk_delay = chunk_delay
        self.requests: list[ScriptedRequest] = []
        self._calls = 0

    @property
    def model_name(self) -> str:
        """The model's name."""
        return self._model_name

    async def _next(
        self,
        messages: Sequence[ModelMessage],
        settings: ModelSettings,
        params: RequestParameters,
        streamed: bool,
    ) -> ModelResponse:
        self.requests.append(ScriptedRequest(tuple(messages), settings, params, streamed))
        if self._fn is not None:
            reply = self._fn(list(messages), params)
            if inspect.isawaitable(reply):
                reply = await reply
        else:
            try:
                reply = next(self._replies)
            except StopIteration:
                raise AgentError(
                    f"scripted model {self._model_name!r}: the script has no reply left for "
                    f"request {len(self.requests)}"
                ) from None
        return self._response(reply, messages)

    def _response(self, reply: Any, messages: Sequence[ModelMessage]) -> ModelResponse:
        if isinstance(reply, ModelResponse):
            return reply
        items = reply if isinstance(reply, list) else [reply]
        parts: list[TextPart | ToolCall] = []
        for item in items:
            if isinstance(item, str):
                parts.append(TextPart(content=item))
            elif isinstance(item, ToolCall):
                self._calls += 1
                named = item
                if not named.tool_call_id:
                    named = item.model_copy(update={"tool_call_id": f"call_{self._calls}"})
                parts.append(named)
            else:
                raise TypeError(
                    f"scripted model: a reply is text, tool_call(...), a list of them or a "
                    f"ModelResponse, received {type(item).__name__}"
                )
        out_words = sum(
            _words(p.content) if isinstance(p, TextPart) else _words(p.args_json()) for p in parts
        )
        has_calls = any(isinstance(p, ToolCall) for p in parts)
        return ModelResponse(
            parts=tuple(parts),
            usage=Usage(requests=1, input_tokens=_message_words(messages), output_tokens=out_words),
            model_name=self._model_name,
            provider=self.provider,
            finish_reason="tool_calls" if has_calls else "stop",
            response_id=f"scripted-{len(self.requests)}",
        )

    async def request(
        self,
        messages: Sequence[ModelMessage],
        settings: ModelSettings,
        params: RequestParameters,
    ) -> ModelResponse:
        """Answer with the next reply of the script."""
        return await self._next(messages, settings, params, False)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        messages: Sequence[ModelMessage],
        settings: ModelSettings,
        params: RequestParameters,
    ) -> AsyncIterator[AsyncIterator[ModelStreamEvent]]:
        """Answer with the next reply, in chunks of ``chunk_size`` characters."""
        response = await self._next(messages, settings, params, True)
        yield self._events(response)

    async def _events(self, response: ModelResponse) -> AsyncIterator[ModelStreamEvent]:
        size = self.chunk_size
        index = 0
        for part in response.parts:
            if isinstance(part, TextPart):
                for i in range(0, len(part.content), size):
                    await self._pause()
                    yield TextDelta(part.content[i : i + size])
            else:
                args = part.args_json()
                await self._pause()
                yield ToolCallDelta(index, part.tool_name, args[:size], part.tool_call_id)
                for i in range(size, len(args), size):
                    await self._pause()
                    yield ToolCallDelta(index, None, args[i : i + size], None)
                index += 1
        yield ResponseDone(response)

    async def _pause(self) -> None:
        if self.chunk_delay:
            await anyio.sleep(self.chunk_delay)
        else:
            await anyio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        """Return ``<ScriptedModel name: N requests>``."""
        return f"<ScriptedModel {self._model_name!r}: {len(self.requests)} requests>"


# -- blocking real requests -------------------------------------------------------------------

_blocked: list[bool] = [False]


def _is_local(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_request_allowed(model_name: str, base_url: str) -> None:
    """Raise when :func:`block_model_requests` is on and ``base_url`` is not on this machine.

    Raises:
        ModelRequestsBlocked: Naming the model and the endpoint.
    """
    if _blocked[-1] and not _is_local(base_url):
        raise ModelRequestsBlocked(
            f"a real request to model {model_name!r} at {base_url} was blocked: "
            "mai.testing.block_model_requests() is on (use mai.testing.ScriptedModel in tests)"
        )


@contextlib.contextmanager
def block_model_requests(blocked: bool = True) -> Iterator[None]:
    """Make every request of a real model to a non-local endpoint fail inside the block.

    Use it around a test session (a fixture) so that no test bills anyone by accident: a
    request to an endpoint other than ``localhost`` / a loopback address raises
    :class:`~mai.agents.ModelRequestsBlocked`. Scripted models are never blocked.

    Args:
        blocked: ``False`` allows requests again inside the block (nesting works).
    """
    _blocked.append(blocked)
    try:
        yield
    finally:
        _blocked.pop()
