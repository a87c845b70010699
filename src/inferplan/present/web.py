"""``inferplan ui``: one page and a JSON API under ``/api`` (OpenAPI at ``/api/openapi.json``).

The API calls the same library functions as the CLI (``make_plan``, ``plan_dict``,
``report_charts``, ``render_report_html``). Models come from the catalog or from pasted
``config.json`` text: no file-system path and no download is ever taken from a browser.
Every input has a range or a size limit; library errors become 4xx answers with the
same one-line message the CLI prints.

Needs the ``web`` extra (FastAPI, uvicorn); imported lazily by the CLI.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from inferplan import __version__
from inferplan.errors import InferplanError, InputError
from inferplan.plan.planner import Plan, make_plan
from inferplan.plan.search import Demand, Targets
from inferplan.present.payload_plan import plan_dict
from inferplan.present.report_charts import report_charts
from inferplan.present.report_html import (
    chart_figure,
    cost_table,
    ranked_table,
    recommendation_html,
    render_report_html,
)
from inferplan.specs.engines import ENGINES, get_engine
from inferplan.specs.environment import get_environment
from inferplan.specs.hardware import get_gpu, gpu_catalog
from inferplan.specs.model import ModelSpec, count_params
from inferplan.specs.model_catalog import catalog_models, load_catalog_model, model_from_config_text
from inferplan.specs.precision import KV_DTYPES, PRECISIONS, get_precision
from inferplan.specs.prices import load_offers
from inferplan.units import GIB

__all__ = ["MAX_BODY_BYTES", "PlanRequest", "create_app"]

MAX_BODY_BYTES = 512 * 1024
MAX_CONFIG_CHARS = 256 * 1024
_STATUS_BY_EXIT_CODE = {2: 422, 3: 404, 4: 422, 5: 409, 6: 409}
ENVIRONMENT_CHOICES = ("bare-metal", "vm", "vgpu")


class PlanRequest(BaseModel):
    """What the form sends. Give ``model`` (a catalog name) or ``config_json`` (the text of a
    Hugging Face config.json), and either ``rate_per_s`` or ``concurrency``."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, max_length=200, description="Catalog name or hub id, e.g. llama-3.1-8b.")
    config_json: str | None = Field(None, max_length=MAX_CONFIG_CHARS, description="Pasted config.json text.")
    model_name: str = Field("pasted-model", min_length=1, max_length=100, pattern=r"^[\w.\- ]+$")
    isl: int = Field(1000, ge=1, le=1_000_000, description="Input tokens per request.")
    osl: int = Field(200, ge=1, le=100_000, description="Output tokens per request.")
    rate_per_s: float | None = Field(None, gt=0, le=10_000, description="Requests per second.")
    concurrency: int | None = Field(None, ge=1, le=100_000, description="Concurrent users.")
    ttft_ms: float | None = Field(None, gt=0, le=600_000, description="TTFT p90 target, ms.")
    tpot_ms: float | None = Field(None, gt=0, le=60_000, description="TPOT p90 target, ms.")
    e2e_s: float | None = Field(None, gt=0, le=86_400, description="End-to-end p90 target, s.")
    budget_usd_per_hour: float | None = Field(None, gt=0, le=1_000_000)
    gpus: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=64)
    dtypes: list[Annotated[str, Field(max_length=16)]] = Field(default_factory=list, max_length=8)
    kv_dtypes: list[Annotated[str, Field(max_length=16)]] = Field(default_factory=lambda: ["auto", "fp8"], max_length=4)
    engine: str = Field("vllm", max_length=32)
    environment: Literal["bare-metal", "vm", "vgpu"] = "bare-metal"
    rank: Literal["cost", "latency", "gpus", "throughput_per_gpu"] = "cost"
    top: int = Field(10, ge=1, le=50)
    hours_fraction: float = Field(1.0, ge=0.01, le=1.0)
    peak_to_mean: float = Field(1.0, ge=1.0, le=100.0)
    charts: bool = Field(True, description="Compute the charts (about a second more).")

    @model_validator(mode="after")
    def _one_model_one_load(self) -> PlanRequest:
        if (self.model is None) == (self.config_json is None):
            raise ValueError("give either 'model' (a catalog name) or 'config_json' (pasted config.json text)")
        if self.rate_per_s is not None and self.concurrency is not None:
            raise ValueError("give either 'rate_per_s' or 'concurrency', not both")
        return self


