"""``python -m mai`` is the ``mai`` command."""

import sys

from mai.core.cli import main

sys.exit(main())
