"""Test helpers: a throwaway PostgreSQL cluster from the installed server binaries.

:class:`PostgresCluster` starts a private server on 127.0.0.1 (a free port, a new directory
under ``/tmp``), creates databases for tests, and removes everything afterwards. pymai's test
suite and benchmarks use it; a project testing its own workflows on PostgreSQL can too.
"""

from ._cluster import INSTALL_HINT, PostgresCluster, find_bindir, free_port

__all__ = ["INSTALL_HINT", "PostgresCluster", "find_bindir", "free_port"]
