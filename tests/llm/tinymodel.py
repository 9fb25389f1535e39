"""A tiny llama-architecture GGUF model whose greedy answers are scripted.

No model can be downloaded in our tests, so they write one. :func:`write_model` produces a
~0.8 MB GGUF file (``gguf`` package + numpy, in a few milliseconds) that a real llama.cpp
server loads like any other model. Its weights are set by hand so that greedy decoding
(``temperature=0``) always says the same thing:

* a plain chat answers :data:`ANSWER` and stops (finish reason ``stop``);
* when a tool is offered with ``tool_choice="auto"`` it calls it (:data:`TOOL_NAME` with
  :data:`TOOL_ARGUMENTS`); a named ``tool_choice`` gets the same arguments;
* once a tool result is in the conversation it answers :data:`AFTER_TOOL` instead;
* in JSON mode (``response_format={"type": "json_object"}`` or a JSON schema with a ``city``
  string) it answers :data:`JSON_ANSWER`;
* a prompt containing the word ``forever`` starts :data:`LONG_PREFIX` followed by
  ``" and on"`` repeated until ``max_tokens`` (a long stream for deadline tests).

How it works (see ``shared/LLM-TESTING.md``): the network is one transformer layer whose
feed-forward block is zero, so the residual stream at the last position is the current
token's embedding plus what attention adds. Every token the script needs is its own
USER_DEFINED vocabulary piece (the tokenizer matches those verbatim, longest first), with a
one-hot embedding feature; the output matrix maps each such token to its successor by a wide
margin: a bigram machine. Decisions that depend on the conversation are made by attention
heads: a head's query is on only at a *decision* token (``"assistant\\n"``, ``":\\n"``,
``'"}'``) and its key only at *marker* tokens (``"tool\\n"`` / ``<tool_response>`` for "a
tool result is present", ``<tools>`` for "tools were listed in the prompt", ``forever``);
everywhere else the head rests on the ``<|im_start|>`` tokens, whose value is zero. The head
writes a 0/1 feature that the output matrix reads. A huge ``rope.freq_base`` and query/key
weights only in the slowest-rotating rotary pair make attention position-independent.

The prompts it understands are those of llama-cpp-python's ``chatml-function-calling`` chat
handler (``<|im_start|>tool\\n`` marks a tool result; the handler's own grammars pick
``functions.NAME:`` or ``message:``) and of the Qwen2.5-style template stored in the file
(``<tools>``, ``<tool_response>``, ``<tool_call>`` as llama.cpp's ``llama-server --jinja``
uses it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gguf
import numpy as np

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "AFTER_TOOL",
    "ANSWER",
    "CHAT_TEMPLATE",
    "JSON_ANSWER",
    "LONG_PREFIX",
    "LONG_TRIGGER",
    "MODEL_ALIAS",
    "TOOL_ARGUMENTS",
    "TOOL_NAME",
    "tool_schema",
    "vocabulary",
    "write_model",
]

MODEL_ALIAS = "tiny"
ANSWER = "Hello from the tiny model."
AFTER_TOOL = "The tool said sunny."
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = {"city": "Paris"}
JSON_ANSWER = {"city": "Paris"}
LONG_TRIGGER = "forever"
LONG_PREFIX = "Once upon a time,"

# The pieces of every scripted text (each one USER_DEFINED token).
_ANSWER = ["Hello", " from", " the", " tiny", " model."]
_AFTER = ["The", " tool", " said", " sunny."]
_ARGS = ['{"city": "', "Paris", '"}']
_LONG = ["Once", " upon a time,", " and", " on"]
_HERMES_OPEN = ["<tool_call>", '\n{"name": "get_weather", "arguments": ']
_HERMES_CLOSE = "}\n</tool_call>"

# Decision tokens (where the model chooses between chains) and marker tokens (what it looks for).
_ASSISTANT = "assistant\n"  # the end of every generation prompt
_COLON = ":\n"  # ends "functions.NAME:\n" (write arguments) and "message:\n" (write text)
_QUOTE = _ARGS[-1]  # end of the arguments: stop, or close a <tool_call> block
_TOOL_RESULT = ("tool\n", "<tool_response>")
_TOOLS_LISTED = ("<tools>",)
_LONG_MARK = (LONG_TRIGGER,)

_EOS = "<|im_end|>"
_SINK = "<|im_start|>"
_SPECIALS = ["<unk>", "<s>", "</s>", _SINK, _EOS]
_NEWLINE_BYTE = "<0x0A>"

# A ChatML template with Qwen2.5-style tools: the GGUF's own template (used by servers that
# render the model's template; llama-cpp-python's chatml-function-calling brings its own).
CHAT_TEMPLATE = """\
{%- if tools %}<|im_start|>system
{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% else %}You are a helpful \
assistant.{% endif %}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within XML tags:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>

