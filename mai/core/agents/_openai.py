"""A model for any OpenAI-compatible chat-completions endpoint, over ``openai.AsyncOpenAI``.

The client's own retries are off (``max_retries=0``): pymai retries 429 and 5xx answers and
connection failures itself, with backoff, honouring a server's ``Retry-After`` (or
``retry-after-ms``), and never past the deadline in force, so that each attempt is logged and
bounded by the run's deadline. The API key is kept out of ``repr``, errors, logs and spans.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import time
from typing import TYPE_CHECKING, Any, Self

import anyio

from mai._config import Backoff
from mai._errors import MaiError

from ._errors import ModelAPIError, ModelConnectionError, ModelHTTPError
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
from ._model import ResponseDone, TextDelta, ToolCallDelta
from ._scripted import check_request_allowed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from ._messages import FinishReason, ModelMessage
    from ._model import ModelSettings, ModelStreamEvent, RequestParameters

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_FINISH = {"stop", "length", "tool_calls", "content_filter"}


class MissingDependencyError(MaiError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


def _openai() -> Any:
    try:
        import openai  # noqa: PLC0415 - optional dependency, loaded on first use
    except ImportError:
        raise MissingDependencyError(
            "the OpenAI-compatible model needs the 'openai' package: pip install 'pymai[agents]'"
        ) from None
    return openai


def retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds a server asked to wait: ``retry-after-ms``, or ``Retry-After`` (seconds or date).

    Returns:
        The delay, or ``None`` when the headers say nothing usable.
    """
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        with contextlib.suppress(ValueError):
            return max(float(ms) / 1000.0, 0.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


class OpenAIModel:
    """A chat model behind any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, ...).

    Example::

        model = OpenAIModel("gpt-4o-mini")          # key and URL from the environment
        agent = mai.Agent(model)                     # or simply mai.Agent("openai:gpt-4o-mini")

    Args:
        model_name: The model to ask for.
        base_url: The endpoint (default: ``OPENAI_BASE_URL``, else OpenAI's).
        api_key: The key (default: ``OPENAI_API_KEY``; a local server may need none). It never
            appears in ``repr``, errors, logs or spans.
        max_retries: Retries of a 429/5xx answer or a connection failure (pymai's, not the
            client's; each waits per ``Retry-After`` or ``backoff``, within the deadline).
        backoff: Delays between retries when the server does not say.
        timeout: Seconds allowed for one HTTP attempt (the run's deadline bounds it as well).
        provider: The provider name reported in spans (``gen_ai.provider.name``).
        stream_usage: Ask for token usage at the end of a stream (``stream_options``); turn
            it off for a server that rejects the option.

    Connections are kept open between requests; close them with ``await model.aclose()`` or
    use the model as ``async with OpenAIModel(...) as model:`` (an event loop's open
    connections cannot be reused by another event loop).

    Raises:
        MissingDependencyError: When the ``openai`` package is not installed (an
            ``ImportError`` naming ``pip install 'pymai[agents]'``).
    """

    def __init__(
        self,
        model_name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_retries: int = 4,
        backoff: Backoff | None = None,
        timeout: float = 600.0,
        provider: str = "openai",
        stream_usage: bool = True,
    ) -> None:
        """Configure the model; nothing is contacted until the first request."""
        _openai()
        self._model_name = model_name
        url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.__url = url
        from mai.core.durable import redact_url  # noqa: PLC0415 - one redaction, shared

        #: The endpoint, as shown in errors, logs and ``repr`` (a password in it is masked).
        self.base_url = redact_url(url)
        self.__key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.max_retries = max_retries
        self.backoff = backoff or Backoff(initial=0.5, factor=2.0, max=20.0, jitter=0.1)
        self.timeout = timeout
        self._provider = provider
        self.stream_usage = stream_usage
        self._client: Any = None

    @property
    def model_name(self) -> str:
        """The model asked for."""
        return self._model_name

    @property
    def provider(self) -> str:
        """The provider's name for traces."""
        return self._provider

    def __repr__(self) -> str:
        """Return ``<OpenAIModel name at base_url>`` (never the key)."""
        return f"<OpenAIModel {self._model_name!r} at {self.base_url}>"

    async def aclose(self) -> None:
        """Close the HTTP connections kept open between requests (a later request reopens)."""
        client, self._client = self._client, None
        if client is not None:
            with anyio.CancelScope(shield=True):
                await client.close()

    async def __aenter__(self) -> Self:
        """Use the model in ``async with``: its connections are closed at the end."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the connections."""
        await self.aclose()

    def _client_for(self) -> Any:
        client = self._client
        if client is None:
            openai = _openai()
            client = self._client = openai.AsyncOpenAI(
                api_key=self.__key or "no-key",
                base_url=self.__url,
                max_retries=0,
                timeout=self.timeout,
            )
        return client

    # -- requests ------------------------------------------------------------------------------

    def _body(
        self, messages: Sequence[ModelMessage], settings: ModelSettings, params: RequestParameters
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self._model_name, "messages": to_openai(messages)}
        tools = [_tool(t) for t in params.all_tools]
        if tools:
            body["tools"] = tools
            if settings.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = settings.parallel_tool_calls
        choice = settings.tool_choice
        if choice is not None and tools:
            body["tool_choice"] = (
                choice
                if choice in ("auto", "none", "required")
                else {"type": "function", "function": {"name": choice}}
            )
        if params.output_mode == "native" and params.output_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": params.output_name, "schema": params.output_schema},
            }
        body.update(
            (key, value)
            for key, value in (
                ("temperature", settings.temperature),
                ("max_tokens", settings.max_tokens),
                ("seed", settings.seed),
                ("top_p", settings.top_p),
            )
            if value is not None
        )
        if settings.stop_sequences:
            body["stop"] = list(settings.stop_sequences)
        if settings.extra_body:
            body["extra_body"] = settings.extra_body
        return body

    async def request(
        self,
        messages: Sequence[ModelMessage],
        settings: ModelSettings,
        params: RequestParameters,
    ) -> ModelResponse:
        """Send one chat completion request (retrying 429/5xx within the deadline)."""
        body = self._body(messages, settings, params)
        completion = await self._attempts(body)
        return self._response(completion)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        messages: Sequence[ModelMessage],
        settings: ModelSettings,
        params: RequestParameters,
    ) -> AsyncIterator[AsyncIterator[ModelStreamEvent]]:
        """Stream one chat completion; leaving the block closes the HTTP stream at once."""
        body = self._body(messages, settings, params)
        body["stream"] = True
        if self.stream_usage:
            body["stream_options"] = {"include_usage": True}
        manager, response = await self._attempts(body, streaming=True)
        try:
            yield self._events(response)
        finally:
            with anyio.CancelScope(shield=True):
                await manager.__aexit__(None, None, None)

    async def _attempts(self, body: dict[str, Any], *, streaming: bool = False) -> Any:
        check_request_allowed(self._model_name, self.__url)
        openai = _openai()
        client = self._client_for()
        attempt = 0
        while True:
            try:
                if not streaming:
                    return await client.chat.completions.create(**body)
                # The raw response: its SSE lines are read here, so no generator of the client
                # library is left half-consumed when the stream is cut.
                manager = client.chat.completions.with_streaming_response.create(**body)
                return manager, await manager.__aenter__()
            except openai.APIStatusError as exc:
                status = exc.status_code
                retryable = status == 429 or status >= 500
                headers = exc.response.headers if exc.response is not None else None
                error: ModelAPIError = ModelHTTPError(
                    f"model {self._model_name!r} at {self.base_url} answered HTTP {status}: "
                    f"{_short(exc)}",
                    status_code=status,
                    body=_short(exc),
                    model_name=self._model_name,
                    base_url=self.base_url,
                )
                wait = retry_after(headers) if retryable else None
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                retryable = True
                error = ModelConnectionError(
                    f"cannot reach model {self._model_name!r} at {self.base_url}: {_cause(exc)}",
                    model_name=self._model_name,
                    base_url=self.base_url,
                )
                wait = None
            if not retryable or attempt >= self.max_retries:
                if attempt:
                    error.add_note(f"mai: gave up after {attempt + 1} attempts")
                raise error from None
            attempt += 1
            delay = self.backoff.delay(attempt) if wait is None else wait
            remaining = anyio.current_effective_deadline() - anyio.current_time()
            if delay >= remaining:
                error.add_note(
                    f"mai: not retried: the next attempt would start after the deadline "
                    f"(wait {delay:g}s, {max(remaining, 0):.3g}s left)"
                )
                raise error from None
            _log().warning(
                "mai.model_retry",
                model=self._model_name,
                base_url=self.base_url,
                attempt=attempt,
                delay=delay,
                error=str(error),
            )
            await anyio.sleep(delay)

    # -- responses -----------------------------------------------------------------------------

    def _response(self, completion: Any) -> ModelResponse:
        choice = completion.choices[0]
        message = choice.message
        parts: list[TextPart | ToolCall] = []
        if message.content:
            parts.append(TextPart(content=message.content))
        for tc in message.tool_calls or ():
            fn = tc.function
            parts.append(ToolCall(tool_name=fn.name, args=fn.arguments or "{}", tool_call_id=tc.id))
        return ModelResponse(
            parts=tuple(parts),
            usage=_usage(completion.usage),
            model_name=completion.model or self._model_name,
            provider=self._provider,
            finish_reason=_finish(choice.finish_reason),
            response_id=completion.id,
        )

    async def _events(self, response: Any) -> AsyncIterator[ModelStreamEvent]:
        text: list[str] = []
        calls: dict[int, list[str]] = {}  # index -> [id, name, args]
        usage = Usage(requests=1)
        finish: str | None = None
        model_name = self._model_name
        response_id: str | None = None
        lines = response.http_response.aiter_lines()
        async with contextlib.aclosing(lines):
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue  # read on to the end of the body: nothing is left half-read
                chunk = json.loads(data)
                response_id = response_id or chunk.get("id")
                model_name = chunk.get("model") or model_name
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"])
                for choice in chunk.get("choices") or ():
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                    delta = choice.get("delta") or {}
                    content = delta.get("content")
                    if content:
                        text.append(content)
                        yield TextDelta(content)
                    for tc in delta.get("tool_calls") or ():
                        index = int(tc.get("index", 0))
                        entry = calls.setdefault(index, ["", "", ""])
                        fn = tc.get("function") or {}
                        name = fn.get("name") or None
                        args = fn.get("arguments") or ""
                        if tc.get("id"):
                            entry[0] = tc["id"]
                        if name:
                            entry[1] = name
                        entry[2] += args
                        yield ToolCallDelta(index, name, args, tc.get("id"))
        parts: list[TextPart | ToolCall] = []
        if text:
            parts.append(TextPart(content="".join(text)))
        for index in sorted(calls):
            cid, name, args = calls[index]
            parts.append(
                ToolCall(tool_name=name, args=args or "{}", tool_call_id=cid or f"call_{index}")
            )
        yield ResponseDone(
            ModelResponse(
                parts=tuple(parts),
                usage=usage,
                model_name=model_name,
                provider=self._provider,
                finish_reason=_finish(finish),
                response_id=response_id,
            )
        )


