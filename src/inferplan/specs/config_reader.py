"""Untrusted configuration text: strict JSON decoding and typed, bounded field reads.

Every ``config.json`` (a file, a hub download, pasted text, a catalog entry) and every
safetensors header is decoded here: UTF-8 only, no ``NaN`` or ``Infinity`` (they are not
JSON), integers of at most :data:`~inferplan.limits.MAX_CONFIG_INT_DIGITS` digits, finite
numbers, at most :data:`~inferplan.limits.MAX_JSON_DEPTH` levels of nesting.
:class:`ConfigReader` then reads one field at a time and refuses a wrong type (a boolean or a
decimal number where a whole number belongs) and a size no model has
(:data:`~inferplan.limits.CONFIG_FIELD_MAX`). Every refusal is a one-line ConfigError that
names the file and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from inferplan.errors import ConfigError
from inferplan.limits import CONFIG_FIELD_MAX, MAX_CONFIG_FILE_BYTES, MAX_CONFIG_INT_DIGITS, MAX_JSON_DEPTH

__all__ = ["ConfigReader", "decode_utf8", "describe_value", "parse_json_text", "read_json_file", "shown_text"]

Config = Mapping[str, Any]
#: The bound of an integer field missing from CONFIG_FIELD_MAX (int32).
_DEFAULT_FIELD_MAX = 2**31 - 1


def shown_text(text: str, limit: int = 40) -> str:
    """Text from a config as a message quotes it: control characters escaped (one line), at most
    ``limit`` characters."""
    escaped = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def describe_value(value: Any) -> str:
    """A short, one-line description of a JSON value for an error message."""
    if value is None:
        return "null"
    kind = {
        bool: "a boolean",
        str: "a string",
        list: "a list",
        dict: "an object",
        float: "a decimal number",
        int: "a number",
    }
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, dict | list) else ""
    if len(text) > 40:
        text = text[:37] + "..."
    name = kind.get(type(value), type(value).__name__)
    return f"{text} ({name})" if text else name


def decode_utf8(raw: bytes, origin: str) -> str:
    """The text of ``raw`` (UTF-8, a leading byte-order mark allowed), or a one-line ConfigError."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{origin}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the file as UTF-8"
        ) from None


def read_json_file(path: Path, max_bytes: int = MAX_CONFIG_FILE_BYTES) -> Any:
    """A JSON file of at most ``max_bytes``, decoded strictly (see :func:`parse_json_text`)."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > max_bytes:
        limit = f"{max_bytes // 1024:,} KiB" if max_bytes >= 1024 else f"{max_bytes} bytes"
        raise ConfigError(f"{path}: larger than {limit}; a config.json takes a few KiB")
    return parse_json_text(decode_utf8(raw, str(path)), str(path))


def _refuse_constant(origin: str) -> Any:
    def refuse(name: str) -> Any:
        raise ConfigError(f"{origin}: {name} is not a JSON number; write a finite number")

    return refuse


def _bounded_int(origin: str) -> Any:
    def parse(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_CONFIG_INT_DIGITS:
            raise ConfigError(
                f"{origin}: an integer of {len(digits.lstrip('-')):,} digits; no config field needs more than "
                f"{MAX_CONFIG_INT_DIGITS}"
            )
        return int(digits)

    return parse


def _finite_float(origin: str) -> Any:
    def parse(text: str) -> float:
        value = float(text)
        if math.isinf(value):
            shown = text if len(text) <= 20 else text[:17] + "..."
            raise ConfigError(f"{origin}: the number {shown} is too large to be a finite number")
        return value

    return parse


def parse_json_text(text: str, origin: str) -> Any:
    """Parsed JSON, or a one-line ConfigError that says where and why the text is refused."""
    if not text.strip():
        raise ConfigError(f"{origin}: empty; expected a JSON object such as a Hugging Face config.json")
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant(origin),
            parse_int=_bounded_int(origin),
            parse_float=_finite_float(origin),
        )
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{origin}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); is the text truncated?"
        ) from None
    except RecursionError:
        raise ConfigError(f"{origin}: JSON nested too deeply to be a config.json") from None
    _check_depth(value, origin)
    return value


def _check_depth(value: Any, origin: str) -> None:
    """Refuse more than MAX_JSON_DEPTH nested lists and objects (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise ConfigError(f"{origin}: JSON nested more than {MAX_JSON_DEPTH} levels deep; not a config.json")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)


