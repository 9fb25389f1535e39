"""The PostgreSQL durable store: psycopg 3 (sync API) on the runtime's store thread.

- One connection per store, used only by the store thread (the runtime runs every store call
  there and groups writes into one transaction), in autocommit mode with explicit
  ``BEGIN``/``COMMIT`` around each batch; no pipelines (a paused worker's transaction must be
  ended by ``idle_in_transaction_session_timeout``, see ``_IDLE_IN_TX_MS``). A connection lost
  to a server restart (or ended by that timeout) is reopened with backoff for up to
  ``reconnect_timeout`` seconds; the interrupted batch is then run again (every write is
  conditional, so a re-run is safe). Reads retry the same way.
- Leases and timers are judged by the database clock: ``now()`` in SQL, never the worker's.
  Times are ``double precision`` epoch seconds, like :class:`~mai.core.durable.RunRecord`.
- Claims use ``FOR UPDATE SKIP LOCKED`` inside a ``MATERIALIZED`` CTE with the ``LIMIT``, joined
  on the primary key, so an UPDATE never takes more rows than asked. Queue limits count live
  leases under a per-queue advisory lock, so concurrent claims cannot overshoot.
- Every owner write is conditional on ``(owner, epoch)`` and checks the affected row count; a
  step insert share-locks the run row, so it cannot slip in beside a concurrent takeover.
- ``NOTIFY mai_runs`` (payload: the queue) when a run is created, released or finished, and
  ``NOTIFY mai_events`` (payload: the run id) when a message is sent; workers ``LISTEN``.
- Schema migrations run under ``pg_advisory_xact_lock``: of several processes opening an empty
  database at once, exactly one migrates; the others wait for it and proceed.

URL: ``postgresql://user:password@host:port/dbname?param=value`` (``postgres://`` too). libpq
parameters pass through (``sslmode``, ``connect_timeout``, ...); pymai adds ``schema`` (keep
pymai's tables in that schema, created if needed) and ``reconnect_timeout`` (seconds to keep
reconnecting before raising :class:`mai.StoreUnavailableError`, default 30).

The password is never shown: it is taken out of the URL (user information or a ``password=``
parameter) and handed to libpq as a separate connection parameter, so no URI-parsing message
can quote it; driver messages are still cleaned of it where driver errors are translated
(``_connection``, ``_error``), a connection error is not chained (psycopg keeps the connection
object, password included, on it), and ``store.url`` is the redacted URL. Without a password in
the URL, libpq reads ``PGPASSWORD`` or the ``~/.pgpass`` file (``PGPASSFILE``) as usual.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from mai import (
    LeaseLostError,
    RunStatus,
    StoreBusyError,
    StoreError,
    StoreFullError,
    StoreReadOnlyError,
    StoreSchemaError,
    StoreUnavailableError,
)
from mai.core.durable import (
    RUN_COLUMNS,
    STEP_COLUMNS,
    AttemptRecord,
    EventRecord,
    RunQuery,
    RunRecord,
    RunSummary,
    StepRecord,
    decode_cursor,
    fault_point,
    merge_pages,
    redact_text,
    redact_url,
    run_from_row,
    step_values,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import psycopg

SCHEMA_VERSION = 2
INSTALL = "pip install 'pymai[postgres]' (or: pip install 'psycopg[binary]>=3.2')"
#: NOTIFY channel for runs that became claimable (payload: queue name).
RUNS_CHANNEL = "mai_runs"
#: NOTIFY channel for messages sent to a run (payload: run id).
EVENTS_CHANNEL = "mai_events"
#: NOTIFY channel for runs that finished (payload: queue name): a slot of a queue with a global
#: limit is free again. Only workers with ``queue_limits`` listen: the others would only wake.
SLOTS_CHANNEL = "mai_slots"

_NOW = "extract(epoch from now())::float8"
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE mai_runs (
            run_id text PRIMARY KEY,
            workflow text NOT NULL,
            ref text,
            plan_hash text NOT NULL,
            plan text NOT NULL,
            input text NOT NULL,
            status text NOT NULL,
            output text,
            error text,
            format text NOT NULL DEFAULT 'json',
            deadline double precision,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            owner text,
            epoch bigint NOT NULL DEFAULT 0,
            lease_until double precision,
            queue text NOT NULL DEFAULT 'default',
            cancel_requested boolean NOT NULL DEFAULT false,
            trace_context text
        )""",
        (
            "CREATE INDEX mai_runs_claimable ON mai_runs (queue, created_at, run_id) "
            "WHERE status IN ('PENDING', 'RUNNING')"
        ),
        "CREATE INDEX mai_runs_status ON mai_runs (status, created_at)",
        """CREATE TABLE mai_steps (
            run_id text NOT NULL,
            step_id text NOT NULL,
            name text NOT NULL,
            kind text NOT NULL,
            input text,
            output text NOT NULL,
            format text NOT NULL DEFAULT 'json',
            started_at double precision NOT NULL,
            finished_at double precision NOT NULL,
            attempts integer NOT NULL DEFAULT 1,
            worker text,
            PRIMARY KEY (run_id, step_id)
        )""",
        """CREATE TABLE mai_events (
            event_id bigserial PRIMARY KEY,
            run_id text NOT NULL,
            topic text NOT NULL,
            payload text NOT NULL,
            created_at double precision NOT NULL,
            consumed_by text
        )""",
        "CREATE INDEX mai_events_run ON mai_events (run_id, topic, event_id)",
    ),
    2: (
        """CREATE TABLE IF NOT EXISTS mai_attempts (
            run_id text NOT NULL,
            seq integer NOT NULL,
            status text NOT NULL,
            output text,
            error text,
            finished_at double precision NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
    ),
}

_EVENT_COLUMNS = "event_id, run_id, topic, payload, created_at, consumed_by"
_CLAIMABLE = (
    f"((status = 'PENDING' AND (lease_until IS NULL OR lease_until < {_NOW})) "
    f"OR (status = 'RUNNING' AND (lease_until IS NULL OR lease_until < {_NOW})))"
)
#: Milliseconds a transaction may sit idle before the server ends it (its locks released);
#: the store thread runs a transaction's statements back to back, so only a stopped process
#: gets near it. Set ``options=-c idle_in_transaction_session_timeout=...`` to change it.
#:
#: The server arms this timer only when it has answered a ``Sync`` and waits for the next
#: message; every statement is therefore sent whole, ending with its own ``Sync``, never in a
#: libpq pipeline. A pipeline left two windows in which a stopped client (SIGSTOP, a starved
#: CPU) held its transaction's row locks forever, and ``FOR UPDATE SKIP LOCKED`` kept every
#: other worker off those runs whatever their leases said: between the statement and its
#: ``Sync`` (the server waits ``active``, no timeout applies), and after the block, because
#: psycopg ends a pipeline with a ``Flush`` after the ``Sync``, and reading that message
#: disarms the timer until the next statement (the session shows ``idle in transaction``).
_IDLE_IN_TX_MS = 10_000
_FATAL_CONNECT = ("authentication failed", "does not exist", "no pg_hba.conf entry", "password")
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Write methods made of one statement (plus reads): atomic without an explicit transaction.
_ALONE = frozenset(
    {"put_step", "renew_lease", "dead_letter", "mark_progress", "claim_run", "finish_run"}
)


def psycopg_module() -> Any:
    """Import psycopg, or raise :class:`mai.StoreError` with the install command."""
    try:
        import psycopg  # noqa: PLC0415 - optional driver, imported on first use
    except ImportError as exc:
        raise StoreError(
            f"the PostgreSQL store needs the psycopg driver, which is not installed: {INSTALL}"
        ) from exc
    return psycopg


def parse_url(url: str) -> tuple[str, str | None, dict[str, str], str]:
    """Split a store URL into (conninfo without password, password, pymai options, shown URL).

    The password (percent-decoded, from ``user:password@`` or a ``password=`` parameter) is
    returned apart, to be passed to libpq as its own parameter; the shown URL has neither the
    password nor the query.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise ValueError(f"not a PostgreSQL URL: {redact_url(url)!r}")
    params = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in params if k in {"schema", "reconnect_timeout"}}
    password = next((v for k, v in params if k == "password"), None)
    libpq = [(k, v) for k, v in params if k not in ours and k != "password"]
    if not any(k == "connect_timeout" for k, _ in libpq):
        libpq.append(("connect_timeout", "5"))
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, colon, secret = userinfo.partition(":")
    if colon:
        password = unquote(secret)
    bare = f"{user}@{hostport}" if at and user else hostport
    conninfo = urlunsplit(("postgresql", bare, parts.path, urlencode(libpq, quote_via=quote), ""))
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return conninfo, password, ours, shown


