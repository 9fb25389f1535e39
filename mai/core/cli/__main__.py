"""``python -m mai.core.cli`` is the ``mai`` command."""

import sys

from . import main

sys.exit(main())
