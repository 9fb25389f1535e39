"""The scripted GGUF model: what the file holds and how llama.cpp tokenises the prompts it reads."""

from __future__ import annotations

import json
import urllib.request

import gguf
import pytest
from tinymodel import CHAT_TEMPLATE, vocabulary, write_model


def test_written_file_is_a_llama_model_with_a_chat_template(tmp_path):
    """The file reads back as a one-layer llama model with an SPM tokenizer and our template."""
    reader = gguf.GGUFReader(write_model(tmp_path / "tiny.gguf"))
    fields = reader.fields
    assert fields["general.architecture"].contents() == "llama"
    assert fields["tokenizer.ggml.model"].contents() == "llama"
    assert fields["tokenizer.chat_template"].contents() == CHAT_TEMPLATE
    tokens = fields["tokenizer.ggml.tokens"].contents()
    kinds = dict(zip(tokens, fields["tokenizer.ggml.token_type"].contents(), strict=True))
    assert kinds["<|im_end|>"] == gguf.TokenType.CONTROL
    assert tokens[fields["tokenizer.ggml.eos_token_id"].contents()] == "<|im_end|>"
    for marker in ("<tools>", "<tool_response>", "tool\n", "forever"):
        assert kinds[marker] == gguf.TokenType.USER_DEFINED
    assert {tensor.name for tensor in reader.tensors} >= {"token_embd.weight", "output.weight"}


def test_writing_twice_gives_identical_files(tmp_path):
    """The model is a pure function of the script: two writes are byte-identical."""
    first = write_model(tmp_path / "a.gguf").read_bytes()
    assert write_model(tmp_path / "b.gguf").read_bytes() == first


@pytest.mark.parametrize(
    ("prompt", "expected_run"),
    [
        (
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            ["<|im_start|>", "assistant\n"],
        ),
        ("<|im_start|>tool\n<|im_start|>assistant\nmessage:\n", ["message", ":\n"]),
        ('functions.get_weather:\n{"city": "Paris"}\n', ['{"city": "', "Paris", '"}', "<0x0A>"]),
        ("<tool_response>\nsunny\n</tool_response>", ["<tool_response>", "<0x0A>", "s"]),
        ("Talk forever.", ["T", "a", "l", "k", "\u2581", "forever", "."]),
    ],
)
def test_the_server_reads_the_pieces_the_script_decides_on(llm_server, prompt, expected_run):
    """llama.cpp cuts prompts into the pieces the scripted weights key on (one token each)."""
    # S310: the URL is our own http://127.0.0.1 server's
    request = urllib.request.Request(  # noqa: S310
        llm_server.base_url.removesuffix("/v1") + "/extras/tokenize",
        data=json.dumps({"input": prompt}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        ids = json.loads(response.read())["tokens"]
    pieces = [vocabulary()[0][token] for token in ids]
    window = len(expected_run)
    assert any(pieces[i : i + window] == expected_run for i in range(len(pieces))), pieces