class ConfigReader:
    """Typed access to the fields of one config object; errors name the file and the field.

    Integer fields must be whole numbers (not booleans, not decimals such as 4096.5 or 4096.0)
    between their lower bound and :data:`~inferplan.limits.CONFIG_FIELD_MAX`.
    """

    def __init__(self, cfg: Config, origin: str, section: str = "") -> None:
        self.cfg = cfg
        self.origin = origin
        self.section = section

    def field(self, key: str) -> str:
        """The field's name as the message shows it, e.g. 'quantization_config.bits'."""
        return f"{self.section}{key}"

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.origin}: {message}")

    def integer(self, *keys: str, default: int | None = None, low: int = 0) -> int:
        """The first of ``keys`` present (null counts as absent), else ``default``."""
        for key in keys:
            value = self.cfg.get(key)
            if value is not None:
                return self.checked_int(key, value, low)
        if default is None:
            raise self.fail(f"missing field '{self.field(keys[0])}'; is this a complete Hugging Face config.json?")
        return default

    def checked_int(self, key: str, value: Any, low: int = 0) -> int:
        high = CONFIG_FIELD_MAX.get(key, _DEFAULT_FIELD_MAX)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"field '{self.field(key)}' must be a whole number, got {describe_value(value)}")
        if not low <= value <= high:
            raise self.fail(
                f"field '{self.field(key)}' must be between {low:,} and {high:,} (no model is larger), got {value:,}"
            )
        return value

    def key(self, *keys: str) -> str:
        """The first of ``keys`` the config gives (else the first): the name a message shows."""
        return next((k for k in keys if self.cfg.get(k) is not None), keys[0])

    def opt_int(self, *keys: str) -> int | None:
        return self.integer(*keys) if any(self.cfg.get(k) is not None for k in keys) else None

    def positive(self, *keys: str, default: int | None = None) -> int:
        value = self.integer(*keys, default=default)
        if value <= 0:
            raise self.fail(f"field '{self.field(self.key(*keys))}' must be positive, got {value}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.cfg.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(f"field '{self.field(key)}' must be true or false, got {describe_value(value)}")
        return value

    def text(self, key: str, default: str) -> str:
        value = self.cfg.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(f"field '{self.field(key)}' must be a string, got {describe_value(value)}")
        return value

    def items(self, key: str, length: int) -> list[Any] | None:
        """The list ``key`` (None when absent); it must hold ``length`` entries, one per layer."""
        value = self.cfg.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) != length:
            raise self.fail(f"field '{self.field(key)}' must list one entry per layer ({length})")
        return value

    def layer_indices(self, key: str, num_layers: int) -> set[int]:
        """A list of layer numbers (``mlp_only_layers``), each in [0, num_layers)."""
        value = self.cfg.get(key)
        if value is None:
            return set()
        if not isinstance(value, list) or len(value) > num_layers:
            raise self.fail(f"field '{self.field(key)}' must list layer numbers 0 to {num_layers - 1}")
        out = set()
        for entry in value:
            if isinstance(entry, bool) or not isinstance(entry, int) or not 0 <= entry < num_layers:
                raise self.fail(f"field '{self.field(key)}' must list layer numbers 0 to {num_layers - 1}")
            out.add(entry)
        return out

    def section_reader(self, key: str) -> ConfigReader | None:
        """A reader for the object ``key`` (None when absent)."""
        value = self.cfg.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(f"field '{self.field(key)}' must be an object, got {describe_value(value)}")
        return ConfigReader(value, self.origin, f"{self.field(key)}.")
