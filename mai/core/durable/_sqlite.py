"""The embedded default store: SQLite through the standard library's ``sqlite3``.

- WAL journal; ``synchronous=FULL`` by default (a committed step survives power loss);
  ``?synchronous=normal`` in the URL trades that for speed (a power cut may lose the last
  commits, never corrupt the file; a process crash loses nothing).
- WAL checkpoints (copying the log into the file, with its fsyncs) are made by a background
  thread on its own connection every ``_CHECKPOINT_EVERY`` commits, not inside a commit on the
  event loop's thread (they cost milliseconds each); the writing connection keeps SQLite's own
  automatic checkpoint, at ``_CHECKPOINT_BACKSTOP`` pages, should that thread fall behind. At
  ``synchronous=full`` the writer then copies the few frames it committed while the thread was
  copying (``_catch_up``), so the log starts over instead of growing with every commit.
- Write transactions start with ``BEGIN IMMEDIATE``; every call, reads included, sits inside a
  retry policy for ``database is locked`` / ``busy``.
- A schema version stamp (``mai_meta``) with forward migrations, applied under the write lock so
  concurrent openers are safe; a store stamped with a newer version is refused.
- Errors are classified once here (full, read-only, corrupt, schema, busy).
- Who may read the file: pymai's own ``.mai/`` folder is private (0700, files 0600) whatever
  the umask; a location the user chose keeps its modes and is warned about when other users
  can read it (``_perms``).

URLs follow the SQLAlchemy convention: ``sqlite:///relative/path.db``,
``sqlite:////absolute/path.db``; query parameters ``synchronous`` (``full``/``normal``) and
``busy_timeout`` (seconds the retry policy keeps trying, default 10).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import _perms
from ._errors import (
    LeaseLostError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreReadOnlyError,
    StoreSchemaError,
)
from ._faults import fault_point
from ._store import (
    RUN_COLUMNS,
    STEP_COLUMNS,
    RunRecord,
    RunStatus,
    StepRecord,
    evolve_run,
    new_step,
    run_from_row,
    step_values,
)
from ._urls import redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from contextlib import AbstractContextManager

    from ._history import AttemptRecord, EventRecord
    from ._pages import RunQuery, RunSummary

SCHEMA_VERSION = 3

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE mai_runs (
        run_id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        ref TEXT,
        plan_hash TEXT NOT NULL,
        plan TEXT NOT NULL,
        input TEXT NOT NULL,
        status TEXT NOT NULL,
        output TEXT,
        error TEXT,
        format TEXT NOT NULL DEFAULT 'json',
        deadline REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        epoch INTEGER NOT NULL DEFAULT 0,
        lease_until REAL,
        queue TEXT NOT NULL DEFAULT 'default',
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        trace_context TEXT
    );
    CREATE INDEX mai_runs_status ON mai_runs (status, queue, created_at);
    CREATE TABLE mai_steps (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        input TEXT,
        output TEXT NOT NULL,
        format TEXT NOT NULL DEFAULT 'json',
        started_at REAL NOT NULL,
        finished_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        worker TEXT,
        PRIMARY KEY (run_id, step_id)
    ) WITHOUT ROWID;
    CREATE TABLE mai_events (
        event_id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL,
        consumed_by TEXT
    );
    CREATE INDEX mai_events_run ON mai_events (run_id, topic, consumed_by);
    """,
    2: """
    CREATE TABLE IF NOT EXISTS mai_attempts (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        status TEXT NOT NULL,
        output TEXT,
        error TEXT,
        finished_at REAL NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    """,
    # Plans stored once per plan hash, not in every run's row (a 10-step plan is ~5 KB: each
    # run wrote it, then rewrote it with its claim and its outcome). Rows written before keep
    # their plan inline; a row whose plan is '' has it here.
    3: """
    CREATE TABLE IF NOT EXISTS mai_plans (
        plan_hash TEXT PRIMARY KEY,
        plan TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
}

#: A run row in ``RUN_COLUMNS`` order, its plan from ``mai_plans`` when not kept inline.
_RUN_SELECT = RUN_COLUMNS.replace(
    " plan,",
    " coalesce(nullif(plan, ''), (SELECT p.plan FROM mai_plans p"
    " WHERE p.plan_hash = mai_runs.plan_hash), ''),",
    1,
)
#: The statements of every run, built once (not formatted per call).
_CREATE_RUN = (
    f"INSERT INTO mai_runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 20)}) "  # noqa: S608 - constant columns
    "ON CONFLICT (run_id) DO NOTHING"
)
_GET_RUN = f"SELECT {_RUN_SELECT} FROM mai_runs WHERE run_id = ?"  # noqa: S608 - constant columns
_PUT_STEP = (
    f"INSERT INTO mai_steps ({STEP_COLUMNS}) "  # noqa: S608 - constant columns
    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM mai_runs "
    "WHERE run_id = ? AND owner = ? AND epoch = ? AND status = 'RUNNING') "
    "ON CONFLICT (run_id, step_id) DO NOTHING"
)

_LIVE = ("PENDING", "RUNNING")

_BUSY = {"SQLITE_BUSY", "SQLITE_LOCKED"}
_FULL = {"SQLITE_FULL"}
_READONLY = {"SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"}
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


def parse_url(url: str) -> tuple[Path, dict[str, str]]:
    """Split a ``sqlite:///path?opts`` URL into a path and options."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ValueError(f"not a sqlite URL: {redact_url(url)!r}")
    raw = parts.path
    if not raw or raw == "/":
        raise ValueError(
            f"sqlite URL {redact_url(url)!r} names no file; use sqlite:///path/to/file.db"
        )
    path = Path(raw[1:]) if raw.startswith("/") else Path(raw)
    opts = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    return path, opts


