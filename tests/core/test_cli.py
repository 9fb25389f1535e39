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


def test_help_everywhere(app: Path) -> None:
    """Every command answers --help."""
    for args in (
        [],
        ["run"],
        ["runs"],
        ["runs", "list"],
        ["runs", "send"],
        ["trace"],
        ["plan"],
        ["plugins"],
        ["worker"],
    ):
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
