"""Read a local checkpoint's safetensors headers (never its tensors).

A safetensors file starts with an 8-byte little-endian header length N and N bytes of
JSON mapping each tensor name to ``{"dtype", "shape", "data_offsets"}``. Summing shapes
gives the exact stored parameter count; ``data_offsets`` give the exact bytes.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from inferplan.errors import ConfigError

__all__ = ["CheckpointInfo", "read_checkpoint", "read_safetensors_header"]

_MAX_HEADER_BYTES = 100 * 2**20


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
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) != header_len:
        raise ConfigError(f"{path}: header is truncated ({len(raw)} of {header_len} bytes)")
    try:
        table = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: header is not valid JSON ({exc})") from exc
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: header must be a JSON object")
    table.pop("__metadata__", None)
    return table


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
                raise ConfigError(f"{path}: tensor '{name}' lacks shape or dtype")
            shape = entry["shape"]
            offsets = entry.get("data_offsets", [0, 0])
            if not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2:
                raise ConfigError(f"{path}: tensor '{name}' has a malformed shape or data_offsets")
            dtype = str(entry["dtype"])
            size = int(offsets[1]) - int(offsets[0])
            num_params += math.prod(int(d) for d in shape)
            num_bytes += size
            num_tensors += 1
            by_dtype[dtype] = by_dtype.get(dtype, 0) + size
    return CheckpointInfo(len(files), num_tensors, num_params, num_bytes, frozenset(by_dtype), by_dtype)
