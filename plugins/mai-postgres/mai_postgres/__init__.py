"""mai-postgres: the PostgreSQL durable store for pymai (``postgresql://`` store URLs).

Installing this distribution registers :class:`PostgresStore` in the ``mai.stores`` entry-point
group for the ``postgresql`` and ``postgres`` schemes, so ``mai.Runtime("postgresql://...")``
and ``mai.Worker("postgresql://...")`` find it with no code. See ``docs/workers.rst``.
"""

from ._store import PostgresListener as PostgresListener
from ._store import PostgresStore as PostgresStore

__version__ = "0.1.0"

__all__ = ["PostgresListener", "PostgresStore"]
