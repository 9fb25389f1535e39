"""`mai ui` over HTTP on a real port: the token, Host, Origin and CSRF rules, pages, actions."""

from __future__ import annotations

from functools import partial
from importlib import resources
from types import SimpleNamespace

import httpx
import pytest
import trio

import mai
from mai.core.ui import UIConfigError, serve_ui


@mai.module
async def double(x: int) -> int:
    """Double a number."""
    return 2 * x


@mai.module
async def waiter(x: int) -> int:
    """Wait for an event."""
    return x + await mai.wait_for("go")


@pytest.fixture
async def ui(tmp_path):
    """A real server on a free port over a real SQLite store with a few finished runs."""
    async with mai.Runtime(f"sqlite:///{tmp_path}/ui.db") as rt, trio.open_nursery() as nursery:
        for i in range(3):
            await (await rt.start(double, i, run_id=f"run-{i}")).result()
        address = await nursery.start(partial(serve_ui, rt, port=0))
        base = f"http://127.0.0.1:{address.port}"
        async with httpx.AsyncClient(base_url=base) as client:
            yield SimpleNamespace(rt=rt, address=address, base=base, client=client)
        nursery.cancel_scope.cancel()


def auth(ui) -> dict[str, str]:
    """The bearer header of the server's token."""
    return {"authorization": f"Bearer {ui.address.token}"}


async def test_without_the_token_every_route_is_401_and_shows_no_run(ui):
    """No token, or a wrong one: 401 and not a byte of run data."""
    for path in ["/", "/api/runs", "/api/runs/run-1", "/api/runs/run-1/plan", "/api/session"]:
        response = await ui.client.get(path)
        assert response.status_code == 401, path
        assert "run-1" not in response.text
    wrong = await ui.client.get("/api/runs", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    wrong = await ui.client.get("/?token=nope")
    assert wrong.status_code == 401
    assert "run-" not in wrong.text


async def test_the_printed_url_signs_in_with_a_strict_http_only_cookie(ui):
    """The token URL sets an HttpOnly SameSite=Strict cookie and drops the token from the URL."""
    assert ui.address.url == f"{ui.base}/?token={ui.address.token}"
    response = await ui.client.get(f"/?token={ui.address.token}")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    page = await ui.client.get("/api/runs")  # the client kept the cookie
    assert page.status_code == 200
    assert {r["run_id"] for r in page.json()["runs"]} == {"run-0", "run-1", "run-2"}


async def test_a_foreign_host_header_is_refused_even_with_the_token(ui):
    """DNS rebinding: a request naming another host gets 403, token or not."""
    for host in ["evil.example", f"evil.example:{ui.address.port}", "127.0.0.1:1"]:
        response = await ui.client.get("/api/runs", headers={**auth(ui), "host": host})
        assert response.status_code == 403, host
        assert "run-" not in response.text
    ok = await ui.client.get(
        "/api/runs", headers={**auth(ui), "host": f"localhost:{ui.address.port}"}
    )
    assert ok.status_code == 200


async def test_an_action_needs_our_origin_and_the_csrf_token(ui):
    """A POST without Origin, from another Origin, or without the CSRF token changes nothing."""
    handle = await ui.rt.start(waiter, 1, run_id="waiting")
    session = (await ui.client.get("/api/session", headers=auth(ui))).json()
    own = {"origin": ui.base}
    csrf = {"x-csrf-token": session["csrf"]}
    url = "/api/runs/waiting/cancel"
    refused = [
        {**auth(ui), **csrf},
        {**auth(ui), **csrf, "origin": "http://evil.example"},
        {**auth(ui), **csrf, "origin": "null"},
        {**auth(ui), **own},
        {**auth(ui), **own, "x-csrf-token": "0" * 64},
        {**own, **csrf},
    ]
    for headers in refused:
        response = await ui.client.post(url, headers=headers, json={})
        assert response.status_code in {401, 403}, headers
    assert (await handle.status()) == mai.RunStatus.RUNNING
    done = await ui.client.post(url, headers={**auth(ui), **own, **csrf}, json={})
    assert done.status_code == 200
    assert done.json()["status"] == "CANCELLED"
    assert (await ui.rt.get("waiting")).status == mai.RunStatus.CANCELLED


async def test_send_delivers_the_event_and_reports_bad_input(ui):
    """POST send reaches mai.wait_for; a missing topic or an unknown run is a clear 4xx."""
    handle = await ui.rt.start(waiter, 1, run_id="to-send")
    session = (await ui.client.get("/api/session", headers=auth(ui))).json()
    headers = {**auth(ui), "origin": ui.base, "x-csrf-token": session["csrf"]}
    bad = await ui.client.post("/api/runs/to-send/send", headers=headers, json={"payload": 1})
    assert bad.status_code == 400
    assert "topic" in bad.json()["error"]
    missing = await ui.client.post("/api/runs/nope/send", headers=headers, json={"topic": "go"})
    assert missing.status_code == 404
    not_json = await ui.client.post("/api/runs/to-send/send", headers=headers, content=b"{")
    assert not_json.status_code == 400
    sent = await ui.client.post(
        "/api/runs/to-send/send", headers=headers, json={"topic": "go", "payload": 41}
    )
    assert sent.status_code == 200
    assert await handle.result() == 42


async def test_runs_are_paged_with_filters_and_bad_parameters_are_400(ui):
    """The runs API pages with a cursor, filters by status/workflow/id, refuses bad input."""
    for i in range(3, 12):
        await (await ui.rt.start(double, i, run_id=f"run-{i}")).result()
    h = auth(ui)
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": "5", **({"after": after} if after else {})}
        page = (await ui.client.get("/api/runs", params=params, headers=h)).json()
        seen += [r["run_id"] for r in page["runs"]]
        after = page["next"]
        if after is None:
            break
    assert sorted(seen) == sorted(f"run-{i}" for i in range(12))
    assert len(seen) == 12
    found = (await ui.client.get("/api/runs", params={"q": "run-1"}, headers=h)).json()
    assert [r["run_id"] for r in found["runs"]] == ["run-1", "run-10", "run-11"]
    none = (await ui.client.get("/api/runs", params={"workflow": "nope"}, headers=h)).json()
    assert none["runs"] == []
    ok = (await ui.client.get("/api/runs", params={"status": "succeeded"}, headers=h)).json()
    assert len(ok["runs"]) == 12
    assert ok["runs"][0]["duration"] >= 0
    for params in [{"status": "sideways"}, {"limit": "many"}, {"after": "t|x|y"}]:
        response = await ui.client.get("/api/runs", params=params, headers=h)
        assert response.status_code == 400, params
        assert response.json()["error"]


async def test_a_run_its_plan_and_an_unknown_run(ui):
    """A run answers its input, output, steps and trace; its plan comes drawn; unknown is 404."""
    h = auth(ui)
    run = (await ui.client.get("/api/runs/run-2", headers=h)).json()
    assert run["input"] == {"args": [2], "kwargs": {}}
    assert run["output"] == 4
    assert run["status"] == "SUCCEEDED"
    assert [s["name"] for s in run["trace"]] == ["double"]
    assert run["conversation"] is None
    plan = (await ui.client.get("/api/runs/run-2/plan", headers=h)).json()
    assert plan["svg"].startswith("<svg")
    assert ">double<" in plan["svg"]
    missing = await ui.client.get("/api/runs/nope", headers=h)
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]


