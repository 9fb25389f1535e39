"""The PostgreSQL store: conformance, migrations, claims under contention, fencing, reconnects."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import psycopg
import pytest
import trio
import trio.testing
from mai_postgres._store import SCHEMA_VERSION
from pgharness import wait_until

import mai
import mai.testing
from mai.core.durable import RunRecord, RunStatus, StepRecord

if TYPE_CHECKING:
    from mai_postgres.testing import PostgresCluster

_schemas = itertools.count()


def store(url: str):
    """A PostgresStore for ``url`` (imported here: the plugin is optional)."""
    from mai_postgres import PostgresStore

    return PostgresStore(url)


def write(s, fn, *args):
    """Call a store method inside a transaction."""
    with s.transaction():
        return fn(*args)


def new_run(run_id: str, queue: str = "default", created_at: float | None = None) -> RunRecord:
    """A PENDING run record."""
    return RunRecord(
        run_id=run_id,
        workflow="wf",
        ref=None,
        plan_hash="h",
        plan="{}",
        input='{"args":[],"kwargs":{}}',
        queue=queue,
        created_at=created_at or time.time(),
    )


class TestPostgresStore(mai.testing.StoreConformance):
    """The PostgreSQL store passes the same conformance suite as the SQLite store."""

    @pytest.fixture(autouse=True)
    def _url(self, pg_url: str) -> None:
        """Each test gets its own database; each check its own schema in it."""
        self.url = pg_url

    def make_store(self):
        """A fresh, empty store in a new schema."""
        return store(f"{self.url}?schema=conformance_{next(_schemas)}")


def test_the_store_is_found_by_url_scheme(pg_url):
    """postgresql:// and postgres:// URLs open the plugin's store through its entry points."""
    from mai_postgres import PostgresStore

    from mai.core.durable import open_store

    assert isinstance(open_store(pg_url), PostgresStore)
    assert isinstance(open_store(pg_url.replace("postgresql://", "postgres://")), PostgresStore)
    assert {p.name for p in mai.plugins("mai.stores") if p.distribution == "mai-postgres"} == {
        "postgres",
        "postgresql",
    }


def test_password_never_appears_in_messages(pg_cluster):
    """Errors and reprs name the store without its password."""
    url = f"postgresql://postgres:s3cret@127.0.0.1:{pg_cluster.port}/no_such_db"
    s = store(url)
    assert "s3cret" not in repr(s)
    with pytest.raises(mai.StoreError) as info:
        s.open()
    assert "s3cret" not in str(info.value)
    assert "no_such_db" in str(info.value)


def test_missing_driver_names_the_install_command():
    """Without psycopg, opening a postgresql:// store raises StoreError with the pip command."""
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import mai, trio\n"
        "async def main():\n"
        "    async with mai.Runtime('postgresql://127.0.0.1/x'): pass\n"
        "try:\n"
        "    trio.run(main)\n"
        "except mai.StoreError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'pymai[postgres]'" in out.stdout, out