def _model(req: PlanRequest) -> ModelSpec:
    if req.config_json is not None:
        return model_from_config_text(req.config_json, req.model_name)
    assert req.model is not None
    return load_catalog_model(req.model.strip())


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: the one-line message the CLI would print, and its error class."""

    error: str
    kind: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request body (not JSON)"},
    404: {"model": ErrorResponse, "description": "Unknown model or GPU name"},
    409: {"model": ErrorResponse, "description": "Does not fit, or no configuration meets the targets"},
    413: {"model": ErrorResponse, "description": "Request body too large"},
    422: {"model": ErrorResponse, "description": "Invalid input"},
    503: {"model": ErrorResponse, "description": "Busy"},
}


def run_plan(req: PlanRequest) -> Plan:
    """The plan the CLI's ``inferplan plan`` would make for the same choices."""
    spec = _model(req)
    demand = Demand.from_load(req.isl, req.osl, req.rate_per_s, req.concurrency)
    targets = Targets(
        req.ttft_ms / 1e3 if req.ttft_ms else None,
        req.tpot_ms / 1e3 if req.tpot_ms else None,
        req.e2e_s,
        None,
        req.budget_usd_per_hour,
    )
    return make_plan(
        spec,
        demand,
        targets,
        gpus=[get_gpu(g) for g in req.gpus] or None,
        precisions=[get_precision(p) for p in req.dtypes] or None,
        kv_dtypes=req.kv_dtypes or ["auto"],
        engine=get_engine(req.engine),
        env=get_environment(req.environment),
        offers=load_offers(None),
        rank_by=req.rank,
        verify=1,
        hours_fraction=req.hours_fraction,
        peak_to_mean=req.peak_to_mean,
    )


def _error(status: int, message: str, kind: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "kind": kind}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


class BusyError(InferplanError):
    """Too many plans at once (HTTP 503)."""


class _Busy:
    """At most two plans at once: each takes a CPU core for up to a few seconds."""

    def __init__(self) -> None:
        self.slots = threading.BoundedSemaphore(2)

    def __enter__(self) -> None:
        if not self.slots.acquire(timeout=60):
            raise BusyError("the planner is busy with other requests; try again in a minute")

    def __exit__(self, *exc: object) -> None:
        self.slots.release()


async def _limit_body(request: Request, call_next: Any) -> Response:
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
        return _error(413, f"request body over {MAX_BODY_BYTES // 1024} KiB; paste only config.json", "InputError")
    response: Response = await call_next(request)
    return response


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _error(422, _validation_message(exc), "InputError")


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code == 400:
        message = f"{message}: send a JSON object (Content-Type: application/json)"
    return _error(exc.status_code, message, "HTTPError", exc.headers)


async def _on_inferplan(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InferplanError)
    status = 503 if isinstance(exc, BusyError) else _STATUS_BY_EXIT_CODE.get(exc.exit_code, 422)
    return _error(status, str(exc), type(exc).__name__)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error answers {"error": one line, "kind": class}; bodies over the limit are refused unread."""
    app.middleware("http")(_limit_body)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(InferplanError, _on_inferplan)


def create_app() -> FastAPI:
    """The web UI and its API."""
    app = FastAPI(
        title="inferplan",
        version=__version__,
        description="Size, predict, plan and cost LLM inference deployments.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    busy = _Busy()
    page = (resources.files("inferplan") / "data" / "ui.html").read_text(encoding="utf-8")

    _install_error_handlers(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/api/health", responses=_ERRORS)
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/api/models", responses=_ERRORS)
    def models(
        q: Annotated[str, Query(max_length=100, description="Part of a name, e.g. llama")] = "",
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
    ) -> list[dict[str, Any]]:
        """Catalog models whose name or hub id contains ``q``."""
        needle = q.strip().lower()
        hits = [m for m in catalog_models().values() if needle in m.name or needle in m.hf_id.lower()]
        out = []
        for m in hits[:limit]:
            spec = load_catalog_model(m.name)
            out.append({"name": m.name, "hf_id": m.hf_id, "total_params": count_params(spec).total})
        return out

    @app.get("/api/options", responses=_ERRORS)
    def options() -> dict[str, Any]:
        """The choices the form offers: GPUs, precisions, KV dtypes, engines, environments."""
        return {
            "gpus": [{"id": g.id, "name": g.name, "memory_gib": g.memory_bytes / GIB} for g in gpu_catalog().values()],
            "precisions": sorted(PRECISIONS),
            "kv_dtypes": ["auto", *sorted(KV_DTYPES)],
            "engines": sorted(ENGINES),
            "environments": list(ENVIRONMENT_CHOICES),
        }

    @app.post("/api/plan", responses=_ERRORS)
    def plan(req: PlanRequest) -> dict[str, Any]:
        """Search, verify and explain; the ``plan`` part is the CLI's ``plan --json`` payload."""
        with busy:
            result = run_plan(req)
            payload = plan_dict(result, req.top)
            charts = report_charts(result) if req.charts else []
        return {
            "plan": payload,
            "html": {
                "recommendation": recommendation_html(payload),
                "cost": cost_table(payload["cost"]) if payload["cost"] else "",
                "ranked": ranked_table(payload),
            },
            "charts": [{"id": c.id, "title": c.title, "caption": c.caption, "html": chart_figure(c)} for c in charts],
        }

    @app.post("/api/report", response_class=HTMLResponse, responses=_ERRORS)
    def report(req: PlanRequest) -> HTMLResponse:
        """The self-contained HTML report, as ``inferplan report`` writes it."""
        with busy:
            result = run_plan(req)
            payload = plan_dict(result, req.top)
            page_html = render_report_html(payload, report_charts(result))
        name = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in payload["model"])
        return HTMLResponse(page_html, headers={"Content-Disposition": f'attachment; filename="inferplan-{name}.html"'})

    return app


def serve(host: str, port: int) -> None:
    """Run the UI with uvicorn until interrupted."""
    import uvicorn

    if not 0 < port < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {port}")
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
