"""``docs/json.md``, generated from the payload models themselves (a test keeps the file in
step: ``INFERPLAN_REGEN_DOCS=1 pytest tests/test_json_docs.py`` rewrites it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from inferplan.plan.question import OPTION_NAMES, PlanQuestion
from inferplan.present.payload_bench import (
    AutoCalibrationPayload,
    BenchGpuPayload,
    BenchServePayload,
    CalibrationPayload,
    RunsPayload,
    RunSummaryPayload,
    SelfCheckPayload,
)
from inferplan.present.payload_perf import PredictPayload, ValidatePayload
from inferplan.present.payload_plan import CostCommandPayload, PlanPayload
from inferplan.present.payload_sizing import FitPayload, GpusPayload, ModelsPayload
from inferplan.present.payload_sweep import BenchSweepPayload, RunsComparePayload

__all__ = ["PAYLOADS", "render_json_docs"]

#: (command, payload model) for every ``--json`` output.
PAYLOADS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("inferplan fit", FitPayload),
    ("inferplan models", ModelsPayload),
    ("inferplan gpus", GpusPayload),
    ("inferplan predict", PredictPayload),
    ("inferplan validate", ValidatePayload),
    ("inferplan plan (and POST /api/plan's `plan`)", PlanPayload),
    ("inferplan cost", CostCommandPayload),
    ("inferplan bench serve", BenchServePayload),
    ("inferplan bench sweep", BenchSweepPayload),
    ("inferplan bench self-check", SelfCheckPayload),
    ("inferplan bench gpu", BenchGpuPayload),
    ("inferplan runs", RunsPayload),
    ("inferplan runs show", RunSummaryPayload),
    ("inferplan runs compare", RunsComparePayload),
    ("inferplan calibrate", CalibrationPayload),
    ("inferplan calibrate --auto", AutoCalibrationPayload),
)

_INTRO = """# JSON output

Generated from the payload models (`src/inferplan/present/payload_*.py`) by
`inferplan.present.json_docs`; `tests/test_json_docs.py` fails when this file and the models
disagree (`INFERPLAN_REGEN_DOCS=1 pytest tests/test_json_docs.py` rewrites it).

Every command's `--json` prints one object with a `schema` field `inferplan.<kind>/<version>`.
Units are in field names: `*_bytes` are integer bytes (GB = 1e9, GiB = 2^30 for display only),
`*_s` seconds, `*_per_s` rates, `*_flops` FLOP/s, `*_usd` US dollars. A figure that does not
exist is `null`: no output ever holds `NaN` or `Infinity`. In `plan`, figures marked
`estimate: steady-state` come from the analytic model the search ranks with, and
`verified_by_simulation` (`estimate: simulation`) from the simulator, measured after a warm-up.
"""

_WEB = """## Web API (`inferplan ui`)

OpenAPI at `/api/openapi.json` (with these schemas), browsable at `/api/docs` (one
self-contained page: it loads nothing from elsewhere).

- `POST /api/plan`: the body is the plan question below (plus `charts`, default true); the
  answer is `plan` (exactly `inferplan plan --json`), `html.{recommendation,cost,ranked}`
  (escaped HTML fragments) and `charts[]` (`id`, `title`, `caption`, `html`: a `<figure>` with
  inline SVG).
- `POST /api/report`, same body: the report page (`text/html`, as an attachment).
- `GET /api/models?q=&limit=`: `name`, `hf_id`, `total_params` of catalog models matching `q`.
- `GET /api/options`: `gpus[]` (`id`, `name`, `memory_gib`), `precisions`, `kv_dtypes`,
  `engines`, `environments`, `calibrations` (saved profile names).
- Errors: `{"error": one line, "kind": error class}` with 400 (body empty or not JSON), 404
  (unknown model or GPU, unknown path), 405 (wrong method), 409 (does not fit, or no
  configuration meets the targets), 413 (body over 512 KiB, whether sent with a Content-Length
  or chunked), 422 (a value out of range, of the wrong type, or malformed; `true` is not a
  number), 429 (two plans running and 64 waiting: retry after the `Retry-After` seconds). A 500
  (`kind` `InternalError`) would be a bug in inferplan, logged by the server; never an answer to
  bad input.
- `GET /api/health`: `{"status": "ok", "version"}`, answered at once also while plans run.
"""


def _type(schema: dict[str, Any] | bool, defs: dict[str, Any]) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "$ref" in schema:
        return "object"
    if "anyOf" in schema:
        kinds = [_type(s, defs) for s in schema["anyOf"]]
        return " or ".join(dict.fromkeys(kinds))
    kind = schema.get("type")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map to {_type(schema['additionalProperties'], defs)}"
    if "const" in schema:
        return f"`{schema['const']}`"
    return str(kind or "any")


def _ref(schema: dict[str, Any]) -> str | None:
    for s in [schema, *schema.get("anyOf", []), schema.get("items", {})]:
        if isinstance(s, dict) and "$ref" in s:
            return str(s["$ref"]).rsplit("/", 1)[-1]
    return None


def _rows(schema: dict[str, Any], defs: dict[str, Any], prefix: str, depth: int = 0) -> list[str]:
    rows = []
    for name, prop in schema.get("properties", {}).items():
        field = f"{prefix}{name}"
        ref = _ref(prop)
        description = str(prop.get("description") or (defs.get(ref, {}).get("description") if ref else "") or "")
        description = " ".join(description.split())
        rows.append(f"| `{field}` | {_type(prop, defs)} | {description} |")
        if ref and depth < 3:
            suffix = "[]." if prop.get("type") == "array" or "items" in prop else "."
            rows += _rows(defs[ref], defs, f"{field}{suffix}", depth + 1)
    return rows


def _section(title: str, model: type[BaseModel], mode: str = "serialization") -> list[str]:
    schema = model.model_json_schema(mode=mode, by_alias=True)  # type: ignore[arg-type]
    defs = schema.get("$defs", {})
    kind = schema.get("properties", {}).get("schema", {}).get("default", "")
    heading = f"## `{kind}`: {title}" if kind else f"## {title}"
    lines = [heading, ""]
    if model.__doc__:
        lines += [" ".join(model.__doc__.split()), ""]
    lines += ["| field | type | meaning |", "|---|---|---|", *_rows(schema, defs, "")]
    return [*lines, ""]


def _question() -> list[str]:
    lines = _section("the plan question (CLI options and the web body)", PlanQuestion, mode="validation")
    options = ", ".join(f"`{field}` = `{option}`" for field, option in OPTION_NAMES.items())
    return [*lines, f"Field to CLI option: {options}.", ""]


def render_json_docs() -> str:
    """The whole of ``docs/json.md``."""
    lines = [_INTRO]
    for title, model in PAYLOADS:
        lines += _section(title, model)
    lines += _question()
    lines.append(_WEB)
    return "\n".join(lines)