def to_openai(messages: Sequence[ModelMessage]) -> list[dict[str, Any]]:
    """Convert pymai messages to OpenAI chat messages."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, ModelRequest):
            for p in m.parts:
                if isinstance(p, SystemPrompt):
                    out.append({"role": "system", "content": p.content})
                elif isinstance(p, UserPrompt):
                    out.append({"role": "user", "content": p.content})
                elif isinstance(p, ToolReturn):
                    out.append(
                        {
                            "role": "tool",
                            "tool_call_id": p.tool_call_id,
                            "content": p.content_text(),
                        }
                    )
                elif isinstance(p, RetryPrompt):
                    if p.tool_call_id is not None:
                        out.append(
                            {"role": "tool", "tool_call_id": p.tool_call_id, "content": p.text()}
                        )
                    else:
                        out.append({"role": "user", "content": p.text()})
        else:
            msg: dict[str, Any] = {"role": "assistant", "content": m.text}
            calls = [
                {
                    "id": c.tool_call_id,
                    "type": "function",
                    "function": {"name": c.tool_name, "arguments": c.args_json()},
                }
                for c in m.tool_calls
            ]
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
    return out


def _tool(t: Any) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name, "parameters": t.parameters}
    if t.description:
        fn["description"] = t.description
    if t.strict:
        fn["strict"] = True
    return {"type": "function", "function": fn}


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _usage(u: Any) -> Usage:
    """Usage from an OpenAI usage object or dict (streamed chunks are plain dicts)."""
    if u is None:
        return Usage(requests=1)
    return Usage(
        requests=1,
        input_tokens=_get(u, "prompt_tokens") or 0,
        output_tokens=_get(u, "completion_tokens") or 0,
        cache_read_tokens=_get(_get(u, "prompt_tokens_details"), "cached_tokens") or 0,
        reasoning_tokens=_get(_get(u, "completion_tokens_details"), "reasoning_tokens") or 0,
    )


def _finish(reason: str | None) -> FinishReason | None:
    if reason is None:
        return None
    if reason == "function_call":
        return "tool_calls"
    return reason if reason in _FINISH else "error"  # type: ignore[return-value]


def _short(exc: Any) -> str:
    body = getattr(exc, "body", None)
    text = str(body if body is not None else exc)
    text = " ".join(text.split())
    return text[:300]


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    text = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
    return " ".join(text.split())[:300]


def _log() -> Any:
    import structlog  # noqa: PLC0415 - only retries log

    return structlog.get_logger("mai")