For each function call, return a json object with function name and arguments within XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0]['role'] == 'system' %}<|im_start|>system
{{ messages[0]['content'] }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}\
<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% elif message.role == 'assistant' %}<|im_start|>assistant
{%- if message.content %}
{{ message.content }}
{%- endif %}
{%- for tool_call in message.tool_calls or [] %}
{%- if tool_call.function is defined %}{% set tool_call = tool_call.function %}{% endif %}
<tool_call>
{"name": "{{ tool_call.name }}", "arguments": \
{% if tool_call.arguments is string %}{{ tool_call.arguments }}\
{% else %}{{ tool_call.arguments | tojson }}{% endif %}}
</tool_call>
{%- endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

_HIDDEN = 128
_HEADS = 8
_HEAD_DIM = _HIDDEN // _HEADS
_FFN = 64
_CONTEXT = 4096
_WIN = 30.0  # logit of a scripted successor (before normalisation); runners-up stay below 2/3


def vocabulary() -> tuple[list[str], list[int]]:
    """Token pieces and types: specials, 256 byte fallbacks, printable ASCII, scripted pieces."""
    pieces = list(_SPECIALS)
    types = [
        gguf.TokenType.UNKNOWN,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
    ]
    pieces += [f"<0x{byte:02X}>" for byte in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    pieces += ["\u2581"] + [chr(code) for code in range(33, 127)]  # "▁" is SentencePiece's space
    types += [gguf.TokenType.NORMAL] * 95
    scripted = [
        *_ANSWER,
        *_AFTER,
        *_ARGS,
        *_LONG,
        *_HERMES_OPEN,
        _HERMES_CLOSE,
        _ASSISTANT,
        _COLON,
        *_TOOL_RESULT,
        *_TOOLS_LISTED,
        *_LONG_MARK,
        "functions",
        "message",
    ]
    for piece in scripted:
        if piece not in pieces:
            pieces.append(piece)
            types.append(gguf.TokenType.USER_DEFINED)
    return pieces, [int(kind) for kind in types]


def _weights(pieces: list[str]) -> dict[str, np.ndarray]:
    """The hand-set tensors, in numpy's (out, in) layout that GGUF stores as ggml's (in, out)."""
    token = {piece: index for index, piece in enumerate(pieces)}
    # Residual dimensions: a constant, one per featured token, one per attention-made feature.
    featured = [
        _SINK,
        _NEWLINE_BYTE,
        *dict.fromkeys(
            [
                *_ANSWER,
                *_AFTER,
                *_ARGS,
                *_LONG,
                *_HERMES_OPEN,
                _HERMES_CLOSE,
                _ASSISTANT,
                _COLON,
                *_TOOL_RESULT,
                *_TOOLS_LISTED,
                *_LONG_MARK,
                "functions",
            ]
        ),
    ]
    dim = {piece: 1 + index for index, piece in enumerate(featured)}
    # (feature name, decision tokens that ask, marker tokens that answer)
    heads = [
        ("result@assistant", [_ASSISTANT], _TOOL_RESULT),
        ("tools@assistant", [_ASSISTANT], _TOOLS_LISTED),
        ("long@assistant", [_ASSISTANT], _LONG_MARK),
        ("result@colon", [_COLON], _TOOL_RESULT),
        ("tools@quote", [_QUOTE], _TOOLS_LISTED),
    ]
    for offset, (name, _, _) in enumerate(heads):
        dim[name] = 1 + len(featured) + offset
    if len(dim) + 1 > _HIDDEN:
        raise ValueError("the script needs more residual dimensions than the model has")

    vocab = len(pieces)
    embed = np.zeros((vocab, _HIDDEN), dtype=np.float32)
    embed[:, 0] = 1.0
    for piece in featured:
        embed[token[piece], dim[piece]] = 1.0

    # Attention: every head rests on the <|im_start|> tokens (value 0) unless the current
    # token is one of its decision tokens and a marker is in the context. A token made of the
    # constant and its own dimension normalises to sqrt(hidden / 2) = 8 in both, so the
    # scores are 16 * q * k: 20 for the sink, 41 for a marker.
    wq = np.zeros((_HIDDEN, _HIDDEN), dtype=np.float32)
    wk = np.zeros((_HIDDEN, _HIDDEN), dtype=np.float32)
    wv = np.zeros((_HIDDEN, _HIDDEN), dtype=np.float32)
    wo = np.zeros((_HIDDEN, _HIDDEN), dtype=np.float32)
    sink_lane, marker_lane = _HEAD_DIM - 4, _HEAD_DIM - 2  # slowest rotary pairs: no rotation
    for head, (name, deciders, markers) in enumerate(heads):
        base = head * _HEAD_DIM
        wq[base + sink_lane, 0] = 1.25
        wk[base + sink_lane, dim[_SINK]] = 1.0
        for decider in deciders:
            wq[base + marker_lane, dim[decider]] = 1.6
        for marker in markers:
            wk[base + marker_lane, dim[marker]] = 1.6
            wv[base, dim[marker]] = 1.0
        wo[dim[name], base] = 1.0 / 8.0

    # Output: logit[successor] = sum of score * feature. Normalisation scales a position's
    # features together, so the order of the candidates is exactly the order of these sums.
    out = np.zeros((vocab, _HIDDEN), dtype=np.float32)

    def score(current: str, successor: str, value: float) -> None:
        out[token[successor], dim[current]] += value

    def chain(parts: list[str], end: str) -> None:
        for current, successor in zip(parts, [*parts[1:], end], strict=True):
            score(current, successor, _WIN)

    chain(_ANSWER, _EOS)
    chain(_AFTER, _EOS)
    chain(_ARGS, _EOS)
    chain(_HERMES_OPEN, _ARGS[0])
    score(_HERMES_CLOSE, _EOS, _WIN)
    chain(_LONG, _LONG[2])  # "Once upon a time, and on and on and on ..."
    score(_NEWLINE_BYTE, "<", _WIN)  # after tool arguments: close the turn (handler grammar)
    score("functions", ".", _WIN)

    # The generation prompt: the first piece of the right chain. Grammars of the server may
    # forbid the winner; the runner-up order then decides (functions before message, JSON).
    at = {
        "result": dim["result@assistant"],
        "tools": dim["tools@assistant"],
        "long": dim["long@assistant"],
    }
    for successor, plain, result, tools, long in [
        (_ANSWER[0], 30, -40, -40, -60),
        (_AFTER[0], 10, 25, 0, -60),
        (_HERMES_OPEN[0], 0, -40, 40, -60),
        ("functions", 20, -20, 0, 0),
        ("message", 5, 15, 0, 0),
        (_ARGS[0], 3, 0, 0, 0),
        (_LONG[0], 0, 0, 0, 60),
    ]:
        out[token[successor], dim[_ASSISTANT]] += plain
        out[token[successor], at["result"]] += result
        out[token[successor], at["tools"]] += tools
        out[token[successor], at["long"]] += long
    # After "functions.NAME:\n" write the arguments; after "message:\n" (a tool result is
    # present) the handler's grammar only allows "<|im_end|>" spelt out: start it.
    out[token[_ARGS[0]], dim[_COLON]] += 30
    out[token[_ARGS[0]], dim["result@colon"]] += -20
    out[token["<"], dim["result@colon"]] += 15
    # After the arguments: end the turn, or close the <tool_call> block of a Qwen-style prompt.
    out[token[_EOS], dim["tools@quote"]] += -40
    out[token[_HERMES_CLOSE], dim["tools@quote"]] += 40
    out /= 8.0  # features normalise to about 8 (two active dimensions of 128)

    return {
        "token_embd.weight": embed,
        "output_norm.weight": np.ones(_HIDDEN, dtype=np.float32),
        "output.weight": out,
        "blk.0.attn_norm.weight": np.ones(_HIDDEN, dtype=np.float32),
        "blk.0.attn_q.weight": wq,
        "blk.0.attn_k.weight": wk,
        "blk.0.attn_v.weight": wv,
        "blk.0.attn_output.weight": wo,
        "blk.0.ffn_norm.weight": np.ones(_HIDDEN, dtype=np.float32),
        "blk.0.ffn_gate.weight": np.zeros((_FFN, _HIDDEN), dtype=np.float32),
        "blk.0.ffn_up.weight": np.zeros((_FFN, _HIDDEN), dtype=np.float32),
        "blk.0.ffn_down.weight": np.zeros((_HIDDEN, _FFN), dtype=np.float32),
    }


def write_model(path: Path) -> Path:
    """Write the scripted model to ``path`` (a ``.gguf`` file) and return the path."""
    pieces, types = vocabulary()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("pymai-tiny-scripted")
    writer.add_block_count(1)
    writer.add_context_length(_CONTEXT)
    writer.add_embedding_length(_HIDDEN)
    writer.add_feed_forward_length(_FFN)
    writer.add_head_count(_HEADS)
    writer.add_head_count_kv(_HEADS)
    writer.add_rope_dimension_count(_HEAD_DIM)
    writer.add_rope_freq_base(1e30)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(pieces)
    writer.add_token_scores([0.0] * len(pieces))
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(pieces.index(_EOS))
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, tensor in _weights(pieces).items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tool_schema() -> dict[str, object]:
    """The OpenAI ``tools`` entry of the tool the model calls."""
    return {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Current weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
