"""What server a run measured: its engine, version and models, asked of the server itself
before the run, so that runs can be labelled and compared by them.

* ``GET /v1/models`` (every OpenAI-compatible server): the served model ids, the engine from
  ``owned_by`` (vLLM ``vllm``, SGLang ``sglang``, llama.cpp ``llamacpp``, ...), and vLLM's
  ``max_model_len``.
* ``GET /version`` (vLLM, SGLang) or ``GET /info`` (TGI): the engine's version.

Each probe is bounded by :data:`PROBE_S` (or the user's tighter limits), reads at most
:data:`MAX_BYTES`, and any answer that is missing or not the expected JSON leaves that field
unknown (None); a server that cannot be reached is not asked twice.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from inferplan.bench.deadline import Deadline, Timeouts, bounded
from inferplan.bench.http import HttpError, Transport

__all__ = ["ENGINES", "PROBE_S", "engine_name", "probe_server"]

PROBE_S = 5.0
MAX_BYTES = 64 << 10
#: ``owned_by`` as servers write it -> the engine's name as inferplan writes it
ENGINES = {
    "vllm": "vllm",
    "sglang": "sglang",
    "llamacpp": "llama.cpp",
    "llama.cpp": "llama.cpp",
    "tgi": "tgi",
    "text-generation-inference": "tgi",
    "huggingface": "transformers",
    "transformers": "transformers",
    "inferplan": "inferplan-local",
}


def engine_name(owned_by: str | None) -> str | None:
    """The engine's name from a model's ``owned_by`` (None when it names none we know)."""
    if not owned_by:
        return None
    return ENGINES.get(owned_by.strip().lower())


def _text(x: object, limit: int = 100) -> str | None:
    return x[:limit] if isinstance(x, str) and x.strip() else None


async def _get_json(transport: Transport, url: str, timeouts: Timeouts) -> tuple[bool, Any]:
    """(reached, JSON body or None)."""
    deadline: Deadline | None = None
    try:
        async with bounded(timeouts) as deadline:
            status, body = await transport.get(url, deadline)
    except (HttpError, OSError, TimeoutError, asyncio.IncompleteReadError):
        return False, None
    if status != 200 or len(body) > MAX_BYTES:
        return True, None
    try:
        return True, json.loads(body)
    except (ValueError, RecursionError):
        return True, None


def _models(data: Any) -> tuple[list[str], str | None, int | None]:
    """(model ids, owned_by of the first, its max_model_len) from a ``/v1/models`` body."""
    rows = data.get("data") if isinstance(data, dict) else None
    rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    ids = [t for t in (_text(r.get("id"), 200) for r in rows[:20]) if t]
    first = rows[0] if rows else {}
    length = first.get("max_model_len")
    return ids, _text(first.get("owned_by")), length if type(length) is int and length > 0 else None


async def probe_server(transport: Transport, root: str, timeouts: Timeouts) -> dict[str, Any]:
    """``{"engine", "version", "models", "max_model_len"}`` of the server at ``root``."""
    limits = timeouts.capped(PROBE_S)
    base = root.rstrip("/")
    reached, data = await _get_json(transport, f"{base}/v1/models", limits)
    ids, owned_by, max_len = _models(data)
    version = None
    if reached:
        for path in ("/version", "/info"):
            _, info = await _get_json(transport, base + path, limits)
            version = _text(info.get("version"), 60) if isinstance(info, dict) else None
            if version:
                break
    return {"engine": engine_name(owned_by), "version": version, "models": ids, "max_model_len": max_len}