def test_missing_plugin_names_the_install_command():
    """Without the plugin, a postgresql:// URL raises StoreError saying how to install it."""
    code = (
        "import mai.core.plugins as p\n"
        "p._discovered.add(p.STORES)  # as if no distribution declared a store\n"
        "from mai.core.durable import open_store\n"
        "try:\n"
        "    open_store('postgresql://127.0.0.1/x')\n"
        "except p.MaiError if hasattr(p, 'MaiError') else Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.startswith("StoreError"), out
    assert "pip install 'pymai[postgres]'" in out.stdout, out


MIGRATE = """
import json, sys
from mai_postgres import PostgresStore
s = PostgresStore(sys.argv[1])
s.open()
print(json.dumps({"migrated": s.migrated, "version": s.schema_version()}))
s.close()
"""


def test_four_processes_migrate_an_empty_database_once(pg_url):
    """Four processes opening an empty database at once: exactly one migrates, all proceed."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, pg_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
        results.append(out.decode())
    import json

    parsed = [json.loads(r) for r in results]
    assert sorted(r["migrated"] for r in parsed) == [False, False, False, True]
    assert {r["version"] for r in parsed} == {SCHEMA_VERSION}


def test_a_newer_schema_is_refused(pg_url):
    """A database stamped by a newer mai-postgres is refused with StoreSchemaError."""
    s = store(pg_url)
    s.open()
    write(s, s._x, "UPDATE mai_meta SET value = '99' WHERE key = 'schema_version'")
    s.close()
    with pytest.raises(mai.StoreSchemaError, match="schema version 99"):
        store(pg_url).open()


def test_concurrent_claims_never_take_more_than_asked(pg_url):
    """Eight claimers racing over 200 runs: each claim returns at most its limit, no run twice."""
    s = store(pg_url)
    s.open()
    with s.transaction():
        for i in range(200):
            s.create_run(new_run(f"r{i:03d}", created_at=1000.0 + i))
    s.close()
    taken: dict[str, list[str]] = {}
    overs: list[tuple[str, int, int]] = []
    barrier = threading.Barrier(8)

    def claimer(k: int) -> None:
        mine = store(pg_url)
        mine.open()
        barrier.wait()
        got: list[str] = []
        limit = 1 + k % 4
        while True:
            batch = write(mine, mine.claim_next, ["default"], f"owner-{k}", 30.0, limit)
            if len(batch) > limit:
                overs.append((f"owner-{k}", limit, len(batch)))
            if not batch:
                break
            got += [r.run_id for r in batch]
        taken[f"owner-{k}"] = got
        mine.close()

    threads = [threading.Thread(target=claimer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not overs, f"claims returned more rows than asked: {overs}"
    every = [r for got in taken.values() for r in got]
    assert sorted(every) == [f"r{i:03d}" for i in range(200)], "each run claimed exactly once"
    assert sum(1 for got in taken.values() if got) >= 2, "the claimers did not contend"


def test_global_queue_limit_holds_under_concurrent_claims(pg_url):
    """Six claimers on a queue limited to 3: never more than 3 live leases at once."""
    s = store(pg_url)
    s.open()
    with s.transaction():
        for i in range(40):
            s.create_run(new_run(f"q{i:02d}", queue="llm", created_at=1000.0 + i))
    barrier = threading.Barrier(6)
    errors: list[str] = []

    def claimer(k: int) -> None:
        mine = store(pg_url)
        mine.open()
        barrier.wait()
        for _ in range(30):
            for run in write(mine, mine.claim_next, ["llm"], f"o{k}", 30.0, 2, {"llm": 3}):
                time.sleep(0.002)
                assert write(
                    mine,
                    mine.finish_run,
                    run.run_id,
                    f"o{k}",
                    run.epoch,
                    RunStatus.SUCCEEDED,
                    "1",
                    None,
                )
        mine.close()

    def sampler() -> None:
        for _ in range(300):
            (live,) = s._x(
                "SELECT count(*) FROM mai_runs WHERE queue = 'llm' AND status = 'RUNNING'"
            ).fetchone()
            if live > 3:
                errors.append(f"{live} runs RUNNING in a queue limited to 3")
            time.sleep(0.001)

    threads = [threading.Thread(target=claimer, args=(k,)) for k in range(6)]
    threads.append(threading.Thread(target=sampler))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    done = s.list_runs(RunStatus.SUCCEEDED, 100)
    assert len(done) == 40, "every run of the limited queue was executed"
    s.close()


def test_stale_epoch_writes_are_rejected_and_counted(pg_url):
    """After a takeover, the old owner's step, renew, release and finish all fail (fencing)."""
    s = store(pg_url)
    s.open()
    write(s, s.create_run, new_run("f1"))
    old = write(s, s.claim_run, "f1", "old", -1.0)  # a lease that already expired
    new = write(s, s.claim_next, ["default"], "new", 30.0, 5)
    assert [r.run_id for r in new] == ["f1"]
    assert new[0].epoch == old.epoch + 1
    step = StepRecord("f1", "1.1", "step", "call", None, "1", started_at=1.0, finished_at=2.0)
    with pytest.raises(mai.LeaseLostError):
        write(s, s.put_step, step, "old", old.epoch)
    assert not write(s, s.renew_lease, "f1", "old", old.epoch, 30.0)
    assert not write(s, s.release_run, "f1", "old", old.epoch)
    assert not write(s, s.finish_run, "f1", "old", old.epoch, RunStatus.FAILED, None, "{}")
    assert write(s, s.put_step, step, "new", new[0].epoch) is True
    assert s.get_run("f1").owner == "new"
    s.close()


def test_a_step_insert_cannot_slip_in_beside_a_takeover(pg_url):
    """A put_step racing a takeover either commits before it or is rejected, never after."""
    a, b = store(pg_url), store(pg_url)
    a.open()
    b.open()
    write(a, a.create_run, new_run("race"))
    old = write(a, a.claim_run, "race", "old", -1.0)
    step = StepRecord("race", "1.1", "step", "call", None, "1", started_at=1.0, finished_at=2.0)
    with b.transaction():  # the takeover holds the row lock, not yet committed
        assert b.claim_next(["default"], "new", 30.0, 1)
        outcome: list[object] = []

        def late_write() -> None:
            try:
                outcome.append(write(a, a.put_step, step, "old", old.epoch))
            except mai.LeaseLostError as exc:
                outcome.append(exc)

        t = threading.Thread(target=late_write)
        t.start()
        t.join(0.5)
        assert t.is_alive(), "the old owner's insert must wait for the takeover's row lock"
    t.join(10)
    assert isinstance(outcome[0], mai.LeaseLostError), outcome
    assert a.load_steps("race") == []
    a.close()
    b.close()


def test_store_connections_end_transactions_left_idle(pg_url):
    """A worker stopped inside a transaction must not hold its runs' row locks for ever."""

    def setting(url: str) -> str:
        with store(url).connect() as conn:
            row = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
        assert row is not None
        return str(row[0])

    assert setting(pg_url) == "10s"  # the store's own, unless the URL's options give one
    assert setting(f"{pg_url}?options=-c%20idle_in_transaction_session_timeout%3D300") == "300ms"


@pytest.mark.parametrize("point", ["inside_transaction", "inside_commit"])
def test_the_server_ends_a_transaction_whose_client_froze_inside_it(pg_url, point):
    """A client frozen inside a transaction (any statement of it) loses its row locks."""
    from mai.core.durable import set_fault_hook

    a, probe = (
        store(f"{pg_url}?options=-c%20idle_in_transaction_session_timeout%3D500"),
        store(pg_url),
    )
    a.open()
    probe.open()
    write(a, a.create_run, new_run("frozen"))
    run = write(a, a.claim_run, "frozen", "a", -1.0)  # a owns it; its lease has expired
    assert run is not None
    step = StepRecord("frozen", "1.1", "step", "call", None, "1", started_at=1.0, finished_at=2.0)
    taken: list[RunRecord] = []

    def freeze(name: str) -> None:
        # the store's thread stops here as a SIGSTOPped worker would: it sends and reads
        # nothing until another worker could claim the run (the server ended the session)
        if name == point and not taken:
            taken.extend(
                wait_until(
                    lambda: probe.claim_next(["default"], "b", 30.0, 1), 30, "b to claim the run"
                )
            )

    previous = set_fault_hook(freeze)
    try:
        with pytest.raises(mai.StoreUnavailableError), a.transaction():
            a.put_step(step, "a", run.epoch)  # share-locks the run's row until COMMIT
    finally:
        set_fault_hook(previous)
    assert [(r.owner, r.epoch) for r in taken] == [("b", run.epoch + 1)]
    assert probe.load_steps("frozen") == []  # the frozen transaction was rolled back
    with pytest.raises(mai.LeaseLostError):  # and a, reconnected, is fenced
        write(a, a.put_step, step, "a", run.epoch)
    a.close()
    probe.close()


def test_store_reconnects_after_a_server_restart(own_cluster: PostgresCluster):
    """Reads and grouped writes continue after `pg_ctl stop -m immediate` and a start."""
    url = own_cluster.create_database("reconnect")

    async def main() -> None:
        async with mai.Runtime(url) as rt:
            await rt.executor.write(rt.store.create_run, new_run("before"))
            await trio.to_thread.run_sync(own_cluster.restart, "immediate")
            before = await rt.get("before")  # a read on a dead connection
            assert before.status == RunStatus.PENDING
            await rt.executor.write(rt.store.create_run, new_run("after"))
            assert {r.run_id for r in await rt.list_runs()} == {"before", "after"}

    trio.run(main)


def test_unreachable_server_raises_after_the_reconnect_limit(pg_cluster):
    """A server that stays away raises StoreUnavailableError after reconnect_timeout."""
    from mai_postgres.testing import free_port

    s = store(f"postgresql://postgres@127.0.0.1:{free_port()}/x?reconnect_timeout=0.3")
    with pytest.raises(mai.StoreUnavailableError, match="reconnect_timeout"):
        s.open()  # without the limit this would retry forever (the suite would hang here)


def test_claims_use_the_database_clock(pg_url):
    """Leases are judged by the database's now(): a lease of -1 s is expired at once."""
    s = store(pg_url)
    s.open()
    with psycopg.connect(pg_url) as conn:
        (db_now,) = conn.execute("SELECT extract(epoch from now())::float8").fetchone()
    assert abs(s.now() - db_now) < 5
    write(s, s.create_run, new_run("clock"))
    run = write(s, s.claim_run, "clock", "a", 60.0)
    assert run.lease_until == pytest.approx(s.now() + 60.0, abs=5)
    s.close()


def _claimed(s, run_id: str, owner: str) -> RunRecord:
    write(s, s.create_run, new_run(run_id))
    return write(s, s.claim_run, run_id, owner, 60.0)


def test_put_step_batch_inserts_owned_new_steps_in_one_statement(pg_url):
    """put_step_batch inserts only steps of runs the owner holds that are not recorded yet."""
    s = store(pg_url)
    s.open()
    a, b, c = _claimed(s, "ba", "w"), _claimed(s, "bb", "w"), _claimed(s, "bc", "other")

    def step(run_id: str, sid: str, out: str = "1") -> StepRecord:
        return StepRecord(run_id, sid, "step", "call", None, out, started_at=1.0, finished_at=2.0)

    assert write(s, s.put_step, step("ba", "1.1", "first"), "w", a.epoch) is True
    items = [
        (step("ba", "1.1", "second"), "w", a.epoch),  # already recorded: left alone
        (step("ba", "1.2"), "w", a.epoch),
        (step("bb", "1.1"), "w", b.epoch),
        (step("bc", "1.1"), "w", c.epoch),  # another owner's run: not inserted
        (step("bb", "1.2"), "w", b.epoch + 1),  # a stale epoch: not inserted
    ]
    assert write(s, s.put_step_batch, items) == [False, True, True, False, False]
    assert [(r.step_id, r.output) for r in s.load_steps("ba")] == [("1.1", "first"), ("1.2", "1")]
    assert [r.step_id for r in s.load_steps("bb")] == ["1.1"]
    assert s.load_steps("bc") == []
    s.close()


def test_put_step_batch_keeps_text_and_times_exactly(pg_url):
    """Steps batched as one JSON parameter come back byte for byte, times to the last digit."""
    s = store(pg_url)
    s.open()
    run = _claimed(s, "bt", "w")
    odd = ['"quoted" \\ back\\slash', "Ünïcödé ✓ 𝄞", '{"a": "\\u0000"}', "tab\tnew\nline", "", "'"]
    records = [
        StepRecord(
            "bt",
            f"1.{i}",
            "step",
            "call",
            text or None,
            text,
            "json",
            1_700_000_000.123456789 + i / 7,
            1_700_000_001.987654321 + i / 3,
            i + 1,
            f"w{text}",
        )
        for i, text in enumerate(odd)
    ]
    assert write(s, s.put_step_batch, [(r, "w", run.epoch) for r in records]) == [True] * 6
    assert s.load_steps("bt") == records
    inf = StepRecord("bt", "2.1", "step", "call", None, "1", started_at=float("inf"))
    nan = StepRecord("bt", "2.2", "step", "call", None, "1", started_at=float("nan"))
    # a time that is not a finite number: nothing inserted here, left to put_step one by one
    assert write(s, s.put_step_batch, [(inf, "w", run.epoch), (nan, "w", run.epoch)]) == [
        False,
        False,
    ]
    assert len(s.load_steps("bt")) == 6
    s.close()


def test_finish_run_batch_records_each_outcome_under_its_own_fence(pg_url):
    """Outcomes of several runs in one statement: each fenced by its own owner and epoch."""
    s = store(pg_url)
    s.open()
    limited = s.listener(slots=True)
    try:
        assert limited.wait(0.0) == []  # connect (LISTEN) before the runs exist
        a, b = _claimed(s, "fa", "w"), _claimed(s, "fb", "w")
        c, d = _claimed(s, "fc", "other"), _claimed(s, "fd", "w")
        limited.wait(0.5)  # the creations' notifications
        items = [
            ("fa", "w", a.epoch, RunStatus.SUCCEEDED, '"out"', None),
            ("fb", "w", b.epoch, RunStatus.FAILED, None, '{"type": "E"}'),
            ("fc", "w", c.epoch, RunStatus.SUCCEEDED, "1", None),  # another owner's run
            ("fd", "w", d.epoch + 1, RunStatus.SUCCEEDED, "1", None),  # a stale epoch
        ]
        assert write(s, s.finish_run_batch, items) == [True, True, False, False]
        got = {r: s.get_run(r) for r in ("fa", "fb", "fc", "fd")}
        assert (got["fa"].status, got["fa"].output, got["fa"].lease_until) == (
            RunStatus.SUCCEEDED,
            '"out"',
            None,
        )
        assert (got["fb"].status, got["fb"].error) == (RunStatus.FAILED, '{"type": "E"}')
        assert got["fc"].status == got["fd"].status == RunStatus.RUNNING
        assert limited.wait(2.0) == [("runs", "default")]  # one notification per queue
        # recorded once: a second outcome of the same runs changes nothing
        again = [("fa", "w", a.epoch, RunStatus.FAILED, None, "{}")]
        assert write(s, s.finish_run_batch, again) == [False]
        assert s.get_run("fa").status == RunStatus.SUCCEEDED
    finally:
        limited.close()
        s.close()


def test_a_lone_outcome_is_one_statement_with_its_notification(pg_url):
    """finish_run runs alone (no BEGIN/COMMIT) and still notifies the slot it freed."""
    s = store(pg_url)
    s.open()
    limited = s.listener(slots=True)
    try:
        assert limited.wait(0.0) == []
        run = _claimed(s, "lone", "w")
        limited.wait(0.5)
        assert s.runs_alone(s.finish_run)
        assert s.finish_run("lone", "w", run.epoch, RunStatus.SUCCEEDED, "1", None) is True
        assert limited.wait(2.0) == [("runs", "default")]
        assert s.finish_run("lone", "w", run.epoch, RunStatus.FAILED, None, "{}") is False
        assert limited.wait(0.2) == []  # nothing recorded: nothing notified
        assert s.get_run("lone").status == RunStatus.SUCCEEDED
    finally:
        limited.close()
        s.close()


async def test_outcomes_finishing_together_are_one_statement_each_answered(pg_url):
    """Outcomes queued together: one transaction, one statement, each caller its own answer."""
    from mai_postgres import PostgresStore

    from mai.core.durable._executor import StoreExecutor

    one_by_one: list[str] = []

    class Counting(PostgresStore):
        """Counts the outcomes written by finish_run rather than the batched statement."""

        def finish_run(self, run_id, owner, epoch, status, output, error):  # type: ignore[no-untyped-def]
            one_by_one.append(run_id)
            return super().finish_run(run_id, owner, epoch, status, output, error)

    s = Counting(pg_url)
    s.open()
    runs = [_claimed(s, f"o{i}", "w") for i in range(5)]
    stale = _claimed(s, "os", "gone")
    executor = StoreExecutor(s)
    outcomes: dict[str, object] = {}

    async def finish(name: str, run_id: str, epoch: int, output: str) -> None:
        outcomes[name] = await executor.write(
            s.finish_run, run_id, "w", epoch, RunStatus.SUCCEEDED, output, None
        )

    async with trio.open_nursery() as nursery:
        for r in runs:
            nursery.start_soon(finish, r.run_id, r.run_id, r.epoch, f'"{r.run_id}"')
        nursery.start_soon(finish, "again", "o0", runs[0].epoch, '"again"')
        nursery.start_soon(finish, "stale", "os", stale.epoch, '"stale"')
        await trio.testing.wait_all_tasks_blocked()
        executor.start()  # everything queued so far is one batch: one transaction
    executor.stop()
    assert executor.commits == 1
    assert [outcomes[r.run_id] for r in runs[1:]] == [True] * 4
    assert {outcomes["o0"], outcomes["again"]} == {True, False}  # whichever queued first wins
    assert outcomes["stale"] is False
    assert s.get_run("o0").output in {'"o0"', '"again"'}
    assert [s.get_run(r.run_id).output for r in runs[1:]] == [f'"o{i}"' for i in range(1, 5)]
    assert s.get_run("os").status == RunStatus.RUNNING
    assert one_by_one == ["o0"]  # only the second outcome of o0 went through finish_run
    s.close()


async def test_a_batch_of_step_commits_keeps_each_callers_outcome(pg_url):
    """One transaction of many step commits: each caller gets True, False or LeaseLostError."""
    from mai_postgres import PostgresStore

    from mai.core.durable._executor import StoreExecutor

    one_by_one: list[str] = []

    class Counting(PostgresStore):
        """Counts the steps that went through put_step rather than the batched insert."""

        def put_step(self, record: StepRecord, owner: str, epoch: int) -> bool:
            one_by_one.append(record.run_id)
            return super().put_step(record, owner, epoch)

    s = Counting(pg_url)
    s.open()
    runs = [_claimed(s, f"q{i}", "w") for i in range(6)]
    stale = _claimed(s, "qs", "gone")
    executor = StoreExecutor(s)
    outcomes: dict[str, object] = {}

    def step(run_id: str) -> StepRecord:
        return StepRecord(run_id, "1.1", "step", "call", None, "1", started_at=1.0, finished_at=2.0)

    async def commit(name: str, record: StepRecord, owner: str, epoch: int) -> None:
        try:
            outcomes[name] = await executor.write(s.put_step, record, owner, epoch)
        except mai.LeaseLostError as exc:
            outcomes[name] = exc

    async with trio.open_nursery() as nursery:
        for r in runs:
            nursery.start_soon(commit, r.run_id, step(r.run_id), "w", r.epoch)
        nursery.start_soon(commit, "again", step("q0"), "w", runs[0].epoch)
        nursery.start_soon(commit, "stale", step("qs"), "w", stale.epoch)
        await trio.testing.wait_all_tasks_blocked()
        executor.start()  # everything queued so far is one batch: one transaction
    executor.stop()
    assert executor.commits == 1
    assert [outcomes[r.run_id] for r in runs[1:]] == [True] * 5
    assert {outcomes["q0"], outcomes["again"]} == {True, False}  # whichever queued first wins
    assert isinstance(outcomes["stale"], mai.LeaseLostError)
    assert all(len(s.load_steps(r.run_id)) == 1 for r in runs)
    assert s.load_steps("qs") == []
    assert sorted(one_by_one) == ["q0", "qs"]  # the six new steps went in with one statement
    s.close()


def test_finished_runs_are_heard_only_by_listeners_that_asked_for_slots(pg_url):
    """A finish notifies listeners with slots=True (global queue limits), not the others."""
    s = store(pg_url)
    s.open()
    plain, limited = s.listener(), s.listener(slots=True)
    try:
        assert plain.wait(0.0) == [] and limited.wait(0.0) == []  # noqa: PT018 - connect both
        write(s, s.create_run, new_run("n1", queue="llm"))
        assert ("runs", "llm") in plain.wait(2.0)  # a new run wakes every worker
        assert ("runs", "llm") in limited.wait(2.0)
        run = write(s, s.claim_run, "n1", "w", 30.0)
        write(s, s.finish_run, "n1", "w", run.epoch, RunStatus.SUCCEEDED, "1", None)
        assert limited.wait(2.0) == [("runs", "llm")]  # a slot of the queue is free again
        assert plain.wait(0.2) == []  # not woken by every finish
    finally:
        plain.close()
        limited.close()
        s.close()


def test_a_cluster_starts_on_another_port_when_its_chosen_one_is_taken(pg_cluster, monkeypatch):
    """A port taken between choosing and binding it: the server starts on a fresh one."""
    import socket

    import mai_postgres._cluster as c

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        real = c.free_port
        picks = iter([taken])
        monkeypatch.setattr(c, "free_port", lambda: next(picks, None) or real())
        cluster = c.PostgresCluster()
        try:
            cluster.start()
            assert cluster.port != taken
            assert cluster.sql("SELECT 1")[0][0] == 1
            assert "could not bind" in (cluster.base / "server.log").read_text()  # tried first
        finally:
            cluster.destroy()
