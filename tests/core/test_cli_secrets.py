"""The `mai` command never shows a store URL's password: every --store command, every error.

The store here is a PostgreSQL URL with a recognisable password on a port where nothing listens
(the error paths; the real server's success paths are in tests/postgres/test_secrets.py), and
URLs of schemes nobody serves. Both the ``--store`` flag and ``MAI_STORE`` are tried; stdout and
stderr (where the logs go) are searched, also with ``MAI_DEBUG=1`` tracebacks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SECRET = "xyzzy%2Fplugh-42"  # noqa: S105 - the recognisable password the tests hunt for
#: The forms the password could take in text: as written, percent-decoded, and its start.
FORMS = ("xyzzy", "plugh-42")

APP = textwrap.dedent(
    """
    import mai

    @mai.module
    async def double(n: int) -> int:
        return 2 * n
    """
)

#: Every `mai` command that takes --store (with the arguments it needs).
COMMANDS = [
    ["run", "secretapp:double", "21", "--run-id", "r1"],
    ["runs", "list"],
    ["runs", "show", "r1"],
    ["runs", "steps", "r1"],
    ["runs", "resume", "r1", "--app", "secretapp"],
    ["runs", "cancel", "r1"],
    ["runs", "send", "r1", "go", "1"],
    ["trace", "r1"],
    ["worker", "--app", "secretapp"],
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dead_url() -> str:
    """A PostgreSQL URL with a password, on a port nothing listens on; gives up fast."""
    return f"postgresql://mai:{SECRET}@127.0.0.1:{free_port()}/mai?reconnect_timeout=0.2"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A project directory with an importable workflows module."""
    (tmp_path / "secretapp.py").write_text(APP)
    return tmp_path


def mai_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the `mai` console script; return its stdout and stderr together (must fail)."""
    full = {k: v for k, v in os.environ.items() if k not in {"MAI_STORE", "MAI_DEBUG"}}
    full["PYTHONPATH"] = str(cwd)  # `mai worker --app` imports from sys.path only
    full.update(env or {})
    exe = Path(sys.executable).with_name("mai")
    done = subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=full,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    return done.stdout + done.stderr


def assert_no_secret(output: str) -> None:
    """No form of the password appears in ``output``."""
    for form in FORMS:
        assert form not in output, output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_hides_the_password_of_an_unreachable_store(
    app: Path, dead_url: str, command: list[str]
) -> None:
    """Each --store command fails naming the store, never its password (flag or MAI_STORE)."""
    port = dead_url.split("@127.0.0.1:")[1].split("/", maxsplit=1)[0]
    out = mai_cli(app, *command, "--store", dead_url)
    assert_no_secret(out)
    assert f"127.0.0.1:{port}" in out
    out = mai_cli(app, *command, env={"MAI_STORE": dead_url})
    assert_no_secret(out)
    assert f"127.0.0.1:{port}" in out


def test_a_debug_traceback_hides_the_password(app: Path, dead_url: str) -> None:
    """MAI_DEBUG=1 prints the traceback and its chained driver errors, still without it."""
    out = mai_cli(app, "runs", "list", "--store", dead_url, env={"MAI_DEBUG": "1"})
    assert "Traceback" in out
    assert_no_secret(out)


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://mai:{SECRET}@127.0.0.1/mai",
        f"host=127.0.0.1 user=mai password={SECRET} dbname=mai",
        "postgresql://127.0.0.1:{port}/mai?reconnect_timeout=0.2&password=" + SECRET,
    ],
    ids=["unknown-scheme", "libpq-keywords", "password-parameter"],
)
def test_other_password_forms_are_hidden(app: Path, url: str) -> None:
    """A password in a URL nobody serves, a key=value string or a query parameter is hidden."""
    url = url.replace("{port}", str(free_port()))
    for command in (["runs", "list"], ["run", "secretapp:double", "1"]):
        assert_no_secret(mai_cli(app, *command, "--store", url))
        assert_no_secret(mai_cli(app, *command, env={"MAI_STORE": url}))
