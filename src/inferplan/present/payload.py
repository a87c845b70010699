"""The base of every JSON payload (``--json`` and the web API): a pydantic model with a
``schema`` field ``inferplan.<kind>/<version>``. Units are in field names: ``*_bytes`` integer
bytes, ``*_s`` seconds, ``*_per_s`` rates, ``*_usd`` dollars. A figure that does not exist is
``null``, never NaN or Infinity."""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["Payload", "Strict", "finite", "to_json_dict", "to_json_text"]


class Strict(BaseModel):
    """A part of a payload: no unknown fields; NaN and Infinity serialise as null."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, ser_json_inf_nan="null", use_attribute_docstrings=True
    )


class Payload(Strict):
    """A whole answer; subclasses fix ``schema_id`` (serialised as ``schema``)."""


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def finite(x: float | None) -> float | None:
    """``x``, or None where it is missing, NaN or infinite."""
    return x if x is not None and math.isfinite(x) else None


def to_json_dict(payload: BaseModel) -> dict[str, Any]:
    """The payload as plain JSON data (aliases applied: ``schema``)."""
    return _clean(payload.model_dump(mode="json", by_alias=True))  # type: ignore[no-any-return]


def to_json_text(payload: BaseModel) -> str:
    """The payload as indented JSON text that any parser reads (no NaN, no Infinity)."""
    return json.dumps(to_json_dict(payload), indent=2, allow_nan=False) + "\n"
