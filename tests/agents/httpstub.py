"""A small real HTTP server for the OpenAI-compatible model's tests (127.0.0.1, Trio).

It answers each request with the next scripted reply: a JSON body with a status and headers,
or a server-sent-events stream (optionally slow). It records every request's JSON body and
headers, and notices when a client goes away in the middle of a stream.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import trio


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    sse: list[dict[str, Any]] | None = None
    delay: float = 0.0  # seconds between SSE events


def completion(text: str | None = None, tool_calls: list[dict[str, Any]] | None = None) -> Reply:
    """A chat.completion answer."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate((c["name"], c["args"]) for c in tool_calls)
        ]
    return Reply(
        body={
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "stub-model",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if tool_calls else "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        }
    )


def chunks(pieces: list[str], *, delay: float = 0.0) -> Reply:
    """A streamed answer: one content delta per piece, then usage."""
    events: list[dict[str, Any]] = [
        {
            "id": "cmpl-2",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "stub-model",
            "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}],
        }
        for p in pieces
    ]
    events.append(
        {
            "id": "cmpl-2",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "stub-model",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": len(pieces), "total_tokens": 9},
        }
    )
    return Reply(sse=events, delay=delay)


class Stub:
    """The server's state: the replies left, the requests seen."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.port = 0
        self.stream_cut = trio.Event()
        self.models: list[Any] = []  # clients to close when the test ends

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def handle(self, conn: trio.SocketStream) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = await conn.receive_some(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {
                    k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
                }
                length = int(headers.get("content-length", "0"))
                while len(buf) < length:
                    buf += await conn.receive_some(65536)
                body, buf = buf[:length], buf[length:]
                self.requests.append(json.loads(body) if body else {})
                self.headers.append(headers)
                reply = self.replies.pop(0) if self.replies else Reply(500, {"error": "no reply"})
                if reply.sse is not None:
                    await self._stream(conn, reply)
                    return
                payload = json.dumps(reply.body).encode()
                extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
                await conn.send_all(
                    f"HTTP/1.1 {reply.status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(payload)}\r\n{extra}\r\n".encode()
                    + payload
                )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def _stream(self, conn: trio.SocketStream, reply: Reply) -> None:
        await conn.send_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        )
        try:
            for event in reply.sse or ():
                if reply.delay:
                    await trio.sleep(reply.delay)
                await conn.send_all(f"data: {json.dumps(event)}\n\n".encode())
            await conn.send_all(b"data: [DONE]\n\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.stream_cut.set()
            return
        await conn.aclose()


async def start_stub(nursery: trio.Nursery, replies: list[Reply]) -> Stub:
    """Serve ``replies`` on a free port of 127.0.0.1 until the nursery is cancelled."""
    stub = Stub(replies)
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, stub.handle, 0, host="127.0.0.1")
    )
    stub.port = listeners[0].socket.getsockname()[1]
    return stub


def tool_chunks(name: str, pieces: list[str]) -> Reply:
    """A streamed tool call: the name and id first, then the arguments in pieces."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "cmpl-3",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "stub-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    first = {"index": 0, "id": "call_s", "type": "function", "function": {"name": name}}
    events = [chunk({"tool_calls": [first]})]
    events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces]
    events.append(chunk({}, "tool_calls"))
    return Reply(sse=events)
