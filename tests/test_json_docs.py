"""docs/json.md is generated from the payload models; every payload validates its own output."""

from __future__ import annotations

import os
from pathlib import Path

from inferplan.present.json_docs import PAYLOADS, render_json_docs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "json.md"


def test_json_docs_match_the_models() -> None:
    """Set INFERPLAN_REGEN_DOCS=1 to rewrite docs/json.md after changing a payload model."""
    text = render_json_docs()
    if os.environ.get("INFERPLAN_REGEN_DOCS"):
        DOCS.write_text(text, encoding="utf-8")
    assert DOCS.read_text(encoding="utf-8") == text, "docs/json.md is stale: INFERPLAN_REGEN_DOCS=1 pytest"


def test_every_payload_names_its_schema() -> None:
    kinds = set()
    for _, model in PAYLOADS:
        schema = model.model_json_schema(mode="serialization", by_alias=True)
        kind = schema["properties"]["schema"]["default"]
        assert kind.startswith("inferplan.") and kind.endswith("/1")
        kinds.add(kind)
        assert schema.get("additionalProperties") is False, f"{model.__name__} must refuse unknown fields"
    assert len(kinds) == len(PAYLOADS)
