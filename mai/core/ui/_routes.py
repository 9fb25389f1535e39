"""The HTTP routes of ``mai ui``: the page, its static files, a JSON API and the actions.

``GET /`` is the single page (its script routes ``#/runs``, ``#/run/ID``, ``#/plan/ID``);
``/static/*`` are the files shipped in the package; ``/api/...`` answer JSON. Every action is a
``POST`` (the security middleware in ``_security`` checks its Origin and CSRF token first).
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mai._errors import MaiError
from mai.core.durable import (
    PageCursorError,
    RunNotFoundError,
    RunNotRetryableError,
    RunQuery,
    RunStatus,
    SerializationError,
)

from ._data import STEP_WINDOW

if TYPE_CHECKING:
    from starlette.requests import Request

    from ._data import UIData

_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}
_MAX_BODY = 1 << 20


def _static(name: str) -> bytes | None:
    files = resources.files("mai.core.ui") / "static"
    item = files / name
    if "/" in name or name.startswith(".") or not item.is_file():
        return None
    return item.read_bytes()


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"cache-control": "no-store"})


def _error(status: int, message: str) -> JSONResponse:
    return _json({"ok": False, "error": message}, status)


def build_app(data: UIData, csrf: str) -> Starlette:
    """The ASGI application over ``data`` (wrap it in ``_security.Guard`` before serving)."""

    async def index(_request: Request) -> Response:
        body = _static("index.html") or b""
        return Response(body, media_type="text/html", headers={"cache-control": "no-store"})

    async def static(request: Request) -> Response:
        name = str(request.path_params["name"])
        body = _static(name)
        if body is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        suffix = name[name.rfind(".") :]
        return Response(body, media_type=_TYPES.get(suffix, "application/octet-stream"))

    async def session(_request: Request) -> Response:
        return _json({**data.session(), "csrf": csrf})

    async def runs(request: Request) -> Response:
        q = request.query_params
        status = q.get("status") or None
        if status is not None:
            try:
                status = RunStatus(status.upper())
            except ValueError:
                valid = ", ".join(s.value for s in RunStatus)
                return _error(400, f"status must be one of {valid}, got {status!r}")
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            return _error(400, f"limit must be a whole number, got {q.get('limit')!r}")
        query = RunQuery(
            status=status,
            workflow=q.get("workflow") or None,
            run_id_prefix=(q.get("q") or "").strip() or None,
        )
        try:
            page = await data.page(query, q.get("after") or None, max(1, min(limit, 500)))
        except PageCursorError as exc:
            return _error(400, str(exc))
        return _json(page)

    async def run(request: Request) -> Response:
        raw = request.query_params.get("steps") or str(STEP_WINDOW)
        try:
            limit = int(raw)
        except ValueError:
            return _error(400, f"steps must be a whole number, got {raw!r}")
        try:
            return _json(await data.run(request.path_params["run_id"], max(limit, 0)))
        except RunNotFoundError as exc:
            return _error(404, str(exc))

    async def plan(request: Request) -> Response:
        try:
            return _json(await data.plan(request.path_params["run_id"]))
        except RunNotFoundError as exc:
            return _error(404, str(exc))

    async def _body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > _MAX_BODY:
            raise ValueError("the request body is larger than 1 MiB")
        if not raw:
            return {}
        import json  # noqa: PLC0415

        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("the request body must be a JSON object")  # noqa: TRY004 - a 400
        return value

    async def action(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        name = request.path_params["action"]
        try:
            body = await _body(request)
            if name == "cancel":
                return _json(await data.cancel(run_id))
            if name == "send":
                topic = body.get("topic")
                if not isinstance(topic, str) or not topic:
                    return _error(400, "send needs a non-empty 'topic'")
                return _json(await data.send(run_id, topic, body.get("payload")))
            if name == "requeue" and data.can_requeue:
                return _json(await data.requeue(run_id))
        except RunNotFoundError as exc:
            return _error(404, str(exc))
        except RunNotRetryableError as exc:
            return _error(409, str(exc))
        except (ValueError, SerializationError) as exc:  # not JSON, or a payload not sendable
            return _error(400, str(exc))
        except MaiError as exc:  # the runtime refused (for example: not requeueable)
            return _error(409, f"{type(exc).__name__}: {exc}")
        return _error(404, f"no action {name!r} here")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/static/{name}", static),
            Route("/api/session", session),
            Route("/api/runs", runs),
            Route("/api/runs/{run_id}", run),
            Route("/api/runs/{run_id}/plan", plan),
            Route("/api/runs/{run_id}/{action}", action, methods=["POST"]),
        ]
    )
