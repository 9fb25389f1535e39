"""Agents: models, tools made from modules, structured output, streaming, limits.

The public names are re-exported by :mod:`mai.agents` (the most used ones by :mod:`mai` too).
"""
