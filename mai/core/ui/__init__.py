"""``mai ui``: a local web view of durable runs, steps, agent conversations and plans.

Needs the ``ui`` extra (``pip install 'pymai[ui]'``: Starlette and Hypercorn); everything the
page loads (script, styles) ships inside this package. Start it with ``mai ui`` or
:func:`serve_ui`.
"""

from ._server import UIAddress as UIAddress
from ._server import UIConfigError as UIConfigError
from ._server import serve_ui as serve_ui
