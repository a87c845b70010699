"""Read a local checkpoint's safetensors headers (never its tensors).

A safetensors file starts with an 8-byte little-endian header length N and N bytes of
JSON mapping each tensor name to ``{"dtype", "shape", "data_offsets"}``. Summing shapes
gives the exact stored parameter count; ``data_offsets`` give the exact bytes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from inferplan.errors import ConfigError
from inferplan.specs.config_reader import decode_utf8, parse_json_text

__all__ = ["CheckpointInfo", "read_checkpoint", "read_safetensors_header"]

_MAX_HEADER_BYTES = 100 * 2**20
#: Elements of one tensor dimension and bytes of one tensor: far beyond any checkpoint.
_MAX_DIM = 2**40
_MAX_TENSOR_BYTES = 2**50


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    num_files: int
    num_tensors: int
    num_params: int  # stored elements (packed integer formats count their containers)
    num_bytes: int
    dtypes: frozenset[str]
    bytes_by_dtype: dict[str, int]


def read_safetensors_header(path: Path) -> dict[str, dict[str, object]]:
    """The tensor table of one ``.safetensors`` file (the ``__metadata__`` entry removed)."""
    try:
        with path.open("rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) != 8:
                raise ConfigError(f"{path}: too short to be a safetensors file (truncated?)")
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len > _MAX_HEADER_BYTES:
                raise ConfigError(f"{path}: header length {header_len} is implausible; not safetensors?")
            raw = fh.read(header_len)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) != header_len:
        raise ConfigError(f"{path}: header is truncated ({len(raw)} of {header_len} bytes)")
    origin = f"{path} (safetensors header)"
    table = parse_json_text(decode_utf8(raw, origin), origin)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: header must be a JSON object")
    table.pop("__metadata__", None)
    return table


def _whole_numbers(value: object, high: int) -> list[int] | None:
    """``value`` if it is a list (at most 8 long) of whole numbers in [0, high], else None."""
    if not isinstance(value, list) or len(value) > 8:
        return None
    if not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= high for x in value):
        return None
    return [int(x) for x in value]


def read_checkpoint(folder: Path) -> CheckpointInfo | None:
    """Summarise every ``*.safetensors`` file in ``folder``; None when there are none."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    num_params = num_bytes = num_tensors = 0
    by_dtype: dict[str, int] = {}
    for path in files:
        for name, entry in read_safetensors_header(path).items():
            if not isinstance(entry, dict) or "shape" not in entry or "dtype" not in entry:
                raise ConfigError(f"{path}: tensor '{name[:60]}' lacks shape or dtype")
            shape = _whole_numbers(entry["shape"], _MAX_DIM)
            offsets = _whole_numbers(entry.get("data_offsets", [0, 0]), _MAX_TENSOR_BYTES)
            if (
                shape is None
                or offsets is None
                or len(offsets) != 2
                or offsets[1] < offsets[0]
                or math.prod(shape) > _MAX_TENSOR_BYTES
            ):
                shown = name if len(name) <= 60 else name[:57] + "..."
                raise ConfigError(f"{path}: tensor '{shown}' has a malformed shape or data_offsets")
            dtype = str(entry["dtype"])
            size = offsets[1] - offsets[0]
            num_params += math.prod(shape)
            num_bytes += size
            num_tensors += 1
            by_dtype[dtype] = by_dtype.get(dtype, 0) + size
    return CheckpointInfo(len(files), num_tensors, num_params, num_bytes, frozenset(by_dtype), by_dtype)