@mai.module
async def many(n: int) -> int:
    """Thirteen recorded steps (itself and twelve calls)."""
    for i in range(12):
        n = await double(i)
    return n


async def test_a_run_page_sends_a_window_of_its_steps_unless_asked_for_more(ui):
    """A long run's page carries its first N steps and their trace; ?steps=M asks for more."""
    await (await ui.rt.start(many, 1, run_id="long")).result()
    small = (await ui.client.get("/api/runs/long?steps=5", headers=auth(ui))).json()
    assert small["steps_total"] == 13
    assert [s["step_id"] for s in small["steps"]] == ["1", "1.1", "1.2", "1.3", "1.4"]
    assert [s["step_id"] for s in small["trace"]] == ["1", "1.1", "1.2", "1.3", "1.4"]
    whole = (await ui.client.get("/api/runs/long", headers=auth(ui))).json()
    assert len(whole["steps"]) == whole["steps_total"] == 13
    assert [s["step_id"] for s in whole["steps"]][-3:] == ["1.10", "1.11", "1.12"]  # step order
    bad = await ui.client.get("/api/runs/long?steps=all", headers=auth(ui))
    assert bad.status_code == 400
    assert "steps must be a whole number" in bad.json()["error"]


async def test_responses_carry_a_strict_content_security_policy(ui):
    """Every response forbids framing and foreign scripts; the page's files ship in the package."""
    page = await ui.client.get("/", headers=auth(ui))
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    for name in ["app.js", "app.css"]:
        response = await ui.client.get(f"/static/{name}", headers=auth(ui))
        assert response.status_code == 200
        assert response.text == (resources.files("mai.core.ui") / "static" / name).read_text()
    traversal = await ui.client.get("/static/..%2f_server.py", headers=auth(ui))
    assert traversal.status_code == 404


def test_the_static_files_load_nothing_from_elsewhere():
    """Offline: no script, style or font of the page names another host."""
    static = resources.files("mai.core.ui") / "static"
    for item in static.iterdir():
        text = item.read_text()
        assert "://" not in text, item.name
        assert "@import" not in text, item.name
        assert "@font-face" not in text, item.name


async def test_another_address_needs_an_explicit_flag():
    """Binding outside the loopback without allow_remote is refused with a clear error."""
    async with mai.Runtime("memory://ui-remote") as rt:
        with pytest.raises(UIConfigError, match="--allow-remote"):
            await serve_ui(rt, host="0.0.0.0", port=0)  # noqa: S104 - the refusal is the test
        assert isinstance(UIConfigError("x"), ValueError)
        assert isinstance(UIConfigError("x"), mai.MaiError)


def test_the_command_refuses_another_address_before_opening_the_store(tmp_path):
    """`mai ui --host 0.0.0.0` without --allow-remote exits 2 and creates no store."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "mai.core.cli", "ui", "--host", "0.0.0.0", "--port", "0"],  # noqa: S104
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "--allow-remote" in done.stderr
    assert not (tmp_path / ".mai").exists()