class PostgresStore:
    """A durable store in a PostgreSQL database, shared by any number of worker processes.

    Args:
        url: ``postgresql://user:password@host:port/dbname`` plus optional ``schema=...`` and
            ``reconnect_timeout=...`` (seconds, default 30) query parameters.

    Attributes:
        migrated: ``True`` when :meth:`open` of this instance created or upgraded the schema.
        retry_seconds: How long a lost connection is retried before the store gives up.
    """

    def __init__(self, url: str) -> None:
        """Prepare the store; nothing is imported or connected until :meth:`open`."""
        self.url = redact_url(url)
        self._raw_url = url
        self._conninfo, self._password, opts, self._shown = parse_url(url)
        self.retry_seconds = float(opts.get("reconnect_timeout", "30"))
        schema = opts.get("schema") or None
        if schema is not None and not _IDENT.fullmatch(schema):
            raise ValueError(
                f"{self._shown}: schema must be a lower-case SQL identifier, received {schema!r}"
            )
        self.schema = schema
        self.migrated = False
        self._conn: psycopg.Connection[Any] | None = None
        self._in_tx = False
        self._begin_pending = False

    def __repr__(self) -> str:
        """Return the URL without its password."""
        return f"<PostgresStore {self._shown}>"

    # -- connections and errors ----------------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        """Open a new autocommit connection (with this store's search path); no retries."""
        driver = psycopg_module()
        conn: psycopg.Connection[Any] = driver.Connection.connect(
            self._conninfo, autocommit=True, password=self._password
        )
        try:
            if self.schema is not None:
                conn.execute(f'SET search_path TO "{self.schema}"')
            if "idle_in_transaction_session_timeout" not in self._conninfo:
                # a worker paused inside a transaction (SIGSTOP, a starved CPU) holds the row
                # locks of its runs, and FOR UPDATE SKIP LOCKED would skip them until it woke,
                # whatever their leases say: the server ends such a transaction instead
                conn.execute(f"SET idle_in_transaction_session_timeout = {_IDLE_IN_TX_MS}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._discard()
        psycopg = psycopg_module()
        give_up = time.monotonic() + self.retry_seconds
        delay = 0.05
        while True:
            try:
                self._conn = self.connect()
            except psycopg.Error as exc:
                text = self._clean(str(exc)).strip()
                fatal = not isinstance(exc, psycopg.OperationalError) or any(
                    s in text for s in _FATAL_CONNECT
                )
            else:
                return self._conn
            # raised outside the except block on purpose: the driver's connection error is
            # neither the cause nor the context of ours, because it holds the connection
            # object, password included (its message is kept, cleaned)
            if fatal:
                raise StoreError(
                    f"PostgreSQL store {self._shown}: cannot connect: {text}", url=self.url
                )
            if time.monotonic() >= give_up:
                raise StoreUnavailableError(
                    f"PostgreSQL store {self._shown} is unreachable: still failing after "
                    f"{self.retry_seconds:g}s (reconnect_timeout): {text}",
                    url=self.url,
                    retryable=False,
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _clean(self, text: str) -> str:
        """A driver message without this store's password, in any form it could take."""
        text = redact_text(text, self._raw_url)
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def _error(self, exc: Exception) -> StoreError:
        """Translate a driver error into the matching :class:`mai.StoreError` (one boundary)."""
        psycopg = psycopg_module()
        sqlstate = getattr(exc, "sqlstate", None) or ""
        conn = self._conn
        text = self._clean(str(exc).strip())
        where = f"PostgreSQL store {self._shown}"
        lost = conn is None or conn.closed or conn.broken
        if (
            isinstance(exc, psycopg.InterfaceError)
            or sqlstate.startswith(("08", "57P"))
            # the server ended the session of a transaction left idle (a paused process): its
            # batch is run again on a new connection, where fencing decides what still holds
            or sqlstate == "25P03"
            or (isinstance(exc, psycopg.OperationalError) and lost)
        ):
            self._discard()
            return StoreUnavailableError(f"{where}: connection lost ({text})", url=self.url)
        if sqlstate in {"40001", "40P01", "55P03"}:
            err: StoreError = StoreBusyError(f"{where}: {text}", url=self.url)
            err.retryable = True  # type: ignore[attr-defined]
            return err
        if sqlstate.startswith("53"):
            return StoreFullError(f"{where} is out of space or resources ({text})", url=self.url)
        if sqlstate in {"25006", "42501"}:
            return StoreReadOnlyError(f"{where} refuses writes ({text})", url=self.url)
        return StoreError(f"{where}: {text}", url=self.url)

    def _x(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        psycopg = psycopg_module()
        conn = self._conn
        if self._in_tx and (conn is None or conn.closed or conn.broken):
            # never continue a transaction on a fresh connection: fail the batch, re-run it
            raise StoreUnavailableError(
                f"PostgreSQL store {self._shown}: connection lost inside a transaction",
                url=self.url,
            )
        conn = self._connection()
        try:
            if self._begin_pending:
                # BEGIN is sent just before the transaction's first statement, in a round trip
                # of its own: never in a pipeline with it (see _IDLE_IN_TX_MS)
                self._begin_pending = False
                conn.execute("BEGIN")
                cur = conn.execute(sql, params)
                fault_point("inside_transaction")  # the statement's row locks are held
                return cur
            return conn.execute(sql, params)
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def _retrying(self, fn: Callable[[], Any]) -> Any:
        """Run a read, reconnecting and retrying while the server is unreachable."""
        if self._in_tx:
            return fn()
        give_up: float | None = None
        while True:
            try:
                return fn()
            except StoreError as exc:
                now = time.monotonic()
                give_up = give_up if give_up is not None else now + self.retry_seconds
                if not getattr(exc, "retryable", False) or now >= give_up:
                    raise
                time.sleep(0.05)

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._retrying(lambda: self._x(sql, params).fetchall())  # type: ignore[no-any-return]

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and migrate the schema (one process migrates; concurrent openers wait)."""
        try:
            self._open()
        except BaseException:
            self._discard()
            raise

    def _open(self) -> None:
        self._retrying(self._connection)
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise self._newer(version)
        with self.transaction():
            self._x("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"mai.migrate.{self.schema}",))
            if self.schema is not None:
                self._x(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            self._x("CREATE TABLE IF NOT EXISTS mai_meta (key text PRIMARY KEY, value text)")
            version = self._version()
            if version > SCHEMA_VERSION:
                raise self._newer(version)
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[v]:
                    self._x(statement)
                self._x(
                    "INSERT INTO mai_meta (key, value) VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(v),),
                )
                self.migrated = True

    def _newer(self, version: int) -> StoreSchemaError:
        return StoreSchemaError(
            f"PostgreSQL store {self._shown} has schema version {version}, newer than this "
            f"mai-postgres understands ({SCHEMA_VERSION}); upgrade mai-postgres to use it",
            url=self.url,
        )

    def _version(self) -> int:
        (exists,) = self._x("SELECT to_regclass('mai_meta') IS NOT NULL").fetchone() or (False,)
        if not exists:
            return 0
        row = self._x("SELECT value FROM mai_meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def schema_version(self) -> int:
        """The schema version the database is stamped with (0: not created yet)."""
        return int(self._retrying(self._version))

    def close(self) -> None:
        """Close the connection."""
        self._discard()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN`` ... ``COMMIT`` on the store's connection; rolled back on any error."""
        self._connection()  # connect (or reconnect) before the transaction, not inside it
        self._begin_pending = True
        self._in_tx = True
        try:
            yield
            fault_point("inside_commit")
            if self._begin_pending:  # nothing was written: nothing to commit
                self._begin_pending = False
            else:
                self._x("COMMIT")
        except BaseException:
            conn = self._conn
            if conn is not None and not conn.broken and not self._begin_pending:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
            raise
        finally:
            self._in_tx = False
            self._begin_pending = False

    def runs_alone(self, fn: Callable[..., Any]) -> bool:
        """Whether ``fn`` (a method of this store) writes with one atomic statement.

        The executor then runs a batch made of that one call without ``BEGIN``/``COMMIT``:
        PostgreSQL makes the single statement its own transaction, which saves two network
        round trips per step of a sequential run.
        """
        return getattr(fn, "__self__", None) is self and getattr(fn, "__name__", "") in _ALONE

    def now(self) -> float:
        """The database clock, epoch seconds (leases and timers are judged by it)."""
        rows = self._all(f"SELECT {_NOW}")
        return float(rows[0][0])

    def listener(self, *, slots: bool = False) -> PostgresListener:
        """A dedicated ``LISTEN`` connection for workers (see :class:`PostgresListener`).

        ``slots``: also hear of finished runs (a worker with ``queue_limits`` claims as soon
        as a slot of a limited queue is free; the others are not woken by every finish).
        """
        return PostgresListener(self, slots=slots)

    # -- runs ----------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        """Insert the run unless its id exists; return the stored run and whether it is new."""
        r = record
        cur = self._x(
            f"INSERT INTO mai_runs ({RUN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "  # noqa: S608
            f"%s, %s, coalesce(%s, {_NOW}), {_NOW}, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (run_id) DO NOTHING",
            (
                r.run_id,
                r.workflow,
                r.ref,
                r.plan_hash,
                r.plan,
                r.input,
                str(r.status),
                r.output,
                r.error,
                r.format,
                r.deadline,
                r.created_at or None,
                r.attempts,
                r.owner,
                r.epoch,
                r.lease_until,
                r.queue,
                r.cancel_requested,
                r.trace_context,
            ),
        )
        created = cur.rowcount == 1
        if created:
            self._notify(RUNS_CHANNEL, r.queue)
        stored = self.get_run(r.run_id)
        if stored is None:  # pragma: no cover - inserted or already there
            raise StoreError(f"run {r.run_id!r} vanished after insert", url=self.url)
        return stored, created

    def _notify(self, channel: str, payload: str) -> None:
        self._x("SELECT pg_notify(%s, %s)", (channel, payload[:7000]))

    def get_run(self, run_id: str) -> RunRecord | None:
        """Return the run or ``None``."""
        rows = self._all(f"SELECT {RUN_COLUMNS} FROM mai_runs WHERE run_id = %s", (run_id,))  # noqa: S608
        return run_from_row(rows[0]) if rows else None

    def list_runs(self, status: RunStatus | None = None, limit: int = 1000) -> list[RunRecord]:
        """Return runs, newest first."""
        if status is None:
            rows = self._all(
                f"SELECT {RUN_COLUMNS} FROM mai_runs ORDER BY created_at DESC, run_id LIMIT %s",  # noqa: S608
                (limit,),
            )
        else:
            rows = self._all(
                f"SELECT {RUN_COLUMNS} FROM mai_runs WHERE status = %s "  # noqa: S608
                "ORDER BY created_at DESC, run_id LIMIT %s",
                (str(RunStatus(status)), limit),
            )
        return [run_from_row(r) for r in rows]

    def claim_run(
        self, run_id: str, owner: str, lease_seconds: float, *, steal_from: str | None = None
    ) -> RunRecord | None:
        """Take a live run whose lease is free, expired (database clock) or ``steal_from``'s."""
        row = self._x(
            f"UPDATE mai_runs SET status = 'RUNNING', owner = %s, epoch = epoch + 1, "  # noqa: S608
            f"attempts = attempts + 1, lease_until = {_NOW} + %s, updated_at = {_NOW} "
            "WHERE run_id = %s AND status IN ('PENDING', 'RUNNING') AND (owner IS NULL OR "
            f"lease_until IS NULL OR lease_until < {_NOW} OR owner = %s) "
            f"RETURNING {RUN_COLUMNS}",
            (owner, lease_seconds, run_id, steal_from),
        ).fetchone()
        return run_from_row(row) if row else None

    def claim_next(
        self,
        queues: Sequence[str],
        owner: str,
        lease_seconds: float,
        limit: int,
        queue_limits: Mapping[str, int] | None = None,
    ) -> list[RunRecord]:
        """Claim up to ``limit`` claimable runs, oldest first, with ``FOR UPDATE SKIP LOCKED``."""
        if limit <= 0 or not queues:
            return []
        limits = dict(queue_limits or {})
        claimed: list[RunRecord] = []
        free = [q for q in dict.fromkeys(queues) if q not in limits]
        if free:
            claimed += self._claim_from(free, owner, lease_seconds, limit)
        # Capped queues, in a fixed order: the advisory lock serialises counting and claiming
        # per queue across every worker until this transaction commits.
        for queue in sorted({q for q in queues if q in limits}):
            if len(claimed) >= limit:
                break
            self._x(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"mai.queue.{self.schema}.{queue}",)
            )
            row = self._x(
                "SELECT count(*) FROM mai_runs WHERE queue = %s AND status = 'RUNNING' "  # noqa: S608
                f"AND lease_until >= {_NOW}",
                (queue,),
            ).fetchone()
            room = min(limits[queue] - int(row[0] if row else 0), limit - len(claimed))
            if room > 0:
                claimed += self._claim_from([queue], owner, lease_seconds, room)
        if len(claimed) > limit:  # pragma: no cover - guarded by the SQL; never trust, check
            raise StoreError(
                f"claim returned {len(claimed)} runs for a limit of {limit}", url=self.url
            )
        claimed.sort(key=lambda r: (r.created_at, r.run_id))
        return claimed

    def _claim_from(
        self, queues: list[str], owner: str, lease_seconds: float, limit: int
    ) -> list[RunRecord]:
        rows = self._x(
            "WITH picked AS MATERIALIZED ("  # noqa: S608 - constant fragments
            f"SELECT run_id FROM mai_runs WHERE queue = ANY(%s) AND {_CLAIMABLE} "
            "ORDER BY created_at, run_id LIMIT %s FOR UPDATE SKIP LOCKED) "
            "UPDATE mai_runs AS r SET status = 'RUNNING', owner = %s, epoch = r.epoch + 1, "
            f"attempts = r.attempts + 1, lease_until = {_NOW} + %s, updated_at = {_NOW} "
            "FROM picked WHERE r.run_id = picked.run_id "
            f"RETURNING {', '.join('r.' + c for c in RUN_COLUMNS.split(', '))}",
            (queues, limit, owner, lease_seconds),
        ).fetchall()
        return [run_from_row(r) for r in rows]

    def renew_lease(self, run_id: str, owner: str, epoch: int, lease_seconds: float) -> bool:
        """Extend the lease (database clock) if ``(owner, epoch)`` still owns the run."""
        cur = self._x(
            f"UPDATE mai_runs SET lease_until = {_NOW} + %s, updated_at = {_NOW} "  # noqa: S608
            "WHERE run_id = %s AND owner = %s AND epoch = %s AND status = 'RUNNING'",
            (lease_seconds, run_id, owner, epoch),
        )
        return cur.rowcount == 1

    def mark_progress(self, run_id: str, owner: str, epoch: int) -> bool:
        """Reset the run's count of starts without progress to 1 (fenced)."""
        cur = self._x(
            "UPDATE mai_runs SET attempts = 1 WHERE run_id = %s AND owner = %s AND epoch = %s "
            "AND status = 'RUNNING' AND attempts > 1",
            (run_id, owner, epoch),
        )
        return cur.rowcount == 1

    def release_run(self, run_id: str, owner: str, epoch: int) -> bool:
        """Hand the run back (PENDING, unowned, the attempt not counted) and notify workers."""
        row = self._x(
            "UPDATE mai_runs SET status = 'PENDING', owner = NULL, lease_until = NULL, "  # noqa: S608
            f"attempts = greatest(attempts - 1, 0), updated_at = {_NOW} "
            "WHERE run_id = %s AND owner = %s AND epoch = %s AND status = 'RUNNING' "
            "RETURNING queue",
            (run_id, owner, epoch),
        ).fetchone()
        if row is None:
            return False
        self._notify(RUNS_CHANNEL, row[0])
        return True

    def finish_run(
        self,
        run_id: str,
        owner: str,
        epoch: int,
        status: RunStatus,
        output: str | None,
        error: str | None,
    ) -> bool:
        """Record the final outcome once (conditional on ownership and a live status).

        One statement, the notification included (a slot of its queue is free again), so a
        lone outcome needs no ``BEGIN``/``COMMIT``.
        """
        row = self._x(
            "WITH done AS (UPDATE mai_runs SET status = %s, output = %s, error = %s, "  # noqa: S608
            f"lease_until = NULL, updated_at = {_NOW} WHERE run_id = %s AND owner = %s "
            "AND epoch = %s AND status = 'RUNNING' RETURNING queue) "
            "SELECT pg_notify(%s, left(queue, 7000)) FROM done",
            (str(status), output, error, run_id, owner, epoch, SLOTS_CHANNEL),
        ).fetchone()
        return row is not None

    def finish_run_batch(
        self, items: Sequence[tuple[str, str, int, RunStatus, str | None, str | None]]
    ) -> list[bool]:
        """Record many runs' outcomes with one statement, each as :meth:`finish_run` would.

        The runs are found by their primary key (``(status = 'RUNNING') IS TRUE`` is not an
        index condition: the planner would otherwise scan every running run of every worker in
        the status index and join).
        """
        rows = [
            [run_id, owner, epoch, str(status), output, error]
            for run_id, owner, epoch, status, output, error in items
        ]
        runs = json.dumps(sorted({item[0] for item in items}), ensure_ascii=False)
        got = self._x(
            "WITH i AS (SELECT e->>0 AS run_id, e->>1 AS owner, (e->>2)::bigint AS epoch, "  # noqa: S608
            "e->>3 AS status, e->>4 AS output, e->>5 AS error "
            "FROM jsonb_array_elements(%s::jsonb) AS e), "
            "done AS (UPDATE mai_runs AS r SET status = i.status, output = i.output, "
            f"error = i.error, lease_until = NULL, updated_at = {_NOW} FROM i "
            "WHERE r.run_id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb))) "
            "AND r.run_id = i.run_id AND r.owner = i.owner AND r.epoch = i.epoch "
            "AND (r.status = 'RUNNING') IS TRUE RETURNING r.run_id, r.queue) "
            "SELECT run_id, pg_notify(%s, left(queue, 7000)) FROM done",
            (_json(rows), runs, SLOTS_CHANNEL),
        ).fetchall()
        recorded = {r[0] for r in got}
        return [item[0] in recorded for item in items]

    def dead_letter(self, run_id: str, reason: str) -> bool:
        """Mark a live run DEAD with its reason (once)."""
        cur = self._x(
            "UPDATE mai_runs SET status = 'DEAD', error = %s, owner = NULL, lease_until = NULL, "  # noqa: S608
            f"updated_at = {_NOW} WHERE run_id = %s "
            "AND status NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'DEAD')",
            (reason, run_id),
        )
        return cur.rowcount == 1

    def request_cancel(self, run_id: str) -> RunRecord | None:
        """Flag the run; an unowned (or expired) live run is CANCELLED at once."""
        self._x(
            f"UPDATE mai_runs SET cancel_requested = true, updated_at = {_NOW} "  # noqa: S608
            "WHERE run_id = %s AND status IN ('PENDING', 'RUNNING')",
            (run_id,),
        )
        self._x(
            "UPDATE mai_runs SET status = 'CANCELLED', owner = NULL, lease_until = NULL "  # noqa: S608
            "WHERE run_id = %s AND status IN ('PENDING', 'RUNNING') "
            f"AND (owner IS NULL OR lease_until IS NULL OR lease_until < {_NOW})",
            (run_id,),
        )
        return self.get_run(run_id)

    def requeue_run(self, run_id: str) -> RunRecord | None:
        """Keep the DEAD/FAILED outcome as history and make the run PENDING again."""
        row = self._x(
            "SELECT status FROM mai_runs WHERE run_id = %s AND status IN ('DEAD', 'FAILED') "
            "FOR UPDATE",
            (run_id,),
        ).fetchone()
        if row is None:
            return None
        self._x(
            "INSERT INTO mai_attempts (run_id, seq, status, output, error, finished_at) "
            "SELECT run_id, (SELECT count(*) FROM mai_attempts WHERE run_id = %s) + 1, status, "
            "output, error, updated_at FROM mai_runs WHERE run_id = %s",
            (run_id, run_id),
        )
        self._x(
            "UPDATE mai_runs SET status = 'PENDING', output = NULL, error = NULL, owner = NULL, "  # noqa: S608
            "lease_until = NULL, attempts = 0, cancel_requested = false, "
            f"updated_at = {_NOW} WHERE run_id = %s",
            (run_id,),
        )
        run = self.get_run(run_id)
        if run is not None:
            self._notify(RUNS_CHANNEL, run.queue)
        return run

    def load_history(self, run_id: str) -> list[AttemptRecord]:
        """Return the kept outcomes, oldest first."""
        rows = self._all(
            "SELECT run_id, seq, status, output, error, finished_at FROM mai_attempts "
            "WHERE run_id = %s ORDER BY seq",
            (run_id,),
        )
        return [AttemptRecord(*r) for r in rows]

    # -- steps ---------------------------------------------------------------------------------

    def load_steps(self, run_id: str) -> list[StepRecord]:
        """Return the run's committed steps in commit order."""
        rows = self._all(
            f"SELECT {STEP_COLUMNS} FROM mai_steps WHERE run_id = %s ORDER BY finished_at",  # noqa: S608
            (run_id,),
        )
        return [StepRecord(*r) for r in rows]

    def put_step(self, record: StepRecord, owner: str, epoch: int) -> bool:
        """Commit the step once; fenced by ``(owner, epoch)`` under a share lock on the run."""
        r = record
        cur = self._x(
            "WITH owned AS (SELECT 1 FROM mai_runs WHERE run_id = %s AND owner = %s "  # noqa: S608
            "AND epoch = %s AND status = 'RUNNING' FOR SHARE) "
            f"INSERT INTO mai_steps ({STEP_COLUMNS}) "
            "SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s FROM owned "
            "ON CONFLICT (run_id, step_id) DO NOTHING",
            (r.run_id, owner, epoch, *step_values(r)),
        )
        if cur.rowcount == 1:
            return True
        owned = self._x(
            "SELECT 1 FROM mai_runs WHERE run_id = %s AND owner = %s AND epoch = %s "
            "AND status = 'RUNNING'",
            (r.run_id, owner, epoch),
        ).fetchone()
        if owned is None:
            raise LeaseLostError(
                f"run {r.run_id!r}: step {r.step_id} not recorded, this process (epoch {epoch}) "
                "no longer owns the run",
                run_id=r.run_id,
                step_id=r.step_id,
            )
        return False

    def put_step_batch(self, items: Sequence[tuple[StepRecord, str, int]]) -> list[bool]:
        """Insert many steps in one statement (one round trip); ``True`` where inserted now.

        Each step goes in only while its run is RUNNING under the given ``(owner, epoch)``
        (a share lock on the run, as :meth:`put_step` takes). Steps not inserted are left to
        :meth:`put_step`, which the executor calls next in the same transaction. The rows
        travel as one JSON array of arrays (``json.dumps`` in C; psycopg's array dumpers are
        Python code, and dumping thirteen arrays was most of this call's cost). The runs are
        locked through their primary key, in key order (see :meth:`finish_run_batch`).
        """
        rows = [[owner, epoch, *step_values(r)] for r, owner, epoch in items]
        try:
            payload = _json(rows)
        except ValueError:  # a time that is not a finite number: left to put_step, one by one
            return [False] * len(items)
        runs = json.dumps(sorted({r.run_id for r, _, _ in items}), ensure_ascii=False)
        got = self._x(
            "WITH e AS (SELECT jsonb_array_elements(%s::jsonb) AS e), "  # noqa: S608
            "i AS (SELECT e->>0 AS owner, (e->>1)::bigint AS epoch, e->>2 AS run_id, "
            "e->>3 AS step_id, e->>4 AS name, e->>5 AS kind, e->>6 AS input, e->>7 AS output, "
            "e->>8 AS format, (e->>9)::float8 AS started_at, (e->>10)::float8 AS finished_at, "
            "(e->>11)::int AS attempts, e->>12 AS worker FROM e), "
            "owned AS (SELECT run_id, owner, epoch FROM mai_runs WHERE run_id = ANY(ARRAY("
            "SELECT jsonb_array_elements_text(%s::jsonb))) AND (status = 'RUNNING') IS TRUE "
            "FOR SHARE) "
            f"INSERT INTO mai_steps ({STEP_COLUMNS}) "
            "SELECT i.run_id, i.step_id, i.name, i.kind, i.input, i.output, i.format, "
            "i.started_at, i.finished_at, i.attempts, i.worker FROM i JOIN owned o "
            "ON o.run_id = i.run_id AND o.owner = i.owner AND o.epoch = i.epoch "
            "ON CONFLICT (run_id, step_id) DO NOTHING RETURNING run_id, step_id",
            (payload, runs),
        ).fetchall()
        inserted = {(run_id, step_id) for run_id, step_id in got}
        return [(r.run_id, r.step_id) in inserted for r, _, _ in items]

    # -- events --------------------------------------------------------------------------------

    def add_event(self, run_id: str, topic: str, payload: str) -> int:
        """Store a message for the run and notify its worker."""
        row = self._x(
            "INSERT INTO mai_events (run_id, topic, payload, created_at) "  # noqa: S608
            f"VALUES (%s, %s, %s, {_NOW}) RETURNING event_id",
            (run_id, topic, payload),
        ).fetchone()
        self._notify(EVENTS_CHANNEL, run_id)
        return int(row[0]) if row else 0

    def take_event(self, run_id: str, topic: str, step_id: str) -> EventRecord | None:
        """Consume the oldest unconsumed message on ``topic`` for ``step_id`` (idempotent)."""
        mine = self._x(
            f"SELECT {_EVENT_COLUMNS} FROM mai_events WHERE run_id = %s AND topic = %s "  # noqa: S608
            "AND consumed_by = %s",
            (run_id, topic, step_id),
        ).fetchone()
        if mine is not None:
            return EventRecord(*mine)
        row = self._x(
            "UPDATE mai_events SET consumed_by = %s WHERE event_id = ("  # noqa: S608
            "SELECT event_id FROM mai_events WHERE run_id = %s AND topic = %s "
            "AND consumed_by IS NULL ORDER BY event_id LIMIT 1 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_EVENT_COLUMNS}",
            (step_id, run_id, topic),
        ).fetchone()
        return EventRecord(*row) if row else None

    # -- pages of runs (the optional PagedRunStore capability, for `mai ui`) -------------------

    def page_runs(
        self, query: RunQuery, after: str | None, limit: int
    ) -> tuple[list[RunSummary], str | None]:
        """One page of runs by indexed queries; newest first.

        The run-id search is a range on the primary key; otherwise each status present (a
        loose index scan of ``mai_runs_status``) is read in ``created_at`` order from that
        index, ``limit + 1`` rows each, and the pieces are merged: no query sorts the table.
        """
        limit = max(1, min(limit, 500))
        cols = "run_id, workflow, status, created_at, updated_at, attempts, queue"
        extra = ""
        extra_params: tuple[Any, ...] = ()
        if query.workflow is not None:
            extra, extra_params = " AND workflow = %s", (query.workflow,)
        if query.run_id_prefix:
            prefix = query.run_id_prefix
            where = "run_id >= %s AND run_id < %s AND starts_with(run_id, %s)"
            params: tuple[Any, ...] = (prefix, prefix + "\U0010ffff", prefix)
            if after is not None:
                where += " AND run_id > %s"
                params += (decode_cursor(query, after)[1],)
            if query.status is not None:
                where += " AND status = %s"
                params += (str(query.status),)
            rows = self._all(
                f"SELECT {cols} FROM mai_runs WHERE {where}{extra} "  # noqa: S608
                "ORDER BY run_id LIMIT %s",
                (*params, *extra_params, limit + 1),
            )
            return merge_pages(query, [_summaries(rows)], limit)
        keyset = ""
        keyset_params: tuple[Any, ...] = ()
        if after is not None:
            when, run_id = decode_cursor(query, after)
            keyset, keyset_params = " AND (created_at, run_id) < (%s, %s)", (when, run_id)
        if query.status is not None:
            statuses = [str(query.status)]
        else:
            statuses = [
                r[0]
                for r in self._all(
                    "WITH RECURSIVE s(status) AS ("
                    "(SELECT status FROM mai_runs ORDER BY status LIMIT 1) UNION ALL "
                    "SELECT (SELECT status FROM mai_runs WHERE status > s.status "
                    "ORDER BY status LIMIT 1) FROM s WHERE s.status IS NOT NULL) "
                    "SELECT status FROM s WHERE status IS NOT NULL"
                )
            ]
        parts = [
            _summaries(
                self._all(
                    f"SELECT {cols} FROM mai_runs WHERE status = %s{keyset}{extra} "  # noqa: S608
                    "ORDER BY created_at DESC, run_id DESC LIMIT %s",
                    (status, *keyset_params, *extra_params, limit + 1),
                )
            )
            for status in statuses
        ]
        return merge_pages(query, parts, limit)


def _json(rows: list[list[Any]]) -> str:
    """Rows as one JSON text for ``jsonb_array_elements`` (floats keep every digit)."""
    return json.dumps(rows, ensure_ascii=False, allow_nan=False)


_KINDS = {RUNS_CHANNEL: "runs", EVENTS_CHANNEL: "events", SLOTS_CHANNEL: "runs"}


def _summaries(rows: list[tuple[Any, ...]]) -> list[RunSummary]:
    out = []
    for r in rows:
        try:
            status = RunStatus(r[2])
        except ValueError:
            status = RunStatus.PENDING  # as run_from_row: recovery dead-letters such a row
        out.append(RunSummary(r[0], r[1], status, r[3], r[4], r[5], r[6]))
    return out


class PostgresListener:
    """A dedicated ``LISTEN mai_runs, mai_events`` connection, read from one thread.

    :meth:`wait` blocks up to ``timeout`` seconds and returns the notifications received as
    ``(kind, payload)`` pairs: ``("runs", queue)`` when a run of ``queue`` became claimable
    (with ``slots``, also when one finished and freed a slot of its queue),
    ``("events", run_id)`` when a message was sent to a run. After a lost connection it
    reconnects (with backoff, inside later calls) and returns ``[("reconnected", "")]`` once,
    because notifications sent while it was away are lost: the caller polls the store then.
    """

    def __init__(self, store: PostgresStore, *, slots: bool = False) -> None:
        """Bind to ``store``'s URL; connects lazily (``slots``: also LISTEN to finished runs)."""
        self.store = store
        self.slots = slots
        self._conn: psycopg.Connection[Any] | None = None
        self._was_lost = False
        self._delay = 0.05

    def _connect(self) -> psycopg.Connection[Any]:
        conn = self.store.connect()
        conn.execute(f"LISTEN {RUNS_CHANNEL}")
        conn.execute(f"LISTEN {EVENTS_CHANNEL}")
        if self.slots:
            conn.execute(f"LISTEN {SLOTS_CHANNEL}")
        return conn

    def wait(self, timeout: float) -> list[tuple[str, str]]:
        """Return the notifications that arrive within ``timeout`` seconds (maybe none)."""
        psycopg = psycopg_module()
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = self._connect()
            except psycopg.Error:
                self._was_lost = True
                time.sleep(min(self._delay, timeout))
                self._delay = min(self._delay * 2, 1.0)
                return []
            self._delay = 0.05
            if self._was_lost:
                self._was_lost = False
                return [("reconnected", "")]
        out: list[tuple[str, str]] = []
        try:
            notes = list(self._conn.notifies(timeout=timeout, stop_after=1))
            if notes:  # drain what is already there without waiting again
                notes += self._conn.notifies(timeout=0.001)
            out = [(_KINDS.get(n.channel, n.channel), n.payload) for n in notes]
        except psycopg.Error:
            self.close()
            self._was_lost = True
        return out

    def close(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
