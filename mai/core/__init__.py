"""Heavier machinery built on the kernel: durable runtime, graph, tracing, logging, plugins.

Everything here plugs into the kernel through the seam (:mod:`mai._seam`); the kernel never
imports from this package. Public names are re-exported from :mod:`mai`.
"""
