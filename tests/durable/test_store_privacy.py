"""Secrets stay secret: store URLs are redacted in one place; SQLite stores are private files.

The permission tests run pymai in a subprocess with a permissive umask (``0o000``), so the test
process's own umask is never touched, and look at the real files' modes.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

import mai
from mai.core.durable import MemoryStore, SQLiteStore, open_store, redact_text

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = "Pl0ugh-xyzzy"  # noqa: S105 - the recognisable password the tests hunt for

# -- redaction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql://app:{SECRET}@db.example:5432/mai?sslmode=require",
            "postgresql://app:***@db.example:5432/mai?sslmode=require",
        ),
        (f"postgres://:{SECRET}@db/mai", "postgres://:***@db/mai"),
        (
            f"postgresql://db/mai?sslmode=require&password={SECRET}&schema=s",
            "postgresql://db/mai?sslmode=require&password=***&schema=s",
        ),
        (
            f"postgresql://app:{SECRET}@db/mai?sslpassword={SECRET}",
            "postgresql://app:***@db/mai?sslpassword=***",
        ),
        # an unencoded '@', '/' or ':' in the password, and a port that does not parse
        (
            f"postgresql://app:{SECRET}@x/y:z@db:notaport/mai",
            "postgresql://app:***@db:notaport/mai",
        ),
        (
            f"host=db user=app password={SECRET} dbname=mai",
            "host=db user=app password=*** dbname=mai",
        ),
        (f"host=db password='{SECRET} x' dbname=mai", "host=db password=*** dbname=mai"),
        ("postgresql://app@db:5432/mai", "postgresql://app@db:5432/mai"),
        ("sqlite:///.mai/mai.db?synchronous=normal", "sqlite:///.mai/mai.db?synchronous=normal"),
        ("sqlite:////srv/a:b@c.db", "sqlite:////srv/a:b@c.db"),
        ("memory://bucket", "memory://bucket"),
        ("", ""),
    ],
)
def test_redact_url_masks_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    """mai.redact_url masks the user-info password and password parameters, nothing else."""
    assert mai.redact_url(url) == shown
    assert SECRET not in mai.redact_url(url)
    assert mai.redact_url(mai.redact_url(url)) == shown


def test_redact_text_removes_the_password_in_every_form() -> None:
    """redact_text masks the URL, the password as written, and the percent-decoded password."""
    url = "postgresql://app:se%2Fcr%40et-42@db/mai"
    text = (
        f"cannot open {url}: password 'se/cr@et-42' rejected; conninfo "
        "postgresql://app:se%2Fcr%40et-42@db/mai?connect_timeout=5"
    )
    cleaned = redact_text(text, url)
    assert "se/cr@et" not in cleaned
    assert "se%2Fcr" not in cleaned
    assert "postgresql://app:***@db/mai" in cleaned
    assert redact_text("nothing secret here", "sqlite:///x.db") == "nothing secret here"


def test_store_errors_never_carry_the_password() -> None:
    """StoreError redacts its url attribute and cleans its message, also after pickling."""
    url = f"postgresql://app:{SECRET}@db/mai"
    err = mai.StoreUnavailableError(f"store {url} is down ({SECRET})", url=url, retryable=False)
    for text in (str(err), repr(err), err.url, repr(err.args)):
        assert SECRET not in text
    assert err.url == "postgresql://app:***@db/mai"
    again = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own object, round-tripped
    assert SECRET not in str(again)
    assert again.url == err.url
    assert not again.retryable


def test_an_unknown_scheme_is_reported_without_the_password() -> None:
    """open_store of a scheme nobody serves names the redacted URL and the missing plugin."""
    with pytest.raises(mai.StoreError) as info:
        open_store(f"nosuchdb://app:{SECRET}@db/mai")
    assert SECRET not in str(info.value)
    assert SECRET not in info.value.url
    assert "nosuchdb://app:***@db/mai" in str(info.value)


def test_a_bad_sqlite_url_is_reported_without_the_password() -> None:
    """SQLite URL errors (a password has no place there) show the redacted URL."""
    with pytest.raises(ValueError, match="names no file") as info:
        SQLiteStore(f"sqlite://app:{SECRET}@/")
    assert SECRET not in str(info.value)
    with pytest.raises(ValueError, match="synchronous") as info:
        SQLiteStore(f"sqlite://app:{SECRET}@/x.db?synchronous=maybe")
    assert SECRET not in str(info.value)


class _PlainStore(MemoryStore):
    """A third-party store that keeps its raw URL (as a careless plugin would)."""

    def __init__(self, url: str) -> None:
        super().__init__("memory://secrets-test")
        self.url = url


async def test_the_store_thread_is_named_after_the_redacted_url() -> None:
    """Even a plugin store that keeps its raw URL gets a thread name without the password."""
    mai.register_store("plainsecret", _PlainStore)
    try:
        async with mai.Runtime(f"plainsecret://app:{SECRET}@db/mai") as rt:
            names = [t.name for t in threading.enumerate()]
            assert any(n.startswith("mai-store plainsecret://app:***@db") for n in names), names
            assert not any(SECRET in n for n in names)
            assert SECRET in rt.store.url  # the plugin's own attribute is its business
    finally:
        mai.unregister_store("plainsecret")


# -- file permissions ------------------------------------------------------------------------

_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, warnings
    os.umask(0o000)
    warnings.simplefilter("error")
    import trio
    import mai

    @mai.module
    async def double(n: int) -> int:
        return 2 * n

    def modes(db):
        found = {}
        for path in (os.path.dirname(db) or ".", db, db + "-wal", db + "-shm"):
            if os.path.exists(path):
                found[path] = oct(os.stat(path).st_mode & 0o777)
        return found

    async def main():
        url = sys.argv[1] if len(sys.argv) > 1 else None
        async with mai.Runtime(url) as rt:
            handle = await rt.start(double, 21)
            assert await handle.result() == 42
            db = rt.store.path
            return modes(str(db))

    print(json.dumps(trio.run(main)))
    """
)


