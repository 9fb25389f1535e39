"""`mai ui` in a real headless Chromium: what a person sees, and the actions changing the store."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest
from uihelpers import HERE, _env, store_status, wait_until

WAIT_MS = 20_000

# One browser and one live `mai ui` for the whole file, on one xdist worker: the pages share a
# store whose runs the actions change.
pytestmark = pytest.mark.xdist_group("ui-browser")


def expect():
    """Playwright's auto-waiting assertions (imported once the browser fixture found it)."""
    from playwright.sync_api import expect as pw_expect

    return pw_expect


def test_the_runs_list_shows_every_run_and_updates_live(browser, live_ui, shoot):
    """The list shows status and workflow of each run, filters, and a new run without reload."""
    page = browser.page
    page.goto(f"{live_ui.base}/#/runs")
    rows = page.locator("#runs-body tr")
    expect()(page.locator('tr[data-run="checkout-42"] .badge')).to_have_text("SUCCEEDED")
    expect()(page.locator('tr[data-run="broken-7"] .badge')).to_have_text("FAILED")
    expect()(page.locator('tr[data-run="approval-5"] .badge')).to_have_text("RUNNING")
    expect()(page.locator('tr[data-run="support-9"] td').nth(1)).to_have_text("support")
    assert "token=" not in page.url  # the token left the address bar after signing in
    shoot(page, "runs")
    page.select_option("#f-status", "FAILED")
    expect()(rows).to_have_count(1)
    expect()(rows.first).to_contain_text("broken-7")
    page.goto(f"{live_ui.base}/#/runs")
    page.fill("#f-search", "check")
    page.press("#f-search", "Enter")
    expect()(rows).to_have_count(1)
    expect()(rows.first).to_contain_text("checkout-42")
    page.goto(f"{live_ui.base}/#/runs")
    expect()(page.locator('tr[data-run="checkout-42"]')).to_be_visible()
    subprocess.run(
        [live_ui.python, str(HERE / "uiapp.py"), "late", live_ui.store, "late-1"],
        env=_env(),
        check=True,
    )
    late = page.locator('tr[data-run="late-1"] .badge')
    expect()(late).to_have_text("SUCCEEDED", timeout=WAIT_MS)  # no reload: the page polls


def test_a_run_shows_input_output_timeline_trace_and_steps(browser, live_ui, shoot):
    """A composite run: input, output, parallel branches side by side, trace sizes, step JSON."""
    page = browser.page
    page.goto(f"{live_ui.base}/#/run/checkout-42")
    expect()(page.locator("h1 .badge")).to_have_text("SUCCEEDED")
    expect()(page.locator("#sec-output")).to_contain_text('"order 42: review"')
    expect()(page.locator("#sec-input")).to_contain_text("42")
    bars = page.locator(".gantt-row[data-step]")
    expect()(bars).to_have_count(5)
    left, right = {}, {}
    for step in ["1.1.1", "1.1.2", "1.2"]:
        bar = page.locator(f'.gantt-row[data-step="{step}"] .gantt-bar')
        left[step] = float(bar.get_attribute("data-left"))
        right[step] = left[step] + float(bar.get_attribute("data-width"))
    # the parallel branches overlap (each starts before the other ends: side by side) and
    # decide starts after both ended; positions only, no proportion of wall-clock time
    assert left["1.1.1"] < right["1.1.2"]
    assert left["1.1.2"] < right["1.1.1"]
    assert left["1.2"] >= max(right["1.1.1"], right["1.1.2"]) - 0.01
    trace = page.locator("table.trace tbody tr")
    expect()(trace).to_have_count(5)
    expect()(trace.nth(2)).to_contain_text("fetch")
    expect()(trace.nth(2)).to_contain_text("25 B")
    step = page.locator('details.step[data-step="1.1.1"]')
    step.locator("summary").click()
    expect()(step.locator("pre").nth(1)).to_contain_text('"amount": 420')
    shoot(page, "run")
    page.goto(f"{live_ui.base}/#/run/broken-7")
    expect()(page.locator("h1 .badge")).to_have_text("FAILED")
    expect()(page.locator("#sec-error")).to_contain_text("order 7 has no customer")
    shoot(page, "run-failed")


