"""A worker process for the PostgreSQL fault tests.

Usage::

    python pg_worker.py URL --name NAME [--concurrency N] [--lease S] [--poll S]
                        [--max-attempts N] [--queue Q ...] [--otel FILE]

Serves the workflows of ``tests/durable/workflows.py`` with :meth:`mai.Worker.serve`: prints
``open <pid>`` once the store is open and the worker claims, drains on SIGTERM and exits 0.
``--otel FILE`` installs an OpenTelemetry SDK tracer provider that appends every finished
span to FILE as one JSON line (trace id, span id, parent span id, name, step id, pid).
A test may set ``MAI_PAUSE_AT`` or ``MAI_CRASH_AT`` (see ``tests/durable/crashhook.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "durable"))

import crashhook

import mai


def install_otel(path: str) -> None:
    """Export every span to ``path`` as JSON lines (one write per span, survives SIGKILL)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class FileExporter(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                for span in spans:
                    ctx = span.get_span_context()
                    line = {
                        "trace": f"{ctx.trace_id:032x}",
                        "span": f"{ctx.span_id:016x}",
                        "parent": f"{span.parent.span_id:016x}" if span.parent else None,
                        "name": span.name,
                        "step": span.attributes.get("mai.step_id"),
                        "pid": os.getpid(),
                    }
                    os.write(fd, (json.dumps(line) + "\n").encode())
            finally:
                os.close(fd)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
    trace.set_tracer_provider(provider)


def main() -> int:
    """Parse the command line and serve until SIGTERM."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("--name", default="worker")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--lease", type=float, default=2.0)
    p.add_argument("--poll", type=float, default=0.5)
    p.add_argument("--max-attempts", type=int, default=5)
    p.add_argument("--queue", action="append", default=[])
    p.add_argument("--otel", default=None)
    args = p.parse_args()
    if args.otel:
        install_otel(args.otel)
    worker = mai.Worker(
        args.url,
        app="workflows",
        queues=args.queue or ["default"],
        concurrency=args.concurrency,
        name=args.name,
        lease=args.lease,
        poll_interval=args.poll,
        max_attempts=args.max_attempts,
    )
    return worker.serve(on_started=lambda w: print("open", os.getpid(), flush=True))


if __name__ == "__main__":
    crashhook.install_from_env()  # a fault test's hook (MAI_PAUSE_AT); mai reads no variable
    sys.exit(main())
