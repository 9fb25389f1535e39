"""Sphinx configuration for the pymai documentation."""

import sys
from pathlib import Path

# Make `mai` importable for autodoc even without an editable install.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = "pymai"
author = "pymai contributors"
copyright = "pymai contributors"
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

# Google-style docstrings only.
napoleon_google_docstring = True
napoleon_numpy_docstring = False

autodoc_typehints = "description"
# Types for the parameters a docstring documents, and every return type except ``None`` (so
# classes do not show the ``-> None`` of their ``__init__``).
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
nitpicky = False

exclude_patterns = ["_build"]

html_theme = "furo"
html_title = "pymai"
