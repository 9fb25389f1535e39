"""Heavier machinery built on the kernel: durable runtime, graph, tracing, plugins."""
