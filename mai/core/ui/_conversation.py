"""An agent's conversation, read back from a durable run's recorded steps.

An agent records each model request as a step (``model_request``) whose input is
``{"args": [turn, request]}`` with ``request`` a ``ModelRequest`` (``{"kind": "request", "parts":
[...]}``) and whose output is the ``ModelResponse`` (``{"kind": "response", "parts": [...],
"usage": {...}}``); tool calls are child steps of the agent and their results come back in the
next request's ``tool-return`` parts. The shapes are recognised here from the JSON alone, so the
view needs no import of the agent layer and shows nothing for a run without model steps.

A tool call that needs a person's approval records an ``approval_request`` step (input ``{"args":
[topic, tool_name, arguments]}``, output the topic) followed by the durable wait that receives the
decision (an ``event`` step whose output is ``{"payload": decision}``); each is shown after the
turn that asked for the call, with the decision, or as pending (the page then offers to decide).

Every recorded model step was billed once, when it was recorded; a step recorded by another
process than the run's latest owner was replayed from the record by the later attempt (not asked
again, not billed again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mai.core.durable import StepInfo

_USAGE = ("input_tokens", "output_tokens", "requests", "tool_calls")


def _request_of(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    for arg in [*value.get("args", []), *value.get("kwargs", {}).values()]:
        if isinstance(arg, dict) and arg.get("kind") == "request" and "parts" in arg:
            return arg
    return None


def _is_response(value: Any) -> bool:
    return isinstance(value, dict) and value.get("kind") == "response" and "parts" in value


def _request_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in request.get("parts", []):
        if not isinstance(part, dict):
            continue
        kind = part.get("kind")
        if kind in {"system", "user"}:
            out.append({"role": kind, "text": str(part.get("content", ""))})
        elif kind == "tool-return":
            out.append(
                {
                    "role": "tool",
                    "tool_name": part.get("tool_name"),
                    "tool_call_id": part.get("tool_call_id"),
                    "content": part.get("content"),
                    "error": bool(part.get("error")),
                }
            )
        elif kind == "retry-prompt":
            out.append(
                {
                    "role": "retry",
                    "text": str(part.get("content", "")),
                    "tool_name": part.get("tool_name"),
                }
            )
    return out


def _response_messages(response: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in response.get("parts", []):
        if not isinstance(part, dict):
            continue
        if part.get("kind") == "text":
            out.append({"role": "assistant", "text": str(part.get("content", ""))})
        elif part.get("kind") == "tool-call":
            out.append(
                {
                    "role": "tool-call",
                    "tool_name": part.get("tool_name"),
                    "tool_call_id": part.get("tool_call_id"),
                    "args": part.get("args"),
                }
            )
    return out


def _approval_of(step: StepInfo) -> dict[str, Any] | None:
    if step.name != "approval_request" or not isinstance(step.input, dict):
        return None
    args = step.input.get("args")
    if not (isinstance(args, list) and len(args) >= 3 and isinstance(args[0], str)):
        return None
    return {
        "step_id": step.step_id,
        "topic": args[0],
        "tool_name": args[1],
        "args": args[2],
        "decided": False,
        "decision": None,
    }


def conversation(steps: Iterable[StepInfo], owner: str | None) -> dict[str, Any] | None:
    """The chat of the agent steps among ``steps`` (``None`` when there is none).

    Returns ``{"turns": [...], "usage": {...}}``: one turn per model step with the messages the
    agent sent (``request``), those the model answered (``response``), its usage, model name,
    whether it was replayed, the approvals asked after it (``approvals``: topic, tool,
    arguments, ``decided`` and ``decision``) and the durable waits recorded between turns.
    """
    turns: list[dict[str, Any]] = []
    total = dict.fromkeys(_USAGE, 0)
    replayed = dict.fromkeys(("input_tokens", "output_tokens"), 0)
    waits: list[dict[str, Any]] = []
    asked: dict[str, Any] | None = None  # the approval whose decision is the next event step
    for step in steps:
        approval = _approval_of(step)
        if approval is not None:
            if turns:
                turns[-1]["approvals"].append(approval)
            asked = approval
            continue
        request = _request_of(step.input)
        if request is not None and _is_response(step.output):
            response = step.output
            usage = response.get("usage") or {}
            figures = {k: int(usage.get(k, 0) or 0) for k in _USAGE}
            again = owner is not None and step.worker is not None and step.worker != owner
            for k in _USAGE:
                total[k] += figures[k]
            if again:
                replayed["input_tokens"] += figures["input_tokens"]
                replayed["output_tokens"] += figures["output_tokens"]
            turns.append(
                {
                    "step_id": step.step_id,
                    "waits": waits,
                    "request": _request_messages(request),
                    "response": _response_messages(response),
                    "usage": figures,
                    "model_name": response.get("model_name"),
                    "finish_reason": response.get("finish_reason"),
                    "replayed": again,
                    "worker": step.worker,
                    "approvals": [],
                }
            )
            waits = []
        elif turns and step.kind == "event":
            if asked is not None:
                asked["decided"] = True
                out = step.output
                asked["decision"] = out.get("payload") if isinstance(out, dict) else out
                asked = None
            waits.append({"step_id": step.step_id, "input": step.input, "output": step.output})
    if not turns:
        return None
    return {"turns": turns, "trailing_waits": waits, "usage": total, "replayed": replayed}
