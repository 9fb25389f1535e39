"""Random-program tests (the long ``chaos`` variant is deselected by tests/conftest.py).

``tests/durable`` is on ``sys.path`` here (this directory is a package, so pytest puts its
parent there), which is how ``harness`` and ``randprog`` are imported.
"""
