"""An agent's output: its type, how the model is asked for it, and how it is validated.

Three modes for a structured ``output_type`` (anything but ``str``):

* ``"tool"`` (default): a final-result tool whose arguments are the output;
* ``"native"``: the provider's JSON Schema response format (``response_format``);
* ``"prompted"``: the schema is put in the instructions and the text answer parsed as JSON.

A value that does not fit, or an output validator raising :class:`~mai.ModelRetry`, goes back to
the model as a retry prompt naming the field.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from mai._casting import make_type_adapter, type_name
from mai._errors import ModelRetry

from ._model import RequestParameters
from ._tools import ToolDefinition

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

OutputModeName = Literal["tool", "native", "prompted"]
OUTPUT_TOOL = "final_result"


class OutputRejected(Exception):
    """Internal: the output did not validate; ``str(exc)`` is the retry prompt."""


def _errors_text(exc: ValidationError, *, strip: str | None = None) -> str:
    lines = []
    for e in exc.errors(include_url=False):
        loc = [str(p) for p in e["loc"]]
        if strip is not None and loc[:1] == [strip]:
            loc = loc[1:]
        lines.append(f"{'.'.join(loc) or '(output)'}: {e['msg']}")
    return "; ".join(lines)


class OutputSpec:
    """How one agent asks for, parses and validates its output."""

    __slots__ = (
        "adapter",
        "is_text",
        "mode",
        "output_type",
        "params_template",
        "schema",
        "tool_def",
        "validators",
        "wrapped",
    )

    def __init__(
        self,
        output_type: Any,
        mode: OutputModeName,
        validators: Sequence[Callable[..., Any]],
    ) -> None:
        """Prepare the schema and the adapter once per agent."""
        if mode not in ("tool", "native", "prompted"):
            raise ValueError(
                f"output_mode= expects 'tool', 'native' or 'prompted', received {mode!r}"
            )
        self.output_type = output_type
        self.is_text = output_type is str
        self.mode: Literal["text", "tool", "native", "prompted"] = "text" if self.is_text else mode
        self.validators = tuple(validators)
        self.adapter: TypeAdapter[Any] | None = None
        self.schema: dict[str, Any] | None = None
        self.tool_def: ToolDefinition | None = None
        self.wrapped = False
        if not self.is_text:
            self.adapter = make_type_adapter(output_type)
            schema = self.adapter.json_schema()
            self.schema = schema
            is_object = isinstance(output_type, type) and issubclass(output_type, BaseModel)
            self.wrapped = not is_object
            params = (
                {"type": "object", "properties": {"response": schema}, "required": ["response"]}
                if self.wrapped
                else schema
            )
            self.tool_def = ToolDefinition(
                OUTPUT_TOOL,
                "The final response which ends this conversation",
                params,
                kind="output",
            )
        self.params_template = RequestParameters(
            output_tools=(self.tool_def,) if self.mode == "tool" and self.tool_def else (),
            output_mode=self.mode,
            output_schema=self.schema if self.mode in ("native", "prompted") else None,
            output_name=getattr(output_type, "__name__", "output"),
            allow_text=self.mode != "tool",
        )

    def parameters(self, tools: tuple[ToolDefinition, ...]) -> RequestParameters:
        """The request parameters for these function tools."""
        t = self.params_template
        return RequestParameters(
            tools, t.output_tools, t.output_mode, t.output_schema, t.output_name, t.allow_text
        )

    def instructions(self) -> str | None:
        """Extra instructions for the prompted mode (the schema), else ``None``."""
        if self.mode != "prompted":
            return None
        return (
            "Always respond with a JSON object (no other text) that matches this JSON Schema:\n"
            + json.dumps(self.schema)
        )

    def from_text(self, text: str) -> Any:
        """Parse a text answer (text, native and prompted modes).

        Raises:
            OutputRejected: When it does not fit; the message names the fields.
        """
        if self.is_text:
            return text
        assert self.adapter is not None  # noqa: S101 - set for every structured output
        body = text.strip()
        if body.startswith("```"):
            body = body.strip("`").removeprefix("json").strip()
        try:
            return self.adapter.validate_json(body)
        except ValidationError as exc:
            raise OutputRejected(
                f"the answer is not a valid {type_name(self.output_type)}: {_errors_text(exc)}"
            ) from None

    def from_tool_args(self, args: str | dict[str, Any]) -> Any:
        """Parse the final-result tool's arguments.

        Raises:
            OutputRejected: When they do not fit; the message names the fields.
        """
        assert self.adapter is not None  # noqa: S101 - tool mode implies a structured output
        try:
            data = json.loads(args) if isinstance(args, str) else args
        except ValueError as exc:
            raise OutputRejected(f"the arguments are not JSON: {exc}") from None
        if self.wrapped:
            if not isinstance(data, dict) or "response" not in data:
                raise OutputRejected("response: Field required")
            data = data["response"]
        try:
            return self.adapter.validate_python(data)
        except ValidationError as exc:
            prefix = "response." if self.wrapped else ""
            raise OutputRejected(prefix + _errors_text(exc)) from None

    async def validate(self, value: Any) -> Any:
        """Run the output validators in order.

        Raises:
            OutputRejected: When a validator raises :class:`~mai.ModelRetry`.
        """
        for fn in self.validators:
            try:
                out = fn(value)
                if inspect.isawaitable(out):
                    out = await out
            except ModelRetry as exc:
                raise OutputRejected(str(exc)) from None
            if out is not None:
                value = out
        return value

    def partial(self, args_text: str) -> Any:
        """Best-effort partial output from streamed JSON text (``None`` when nothing yet)."""
        from pydantic_core import from_json  # noqa: PLC0415

        try:
            data = from_json(args_text, allow_partial=True)
        except ValueError:
            return None
        if self.wrapped:
            return data.get("response") if isinstance(data, dict) else None
        if self.adapter is not None:
            try:
                return self.adapter.validate_python(data, experimental_allow_partial=True)
            except (ValidationError, TypeError):  # TypeError: a pydantic without partial mode
                return data
        return data