def _row_to_step(r: tuple[Any, ...]) -> StepRecord:
    return new_step(*r)


#: Commits between two background WAL checkpoints (a step commit writes ~2.5 pages; SQLite's own
#: automatic checkpoint runs at 1,000 pages).
_CHECKPOINT_EVERY = 300
#: Pages of WAL at which the writing connection checkpoints by itself (the background thread
#: fell behind, or failed): the log never grows without bound.
_CHECKPOINT_BACKSTOP = 4000


class _Checkpointer:
    """A thread that checkpoints the WAL when asked, on a connection of its own.

    A checkpoint never blocks writers (``PASSIVE``) and any error is ignored: a busy or
    failing checkpoint is left to the next request, or to the writing connection's own
    automatic checkpoint (``_CHECKPOINT_BACKSTOP``). Durability is unchanged: a commit is
    durable when it is in the log (fsynced per commit at ``synchronous=full``; at ``normal`` the
    log is fsynced before each checkpoint, as SQLite's own checkpoint does).
    """

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self.wanted = threading.Event()
        #: Set after each checkpoint tried (for tests).
        self.done = threading.Event()
        #: Set after each checkpoint made where commits are fsynced (``full``, ``extra``); the
        #: writer then copies what it committed meanwhile (``SQLiteStore._catch_up``) and
        #: clears it. At ``normal`` a commit does not fsync, so a longer log costs it nothing.
        self.made = False
        self.catches_up = synchronous in {"FULL", "EXTRA"}
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="mai-sqlite-checkpoint", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self.wanted.wait()
                self.wanted.clear()
                if self.stopping:
                    return
                try:
                    if conn is None:
                        conn = sqlite3.connect(
                            self.path, isolation_level=None, check_same_thread=False, timeout=0
                        )
                        conn.execute(f"PRAGMA synchronous={self.synchronous}")
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.made = self.catches_up
                except sqlite3.Error:
                    pass  # busy or failing: the next request, or the backstop, checkpoints
                self.done.set()
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def stop(self) -> None:
        """End the thread (after the checkpoint in progress, if any)."""
        self.stopping = True
        self.wanted.set()
        if self.thread is not threading.current_thread():
            self.thread.join()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (a class, not a generator: one per step commit)."""

    __slots__ = ("conn", "store")

    def __init__(self, store: SQLiteStore, conn: sqlite3.Cursor) -> None:
        self.store = store
        self.conn = conn  # a cursor kept by the store (one object fewer per statement)

    def __enter__(self) -> None:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:  # locked or busy: wait it out (bounded), classify the rest
            self.store._retry(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            fault_point("inside_transaction")  # the write lock is held, nothing committed
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self.store._in_transaction = []

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        conn, store = self.conn, self.store
        plans, store._in_transaction = store._in_transaction, None
        if exc_type is None:
            try:
                fault_point("inside_commit")
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as error:
                    raise store._classify(error) from error
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            if plans:
                store._plans.update(plans)
            store._commits += 1
            if store._commits >= _CHECKPOINT_EVERY:
                store._checkpoint_soon()
            elif store._checkpointer is not None and store._checkpointer.made:
                store._catch_up()
            return
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class SQLiteStore:
    """A durable store in one SQLite file (see the module docstring for the guarantees)."""

    #: A local file: a lone call may run on the event loop's thread (see ``LocalStore``).
    local = True

    def __init__(self, url: str, *, clock: Callable[[], float] | None = None) -> None:
        """Prepare the store for ``url``; nothing is opened until :meth:`open`.

        ``clock`` (epoch seconds) replaces the wall clock for leases, for tests on virtual time.
        """
        self.url = redact_url(url)
        self._clock = clock or time.time
        self.path, opts = parse_url(url)
        sync = opts.get("synchronous", "full").upper()
        if sync not in {"FULL", "NORMAL", "EXTRA", "OFF"}:
            raise ValueError(
                f"{self.url!r}: synchronous must be full or normal, got {sync.lower()!r}"
            )
        self.synchronous = sync
        self.busy_seconds = float(opts.get("busy_timeout", "10"))
        self._conn: sqlite3.Connection | None = None
        #: A cursor for the per-step statements (no new cursor object per statement).
        self._cursor: sqlite3.Cursor | None = None
        #: Plans known to be committed in ``mai_plans``, by hash (see :meth:`_plan_shared`).
        self._plans: dict[str, str] = {}
        #: Plans stored by the open transaction, remembered once it commits.
        self._in_transaction: list[tuple[str, str]] | None = None
        #: Commits since the last background checkpoint was asked for (see ``_Checkpointer``).
        self._commits = 0
        self._wal = False
        self._checkpointer: _Checkpointer | None = None
        self._file = self.path

    # -- errors and retries --------------------------------------------------------------------

    def _classify(self, exc: sqlite3.Error) -> StoreError:
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        low = text.lower()
        where = f"SQLite store {str(self.path)!r}"
        if name in _FULL or "full" in low:
            return StoreFullError(
                f"{where} is full ({text}); free disk space or raise the size limit, "
                "then the waiting steps commit",
                url=self.url,
            )
        if name in _READONLY or "readonly" in low or "read-only" in low:
            return StoreReadOnlyError(
                f"{where} is not writable ({text}); the file, its -wal/-shm files and its "
                "directory must be writable by this process (even for reading)",
                url=self.url,
            )
        if name in _CORRUPT or "not a database" in low or "malformed" in low:
            return StoreCorruptError(
                f"{where} is not a valid database ({text}); restore it from a backup or point "
                "MAI_STORE at a new file",
                url=self.url,
            )
        if "no such table" in low or "no such column" in low:  # changed under us: not transient
            return StoreSchemaError(
                f"{where} lacks the tables or columns this pymai expects ({text}); another tool "
                "or release changed it: restore it from a backup or point MAI_STORE at a new file",
                url=self.url,
            )
        if name in _BUSY or "locked" in low or "busy" in low:
            return StoreBusyError(
                f"{where} stayed locked for more than {self.busy_seconds:g}s ({text})",
                url=self.url,
            )
        return StoreError(f"{where}: {text}", url=self.url)

    def _retry(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` retrying ``locked``/``busy`` errors with backoff; classify the rest."""
        delay = 0.001
        give_up = time.monotonic() + self.busy_seconds
        while True:
            try:
                return fn()
            except sqlite3.Error as exc:
                err = self._classify(exc)
                if isinstance(err, StoreBusyError) and time.monotonic() < give_up:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
                    continue
                raise err from exc

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection."""
        if self._conn is None:
            raise StoreError(f"SQLite store {str(self.path)!r} is not open", url=self.url)
        return self._conn

    # -- lifecycle -----------------------------------------------------------------------------

    def _check_writable(self) -> None:
        directory = self.path.parent if str(self.path.parent) else Path()
        if self.path.exists():
            paths = [self.path, *(Path(f"{self.path}{s}") for s in ("-wal", "-shm"))]
            bad = [p for p in paths if p.exists() and not os.access(p, os.R_OK | os.W_OK)]
            if not os.access(directory, os.W_OK | os.X_OK):
                bad.append(directory)
            if bad:
                raise StoreReadOnlyError(
                    f"SQLite store {str(self.path)!r} is not writable: "
                    f"{', '.join(str(p) for p in bad)} (WAL mode needs write access to the "
                    "file, its -wal/-shm files and its directory, even for reading)",
                    url=self.url,
                )

    def open(self) -> None:
        """Open (creating the file and directory if needed), check, and migrate."""
        if self._conn is not None:
            return
        directory = self.path.parent
        if str(directory) and not directory.exists():
            try:
                _perms.make_directory(directory)
            except OSError as exc:
                raise StoreReadOnlyError(
                    f"cannot create the directory of SQLite store {str(self.path)!r}: {exc}",
                    url=self.url,
                ) from exc
        self._check_writable()
        try:
            _perms.secure(self.path)
        except OSError as exc:
            raise StoreReadOnlyError(
                f"cannot create SQLite store {str(self.path)!r}: {exc}", url=self.url
            ) from exc

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0.05
            )
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
                self._wal = bool(mode) and str(mode[0]).lower() == "wal"
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                conn.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_BACKSTOP}")
            except BaseException:
                conn.close()
                raise
            return conn

        self._conn = self._retry(connect)
        #: The file as opened now (a later change of directory must not move the checkpoints).
        self._file = Path(self.path).absolute()
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    def _migrate(self) -> None:
        conn = self.conn
        version = self._retry(self._read_version)
        if version > SCHEMA_VERSION:
            raise StoreSchemaError(
                f"SQLite store {str(self.path)!r} has schema version {version}, newer than this "
                f"pymai understands ({SCHEMA_VERSION}); upgrade pymai to use it",
                url=self.url,
            )
        if version == SCHEMA_VERSION:
            return
        with self.transaction():
            conn.execute(
                "CREATE TABLE IF NOT EXISTS mai_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            version = self._read_version()  # someone may have migrated while we waited
            if version > SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"SQLite store {str(self.path)!r} has schema version {version}, newer than "
                    f"this pymai understands ({SCHEMA_VERSION})",
                    url=self.url,
                )
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[v].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO mai_meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(v),),
                )

    def _read_version(self) -> int:
        """The stamped version; 0 for a file without one (reading it writes nothing)."""
        conn = self.conn
        try:
            row = conn.execute("SELECT value FROM mai_meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            return 0  # a new file: the migration creates the table and stamps it
        if row is None:
            return 0
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise StoreCorruptError(
                f"SQLite store {str(self.path)!r} has an unreadable schema version stamp "
                f"{row[0]!r} (expected an integer); it was not written by pymai or is damaged",
                url=self.url,
            ) from None

    def schema_version(self) -> int:
        """The schema version stamped in the file."""
        return int(self._retry(self._read_version))

    def _checkpoint_soon(self) -> None:
        """Ask the background thread for a WAL checkpoint (started on the first request)."""
        self._commits = 0
        if not self._wal:
            return
        if self._checkpointer is None:
            self._checkpointer = _Checkpointer(self._file, self.synchronous)
        self._checkpointer.wanted.set()

    def _catch_up(self) -> None:
        """Checkpoint, on the writing connection, what was committed during the last checkpoint.

        A checkpoint on another connection cannot catch a writer that keeps committing while it
        copies: the log is never wholly copied, so SQLite never starts it over, and every
        commit then makes the file longer. At ``synchronous=full`` each commit's fsync must
        then write the file's new size too (~50-100 us more per commit on ext4). Copying here
        the few frames committed meanwhile (a PASSIVE checkpoint: it waits for nobody) lets the
        next write start the log from its beginning, rewriting a file of the same size.
        """
        assert self._checkpointer is not None  # noqa: S101 - the caller checked
        self._checkpointer.made = False
        with contextlib.suppress(sqlite3.Error):  # busy: the next checkpoint, or the backstop
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        """Close the connection (and stop the checkpoint thread)."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = self._cursor = None

    def transaction(self) -> AbstractContextManager[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error."""
        cursor = self._cursor
        if cursor is None:
            cursor = self._cursor = self.conn.cursor()
        return _Transaction(self, cursor)

    def now(self) -> float:
        """Epoch seconds (one process clock for SQLite: the wall clock unless one was given)."""
        return self._clock()

    def _x(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._classify(exc) from exc

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._retry(lambda: self.conn.execute(sql, params).fetchall())  # type: ignore[no-any-return]

    # -- runs ----------------------------------------------------------------------------------

    def _plan_shared(self, plan_hash: str, plan: str) -> bool:
        """Whether ``plan`` is (now) stored in ``mai_plans`` under ``plan_hash``.

        ``False`` when another plan text holds that hash (a record made by hand): the run
        keeps its plan inline then. Plans known to be committed are remembered per store.
        """
        known = self._plans.get(plan_hash)
        if known is not None and (known is plan or known == plan):
            return True
        cur = self._x(
            "INSERT INTO mai_plans (plan_hash, plan) VALUES (?, ?) "
            "ON CONFLICT (plan_hash) DO NOTHING",
            (plan_hash, plan),
        )
        if cur.rowcount != 1:
            row = self._x(
                "SELECT plan = ? FROM mai_plans WHERE plan_hash = ?", (plan, plan_hash)
            ).fetchone()
            if not (row and row[0]):
                return False
        if self._in_transaction is not None:  # remembered once that transaction commits
            self._in_transaction.append((plan_hash, plan))
        return True

    def create_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        """Insert the run unless its id exists; return the stored run and whether it is new."""
        return self._insert_run(record, self.now())

    def _insert_run(self, record: RunRecord, now: float) -> tuple[RunRecord, bool]:
        plan = record.plan
        inline = plan if not plan or not self._plan_shared(record.plan_hash, plan) else ""
        cur = self._x(
            _CREATE_RUN,
            (
                record.run_id,
                record.workflow,
                record.ref,
                record.plan_hash,
                inline,
                record.input,
                str(record.status),
                record.output,
                record.error,
                record.format,
                record.deadline,
                record.created_at or now,
                now,
                record.attempts,
                record.owner,
                record.epoch,
                record.lease_until,
                record.queue,
                int(record.cancel_requested),
                record.trace_context,
            ),
        )
        if cur.rowcount == 1:  # what it inserted, as get_run would read it back
            changes = {"created_at": record.created_at or now, "updated_at": now}
            return evolve_run(record, changes), True
        stored = self.get_run(record.run_id)
        assert stored is not None  # noqa: S101 - there, since the insert found it
        return stored, False

    def create_claimed(
        self, record: RunRecord, owner: str, lease_seconds: float
    ) -> tuple[RunRecord, RunRecord | None]:
        """Insert a new run already claimed by ``owner`` (``ClaimedCreate``).

        One INSERT instead of an INSERT, the claim's UPDATE and a read back: the claimed
        record is the inserted one, exactly as ``claim_run`` would have left it.
        """
        now = self.now()
        claimed = evolve_run(
            record,
            {
                "status": RunStatus.RUNNING,
                "owner": owner,
                "epoch": record.epoch + 1,
                "attempts": record.attempts + 1,
                "lease_until": now + lease_seconds,
            },
        )
        stored, created = self._insert_run(claimed, now)
        if not created:
            return stored, None
        fault_point("during_claim")
        return stored, stored

    def get_run(self, run_id: str) -> RunRecord | None:
        """Return the run or ``None``."""
        rows = self._read(_GET_RUN, (run_id,))
        return run_from_row(rows[0]) if rows else None

    def list_runs(self, status: RunStatus | None = None, limit: int = 1000) -> list[RunRecord]:
        """Return runs, newest first."""
        if status is None:
            rows = self._read(
                f"SELECT {_RUN_SELECT} FROM mai_runs ORDER BY created_at DESC, run_id LIMIT ?",  # noqa: S608
                (limit,),
            )
        else:
            rows = self._read(
                f"SELECT {_RUN_SELECT} FROM mai_runs WHERE status = ? "  # noqa: S608
                "ORDER BY created_at DESC, run_id LIMIT ?",
                (str(RunStatus(status)), limit),
            )
        return [run_from_row(r) for r in rows]

    def claim_run(
        self, run_id: str, owner: str, lease_seconds: float, *, steal_from: str | None = None
    ) -> RunRecord | None:
        """Take a live run whose lease is free, expired, or held by ``steal_from``."""
        now = self.now()
        cur = self._x(
            "UPDATE mai_runs SET status = 'RUNNING', owner = ?, epoch = epoch + 1, "
            "attempts = attempts + 1, lease_until = ?, updated_at = ? "
            "WHERE run_id = ? AND status IN ('PENDING', 'RUNNING') "
            "AND (owner IS NULL OR lease_until IS NULL OR lease_until < ? OR owner = ?)",
            (owner, now + lease_seconds, now, run_id, now, steal_from or "\x00"),
        )
        fault_point("during_claim")
        if cur.rowcount != 1:
            return None
        return self.get_run(run_id)

    def claim_next(
        self,
        queues: Sequence[str],
        owner: str,
        lease_seconds: float,
        limit: int,
        queue_limits: Mapping[str, int] | None = None,
    ) -> list[RunRecord]:
        """Claim up to ``limit`` claimable runs, oldest first (``BEGIN IMMEDIATE`` serialises)."""
        if limit <= 0 or not queues:
            return []
        now = self.now()
        claimable = (
            "((status = 'PENDING' AND (lease_until IS NULL OR lease_until < ?)) "
            "OR (status = 'RUNNING' AND (lease_until IS NULL OR lease_until < ?)))"
        )
        limits = dict(queue_limits or {})
        free = [q for q in dict.fromkeys(queues) if q not in limits]
        picked: list[tuple[float, str]] = []
        if free:
            marks = ", ".join("?" * len(free))
            picked += self._x(
                f"SELECT created_at, run_id FROM mai_runs WHERE queue IN ({marks}) "  # noqa: S608
                f"AND {claimable} ORDER BY created_at, run_id LIMIT ?",
                (*free, now, now, limit),
            ).fetchall()
        for queue in dict.fromkeys(q for q in queues if q in limits):
            (live,) = self._x(
                "SELECT count(*) FROM mai_runs WHERE queue = ? AND status = 'RUNNING' "
                "AND lease_until >= ?",
                (queue, now),
            ).fetchone()
            room = min(limits[queue] - live, limit)
            if room > 0:
                picked += self._x(
                    f"SELECT created_at, run_id FROM mai_runs WHERE queue = ? AND {claimable} "  # noqa: S608
                    "ORDER BY created_at, run_id LIMIT ?",
                    (queue, now, now, room),
                ).fetchall()
        claimed = []
        for _, run_id in sorted(picked)[:limit]:
            cur = self._x(
                "UPDATE mai_runs SET status = 'RUNNING', owner = ?, epoch = epoch + 1, "
                "attempts = attempts + 1, lease_until = ?, updated_at = ? WHERE run_id = ?",
                (owner, now + lease_seconds, now, run_id),
            )
            if cur.rowcount == 1:
                run = self.get_run(run_id)
                if run is not None:
                    claimed.append(run)
        fault_point("during_claim")
        return claimed

    def renew_lease(self, run_id: str, owner: str, epoch: int, lease_seconds: float) -> bool:
        """Extend the lease if ``(owner, epoch)`` still owns the run."""
        now = self.now()
        cur = self._x(
            "UPDATE mai_runs SET lease_until = ?, updated_at = ? "
            "WHERE run_id = ? AND owner = ? AND epoch = ? AND status = 'RUNNING'",
            (now + lease_seconds, now, run_id, owner, epoch),
        )
        return cur.rowcount == 1

    def mark_progress(self, run_id: str, owner: str, epoch: int) -> bool:
        """Reset the run's count of starts without progress to 1."""
        cur = self._x(
            "UPDATE mai_runs SET attempts = 1 WHERE run_id = ? AND owner = ? AND epoch = ? "
            "AND status = 'RUNNING' AND attempts > 1",
            (run_id, owner, epoch),
        )
        return cur.rowcount == 1

    def release_run(self, run_id: str, owner: str, epoch: int) -> bool:
        """Hand the run back (PENDING, unowned)."""
        cur = self._x(
            "UPDATE mai_runs SET status = 'PENDING', owner = NULL, lease_until = NULL, "
            "attempts = max(attempts - 1, 0), updated_at = ? "
            "WHERE run_id = ? AND owner = ? AND epoch = ? AND status = 'RUNNING'",
            (self.now(), run_id, owner, epoch),
        )
        return cur.rowcount == 1

    def finish_run(
        self,
        run_id: str,
        owner: str,
        epoch: int,
        status: RunStatus,
        output: str | None,
        error: str | None,
    ) -> bool:
        """Record the final outcome once (conditional on ownership and a live status)."""
        cur = self._x(
            "UPDATE mai_runs SET status = ?, output = ?, error = ?, lease_until = NULL, "
            "updated_at = ? WHERE run_id = ? AND owner = ? AND epoch = ? AND status = 'RUNNING'",
            (str(status), output, error, self.now(), run_id, owner, epoch),
        )
        return cur.rowcount == 1

    def dead_letter(self, run_id: str, reason: str) -> bool:
        """Mark a live run DEAD with its reason."""
        cur = self._x(
            "UPDATE mai_runs SET status = 'DEAD', error = ?, owner = NULL, lease_until = NULL, "
            "updated_at = ? WHERE run_id = ? "
            "AND status NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'DEAD')",
            (reason, self.now(), run_id),
        )
        return cur.rowcount == 1

    def request_cancel(self, run_id: str) -> RunRecord | None:
        """Flag the run; an unowned (or expired) live run is CANCELLED at once."""
        now = self.now()
        self._x(
            "UPDATE mai_runs SET cancel_requested = 1, updated_at = ? "
            "WHERE run_id = ? AND status IN ('PENDING', 'RUNNING')",
            (now, run_id),
        )
        self._x(
            "UPDATE mai_runs SET status = 'CANCELLED', owner = NULL, lease_until = NULL "
            "WHERE run_id = ? AND status IN ('PENDING', 'RUNNING') "
            "AND (owner IS NULL OR lease_until IS NULL OR lease_until < ?)",
            (run_id, now),
        )
        return self.get_run(run_id)

    def requeue_run(self, run_id: str) -> RunRecord | None:
        """Keep the DEAD/FAILED outcome as history and make the run PENDING again."""
        self._x(
            "INSERT INTO mai_attempts (run_id, seq, status, output, error, finished_at) "
            "SELECT run_id, (SELECT count(*) FROM mai_attempts WHERE run_id = ?) + 1, status, "
            "output, error, updated_at FROM mai_runs WHERE run_id = ? AND status IN ('DEAD', "
            "'FAILED')",
            (run_id, run_id),
        )
        cur = self._x(
            "UPDATE mai_runs SET status = 'PENDING', output = NULL, error = NULL, owner = NULL, "
            "lease_until = NULL, attempts = 0, cancel_requested = 0, updated_at = ? "
            "WHERE run_id = ? AND status IN ('DEAD', 'FAILED')",
            (self.now(), run_id),
        )
        return self.get_run(run_id) if cur.rowcount == 1 else None

    def load_history(self, run_id: str) -> list[AttemptRecord]:
        """Return the kept outcomes, oldest first."""
        rows = self._read(
            "SELECT run_id, seq, status, output, error, finished_at FROM mai_attempts "
            "WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        from ._history import AttemptRecord  # noqa: PLC0415 - loaded on first use

        return [AttemptRecord(*r) for r in rows]

    # -- steps ---------------------------------------------------------------------------------

    def load_steps(self, run_id: str) -> list[StepRecord]:
        """Return the run's committed steps in commit order."""
        rows = self._read(
            f"SELECT {STEP_COLUMNS} FROM mai_steps WHERE run_id = ? ORDER BY finished_at",  # noqa: S608
            (run_id,),
        )
        return [_row_to_step(r) for r in rows]

    def put_step(self, record: StepRecord, owner: str, epoch: int) -> bool:
        """Commit the step once; fenced by ``(owner, epoch)``."""
        r = record
        cursor = self._cursor
        if cursor is None:
            cursor = self._cursor = self.conn.cursor()
        params = (*step_values(r), r.run_id, owner, epoch)
        try:
            cursor.execute(_PUT_STEP, params)
        except sqlite3.Error as exc:
            raise self._classify(exc) from exc
        if cursor.rowcount == 1:
            return True
        owned = self._x(
            "SELECT 1 FROM mai_runs WHERE run_id = ? AND owner = ? AND epoch = ? "
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

    # -- events --------------------------------------------------------------------------------

    def add_event(self, run_id: str, topic: str, payload: str) -> int:
        """Store a message for the run."""
        cur = self._x(
            "INSERT INTO mai_events (run_id, topic, payload, created_at) VALUES (?, ?, ?, ?)",
            (run_id, topic, payload, self.now()),
        )
        return int(cur.lastrowid or 0)

    def take_event(self, run_id: str, topic: str, step_id: str) -> EventRecord | None:
        """Consume the oldest unconsumed message on ``topic`` for ``step_id`` (idempotent)."""
        from ._history import EventRecord  # noqa: PLC0415 - loaded on first use

        cols = "event_id, run_id, topic, payload, created_at, consumed_by"
        mine = self._x(
            f"SELECT {cols} FROM mai_events WHERE run_id = ? AND topic = ? AND consumed_by = ?",  # noqa: S608
            (run_id, topic, step_id),
        ).fetchone()
        if mine is not None:
            return EventRecord(*mine)
        row = self._x(
            f"SELECT {cols} FROM mai_events WHERE run_id = ? AND topic = ? "  # noqa: S608
            "AND consumed_by IS NULL ORDER BY event_id LIMIT 1",
            (run_id, topic),
        ).fetchone()
        if row is None:
            return None
        self._x("UPDATE mai_events SET consumed_by = ? WHERE event_id = ?", (step_id, row[0]))
        event_id, run, top, payload, created = row[:5]
        return EventRecord(event_id, run, top, payload, created, consumed_by=step_id)

    # -- pages of runs (the optional PagedRunStore capability, for `mai ui`) -------------------

    def page_runs(
        self, query: RunQuery, after: str | None, limit: int
    ) -> tuple[list[RunSummary], str | None]:
        """One page of runs by indexed queries (see ``_pages``); newest first.

        The run-id search walks the primary key; otherwise each (status, queue) pair present
        (found by skip-scans of ``mai_runs_status``) is read in ``created_at`` order from that
        index, ``limit + 1`` rows each, and the pieces are merged: no query sorts the table.
        """
        return self._retry(lambda: _page_runs(self.conn, query, after, limit))  # type: ignore[no-any-return]


_SUMMARY = "run_id, workflow, status, created_at, updated_at, attempts, queue"


def _summaries(rows: list[tuple[Any, ...]]) -> list[RunSummary]:
    from ._pages import RunSummary  # noqa: PLC0415 - pages are loaded by the code that lists runs

    out = []
    for r in rows:
        try:
            status = RunStatus(r[2])
        except ValueError:
            status = RunStatus.PENDING  # as run_from_row: recovery dead-letters such a row
        out.append(RunSummary(r[0], r[1], status, r[3], r[4], r[5], r[6]))
    return out


def _skip_scan(
    conn: sqlite3.Connection, column: str, where: str, params: tuple[Any, ...]
) -> list[Any]:
    """Distinct values of an indexed column, one index seek each (no scan of the table)."""
    found: list[Any] = []
    while True:
        cond = f"{where} AND {column} > ?" if found else where
        row = conn.execute(
            f"SELECT min({column}) FROM mai_runs WHERE {cond}",  # noqa: S608 - fixed column names
            (*params, found[-1]) if found else params,
        ).fetchone()
        if row is None or row[0] is None:
            return found
        found.append(row[0])


def _page_runs(
    conn: sqlite3.Connection, query: RunQuery, after: str | None, limit: int
) -> tuple[list[RunSummary], str | None]:
    from ._pages import MAX_PAGE, decode_cursor, merge_pages  # noqa: PLC0415 - see _summaries

    limit = max(1, min(limit, MAX_PAGE))
    extra = ""
    extra_params: tuple[Any, ...] = ()
    if query.workflow is not None:
        extra, extra_params = " AND workflow = ?", (query.workflow,)
    if query.run_id_prefix:
        where = "run_id >= ? AND run_id < ?"
        params: tuple[Any, ...] = (query.run_id_prefix, query.run_id_prefix + "\U0010ffff")
        if after is not None:
            where += " AND run_id > ?"
            params += (decode_cursor(query, after)[1],)
        if query.status is not None:  # unary + : filter rows, walk the primary key
            where += " AND +status = ?"
            params += (str(query.status),)
        rows = conn.execute(
            f"SELECT {_SUMMARY} FROM mai_runs WHERE {where}{extra} "  # noqa: S608
            "ORDER BY run_id LIMIT ?",
            (*params, *extra_params, limit + 1),
        ).fetchall()
        return merge_pages(query, [_summaries(rows)], limit)
    keyset: str = ""
    keyset_params: tuple[Any, ...] = ()
    if after is not None:
        when, run_id = decode_cursor(query, after)
        keyset = " AND created_at <= ? AND (created_at < ? OR run_id < ?)"
        keyset_params = (when, when, run_id)
    statuses = (
        [str(query.status)] if query.status is not None else _skip_scan(conn, "status", "1 = 1", ())
    )
    parts = []
    for status in statuses:
        for queue in _skip_scan(conn, "queue", "status = ?", (status,)):
            rows = conn.execute(
                f"SELECT {_SUMMARY} FROM mai_runs INDEXED BY mai_runs_status "  # noqa: S608
                f"WHERE status = ? AND queue = ?{keyset}{extra} "
                "ORDER BY created_at DESC, run_id DESC LIMIT ?",
                (status, queue, *keyset_params, *extra_params, limit + 1),
            ).fetchall()
            parts.append(_summaries(rows))
    return merge_pages(query, parts, limit)
