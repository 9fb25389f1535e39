"""Examples and documentation code are executed, so they cannot rot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted([*ROOT.glob("examples/*.py"), *ROOT.glob("docs/examples/*.py")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_runs(script: Path) -> None:
    """Every example script (examples/ and docs/examples/) runs to completion."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "an example should show what it did"


def test_quickstart_shows_each_feature() -> None:
    """The quickstart demo prints the retry, the deadline and the final summary."""
    proc = subprocess.run(
        [sys.executable, "examples/quickstart.py"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    out = proc.stdout
    assert "after 3 attempts" in out
    assert "exceeded its timeout" in out
    assert "summary" in out


def _code(text: str) -> list[str]:
    return [
        line.rstrip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_readme_example_matches_its_script() -> None:
    """The README's twenty-line example is the script the tests run (docstring aside)."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    script = (ROOT / "examples/readme_example.py").read_text()
    script = re.sub(r'^""".*?"""\n', "", script, flags=re.DOTALL)
    strip = lambda lines: [re.sub(r"\s+#.*$", "", ln) for ln in lines]  # noqa: E731
    assert strip(_code(block.group(1))) == strip(_code(script))
    assert len(_code(block.group(1))) <= 20


class _FakeModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint on 127.0.0.1 that answers with the prompt's length."""

    calls: list[str] = []  # noqa: RUF012 - shared log of requests, on purpose

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeModel.calls.append(self.headers.get("Idempotency-Key", ""))
        prompt = body["messages"][0]["content"]
        reply = {"choices": [{"message": {"content": f"a page of {len(prompt)} characters"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        """Quiet."""


def test_llm_example_against_a_local_compatible_endpoint(tmp_path: Path) -> None:
    """With OPENAI_BASE_URL set, the optional LLM example calls it, durably, once per page."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeModel.calls.clear()
    env = {
        **os.environ,
        "OPENAI_BASE_URL": f"http://127.0.0.1:{server.server_address[1]}/v1",
        "OPENAI_API_KEY": "test",
        "MAI_STORE": f"sqlite:///{tmp_path}/llm.db",
    }
    try:
        for _ in range(2):  # the second run attaches to the same run id: nothing is asked again
            proc = subprocess.run(
                [sys.executable, str(ROOT / "examples" / "llm_agent.py")],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=tmp_path,
                env=env,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert proc.stdout.count("a page of") == 4
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert len(_FakeModel.calls) == 4
    assert all(key.startswith("llm-summaries/1.") for key in _FakeModel.calls)


def _private_uses(path: Path) -> list[str]:
    """Imports of private mai modules and private attributes an example reaches for."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mai"):
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"line {node.lineno}: from {node.module} import ...")
            found += [f"line {node.lineno}: {a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.startswith("mai") and any(p.startswith("_") for p in a.name.split("."))
            ]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not (node.attr.startswith("__") and node.attr.endswith("__"))
        ):
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_use_only_public_api(script: Path) -> None:
    """Examples are templates users copy: no private module, no private attribute."""
    assert _private_uses(script) == []
