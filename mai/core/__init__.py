"""The layers above the kernel: tracing, logging glue and the plugin registry.

Everything here plugs into the kernel through the seam (:mod:`mai._seam`); the kernel never
imports from this package. Public names are re-exported from :mod:`mai`.
"""
