"""The scripted GGUF model: what the file holds and how llama.cpp tokenises the prompts it reads."""

from __future__ import annotations

import gguf
import pytest
from tinymodel import CHAT_TEMPLATE, write_model


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
        ('functions.get_weather:\n{"city": "Paris"}\n', ['{"city": "', "Paris", '"}', "\n"]),
        ("<tool_response>\nsunny\n</tool_response>", ["<tool_response>", "\n", "s"]),
    ],
)
def test_llama_cpp_reads_the_pieces_the_script_decides_on(tmp_path, prompt, expected_run):
    """llama.cpp cuts the prompts into the pieces the scripted weights key on."""
    llama_cpp = pytest.importorskip("llama_cpp")
    model = llama_cpp.Llama(
        str(write_model(tmp_path / "tiny.gguf")), vocab_only=True, verbose=False
    )
    ids = model.tokenize(prompt.encode(), add_bos=False, special=True)
    pieces = [model.detokenize([token], special=True).decode() for token in ids]
    assert "".join(pieces) == prompt
    window = len(expected_run)
    assert any(pieces[i : i + window] == expected_run for i in range(len(pieces)))
