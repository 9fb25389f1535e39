"""The `mai` command: run, runs, trace, plan, plugins; one-line errors with exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import mai
    from pydantic import BaseModel

    class Point(BaseModel):
        x: int
        y: int

    @mai.module
    async def double(n: int) -> int:
        return 2 * n

    @mai.module
    async def norm(p: Point, scale: float = 1.0) -> float:
        return (p.x ** 2 + p.y ** 2) ** 0.5 * scale

    @mai.module
    async def boom(n: int) -> int:
        raise ValueError(f"no good: {n}")

    pipeline = double >> double
    """
)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A project directory with an importable workflows module and its own store."""
    (tmp_path / "cliapp.py").write_text(APP)
    return tmp_path


def mai_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `mai` console script in ``cwd``."""
    env = {**os.environ, "MAI_STORE": f"sqlite:///{cwd}/cli.db"}
    env.pop("MAI_DEBUG", None)
    exe = Path(sys.executable).with_name("mai")
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_run_parses_arguments_into_parameter_types(app: Path) -> None:
    """`mai run` casts "21" to int and reads structured arguments as JSON; prints the result."""
    done = mai_cli(app, "run", "cliapp:double", "21", "--run-id", "r1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 42
    done = mai_cli(app, "run", "cliapp:norm", '{"x": 3, "y": 4}', "scale=2", "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 10.0


def test_run_shows_progress_and_trace(app: Path) -> None:
    """Without a TTY, `mai run --trace` prints one line per finished step and the trace tree."""
    done = mai_cli(app, "run", "cliapp:pipeline", "5", "--run-id", "p1", "--trace")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 20
    assert "✓ 1.1 double" in done.stderr
    assert "✓ 1.2 double" in done.stderr
    assert "2 steps: 2 ran" in done.stderr
    assert "[1.2]" in done.stderr  # the trace tree


def test_run_again_with_the_same_id_replays(app: Path) -> None:
    """Running an existing run id attaches: nothing runs again."""
    assert mai_cli(app, "run", "cliapp:pipeline", "5", "--run-id", "same").returncode == 0
    again = mai_cli(app, "run", "cliapp:pipeline", "5", "--run-id", "same")
    assert again.returncode == 0
    assert json.loads(again.stdout) == 20
    assert "0 ran" in again.stderr


def test_errors_are_one_line_with_exit_codes(app: Path) -> None:
    """Bad input, a failing run and a bad target each give one line on stderr, non-zero exit."""
    bad_input = mai_cli(app, "run", "cliapp:double", "abc")
    assert bad_input.returncode == 1
    assert bad_input.stderr.strip().count("\n") == 0
    assert "parameter 'n'" in bad_input.stderr
    failing = mai_cli(app, "run", "cliapp:boom", "3", "--quiet")
    assert failing.returncode == 1
    assert "ValueError: no good: 3" in failing.stderr
    assert "Traceback" not in failing.stderr
    missing = mai_cli(app, "run", "cliapp:nothing")
    assert missing.returncode == 2
    assert "has no attribute 'nothing'" in missing.stderr
    unknown_run = mai_cli(app, "runs", "show", "nope")
    assert unknown_run.returncode == 1
    assert "no durable run with id 'nope'" in unknown_run.stderr


def test_runs_commands(app: Path) -> None:
    """runs list/show/steps describe recorded runs; trace renders the recorded tree."""
    assert mai_cli(app, "run", "cliapp:pipeline", "1", "--run-id", "abc", "--quiet").returncode == 0
    listing = mai_cli(app, "runs", "list")
    assert "abc" in listing.stdout
    assert "SUCCEEDED" in listing.stdout
    shown = json.loads(mai_cli(app, "runs", "show", "abc", "--json").stdout)
    assert shown["status"] == "SUCCEEDED"
    assert shown["output"] == 4
    steps = json.loads(mai_cli(app, "runs", "steps", "abc", "--json").stdout)
    assert [s["step_id"] for s in steps] == ["1.1", "1.2"]
    tree = mai_cli(app, "trace", "abc")
    assert tree.returncode == 0
    assert "double  [1.1]" in tree.stdout
    failed = mai_cli(app, "runs", "list", "--status", "bogus")
    assert failed.returncode == 2


def test_plan_and_plugins(app: Path) -> None:
    """`mai plan` prints Mermaid or JSON; `mai plugins` lists what is installed."""
    mermaid = mai_cli(app, "plan", "cliapp:pipeline", "--mermaid")
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.startswith(("flowchart", "graph"))
    plan = json.loads(mai_cli(app, "plan", "cliapp:pipeline", "--json").stdout)
    assert isinstance(plan, dict)
    plugins = mai_cli(app, "plugins")
    assert plugins.returncode == 0


HELP_COMMANDS = [
    [],
    ["run"],
    ["runs"],
    ["runs", "list"],
    ["runs", "send"],
    ["trace"],
    ["plan"],
    ["plugins"],
    ["worker"],
]


@pytest.mark.parametrize("args", HELP_COMMANDS, ids=lambda a: " ".join(a) or "mai")
def test_help_everywhere(app: Path, args: list[str]) -> None:
    """Every command answers --help."""
    done = mai_cli(app, *args, "--help")
    assert done.returncode == 0, args
    assert "usage: mai" in done.stdout


def test_send_and_cancel(app: Path) -> None:
    """`mai runs cancel` cancels an unfinished run; `send` validates its JSON payload."""
    bad = mai_cli(app, "runs", "send", "x", "topic", "{not json")
    assert bad.returncode == 2
    assert "PAYLOAD must be JSON" in bad.stderr


def test_console_examples_in_the_docs_run(tmp_path: Path) -> None:
    """Every `$ mai ...` line in docs/cli.rst runs successfully, in order."""
    import shlex

    lines = [
        line.strip()[2:]
        for line in (ROOT / "docs" / "cli.rst").read_text().splitlines()
        if line.strip().startswith("$ mai ")
    ]
    assert len(lines) >= 8
    for line in lines:
        args = shlex.split(line)[1:]
        args = [str(ROOT / a) if a.startswith("examples/") and ":" in a else a for a in args]
        done = mai_cli(tmp_path, *args)
        assert done.returncode == 0, f"{line}: {done.stderr}"


def test_run_on_a_terminal_redraws_a_live_tree(app: Path) -> None:
    """On a TTY, `mai run` redraws a tree of running and finished steps in place."""
    import pty

    (app / "slowapp.py").write_text(
        "import trio, mai\n"
        "@mai.module\n"
        "async def nap(x: int) -> int:\n"
        "    await trio.sleep(0.15)\n"
        "    return x + 1\n"
        "flow = nap >> nap >> nap\n"
    )
    primary, secondary = pty.openpty()
    env = {**os.environ, "MAI_STORE": f"sqlite:///{app}/tty.db", "TERM": "xterm"}
    exe = Path(sys.executable).with_name("mai")
    proc = subprocess.Popen(
        [str(exe), "run", "slowapp:flow", "1"],
        cwd=app,
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=60)
    os.close(primary)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert json.loads(out) == 4
    assert "\x1b[" in screen  # the tree is redrawn in place
    assert "… 1.1 nap  running" in screen  # a running step is shown while it runs
    assert "✓ 1.3 nap" in screen


# -- issue 10: the front door ---------------------------------------------------------------------

FLAKY = textwrap.dedent(
    """
    import mai

    tries = []

    @mai.module(retries=2, backoff=0)
    async def flaky(n: int) -> int:
        tries.append(n)
        if len(tries) < 2:
            raise ConnectionError("try again")
        return n + 1
    """
)


def test_library_logs_go_to_stderr_in_mai_run(app: Path) -> None:
    """`mai run` prints only the result on stdout; the library's retry log goes to stderr."""
    (app / "flakyapp.py").write_text(FLAKY)
    for extra in ([], ["--quiet"]):
        done = mai_cli(app, "run", "flakyapp:flaky", "3", *extra)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == 4
        assert "mai.retry" in done.stderr


def test_library_logs_go_to_stderr_in_user_programs(app: Path) -> None:
    """A user program that never configured logging gets mai's log lines on stderr only."""
    (app / "flakyapp.py").write_text(FLAKY)
    script = "import mai, flakyapp\nprint(mai.run(flakyapp.flaky, 3))\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "4\n"
    assert "mai.retry" in done.stderr


def test_configured_structlog_still_receives_library_logs(app: Path) -> None:
    """An application that configured structlog gets mai's lines through its own set-up."""
    (app / "flakyapp.py").write_text(FLAKY)
    script = (
        "import sys, structlog, mai, flakyapp\n"
        "structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stdout))\n"
        "print(mai.run(flakyapp.flaky, 3))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "mai.retry" in done.stdout
    assert "mai.retry" not in done.stderr


WAITER = textwrap.dedent(
    """
    import mai

    @mai.module
    async def waiter(n: int) -> int:
        got = await mai.wait_for("go")
        return n + got
    """
)


def test_send_to_a_finished_run_fails(app: Path) -> None:
    """`mai runs send` to a finished run says it is not waiting and exits 1."""
    done = mai_cli(app, "run", "cliapp:double", "2", "--run-id", "fin", "--quiet")
    assert done.returncode == 0, done.stderr
    sent = mai_cli(app, "runs", "send", "fin", "go", "1")
    assert sent.returncode == 1
    assert "sent" not in sent.stdout
    assert "not waiting" in sent.stderr
    assert "succeeded" in sent.stderr


def test_runs_list_shows_a_killed_owner(app: Path) -> None:
    """A run whose process was killed is listed as RUNNING with its owner gone; send says so."""
    import signal
    import time

    (app / "waitapp.py").write_text(WAITER)
    env = {**os.environ, "MAI_STORE": f"sqlite:///{app}/cli.db"}
    exe = Path(sys.executable).with_name("mai")
    proc = subprocess.Popen(
        [str(exe), "run", "waitapp:waiter", "1", "--run-id", "w1", "--quiet"],
        cwd=app,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        give_up = time.monotonic() + 60
        while True:  # poll the store until the run waits (no fixed sleep)
            if _waiting(app):
                break
            assert time.monotonic() < give_up, "the run never started"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    table = mai_cli(app, "runs", "list")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith("w1"))
    assert "RUNNING (owner gone)" in row
    data = json.loads(mai_cli(app, "runs", "list", "--json").stdout)
    assert data[0]["owner_alive"] is False
    sent = mai_cli(app, "runs", "send", "w1", "go", "1")
    assert sent.returncode == 0, sent.stderr
    assert "owner is gone" in sent.stdout


def _waiting(app: Path) -> bool:
    """Whether run w1 is RUNNING in the app's store (read with plain sqlite3)."""
    import sqlite3

    db = app / "cli.db"
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT status FROM mai_runs WHERE run_id = 'w1'").fetchone()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == "RUNNING"


def test_worker_defaults_are_the_workers_own() -> None:
    """`mai worker` shows mai.Worker's own defaults (concurrency, lease) and has --lease."""
    import inspect

    import mai
    from mai.core.cli import _parser

    defaults = inspect.signature(mai.Worker).parameters
    text = _parser()._subparsers._group_actions[0].choices["worker"].format_help()  # type: ignore[union-attr]
    assert f"(default {defaults['concurrency'].default})" in text
    assert "--lease" in text
    assert f"(default {defaults['lease'].default:g})" in text
    assert "--poll-interval" in text
    assert "--max-attempts" in text


def test_cli_imports_lazily_only_what_import_does_not_load() -> None:
    """Each function-level import in the CLI loads a module `import mai.core.cli` does not."""
    import ast

    source = (ROOT / "mai" / "core" / "cli" / "__init__.py").read_text()
    tree = ast.parse(source)
    nested = sorted(
        {
            node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(fn)
            if isinstance(node, ast.Import | ast.ImportFrom)
        }
    )
    assert nested, "the durable runtime should load only in the commands that use it"
    code = "import sys, mai.core.cli; print(' '.join(sys.modules))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert [m for m in nested if m in loaded] == [], "these lazy imports achieve nothing"
    doc = ast.get_docstring(tree) or ""
    assert "lazy" not in doc
    assert "--help" in doc  # it says what is deferred, and why


def test_send_to_a_pending_run_is_sent(app: Path) -> None:
    """A queued (PENDING) run is not finished: `mai runs send` stores the message, exit 0."""
    submit = (
        "import trio, mai, cliapp\n"
        "async def main():\n"
        f"    async with mai.Runtime('sqlite:///{app}/cli.db') as rt:\n"
        "        await rt.submit(cliapp.double, 2, run_id='queued')\n"
        "trio.run(main)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", submit], cwd=app, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    sent = mai_cli(app, "runs", "send", "queued", "go", "1")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("sent 'go' to run queued")