def _modes_after_a_run(cwd: Path, *args: str) -> dict[str, str]:
    """Run a workflow in a subprocess with umask 0; return the store files' modes, keyed by path."""
    env = {k: v for k, v in os.environ.items() if k != "MAI_STORE"}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return {str(Path(cwd, k).resolve()): v for k, v in json.loads(done.stdout).items()}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_default_folder_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """With umask 0, .mai/ is created 0700 and mai.db, -wal and -shm 0600."""
    modes = _modes_after_a_run(tmp_path)
    folder = tmp_path / ".mai"
    db = folder / "mai.db"
    assert modes == {
        str(folder): "0o700",
        str(db): "0o600",
        f"{db}-wal": "0o600",
        f"{db}-shm": "0o600",
    }


def test_a_folder_an_earlier_release_created_is_tightened(tmp_path: Path) -> None:
    """An existing .mai/ 0755 with a 0644 mai.db is made 0700/0600 when pymai opens it."""
    _modes_after_a_run(tmp_path)
    folder = tmp_path / ".mai"
    db = folder / "mai.db"
    folder.chmod(0o755)
    db.chmod(0o644)
    modes = _modes_after_a_run(tmp_path)
    assert modes[str(folder)] == "0o700"
    assert modes[str(db)] == "0o600"
    assert modes[f"{db}-wal"] == "0o600"
    assert _mode(folder) == 0o700
    assert _mode(db) == 0o600


def test_a_new_store_at_a_chosen_location_is_created_private(tmp_path: Path) -> None:
    """A database pymai creates elsewhere is 0600 (umask 0); the chosen folder keeps its mode."""
    chosen = tmp_path / "shared"
    chosen.mkdir()
    chosen.chmod(0o755)
    db = chosen / "runs.db"
    modes = _modes_after_a_run(tmp_path, f"sqlite:///{db}")
    assert modes == {
        str(chosen): "0o755",
        str(db): "0o600",
        f"{db}-wal": "0o600",
        f"{db}-shm": "0o600",
    }
    new_dir = tmp_path / "made" / "here"
    modes = _modes_after_a_run(tmp_path, f"sqlite:///{new_dir}/runs.db")
    assert modes[str(new_dir)] == "0o700"


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A fresh directory 0755 under /tmp (every parent searchable by others, unlike tmp_path)."""
    path = Path(tempfile.mkdtemp(prefix="mai-perm-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def _open_close(url: str) -> Any:
    async with mai.Runtime(url) as rt:
        return await rt.list_runs()


async def test_a_readable_store_at_a_chosen_location_is_warned_about_once(
    world_readable_dir: Path,
) -> None:
    """Others can read a chosen store: one StorePermissionWarning, and its modes are kept."""
    db = world_readable_dir / "runs.db"
    db.touch()
    db.chmod(0o644)
    url = f"sqlite:///{db}"

    async def open_twice() -> None:
        await _open_close(url)
        await _open_close(url)

    with pytest.warns(mai.StorePermissionWarning, match="can be read by other users") as caught:
        await open_twice()
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(db) in message
    assert "0644" in message
    assert f"chmod 600 {db}" in message
    assert _mode(db) == 0o644
    assert _mode(world_readable_dir) == 0o755


async def test_a_private_store_or_a_closed_folder_is_not_warned_about(
    world_readable_dir: Path, tmp_path: Path
) -> None:
    """No warning for a 0600 file, nor for a 0644 file others cannot reach (a 0700 parent)."""
    private = world_readable_dir / "private.db"
    private.touch()
    private.chmod(0o600)
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    hidden.chmod(0o700)
    unreachable = hidden / "runs.db"
    unreachable.touch()
    unreachable.chmod(0o644)
    for db in (private, unreachable):
        assert await _open_close(f"sqlite:///{db}") == []  # filterwarnings=error would raise
    assert _mode(unreachable) == 0o644
    await trio.lowlevel.checkpoint()