def test_the_plan_is_drawn_as_a_graph(browser, live_ui, shoot):
    """The plan page draws the workflow's nodes and edges as SVG from the recorded plan."""
    page = browser.page
    page.goto(f"{live_ui.base}/#/plan/checkout-42")
    svg = page.locator("#plan-graph svg")
    expect()(svg).to_be_visible()
    names = svg.locator(".plan-node text").all_text_contents()
    assert sorted(names) == ["decide", "fetch", "score"]
    expect()(svg.locator(".plan-group")).to_have_count(2)  # checkout and its Parallel
    expect()(svg.locator(".plan-edge")).to_have_count(4)
    box = svg.bounding_box()
    assert box is not None
    assert box["width"] > 200
    shoot(page, "plan")


def recorded_tokens(db, run_id: str) -> tuple[int, int]:
    """Input and output tokens of the run's recorded model steps, read from the store."""
    with sqlite3.connect(db) as conn:
        outputs = conn.execute(
            "SELECT output FROM mai_steps WHERE run_id = ? AND name = 'model_request'", (run_id,)
        ).fetchall()
    usages = [json.loads(o)["usage"] for (o,) in outputs]
    return sum(u["input_tokens"] for u in usages), sum(u["output_tokens"] for u in usages)


def test_an_agent_run_reads_as_a_chat(browser, live_ui, shoot):
    """A durable agent run (scripted model): messages, the tool call and result, its tokens."""
    page = browser.page
    page.goto(f"{live_ui.base}/#/run/support-9")
    chat = page.locator(".chat")
    expect()(chat.locator(".msg.system")).to_contain_text("You answer questions about orders.")
    expect()(chat.locator(".msg.user")).to_have_text("userWhere is order 9?")
    expect()(chat.locator(".msg.tool-call")).to_contain_text('"order": 9')
    expect()(chat.locator(".msg.tool")).to_contain_text('"eta": "tomorrow"')
    expect()(chat.locator(".msg.assistant")).to_contain_text("Order 9 ships tomorrow.")
    tokens_in, tokens_out = recorded_tokens(live_ui.db, "support-9")
    billed = f"{tokens_in} input + {tokens_out} output tokens billed"
    expect()(chat.locator(".usage")).to_contain_text(billed)
    shoot(page, "conversation")


def test_approving_an_agent_tool_finishes_the_agent_run(browser, live_ui, shoot):
    """An agent's tool waits for approval; approving it from the page lets the agent finish."""
    page = browser.page
    page.goto(f"{live_ui.base}/#/run/ship-9")
    expect()(page.locator("h1 .badge")).to_have_text("RUNNING")
    expect()(page.locator(".chat .msg.tool-call")).to_contain_text('"order": 9')
    page.fill("#send-topic", "approve")
    page.fill("#send-payload", "true")
    page.click("#act-send")
    page.click("#confirm-yes")
    expect()(page.locator("h1 .badge")).to_have_text("SUCCEEDED", timeout=WAIT_MS)
    expect()(page.locator(".chat .msg.tool")).to_contain_text("order 9 shipped")
    expect()(page.locator(".chat .msg.wait")).to_contain_text("true")
    expect()(page.locator(".chat .msg.assistant")).to_contain_text("Order 9 is on its way.")
    assert store_status(live_ui.db, "ship-9") == "SUCCEEDED"
    shoot(page, "agent-approved")


def test_cancel_asks_first_then_cancels_the_run_in_the_store(browser, live_ui, shoot):
    """Cancel: declining changes nothing; confirming reports the outcome and the store changes."""
    page = browser.page
    page.goto(f"{live_ui.base}/#/run/stuck-6")
    expect()(page.locator("h1 .badge")).to_have_text("RUNNING")
    page.click("#act-cancel")
    expect()(page.locator("#confirm")).to_be_visible()
    page.click("#confirm-no")
    expect()(page.locator("#outcome")).to_have_text("nothing done")
    assert store_status(live_ui.db, "stuck-6") == "RUNNING"
    page.click("#act-cancel")
    expect()(page.locator("#confirm-text")).to_contain_text("stuck-6")
    page.click("#confirm-yes")
    expect()(page.locator("#outcome")).to_contain_text("cancel", timeout=WAIT_MS)
    expect()(page.locator("h1 .badge")).to_have_text("CANCELLED", timeout=WAIT_MS)
    wait_until(lambda: store_status(live_ui.db, "stuck-6") == "CANCELLED", "the store")
    shoot(page, "run-cancelled")


