"""Start and stop a real OpenAI-compatible model server for the tests.

Two servers, both built from llama-cpp-python's sdist:

* :func:`start_server` runs llama-cpp-python's own server (``python -m llama_cpp.server``,
  ``make llm-server``) with its ``chatml-function-calling`` handler;
* :func:`start_llama_server` runs llama.cpp's C++ ``llama-server`` (``make llama-server``
  builds it into the virtualenv), which renders the model's own chat template (``--jinja``)
  and, unlike the Python server, streams automatic tool calls.

Each listens on a free port of 127.0.0.1 with its log in ``workdir``; the start waits until
``GET /v1/models`` answers, and :meth:`LlamaServer.stop` ends the process by its id. Nothing
is reached over the network besides the loopback interface (``HF_HUB_OFFLINE=1``,
``--offline``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

INSTALL_HINT = (
    'install it with: make llm-server (CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" '
    "pip install 'llama-cpp-python[server]==0.3.36')"
)
LLAMA_SERVER_HINT = "build it with: make llama-server (or set MAI_LLAMA_SERVER to its path)"
STARTUP_TIMEOUT = 60.0


class ServerUnavailableError(RuntimeError):
    """The model server could not be started (not installed, or it failed to come up)."""


@dataclass(frozen=True)
class LlamaServer:
    """A running server: its OpenAI base URL, process and log file."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log."""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server by its process id: SIGTERM, then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(base_url: str) -> bool:
    try:
        # S310: the URL is our own http://127.0.0.1 server's
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:  # noqa: S310
            return response.status == 200 and "data" in json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False


def start_server(model: Path, workdir: Path, alias: str = "tiny") -> LlamaServer:
    """Start llama-cpp-python's server on ``model``; raise :class:`ServerUnavailableError`."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ServerUnavailableError(f"llama-cpp-python is not installed; {INSTALL_HINT}")
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            raise ServerUnavailableError(
                f"{module} is missing (the [server] extra); {INSTALL_HINT}"
            )

    def command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            alias,
            "--chat_format",
            "chatml-function-calling",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--seed",
            "42",
            "--n_threads",
            "2",
        ]

    return _launch(command, workdir, "llama-cpp-python")


def find_llama_server() -> str | None:
    """The ``llama-server`` binary: ``$MAI_LLAMA_SERVER``, the virtualenv's, or on ``PATH``."""
    explicit = os.environ.get("MAI_LLAMA_SERVER")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "llama-server"  # the virtualenv's bin/
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("llama-server")


def start_llama_server(model: Path, workdir: Path, alias: str = "tiny") -> LlamaServer:
    """Start llama.cpp's ``llama-server`` on ``model``; raise :class:`ServerUnavailableError`."""
    binary = find_llama_server()
    if binary is None:
        raise ServerUnavailableError(f"llama.cpp's llama-server was not found; {LLAMA_SERVER_HINT}")

    def command(port: int) -> list[str]:
        return [
            binary,
            "--model",
            str(model),
            "--alias",
            alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ctx-size",
            "2048",
            "--parallel",
            "1",
            "--seed",
            "42",
            "--threads",
            "2",
            "--jinja",
            "--offline",
            "--no-webui",
        ]

    return _launch(command, workdir, "llama-server")


# What the servers log when the free port was taken in between (then we try another port).
_PORT_TAKEN = ("address already in use", "couldn't bind", "errno 98")


def _launch(command: Callable[[int], list[str]], workdir: Path, name: str) -> LlamaServer:
    for _ in range(2):
        port = free_port()
        try:
            return _start(command(port), port, workdir / f"{name}-{port}.log")
        except ServerUnavailableError as exc:
            if not any(sign in str(exc).lower() for sign in _PORT_TAKEN):
                raise
    port = free_port()
    return _start(command(port), port, workdir / f"{name}-{port}.log")


def _start(command: list[str], port: int, log_path: Path) -> LlamaServer:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", process, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not _ready(server.base_url):
        if process.poll() is not None:
            raise ServerUnavailableError(
                f"the model server exited with code {process.returncode} before it was ready; "
                f"log {log_path}:\n{server.log_tail()}"
            )
        if time.monotonic() > deadline:
            server.stop()
            raise ServerUnavailableError(
                f"the model server did not answer GET /v1/models within {STARTUP_TIMEOUT:.0f} s; "
                f"log {log_path}:\n{server.log_tail()}"
            )
        time.sleep(0.05)
    return server
