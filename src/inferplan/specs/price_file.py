"""Reading a price file as untrusted text: size-limited, strictly UTF-8, bounded nesting, no
anchors or aliases, and every YAML error one line with the file, line and column.

:func:`load_yaml_with_lines` returns plain data in which every mapping carries ``__line__``
(its first line) and ``__lines__`` (the line of each key), so that field errors can name them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

try:  # libyaml's parser where PyYAML has it (fast); PyYAML's own otherwise
    from yaml import CSafeLoader as _Base
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Base  # type: ignore[assignment]

from inferplan.errors import ConfigError
from inferplan.limits import MAX_PRICE_FILE_BYTES

__all__ = ["MAX_NESTING", "load_yaml_with_lines", "read_price_file"]

#: Deepest nesting a price file needs: document > assumptions or prices > entry > list field.
MAX_NESTING = 6
LINE = "__line__"
LINES = "__lines__"


def read_price_file(path: Path) -> str:
    """A user's price file as text: its size is checked before a byte is read (at most
    MAX_PRICE_FILE_BYTES), then it is decoded as strict UTF-8."""
    try:
        size = path.stat().st_size
        if size > MAX_PRICE_FILE_BYTES:
            raise ConfigError(
                f"price file {path} is {size:,} bytes; the limit is {MAX_PRICE_FILE_BYTES:,} (keep only your offers)"
            )
        with path.open("rb") as fh:
            data = fh.read(MAX_PRICE_FILE_BYTES + 1)
    except IsADirectoryError:
        raise ConfigError(f"price file {path} is a folder; give a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read price file {path}: {exc.strerror}; check the path") from None
    if len(data) > MAX_PRICE_FILE_BYTES:
        raise ConfigError(f"price file {path} is larger than {MAX_PRICE_FILE_BYTES:,} bytes; keep only your offers")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"price file {path} is not UTF-8 text (line {line}, byte {exc.start}); save it as UTF-8"
        ) from None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _yaml_error(exc: yaml.YAMLError, origin: str) -> ConfigError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = _one_line(getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc))
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return ConfigError(f"{origin}{where}: not valid YAML ({problem}); fix the file or quote the value")


def _check_structure(text: str, origin: str) -> None:
    """Walk the parser's events once: nesting at most MAX_NESTING, no anchors or aliases
    (a few kilobytes of aliases can expand to gigabytes)."""
    depth = 0
    loader = _Base(text)
    try:
        while (event := loader.get_event()) is not None:
            mark = event.start_mark
            where = f"{origin}, line {mark.line + 1}, column {mark.column + 1}" if mark else origin
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ConfigError(
                    f"{where}: YAML anchors and aliases are not allowed in a price file; write values out"
                )
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise ConfigError(
                        f"{where}: nested more than {MAX_NESTING} levels deep; a price file is a list of flat entries"
                    )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, origin) from None
    finally:
        loader.dispose()


class _LineLoader(_Base):
    """Records the line of every mapping and of each of its keys."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(loader.construct_object(key_node, deep=True))
        if key in mapping:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: field '{key}' is given twice")
        mapping[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    mapping[LINE] = node.start_mark.line + 1
    mapping[LINES] = lines
    return mapping


#: Longest number a price file may write (a price of 1e9 has 10 digits).
MAX_NUMBER_CHARS = 40


def _number(loader: _LineLoader, node: yaml.ScalarNode) -> Any:
    """Ints and floats, refusing absurdly long ones before Python converts them."""
    if len(str(node.value)) > MAX_NUMBER_CHARS:
        raise ConfigError(
            f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}: a number of "
            f"{len(str(node.value)):,} characters; write prices as plain numbers"
        )
    if node.tag.endswith(":int"):
        return loader.construct_yaml_int(node)
    return loader.construct_yaml_float(node)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _number)
_LineLoader.add_constructor("tag:yaml.org,2002:float", _number)


def load_yaml_with_lines(text: str, origin: str) -> Any:
    """The data of one YAML document, checked for size, nesting and aliases first."""
    if len(text) > MAX_PRICE_FILE_BYTES or len(text.encode("utf-8", errors="replace")) > MAX_PRICE_FILE_BYTES:
        raise ConfigError(f"{origin}: larger than {MAX_PRICE_FILE_BYTES:,} bytes; keep only your offers")
    _check_structure(text, origin)
    try:
        return yaml.load(text, Loader=_LineLoader)
    except ConfigError as exc:
        raise ConfigError(f"{origin}, {exc}") from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, origin) from None
