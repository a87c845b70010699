"""``inferplan ui``: one page and a JSON API under ``/api`` (OpenAPI at ``/api/openapi.json``).

The API takes the CLI's own question (:class:`~inferplan.plan.question.PlanQuestion`) and
answers through the one plan path (:func:`~inferplan.plan.service.answer`), so the same
question gets the same plan. Models come from the catalog or pasted ``config.json`` text and
calibration profiles by name only: no file-system path and no download is ever taken from a
browser. Library errors become 4xx answers with the CLI's one-line message.

Needs the ``web`` extra (FastAPI, uvicorn); imported lazily by the CLI.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from inferplan import __version__
from inferplan.errors import InferplanError
from inferplan.plan.question import PlanQuestion, validation_message
from inferplan.plan.service import answer
from inferplan.present.payload import to_json_dict
from inferplan.present.payload_plan import PlanPayload, plan_payload
from inferplan.present.report_charts import report_charts
from inferplan.present.report_html import (
    chart_figure,
    cost_table,
    ranked_table,
    recommendation_html,
    render_report_html,
)
from inferplan.specs.calibration_profile import profile_names
from inferplan.specs.engines import ENGINES
from inferplan.specs.hardware import gpu_catalog
from inferplan.specs.model import count_params
from inferplan.specs.model_catalog import catalog_models, load_catalog_model
from inferplan.specs.precision import KV_DTYPES, PRECISIONS
from inferplan.units import GIB

__all__ = ["MAX_BODY_BYTES", "PlanRequest", "create_app"]

MAX_BODY_BYTES = 512 * 1024
MAX_CONCURRENT_PLANS = 2
_STATUS_BY_EXIT_CODE = {2: 422, 3: 404, 4: 422, 5: 409, 6: 409}
ENVIRONMENT_CHOICES = ("bare-metal", "vm", "vgpu")


class PlanRequest(PlanQuestion):
    """The plan question, and whether to draw the charts."""

    charts: bool = Field(True, description="Compute the charts (about a second more).")

    def question(self) -> PlanQuestion:
        return PlanQuestion.model_validate(self.model_dump(exclude={"charts"}))


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: the one-line message the CLI would print, and its error class."""

    error: str
    kind: str


class ChartPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    caption: str
    html: str


class HtmlParts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recommendation: str
    cost: str
    ranked: str


class PlanResponse(BaseModel):
    """``plan`` is exactly the CLI's ``plan --json`` payload."""

    model_config = ConfigDict(extra="forbid")
    plan: PlanPayload
    html: HtmlParts
    charts: list[ChartPayload]


class ModelHit(BaseModel):
    name: str
    hf_id: str
    total_params: int


class GpuChoice(BaseModel):
    id: str
    name: str
    memory_gib: float


class Options(BaseModel):
    gpus: list[GpuChoice]
    precisions: list[str]
    kv_dtypes: list[str]
    engines: list[str]
    environments: list[str]
    calibrations: list[str]


class Health(BaseModel):
    status: str
    version: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request body (not JSON)"},
    404: {"model": ErrorResponse, "description": "Unknown model or GPU name"},
    409: {"model": ErrorResponse, "description": "Does not fit, or no configuration meets the targets"},
    413: {"model": ErrorResponse, "description": "Request body too large"},
    422: {"model": ErrorResponse, "description": "Invalid input"},
    503: {"model": ErrorResponse, "description": "Busy"},
}


def _error(status: int, message: str, kind: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "kind": kind}, status_code=status, headers=headers)


class BusyError(InferplanError):
    """Too many plans at once (HTTP 503)."""


class _Busy:
    """At most :data:`MAX_CONCURRENT_PLANS` plans at once: each takes a CPU core for up to a
    few seconds."""

    def __init__(self) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT_PLANS)

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
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        message = "the body is not valid JSON: send a JSON object (Content-Type: application/json)"
        return _error(400, message, "HTTPError")
    return _error(422, validation_message(exc.errors()), "InputError")


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


def options() -> Options:
    """The choices the form offers: GPUs, precisions, KV dtypes, engines, environments, profiles."""
    return Options(
        gpus=[GpuChoice(id=g.id, name=g.name, memory_gib=g.memory_bytes / GIB) for g in gpu_catalog().values()],
        precisions=sorted(PRECISIONS),
        kv_dtypes=["auto", *sorted(KV_DTYPES)],
        engines=sorted(ENGINES),
        environments=[
            *ENVIRONMENT_CHOICES,
            *sorted({f"mig:{m}" for g in gpu_catalog().values() for m in g.mig_profiles}),
        ],
        calibrations=profile_names(),
    )


def plan_response(req: PlanRequest) -> PlanResponse:
    """The plan the CLI's ``inferplan plan --json`` prints for the same question, with HTML
    fragments and the charts."""
    result = answer(req.question(), files=False)
    payload = plan_payload(result, req.top)
    d = to_json_dict(payload)
    charts = report_charts(result) if req.charts else []
    return PlanResponse(
        plan=payload,
        html=HtmlParts(
            recommendation=recommendation_html(d),
            cost=cost_table(d["cost"]) if d["cost"] else "",
            ranked=ranked_table(d),
        ),
        charts=[ChartPayload(id=c.id, title=c.title, caption=c.caption, html=chart_figure(c)) for c in charts],
    )


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
    def health() -> Health:
        return Health(status="ok", version=__version__)

    @app.get("/api/models", responses=_ERRORS)
    def models(
        q: Annotated[str, Query(max_length=100, description="Part of a name, e.g. llama")] = "",
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
    ) -> list[ModelHit]:
        """Catalog models whose name or hub id contains ``q``."""
        needle = q.strip().lower()
        hits = [m for m in catalog_models().values() if needle in m.name or needle in m.hf_id.lower()]
        return [
            ModelHit(name=m.name, hf_id=m.hf_id, total_params=count_params(load_catalog_model(m.name)).total)
            for m in hits[:limit]
        ]

    app.get("/api/options", responses=_ERRORS)(options)

    @app.post("/api/plan", responses=_ERRORS)
    def plan(req: PlanRequest) -> PlanResponse:
        """Search, verify and explain; ``plan`` is the CLI's ``plan --json`` payload."""
        with busy:
            return plan_response(req)

    @app.post("/api/report", response_class=HTMLResponse, responses=_ERRORS)
    def report(req: PlanRequest) -> HTMLResponse:
        """The self-contained HTML report, as ``inferplan report`` writes it."""
        with busy:
            result = answer(req.question(), files=False)
            payload = to_json_dict(plan_payload(result, req.top))
            page_html = render_report_html(payload, report_charts(result))
        name = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in payload["model"])
        return HTMLResponse(page_html, headers={"Content-Disposition": f'attachment; filename="inferplan-{name}.html"'})

    return app


def serve(host: str, port: int) -> None:
    """Run the UI with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
