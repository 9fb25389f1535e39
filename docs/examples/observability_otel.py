"""OpenTelemetry: what pymai emits once an application configures an SDK.

Run: ``python docs/examples/observability_otel.py``. This script is an application, so it may
install the global tracer provider (pymai itself never does).
"""

from __future__ import annotations

import trio

# [start configure]
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mai

exporter = InMemorySpanExporter()  # in production: BatchSpanProcessor(OTLPSpanExporter())
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # the application's choice, once per process
# [end configure]


@mai.module(timeout=5)
async def retrieve(question: str) -> list[str]:
    return [f"doc about {question}"]


@mai.module
def answer(docs: list[str]) -> str:  # a sync body in a worker thread
    with trace.get_tracer("app").start_as_current_span("prompt"):  # a child of answer's span
        return f"{len(docs)} document(s)"


agent = retrieve >> answer


async def spans_per_call() -> None:
    # [start spans]
    await agent("trio")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"Sequential", "retrieve", "answer", "prompt"}
    root, retrieve_span = spans["Sequential"], spans["retrieve"]
    assert retrieve_span.parent.span_id == root.context.span_id
    assert spans["prompt"].parent.span_id == spans["answer"].context.span_id
    attributes = dict(retrieve_span.attributes)
    assert 4.9 < attributes.pop("mai.deadline.remaining_s") <= 5.0  # its timeout=5
    assert attributes == {
        "mai.module": "retrieve",
        "mai.step_id": "1.1",
        "mai.parent_step_id": "1",
        "mai.payload.input_bytes": 6,
        "mai.payload.output_bytes": 18,
        "mai.status": "ok",
        "mai.retry_count": 0,
    }
    # [end spans]
    print(sorted(spans))


async def propagation() -> None:
    exporter.clear()
    # [start propagate]
    carried: dict[str, str] = {}

    @mai.module
    async def enqueue(job: str) -> str:
        # Inside a call, the current span is the call's: put it in the message.
        carried.update(mai.inject_trace_context({"job": job}))
        return job

    await enqueue("j1")

    # ... later, maybe in another process: a run whose Context metadata carries the
    # traceparent continues that trace.
    token = mai.Context.set(metadata=carried)
    try:
        await agent("trio")
    finally:
        mai.Context.reset(token)
    # [end propagate]
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["Sequential"].context.trace_id == spans["enqueue"].context.trace_id
    assert spans["Sequential"].parent.span_id == spans["enqueue"].context.span_id
    remote = mai.extract_trace_context(carried)
    assert trace.get_current_span(remote).get_span_context().span_id == (
        spans["enqueue"].context.span_id
    )
    print(carried["traceparent"])


async def main() -> None:
    await spans_per_call()
    await propagation()


if __name__ == "__main__":
    trio.run(main)
