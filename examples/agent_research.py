"""An agent that answers a question about this repository with tools, and shows its trace.

By default it runs offline on a scripted model (it says so): the script reads the tool results
it gets back and decides the next step from them, so the tools do real work on the real files.
To use a real model, name it explicitly::

    MAI_DEMO_MODEL=openai:gpt-4o-mini OPENAI_API_KEY=... python examples/agent_research.py
    MAI_DEMO_MODEL=openai:tiny OPENAI_BASE_URL=http://127.0.0.1:8080/v1 python ...

An ``OPENAI_API_KEY`` that merely exists never makes this example call anyone: only
``MAI_DEMO_MODEL`` does. The same agent then runs against that endpoint, deadline included.
"""

from __future__ import annotations

import os
from pathlib import Path

import pydantic
import trio

import mai
from mai.agents import ModelRequest, RetryPrompt, ToolCall, ToolReturn
from mai.testing import ScriptedModel, tool_call

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


class Report(pydantic.BaseModel):
    """What the agent returns."""

    question: str
    sources: list[str]
    answer: str


@mai.module(inline=True)
def list_docs() -> list[str]:
    """List the documentation pages of this repository."""
    return sorted(p.name for p in DOCS.glob("*.rst"))


@mai.module
def search(word: str, limit: int = 3) -> list[str]:
    """Find the documentation pages that mention a word most often.

    Args:
        word: The word to look for (case-insensitive).
        limit: How many pages to return.
    """
    counts = {
        p.name: p.read_text(encoding="utf-8").lower().count(word.lower())
        for p in DOCS.glob("*.rst")
    }
    ranked = sorted((n for n in counts if counts[n]), key=lambda n: (-counts[n], n))
    return ranked[:limit]


@mai.module(timeout=5)
async def read_doc(name: str) -> str:
    """Read the first paragraph of a documentation page.

    Args:
        name: The page's file name, as listed by list_docs.
    """
    if name not in list_docs.function():
        raise mai.ModelRetry(f"there is no page {name!r}; call list_docs for the names")
    text = await trio.Path(DOCS / name).read_text(encoding="utf-8")
    paragraphs = [
        p for p in text.split("\n\n") if p.strip() and not p.lstrip().startswith((".", "="))
    ]
    return " ".join(paragraphs[1].split()) if len(paragraphs) > 1 else text[:400]


def script(messages: list, _params: object) -> object:
    """The offline model: decide the next step from the tool results received so far."""
    returns = [
        p
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturn)
    ]
    question = messages[0].parts[-1].content
    if not returns:
        return [tool_call("list_docs"), tool_call("search", {"word": "deadline"})]
    hits = next(r.content for r in returns if r.tool_name == "search")
    read = [r for r in returns if r.tool_name == "read_doc"]
    if not read:
        return [tool_call("read_doc", {"name": hits[0]})]
    summary = read[0].content.split(". ")[0].rstrip(".") + "."
    return tool_call("final_result", {"question": question, "sources": hits, "answer": summary})


def make_agent() -> tuple[mai.Agent[Report], str]:
    configured = os.environ.get("MAI_DEMO_MODEL")
    model = configured or ScriptedModel(script, model_name="scripted-researcher")
    how = f"model {configured} (MAI_DEMO_MODEL)" if configured else "a scripted model (offline)"
    agent = mai.Agent(
        model,
        name="researcher",
        instructions="Answer questions about the pymai repository using the tools. "
        "Cite the documentation pages you used.",
        tools=[list_docs, search, read_doc],
        output_type=Report,
        model_settings=mai.ModelSettings(temperature=0, max_tokens=512),
        usage_limits=mai.UsageLimits(request_limit=8),
    ).with_(timeout=120)
    return agent, how


def show(messages: list) -> None:
    """Print the tool calls and results of a run, from its messages."""
    for message in messages:
        for part in message.parts:
            if isinstance(part, ToolCall) and part.tool_name != "final_result":
                print(f"  -> {part.tool_name}({part.args_json()})")
            elif isinstance(part, ToolReturn):
                shown = str(part.content)
                print(f"  <- {part.tool_name}: {shown[:70]}{'...' if len(shown) > 70 else ''}")
            elif isinstance(part, RetryPrompt):
                print(f"  <- retry: {part.content}")


async def main() -> None:
    agent, how = make_agent()
    question = "How does pymai bound a run with a deadline?"
    print(f"agent 'researcher' on {how}")
    print(f"question: {question}")
    result, trace = await mai.trace(agent.run, question)
    show(result.new_messages)
    report = result.output
    print(f"answer: {report.answer}")
    print(f"sources: {', '.join(report.sources)}")
    u = result.usage
    print(
        f"usage: {u.requests} model requests, {u.tool_calls} tool calls, "
        f"{u.input_tokens} input + {u.output_tokens} output tokens"
    )
    print("trace (each model request is a step, with its tokens):")
    trace.show()


if __name__ == "__main__":
    trio.run(main)
