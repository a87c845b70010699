"""Shared pieces of the fuzz suites (tests/test_fuzz_*.py): hostile config files, pools of bad
and edge values, the checks every answer must pass, and the counts the closing note reports.

Every answer to bad input is one clear line with a documented exit code or HTTP status; no
answer ever holds a traceback, an HTTP 500, or NaN / Infinity where a figure belongs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from tests.conftest import tiny_llama_config

#: What the fuzz suites ran and found, and figures measured under load, printed at the end of
#: the session (tests/conftest.py).
COUNTS: Counter[str] = Counter()
FIGURES: dict[str, str] = {}

#: A NaN or an infinity written as text: never a figure in any output.
NON_FINITE = re.compile(r"(?<![\w.])-?(nan|inf|infinity)(?![\w])", re.IGNORECASE)

EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 8}


def _cfg(**fields: Any) -> dict[str, Any]:
    return tiny_llama_config(**fields)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


_MIXTRAL = _cfg(model_type="mixtral", num_local_experts=8, num_experts_per_tok=2)
_TINY = json.dumps(_cfg())

#: The hostile config.json files of issue 12 and more: each must end in one line, exit 2.
ADVERSARIAL_CONFIGS: dict[str, bytes] = {
    "non_utf8": b'{"model_type": "llama", "hidden_size": 64, "name": "\xff\xfe\xfa"}',
    "utf16": _TINY.encode("utf-16"),
    "nan": _TINY.replace('"hidden_size": 64', '"hidden_size": NaN').encode(),
    "infinity": _TINY.replace('"vocab_size": 256', '"vocab_size": Infinity').encode(),
    "minus_infinity": _TINY.replace('"num_hidden_layers": 2', '"num_hidden_layers": -Infinity').encode(),
    "huge_integer": _TINY.replace('"hidden_size": 64', '"hidden_size": ' + "9" * 5000).encode(),
    "float_overflow": _TINY.replace('"hidden_size": 64', '"hidden_size": 1e400').encode(),
    "top_k_over_experts": _json({**_MIXTRAL, "num_experts_per_tok": 9}),
    "zero_experts": _json({**_MIXTRAL, "num_local_experts": 0}),
    "float_hidden_size": _json(_cfg(hidden_size=4096.5)),
    "whole_float_hidden_size": _json(_cfg(hidden_size=64.0)),
    "string_layers": _json(_cfg(num_hidden_layers="2")),
    "bool_heads": _json(_cfg(num_attention_heads=True)),
    "list_vocab": _json(_cfg(vocab_size=[256])),
    "object_intermediate": _json(_cfg(intermediate_size={"a": 1})),
    "absurd_hidden_size": _json(_cfg(hidden_size=10**15)),
    "absurd_layers": _json(_cfg(num_hidden_layers=10**9)),
    "negative_heads": _json(_cfg(num_attention_heads=-4)),
    "heads_over_hidden": _json(_cfg(hidden_size=2, num_attention_heads=4, num_key_value_heads=4)),
    "model_type_number": _json(_cfg(model_type=7)),
    "model_type_list": _json(_cfg(model_type=["llama"])),
    "text_config_string": _json({"model_type": "gemma3", "text_config": "gemma"}),
    "quant_bits_text": _json(_cfg(quantization_config={"quant_method": "awq", "bits": "four"})),
    "quant_not_object": _json(_cfg(quantization_config=[4])),
    "quant_groups_wrong": _json(
        _cfg(quantization_config={"quant_method": "compressed-tensors", "config_groups": {"g": 3}})
    ),
    "layer_types_numbers": _json(_cfg(layer_types=[1, 2])),
    "layer_types_short": _json(_cfg(layer_types=["full_attention"])),
    "mlp_only_layers_nested": _json({**_MIXTRAL, "mlp_only_layers": [[1]]}),
    "mlp_only_layers_out_of_range": _json({**_MIXTRAL, "mlp_only_layers": [99]}),
    "sliding_window_pattern_zero": _json(_cfg(model_type="gemma3_text", sliding_window=16, sliding_window_pattern=0)),
    "deep_nesting": b'{"model_type": "llama", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nesting_over_limit": b'{"model_type": "llama", "x": ' + b"[" * 40 + b"]" * 40 + b"}",
    "empty": b"",
    "whitespace": b"  \n\t ",
    "a_list": b"[1, 2, 3]",
    "a_string": b'"llama"',
    "a_number": b"42",
    "null": b"null",
    "truncated": _TINY[:40].encode(),
}


def non_finite_tokens(text: str) -> set[str]:
    """'nan' and 'inf' for each NaN or infinity written in ``text`` (Infinity counts as inf)."""
    return {m.group(1).lower()[:3] for m in NON_FINITE.finditer(text)}


def allowed_tokens(*inputs: str | bytes) -> set[str]:
    """Non-finite words the user typed: an error message may quote them back."""
    found: set[str] = set()
    for item in inputs:
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
        found |= non_finite_tokens(text)
    return found


def strict_json(text: str) -> Any:
    """JSON as any strict parser reads it: NaN and Infinity are refused."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def check_cli_answer(args: list[str], code: int, stdout: str, stderr: str, typed: set[str]) -> None:
    """Every CLI answer: a documented exit code, no traceback, at most one error line on stderr,
    no NaN or Infinity (in stderr only when quoting what the user typed), valid --json."""
    COUNTS["cli cases"] += 1
    COUNTS[f"cli exit {code}"] += 1
    if "Traceback" in stdout + stderr or "internal error" in stderr:
        COUNTS["cli tracebacks"] += 1
        raise AssertionError(f"crash for {args}: {stderr[-2000:]}")
    assert code in EXIT_CODES, (args, code, stderr)
    lines = stderr.strip().splitlines()
    if code != 0 and not (code == 5 and args[0] == "fit" and not lines):
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, code, stderr)
    if non_finite_tokens(stdout) or non_finite_tokens(stderr) - typed:
        COUNTS["cli NaN"] += 1
        raise AssertionError(f"NaN or Infinity printed for {args}: {stdout[-1500:]} {stderr}")
    if code == 0 and "--json" in args:
        strict_json(stdout)
