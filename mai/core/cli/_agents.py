"""What ``mai runs show`` / ``mai runs steps`` / ``mai trace`` say about the agents of a run.

Read from the recorded steps alone: each ``model_request`` step is a turn (its model, finish
reason, tokens and the tool calls it asked for), the steps beside it are its tool calls (with
arguments and results), and an ``approval_request`` step whose ``mai.wait_for`` step is not
recorded yet is a tool call waiting for a decision (with the command that gives it). Every
recorded turn was billed once, by the process that recorded it (``worker``); a resume replays
it without a request.
"""

from __future__ import annotations

import json
from typing import Any

_INTERNAL = {"model_request", "approval_request"}


def _parent(step_id: str) -> str:
    return step_id.rpartition(".")[0]


def _next_sibling(step_id: str) -> str:
    head, _, last = step_id.rpartition(".")
    return f"{head}.{int(last) + 1}" if head else str(int(last) + 1)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def agent_summary(steps: list[Any]) -> list[dict[str, Any]]:
    """The agent events of a run, in step order: turns, tool calls, pending approvals."""
    turns_of = {_parent(s.step_id) for s in steps if s.name == "model_request"}
    if not turns_of:
        return []
    ids = {s.step_id for s in steps}
    out: list[dict[str, Any]] = []
    for s in steps:
        parent = _parent(s.step_id)
        if parent not in turns_of:
            continue
        if s.name == "model_request":
            response = s.output if isinstance(s.output, dict) else {}
            usage = response.get("usage") or {}
            calls = [
                {"tool": p.get("tool_name"), "args": p.get("args")}
                for p in response.get("parts", ())
                if isinstance(p, dict) and p.get("kind") == "tool-call"
            ]
            args_in = (s.input or {}).get("args") or [None, None]
            turn = args_in[1] if len(args_in) > 1 else None
            out.append(
                {
                    "event": "turn",
                    "step_id": s.step_id,
                    "turn": turn,
                    "model": response.get("model_name"),
                    "provider": response.get("provider"),
                    "finish_reason": response.get("finish_reason"),
                    "input_tokens": usage.get("input_tokens", 0),
                    "output_tokens": usage.get("output_tokens", 0),
                    "billed_by": s.worker,
                    "tool_calls": calls,
                }
            )
        elif s.name == "approval_request":
            args = (s.input or {}).get("args", [None, None, None])
            waiting = _next_sibling(s.step_id) not in ids
            out.append(
                {
                    "event": "waiting for approval" if waiting else "approval requested",
                    "step_id": s.step_id,
                    "tool": args[1],
                    "args": args[2],
                    "topic": s.output,
                }
            )
        elif s.name == "mai.wait_for" and out and out[-1].get("topic") is not None:
            out[-1]["decision"] = s.output
        elif s.name not in _INTERNAL and not s.name.startswith("mai."):
            out.append(
                {
                    "event": "tool call",
                    "step_id": s.step_id,
                    "tool": s.name,
                    "args": s.input,
                    "result": s.output,
                }
            )
    return out


def render_agent_summary(run_id: str, steps: list[Any]) -> str:
    """The agent section of the CLI's text output ("" when the run has no agent)."""
    events = agent_summary(steps)
    if not events:
        return ""
    lines = ["agent turns (each recorded turn was billed once; a resume replays it):"]
    for e in events:
        if e["event"] == "turn":
            calls = ", ".join(f"{c['tool']}({_short(c['args'], 60)})" for c in e["tool_calls"])
            lines.append(
                f"  {e['step_id']:<10} turn {e['turn']}: {e['model']} ({e['provider']}) "
                f"tokens {e['input_tokens']}→{e['output_tokens']} billed by {e['billed_by']}, "
                f"{e['finish_reason']}" + (f"; calls {calls}" if calls else "")
            )
        elif e["event"] == "tool call":
            lines.append(
                f"  {e['step_id']:<10} tool {e['tool']} args {_short(e['args'])} "
                f"-> {_short(e['result'])}"
            )
        else:
            lines.append(
                f"  {e['step_id']:<10} {e['event']}: {e['tool']}({_short(e['args'])}) "
                f"on topic {e['topic']}"
                + (
                    f"; answer with: mai runs send {run_id} {e['topic']} '\"approve\"' "
                    '(or \'"deny"\', or \'{"approved": true, "args": {...}}\')'
                    if e["event"] == "waiting for approval"
                    else f"; decided {_short(e.get('decision'))}"
                )
            )
    return "\n".join(lines)
