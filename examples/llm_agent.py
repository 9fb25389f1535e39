"""Optional: the research agent with a real language model behind an OpenAI-compatible API.

Nothing here needs the network unless you configure it::

    export OPENAI_BASE_URL=https://api.openai.com/v1   # or any compatible server
    export OPENAI_API_KEY=...
    export OPENAI_MODEL=gpt-4o-mini
    python examples/llm_agent.py

Without ``OPENAI_BASE_URL`` the script says so and exits. The model call is a plain sync
function (it runs in a worker thread) with a timeout and retries; the whole run is durable on
the embedded SQLite store, so re-running with the same run id replays the answers already paid
for instead of asking again.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import trio

import mai

ROOT = Path(__file__).resolve().parent.parent


@mai.module(timeout=60, retries=3, backoff=1.0, retry_on=(OSError, TimeoutError))
def ask(prompt: str) -> str:
    """One chat completion from the configured OpenAI-compatible endpoint."""
    base = os.environ["OPENAI_BASE_URL"].rstrip("/")
    body = json.dumps(
        {
            "model": os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL is the user's own configuration
        f"{base}/chat/completions",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', '')}",
            "Idempotency-Key": mai.Context.get().idempotency_key or "",
        },
    )
    with urllib.request.urlopen(request, timeout=55) as response:  # noqa: S310
        answer = json.load(response)
    return str(answer["choices"][0]["message"]["content"]).strip()


@mai.module
async def summarise_page(path: str) -> str:
    """Ask the model for a one-sentence summary of one documentation page."""
    text = (ROOT / path).read_text(encoding="utf-8")[:6000]
    summary = await ask(f"Summarise this documentation page in one sentence:\n\n{text}")
    return f"{path}: {summary}"


agent = mai.Map(summarise_page, max_concurrency=2)


async def main() -> None:
    """Summarise the documentation pages durably."""
    pages = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.rst"))[:4]
    async with mai.Runtime() as rt:
        handle = await rt.start(agent, pages, run_id="llm-summaries")
        for line in await handle.result():
            print(line)


if __name__ == "__main__":
    if not os.environ.get("OPENAI_BASE_URL"):
        print("llm_agent: no OPENAI_BASE_URL configured; nothing to do (this example is optional)")
    else:
        trio.run(main)
