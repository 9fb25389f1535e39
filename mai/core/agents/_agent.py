"""The agent: a module that loops over model requests and tool calls.

Each model request is a call of the agent's internal ``model_request`` module and each tool call
a call of the tool's module, both children of the agent's call: inside a durable run they are
steps with deterministic ids, like any module call. The request step's input is the turn
number and the new request only (the history lives in the agent's run state), so what a
durable run records per turn does not grow with the conversation.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
from pydantic_core import to_jsonable_python

from mai._composites import Composite
from mai._context import current_frame
from mai._errors import ConfigError, ModelRetry
from mai.core.tracing._otel import span_hint

from . import _genai as genai
from ._errors import OutputRetriesExceeded, ToolArgumentsError, ToolRetriesExceeded
from ._limits import UsageLimits
from ._messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPrompt,
    SystemPrompt,
    ToolCall,
    ToolReturn,
    UserPrompt,
    construct,
    validate_history,
)
from ._model import Model, ModelSettings, ResponseDone, resolve_model
from ._output import OUTPUT_TOOL, OutputModeName, OutputRejected, OutputSpec
from ._run import (
    AgentRun,
    AgentRunResult,
    Invocation,
    ModelStep,
    chat_hint,
    current_run,
    invocation,
)
from ._stream import AgentEvent, AgentStream, FinalOutput, ToolCallFinished
from ._stream import ToolCallStarted as _Started
from ._tools import Tool, as_tool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence

    from anyio.streams.memory import MemoryObjectSendStream

    from mai._module import Module

OutputT = TypeVar("OutputT")

_EMPTY_SETTINGS = ModelSettings()
_DEFAULT_LIMITS = UsageLimits()


class Agent(Composite, Generic[OutputT]):
    """An agent: a module that asks a model, runs the tools it calls, and returns typed output.

    It composes like any module (``>>``, ``Map``, ``Parallel``, graphs, a tool of another
    agent) and runs under the caller's deadline. ``await agent(prompt)`` returns the output;
    ``await agent.run(prompt)`` returns an :class:`AgentRunResult` (output, new messages,
    usage); ``async with agent.stream(prompt) as events`` streams the run.

    Args:
        model: A :class:`~mai.agents.Model` or a ``"provider:model"`` string (resolved on the
            first run); it can also be given per call.
        instructions: The system prompt (sent first when the history has none).
        tools: Modules, functions or :class:`~mai.Tool` objects the model may call.
        output_type: The output's type (``str``: the model's text).
        output_mode: How a structured output is asked for: ``"tool"`` (a final-result tool),
            ``"native"`` (the provider's JSON Schema response format) or ``"prompted"``.
        output_validators: Functions (sync or async) of the output that return it (possibly
            changed) or raise :class:`~mai.ModelRetry`.
        output_retries: Retry prompts allowed for output that does not validate.
        tool_retries: Consecutive retry prompts each tool may send (unless the tool sets its
            own ``max_retries``).
        model_settings: Default settings for every request (a call's settings win).
        usage_limits: Default limits of a run.
        name: The module's name (step ids, traces, ``gen_ai.agent.name``).
        description: What the agent does, when it is a tool of another agent.
        **config: Framework keys (``timeout``, ``retries``, ...).

    Raises:
        ConfigError: For a tool name used twice (or clashing with the final-result tool).
    """

    def __init__(
        self,
        model: Model | str | None = None,
        *,
        instructions: str | None = None,
        tools: Sequence[Tool | Module[..., Any] | Callable[..., Any]] = (),
        output_type: type[OutputT] | Any = str,
        output_mode: OutputModeName = "tool",
        output_validators: Sequence[Callable[..., Any]] = (),
        output_retries: int = 1,
        tool_retries: int = 1,
        model_settings: ModelSettings | None = None,
        usage_limits: UsageLimits | None = None,
        name: str = "agent",
        description: str | None = None,
        **config: Any,
    ) -> None:
        """Configure the agent (nothing is contacted until the first run)."""
        super().__init__(name, **config)
        self._model_spec = model
        self._model: Model | None = None if model is None or isinstance(model, str) else model
        if self._model is not None:
            resolve_model(self._model)
        self.instructions = instructions
        self.description = description
        self._output = OutputSpec(output_type, output_mode, output_validators)
        self.output_retries = output_retries
        self.tool_retries = tool_retries
        self.model_settings = model_settings or _EMPTY_SETTINGS
        self.usage_limits = usage_limits or _DEFAULT_LIMITS
        self._tools: dict[str, Tool] = {}
        for t in tools:
            tl = as_tool(t)
            if tl.name in self._tools or tl.name == OUTPUT_TOOL:
                raise ConfigError(
                    f"agent {name!r}: two tools are named {tl.name!r}; give one another name "
                    f"with mai.tool(..., name=...)",
                    module_name=name,
                )
            self._tools[tl.name] = tl
        self._definitions = tuple(t.definition for t in self._tools.values())
        self._params = self._output.parameters(self._definitions)
        self._step_module = ModelStep(name="model_request")

    # -- module surface ------------------------------------------------------------------------

    @property
    def tools(self) -> tuple[Tool, ...]:
        """The tools, in the order given."""
        return tuple(self._tools.values())

    @property
    def output_type(self) -> Any:
        """The output's type."""
        return self._output.output_type

    @property
    def payload(self) -> Any:
        """Input ``prompt: str``, output :attr:`output_type` (what a calling agent sees)."""
        from mai._casting import Payload  # noqa: PLC0415

        p = self._payload
        if p is None:
            import inspect  # noqa: PLC0415

            p = self._payload = Payload(
                self.name, {"prompt": (str, inspect.Parameter.empty)}, self.output_type
            )
        return p

    def children(self) -> tuple[Module[..., Any], ...]:
        """The model-request module and the tools' modules."""
        return (self._step_module, *(t.module for t in self._tools.values()))

    @property
    def model(self) -> Model:
        """The agent's model (a model string is resolved on first use).

        Raises:
            ConfigError: When the agent was made without a model.
        """
        return self._resolved_model(None)

    def _resolved_model(self, override: Model | str | None) -> Model:
        if override is not None:
            return resolve_model(override)
        m = self._model
        if m is None:
            if self._model_spec is None:
                raise ConfigError(
                    f"agent {self.name!r} has no model: pass one to mai.Agent(model) or to the "
                    "call (model=...)",
                    module_name=self.name,
                )
            m = self._model = resolve_model(self._model_spec)
        return m

    # -- running -------------------------------------------------------------------------------

    async def forward(
        self,
        prompt: str | Sequence[Any] | None = None,
        *,
        message_history: Sequence[Any] | None = None,
        deps: Mapping[str, Any] | None = None,
        model: Model | str | None = None,
        model_settings: ModelSettings | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> Any:
        """Run the agent on a prompt (and/or a history); return the validated output."""
        inv = invocation.get()
        inv_token = invocation.set(None) if inv is not None else None
        try:
            return await self._forward(
                inv, prompt, message_history, deps, model, model_settings, usage_limits
            )
        finally:
            if inv_token is not None:
                invocation.reset(inv_token)

    async def _forward(
        self,
        inv: Invocation | None,
        prompt: str | Sequence[Any] | None,
        message_history: Sequence[Any] | None,
        deps: Mapping[str, Any] | None,
        model_override: Model | str | None,
        settings: ModelSettings | None,
        limits: UsageLimits | None,
    ) -> Any:
        model = self._resolved_model(model_override)
        history: list[ModelMessage] = []
        if message_history:
            history = validate_history(list(message_history))
        if prompt is not None and not isinstance(prompt, str):
            history = [*history, *validate_history(list(prompt))]
            prompt = None
        start = len(history)
        parts: list[Any] = []
        if not any(isinstance(p, SystemPrompt) for m in history[:1] for p in m.parts):
            instructions = self.instructions
            extra = self._output.instructions()
            if extra is not None:
                instructions = f"{instructions}\n\n{extra}" if instructions else extra
            if instructions:
                parts.append(SystemPrompt(content=instructions))
        if prompt is not None:
            parts.append(construct(UserPrompt, content=prompt))
        if not parts and history and isinstance(history[-1], ModelRequest):
            request = history[-1]  # the history already ends with the request to answer
        else:
            if not parts:
                raise ConfigError(
                    f"agent {self.name!r} was called without a prompt or a history ending "
                    "with a request",
                    module_name=self.name,
                )
            request = construct(ModelRequest, parts=tuple(parts))
            history.append(request)
        parent = current_run.get()
        if deps is None and parent is not None:
            deps = parent.deps  # a sub-agent called as a tool shares its caller's dependencies
        run = AgentRun(
            self,
            model,
            history,
            self.model_settings.merge(settings),
            self._params,
            limits or self.usage_limits,
            deps,
            inv.send if inv is not None else None,
        )
        span = current_frame.get().span
        if span is not None:
            span.update_name(f"{genai.OP_AGENT} {self.name}")
            span.set_attributes(
                {
                    genai.OPERATION: genai.OP_AGENT,
                    genai.AGENT_NAME: self.name,
                    genai.PROVIDER: model.provider,
                    genai.REQUEST_MODEL: model.model_name,
                }
            )
        token = current_run.set(run)
        try:
            output = await self._loop(run, request)
        finally:
            current_run.reset(token)
            if parent is not None:
                parent.usage.add(run.usage)
        if span is not None:
            span.set_attributes(
                {
                    genai.INPUT_TOKENS: run.usage.input_tokens,
                    genai.OUTPUT_TOKENS: run.usage.output_tokens,
                }
            )
        if inv is not None:
            inv.result = AgentRunResult(output, history[start:], history, run.usage)
        return output

    async def _loop(self, run: AgentRun, request: ModelRequest) -> Any:
        step = self._step_module
        limits = run.limits
        name = self.name
        traced = current_frame.get().span is not None  # OpenTelemetry is on for this run
        while True:
            run.turn += 1
            limits.check_before_request(run.usage, name)
            if traced:
                hint = span_hint.set(chat_hint(run))
                try:
                    response = await step(run.turn, request)
                finally:
                    span_hint.reset(hint)
            else:
                response = await step(run.turn, request)
            run.history.append(response)
            run.usage.add(response.usage)
            limits.check_tokens(run.usage, name)
            send = run.send
            if send is not None:
                await send.send(ResponseDone(response))
            done, value = await self._handle(run, response)
            if done:
                if send is not None:
                    await send.send(FinalOutput(value))
                return value
            request = construct(ModelRequest, parts=tuple(value))
            run.history.append(request)

    async def _handle(self, run: AgentRun, response: ModelResponse) -> tuple[bool, Any]:
        """Return ``(True, output)`` or ``(False, parts of the next request)``."""
        spec = self._output
        calls = response.tool_calls
        if not calls:
            if spec.mode == "tool":
                self._output_failed(run, "a plain text answer is not accepted")
                return False, [
                    RetryPrompt(
                        content="Plain text responses are not permitted, please include your "
                        f"response in a call of the {OUTPUT_TOOL!r} tool"
                    )
                ]
            text = response.text
            try:
                if not text and spec.is_text:
                    raise OutputRejected("the answer was empty")  # noqa: TRY301 - one handler
                value = await spec.validate(spec.from_text(text))
            except OutputRejected as exc:
                self._output_failed(run, str(exc))
                return False, [RetryPrompt(content=str(exc))]
            return True, value
        parts: list[Any] = []
        function_calls: list[ToolCall] = []
        output_retry: RetryPrompt | None = None
        for c in calls:
            if c.tool_name == OUTPUT_TOOL and spec.mode == "tool":
                if output_retry is not None:
                    continue
                try:
                    value = await spec.validate(spec.from_tool_args(c.args))
                except OutputRejected as exc:
                    self._output_failed(run, str(exc))
                    output_retry = RetryPrompt(
                        content=str(exc), tool_name=OUTPUT_TOOL, tool_call_id=c.tool_call_id
                    )
                    continue
                return True, value
            function_calls.append(c)
        if function_calls:
            parts.extend(await self._run_tools(run, function_calls))
        if output_retry is not None:
            parts.append(output_retry)
        if output_retry is not None:  # a second final-result call gets an answer too
            parts.extend(
                RetryPrompt(
                    content="only one final result is accepted",
                    tool_name=OUTPUT_TOOL,
                    tool_call_id=c.tool_call_id,
                )
                for c in calls
                if c.tool_name == OUTPUT_TOOL and c.tool_call_id != output_retry.tool_call_id
            )
        return False, parts

    def _output_failed(self, run: AgentRun, why: str) -> None:
        run.output_failures += 1
        if run.output_failures > self.output_retries:
            raise OutputRetriesExceeded(
                f"agent {self.name!r}: the output of turn {run.turn} was rejected "
                f"{run.output_failures} times (output_retries={self.output_retries}): {why}",
                agent=self.name,
                turn=run.turn,
                max_retries=self.output_retries,
                last_error=why,
            )

    # -- tools ---------------------------------------------------------------------------------

    async def _run_tools(self, run: AgentRun, calls: list[ToolCall]) -> list[Any]:
        n = len(calls)
        slots: list[Any] = [None] * n
        ready: list[tuple[int, Tool, dict[str, Any]]] = []
        for i, c in enumerate(calls):
            t = self._tools.get(c.tool_name)
            if t is None:
                names = ", ".join(self._tools) or "none"
                slots[i] = RetryPrompt(
                    content=f"Unknown tool name: {c.tool_name!r}. Available tools: {names}",
                    tool_name=c.tool_name,
                    tool_call_id=c.tool_call_id,
                )
                continue
            try:
                ready.append((i, t, t.validate_args(c.args)))
            except ToolArgumentsError as exc:
                slots[i] = RetryPrompt(
                    content="\n".join(exc.errors),
                    tool_name=c.tool_name,
                    tool_call_id=c.tool_call_id,
                )
        if ready:
            run.limits.check_tool_calls(run.usage, len(ready), self.name)
            run.usage.tool_calls += len(ready)
            raised: list[BaseException | None] = [None] * n
            coros: list[Coroutine[Any, Any, Any]] = []
            try:
                for _, t, kwargs in ready:  # step ids fixed here, in the model's order
                    coros.append(t.call(kwargs, run.deps))
            except BaseException:
                for coro in coros:
                    coro.close()
                raise
            send = run.send
            if send is not None:
                for i, t, kwargs in ready:
                    await send.send(_Started(t.name, calls[i].tool_call_id, kwargs))
            if len(ready) == 1:
                i, t, _ = ready[0]
                await self._one(run, calls[i], t, coros[0], slots, raised, i)
            else:
                backend = current_frame.get().run.backend  # type: ignore[union-attr]
                async with backend.open_nursery() as nursery:
                    for (i, t, _), coro in zip(ready, coros, strict=True):
                        nursery.start_soon(
                            self._one, run, calls[i], t, coro, slots, raised, i, name=t.name
                        )
            for failure in raised:
                if failure is not None:
                    raise failure
        self._count_failures(run, calls, slots)
        return slots

    async def _one(
        self,
        run: AgentRun,
        c: ToolCall,
        t: Tool,
        coro: Coroutine[Any, Any, Any],
        slots: list[Any],
        raised: list[BaseException | None],
        i: int,
    ) -> None:
        """Run one tool call; its outcome goes to ``slots[i]`` (or ``raised[i]``)."""
        hint = None
        if current_frame.get().span is not None:
            attrs: dict[str, Any] = {
                genai.OPERATION: genai.OP_TOOL,
                genai.TOOL_NAME: t.name,
                genai.TOOL_CALL_ID: c.tool_call_id,
                genai.TOOL_TYPE: "function",
            }
            if genai.capture_content():
                attrs[genai.TOOL_ARGUMENTS] = c.args_json()
            hint = span_hint.set((f"{genai.OP_TOOL} {t.name}", attrs, "internal"))
        part: ToolReturn | RetryPrompt
        try:
            result = await coro
        except ModelRetry as exc:
            part = construct(
                RetryPrompt, content=str(exc), tool_name=t.name, tool_call_id=c.tool_call_id
            )
        except Exception as exc:
            if t.on_error == "raise":
                raised[i] = exc
                return
            part = ToolReturn(
                tool_name=t.name,
                tool_call_id=c.tool_call_id,
                content=f"{type(exc).__name__}: {exc}",
                error=True,
            )
        else:
            part = construct(
                ToolReturn,
                tool_name=t.name,
                tool_call_id=c.tool_call_id,
                content=to_jsonable_python(result, fallback=repr),
            )
        finally:
            if hint is not None:
                span_hint.reset(hint)
        slots[i] = part
        send = run.send
        if send is not None:
            await send.send(ToolCallFinished(t.name, c.tool_call_id, part))

    def _count_failures(self, run: AgentRun, calls: list[ToolCall], slots: list[Any]) -> None:
        failures = run.failures
        for c, part in zip(calls, slots, strict=True):
            name = c.tool_name
            if isinstance(part, RetryPrompt) or (isinstance(part, ToolReturn) and part.error):
                n = failures[name] = failures.get(name, 0) + 1
                t = self._tools.get(name)
                limit = t.max_retries if t is not None and t.max_retries is not None else None
                if limit is None:
                    limit = self.tool_retries
                if n > limit:
                    why = part.content if isinstance(part, RetryPrompt) else str(part.content)
                    raise ToolRetriesExceeded(
                        f"agent {self.name!r}: tool {name!r} failed {n} times in a row "
                        f"(max_retries={limit}) at turn {run.turn}: {why}",
                        agent=self.name,
                        tool_name=name,
                        max_retries=limit,
                        last_error=why,
                    )
            else:
                failures.pop(name, None)

    # -- run / stream --------------------------------------------------------------------------

    async def run(
        self,
        prompt: str | Sequence[Any] | None = None,
        *,
        message_history: Sequence[Any] | None = None,
        deps: Mapping[str, Any] | None = None,
        model: Model | str | None = None,
        model_settings: ModelSettings | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> AgentRunResult[OutputT]:
        """Run the agent like ``await agent(prompt)``; return output, new messages and usage.

        Args:
            prompt: The user's text, or a message history to continue.
            message_history: Earlier messages (e.g. ``result.all_messages`` of a previous run,
                or :func:`mai.agents.load_messages` of a saved one).
            deps: Run-scoped dependencies for tools' ``Dep[...]`` parameters, by name.
            model: A model for this run only.
            model_settings: Settings for this run (over the agent's).
            usage_limits: Limits for this run (instead of the agent's).

        Raises:
            HistoryError: When the history has the wrong shape (naming the message index).
            UsageLimitExceeded: When a limit is reached.
            ToolRetriesExceeded: When a tool's retry prompts ran out.
            OutputRetriesExceeded: When the output never validated.
        """
        inv = Invocation()
        token = invocation.set(inv)
        try:
            await self(
                prompt,
                message_history=message_history,
                deps=deps,
                model=model,
                model_settings=model_settings,
                usage_limits=usage_limits,
            )
        finally:
            invocation.reset(token)
        assert inv.result is not None  # noqa: S101 - forward always fills it
        return inv.result

    @contextlib.asynccontextmanager
    async def stream(
        self,
        prompt: str | Sequence[Any] | None = None,
        *,
        buffer: int = 16,
        message_history: Sequence[Any] | None = None,
        deps: Mapping[str, Any] | None = None,
        model: Model | str | None = None,
        model_settings: ModelSettings | None = None,
        usage_limits: UsageLimits | None = None,
    ) -> AsyncIterator[AgentStream[OutputT]]:
        """Run the agent in the background and stream its events.

        Example::

            async with agent.stream("Hello") as events:
                async for event in events:
                    ...

        Events (text and tool-call deltas, tool started/finished, partial structured output,
        each model response, the final output) go through a channel of ``buffer`` events: a
        slow reader slows the run down. Leaving the block early cancels the run, which closes
        the model's HTTP stream. The run's error, if any, is raised when the block exits.

        Args:
            prompt: See :meth:`run`.
            buffer: The channel's capacity, in events.
            message_history: See :meth:`run`.
            deps: See :meth:`run`.
            model: See :meth:`run`.
            model_settings: See :meth:`run`.
            usage_limits: See :meth:`run`.
        """
        send, receive = anyio.create_memory_object_stream[AgentEvent](max_buffer_size=buffer)
        stream: AgentStream[OutputT] = AgentStream(receive)
        kwargs = {
            "message_history": message_history,
            "deps": deps,
            "model": model,
            "model_settings": model_settings,
            "usage_limits": usage_limits,
        }
        try:
            async with receive, anyio.create_task_group() as tg:
                tg.start_soon(self._stream_run, send, stream, prompt, kwargs)
                try:
                    yield stream
                finally:
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    async def _stream_run(
        self,
        send: MemoryObjectSendStream[AgentEvent],
        stream: AgentStream[OutputT],
        prompt: Any,
        kwargs: dict[str, Any],
    ) -> None:
        async with send:
            inv = Invocation(send)
            token = invocation.set(inv)
            try:
                await self(prompt, **kwargs)
            finally:
                invocation.reset(token)
            stream.result = inv.result

    def __repr__(self) -> str:
        """Return ``<mai.Agent name>``."""
        return f"<mai.Agent {self.name!r}>"