def test_approve_sends_the_event_and_the_waiting_run_finishes(browser, live_ui, shoot):
    """Send 'approve' from the page: the worker's waiting run receives it and succeeds."""
    page = browser.page
    page.goto(f"{live_ui.base}/#/run/approval-5")
    expect()(page.locator("h1 .badge")).to_have_text("RUNNING")
    expect()(page.locator(".gantt-row.pending")).to_contain_text("in progress")  # the wait
    expect()(page.locator("#outcome")).to_be_empty()  # no outcome of another run's action
    page.fill("#send-topic", "approve")
    page.fill("#send-payload", "true")
    shoot(page, "run-waiting")
    page.click("#act-send")
    expect()(page.locator("#confirm-text")).to_contain_text('"approve"')
    page.click("#confirm-yes")
    expect()(page.locator("#outcome")).to_contain_text("sent 'approve'", timeout=WAIT_MS)
    expect()(page.locator("h1 .badge")).to_have_text("SUCCEEDED", timeout=WAIT_MS)
    expect()(page.locator("#sec-output")).to_contain_text("approved=True")
    wait_until(lambda: store_status(live_ui.db, "approval-5") == "SUCCEEDED", "the store")
    with sqlite3.connect(live_ui.db) as conn:
        topic, payload, consumed = conn.execute(
            "SELECT topic, payload, consumed_by FROM mai_events WHERE run_id = 'approval-5'"
        ).fetchone()
    assert (topic, json.loads(payload)) == ("approve", True)
    assert consumed is not None
    shoot(page, "run-approved")


def test_a_finished_run_offers_no_send_and_an_unknown_run_is_named(browser, live_ui):
    """A finished run shows no send action; an unknown run id is reported by name."""
    page = browser.page
    page.goto(f"{live_ui.base}/#/run/broken-7")
    expect()(page.locator("h1 .badge")).to_have_text("FAILED")
    expect()(page.locator("#act-send")).to_have_count(0)  # no action on a finished run
    page.goto(f"{live_ui.base}/#/run/no-such-run")
    expect()(page.locator("p.error")).to_contain_text("no-such-run")


def test_a_long_run_shows_a_window_of_steps_and_all_on_request(browser, live_ui):
    """A 401-step run's page shows its first 300 steps and says so; Show all brings the rest."""
    page = browser.page
    page.goto(f"{live_ui.base}/#/run/long-400")
    expect()(page.locator("h1 .badge")).to_have_text("SUCCEEDED")
    expect()(page.locator("#steps-window")).to_contain_text("first 300 of 401 steps")
    expect()(page.locator("details.step")).to_have_count(300)
    expect()(page.locator("table.trace tbody tr")).to_have_count(300)
    page.click("#steps-all")
    expect()(page.locator("details.step")).to_have_count(401)
    expect()(page.locator("#steps-window")).to_have_count(0)
    expect()(page.locator('details.step[data-step="1.400"]')).to_contain_text("tick")


def test_a_hidden_tab_stops_polling_and_catches_up_when_shown(browser, live_ui):
    """Polling pauses while the tab is hidden (no request) and refreshes at once when shown."""
    page = browser.context.new_page()
    try:
        page.clock.install()  # the page's timers run on a clock the test moves
        page.goto(f"{live_ui.base}/#/runs")
        expect()(page.locator('tr[data-run="checkout-42"]')).to_be_visible()
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if "/api/runs" in r.url else None)
        page.clock.run_for(3_100)  # two refresh periods while visible: it polls
        assert asked
        page.evaluate(
            "Object.defineProperty(document, 'hidden', {value: true, configurable: true})"
        )
        page.clock.run_for(1_600)  # the pending refresh finds the tab hidden
        asked.clear()
        page.clock.run_for(30_000)
        assert asked == []
        with page.expect_request(lambda r: "/api/runs" in r.url):
            page.evaluate(
                "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
                "document.dispatchEvent(new Event('visibilitychange'))"
            )
    finally:
        page.close()
