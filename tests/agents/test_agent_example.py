"""examples/agent_research.py: offline by default; a real endpoint only with MAI_DEMO_MODEL."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio
from httpstub import completion

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "agent_research.py"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MAI_DEMO"))}
    env.update(extra)
    return env


async def test_an_api_key_alone_never_calls_anyone():
    """With OPENAI_API_KEY set but no MAI_DEMO_MODEL, the example uses the scripted model."""
    env = _env(OPENAI_API_KEY="sk-exists", OPENAI_BASE_URL="http://192.0.2.1:9/v1")
    with trio.fail_after(60):
        proc = await trio.run_process(
            [sys.executable, str(SCRIPT)],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = proc.stdout.decode()
    assert "a scripted model (offline)" in out
    assert "sources: concepts.rst" in out
    assert "tokens=" in out


async def test_mai_demo_model_uses_the_configured_endpoint(nursery, stub_server):
    """MAI_DEMO_MODEL=openai:NAME sends the same agent to the OpenAI-compatible endpoint."""
    report = {"question": "q", "sources": ["api.rst"], "answer": "From the endpoint."}
    replies = [completion(tool_calls=[{"name": "final_result", "args": report}])] * 2
    stub = await stub_server(nursery, replies)
    env = _env(
        MAI_DEMO_MODEL="openai:stub-model", OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="k"
    )
    with trio.fail_after(60):
        proc = await trio.run_process(
            [sys.executable, str(SCRIPT)],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = proc.stdout.decode()
    assert "model openai:stub-model (MAI_DEMO_MODEL)" in out
    assert "answer: From the endpoint." in out
    assert stub.requests[0]["model"] == "stub-model"
    assert [t["function"]["name"] for t in stub.requests[0]["tools"]] == [
        "list_docs",
        "search",
        "read_doc",
        "final_result",
    ]
