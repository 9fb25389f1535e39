"""A real OpenAI-compatible model server for the tests here, with a model the tests write.

``llm_server`` (llama-cpp-python's server) and ``llama_server`` (llama.cpp's C++ server) have
session scope: one server per test process, so one per pytest-xdist worker. Each writes the
scripted GGUF of :mod:`tinymodel` into a temporary directory, starts its server on a free port
of 127.0.0.1 (its log beside the model) and stops it by process id at the end. Without the
server the tests skip with the install command, unless ``MAI_REQUIRE_LLM=1`` (set by
``.ci/run``), which turns every such skip into a failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from llmserver import LlamaServer, ServerUnavailableError, start_llama_server, start_server
from realparts import unavailable
from tinymodel import MODEL_ALIAS, write_model

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def _serve(
    tmp_path_factory: pytest.TempPathFactory, start: Callable[..., LlamaServer]
) -> Iterator[LlamaServer]:
    workdir = tmp_path_factory.mktemp("llm")
    model = write_model(workdir / "tiny.gguf")
    try:
        server = start(model, workdir, alias=MODEL_ALIAS)
    except ServerUnavailableError as exc:
        unavailable("MAI_REQUIRE_LLM", str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's server (``.base_url`` ends in ``/v1``); its model is called ``tiny``."""
    yield from _serve(tmp_path_factory, start_server)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama.cpp's C++ ``llama-server`` on the same model (streams automatic tool calls)."""
    yield from _serve(tmp_path_factory, start_llama_server)


@pytest.fixture
def llm_base_url(llm_server: LlamaServer) -> str:
    """The OpenAI base URL of the session's model server."""
    return llm_server.base_url
