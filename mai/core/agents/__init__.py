"""Agents: models, tools made from modules, structured output, streaming, limits (issue 13).

The public names are re-exported by :mod:`mai.agents` (and the most used ones by :mod:`mai`).
"""
