"""examples/agent_durable_demo.py: SIGKILL mid-run, resume in a new process, replays named."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "agent_durable_demo.py"


async def test_the_demo_kills_resumes_and_names_the_replayed_turns() -> None:
    """Turns 1-3 replay in process 2, only turn 4 is asked, and the answer is the right one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MAI_DEMO"))}
    with trio.fail_after(120):
        proc = await trio.run_process(
            [sys.executable, str(SCRIPT)],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = proc.stdout.decode()
    first, _, second = out.partition("== SIGKILL to process 1")
    assert "turn 3: asked scripted-planner" in first
    for turn in (1, 2, 3):
        assert f"turn {turn}: replayed from the record (no model request)" in second
    assert "turn 4: asked scripted-planner" in second
    assert "get_weather('Paris') runs" not in second  # recorded tool calls are not run again
    assert "get_weather('Nice') runs" in second  # the interrupted one is
    assert "usage: billed 1 request(s)" in second
    assert "replayed 3" in second
    assert "== output: Go to Nice: 24 C, sun." in out
    assert "asked 1 time(s) by process 2" in out
