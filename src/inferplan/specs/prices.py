"""The price catalog: cloud offers (on-demand, committed, spot), bare-metal leases and server
purchases, GPU card prices, and hosted-API token prices; every entry dated and sourced.

Loaded from ``data/prices.yaml`` and ``data/api_prices.yaml`` and, optionally, a user's file in
the same format (``docs/prices.md``): a list of entries, or a mapping with ``prices:`` (that
list) and ``assumptions:`` (cost assumptions, see :mod:`inferplan.specs.cost_assumptions`). A
user's entry with an existing ``id`` replaces it. Every error names the file, the line and the
field; the text is read by :mod:`inferplan.specs.price_file` (size, UTF-8, nesting, YAML).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inferplan.errors import ConfigError, InferplanError, InputError
from inferplan.specs.cost_assumptions import HOURS_PER_MONTH, CostAssumptions, assumption_edits
from inferplan.specs.hardware import gpu_catalog, resolve_gpu
from inferplan.specs.price_file import LINE, LINES, load_yaml_with_lines, read_price_file

__all__ = [
    "CLOUD_KINDS",
    "KINDS",
    "ApiPrice",
    "Offer",
    "PriceBook",
    "default_offers",
    "default_prices",
    "load_offers",
    "offers_for",
    "parse_offers_text",
    "parse_price_text",
    "read_price_file",
]

Kind = Literal["cloud-on-demand", "cloud-reserved", "cloud-spot", "lease", "purchase", "card", "api"]
KINDS: tuple[str, ...] = ("cloud-on-demand", "cloud-reserved", "cloud-spot", "lease", "purchase", "card", "api")
CLOUD_KINDS = ("cloud-on-demand", "cloud-reserved", "cloud-spot")
_PRICE_FIELDS = ("usd_per_hour", "usd_per_gpu_hour", "usd", "usd_per_month")
_HARDWARE_FIELDS = ("product", "gpu", "region", "term_months", "server_sizes", "cpu", "ram_gb", "nvme_tb", "network")
_NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (fields it must have, one-of price fields)
    "cloud-on-demand": (("product", "gpu", "gpus"), ("usd_per_hour", "usd_per_gpu_hour")),
    "cloud-spot": (("product", "gpu", "gpus"), ("usd_per_hour", "usd_per_gpu_hour")),
    "cloud-reserved": (
        ("product", "gpu", "gpus", "term_months"),
        ("usd_per_hour", "usd_per_gpu_hour", "usd_per_month"),
    ),
    "lease": (("product", "gpu", "gpus"), ("usd_per_month",)),
    "purchase": (("product", "gpu", "gpus"), ("usd",)),
    "card": (("product", "gpu", "server_sizes"), ("usd",)),
    "api": (("model", "models", "usd_per_mtok_input", "usd_per_mtok_output"), ()),
}
Text = Field(min_length=1, max_length=500)
Usd = Field(default=None, gt=0, le=1e9)


def _catalog_gpu(name: str) -> str:
    """The catalog id of a GPU named in a price file, written any way the name resolver takes
    ('NVIDIA H100 80GB HBM3', 'H100 SXM5 80GB', 'h100-sxm')."""
    if name in gpu_catalog():
        return name
    try:
        return resolve_gpu(name)[0].card_id
    except InferplanError as exc:
        raise ValueError(f"gpu '{name[:60]}' is not in the GPU catalog (inferplan gpus lists the ids): {exc}") from None


class _PriceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+@/-]*$")
    provider: str = Text
    kind: Kind
    as_of: str = Field(min_length=1, max_length=200)
    source: str = Text
    note: str = Field(default="", max_length=2000)
    estimate: bool = False
    product: str | None = Field(default=None, min_length=1, max_length=300)
    gpu: str | None = None
    gpus: int | None = Field(default=None, ge=1, le=100_000)
    region: str = Field(default="", max_length=200)
    usd_per_hour: float | None = Usd
    usd_per_gpu_hour: float | None = Usd
    usd: float | None = Usd
    usd_per_month: float | None = Usd
    term_months: int | None = Field(default=None, ge=1, le=120)
    server_sizes: list[int] | None = Field(default=None, min_length=1, max_length=8)
    cpu: str | None = Field(default=None, max_length=200)
    ram_gb: float | None = Field(default=None, gt=0, le=1e6)
    nvme_tb: float | None = Field(default=None, ge=0, le=1e4)
    network: str | None = Field(default=None, max_length=200)
    rack_units: float | None = Field(default=None, gt=0, le=100)
    hosting_included: bool | None = None
    model: str | None = Field(default=None, min_length=1, max_length=300)
    models: list[str] | None = Field(default=None, min_length=1, max_length=16)
    usd_per_mtok_input: float | None = Field(default=None, ge=0, le=1e6)
    usd_per_mtok_output: float | None = Field(default=None, gt=0, le=1e6)

    @field_validator("as_of", "source", "id", "region", "note", "cpu", "network", "product", "model", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        """YAML reads 2026-11-01 as a date and 8 as a number; keep text as written."""
        return str(value) if isinstance(value, int | float | date) else value

    @field_validator("gpus", "usd_per_hour", "usd_per_gpu_hour", "usd", "usd_per_month", "term_months", mode="before")
    @classmethod
    def _not_bool(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("must be a number, not true/false")
        return value

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, value: str | None) -> str | None:
        return None if value is None else _catalog_gpu(value)

    @field_validator("server_sizes")
    @classmethod
    def _sizes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(isinstance(n, bool) or not 1 <= n <= 72 for n in value):
            raise ValueError("server sizes are GPUs per server, 1 to 72")
        return value

    @model_validator(mode="after")
    def _fields_of_kind(self) -> _PriceEntry:
        needs, prices = _NEEDS[self.kind]
        missing = [f for f in needs if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} entry needs {', '.join(missing)}")
        if self.kind == "api":
            extra = [f for f in (*_PRICE_FIELDS, *_HARDWARE_FIELDS, "gpus") if getattr(self, f) not in (None, "")]
            if extra:
                raise ValueError(f"an api entry prices tokens; remove {', '.join(extra)}")
            return self
        given = [f for f in _PRICE_FIELDS if getattr(self, f) is not None]
        if len(given) != 1 or given[0] not in prices:
            raise ValueError(f"a {self.kind} entry needs exactly one of {' or '.join(prices)}")
        if self.kind == "card" and self.gpus not in (None, 1):
            raise ValueError("a card entry prices one card: leave out gpus or set it to 1")
        if self.term_months is not None and self.kind not in ("cloud-reserved", "lease"):
            raise ValueError("term_months belongs to cloud-reserved and lease entries")
        if self.hosting_included is not None and self.kind != "lease":
            raise ValueError("hosting_included belongs to lease entries")
        return self


@dataclass(frozen=True, slots=True)
class Offer:
    """One hardware price: a cloud instance (per GPU-hour), a leased server (per month), a
    purchased server or one card (USD). ``gpus`` GPUs per instance or server."""

    id: str
    provider: str
    product: str
    gpu: str
    gpus: int
    kind: str
    usd_per_gpu_hour: float | None
    usd_purchase: float | None
    usd_per_month: float | None
    as_of: str
    source: str
    term_months: int | None = None
    note: str = ""
    estimate: bool = False
    server_sizes: tuple[int, ...] = ()
    server: str = ""  # CPU, memory, NVMe and network as listed
    rack_units: float | None = None
    hosting_included: bool = True  # a lease's price includes power, space and network
    region: str = ""

    @property
    def is_cloud(self) -> bool:
        return self.kind.startswith("cloud")


@dataclass(frozen=True, slots=True)
class ApiPrice:
    """A hosted API's price for one open model, USD per million input and output tokens;
    ``models`` are the catalog names it serves."""

    id: str
    provider: str
    model: str
    models: tuple[str, ...]
    usd_per_mtok_input: float
    usd_per_mtok_output: float
    as_of: str
    source: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class PriceBook:
    """Offers, API prices and the cost-assumption edits a price file makes."""

    offers: tuple[Offer, ...] = ()
    api: tuple[ApiPrice, ...] = ()
    assumptions: dict[str, float] = field(default_factory=dict)

    def merged(self, user: PriceBook) -> PriceBook:
        """These prices with ``user``'s added on top (same ``id`` replaces)."""
        offers = {o.id: o for o in self.offers} | {o.id: o for o in user.offers}
        api = {a.id: a for a in self.api} | {a.id: a for a in user.api}
        return PriceBook(tuple(offers.values()), tuple(api.values()), {**self.assumptions, **user.assumptions})

    def apply_to(self, base: CostAssumptions) -> CostAssumptions:
        """``base`` with this file's assumption edits."""
        return replace(base, **assumption_edits(self.assumptions))


def _server_text(e: _PriceEntry) -> str:
    parts = [
        e.cpu or "",
        f"{e.ram_gb:g} GB RAM" if e.ram_gb else "",
        f"{e.nvme_tb:g} TB NVMe" if e.nvme_tb else "",
        e.network or "",
    ]
    return ", ".join(p for p in parts if p)


def _entry(e: _PriceEntry) -> Offer | ApiPrice:
    if e.kind == "api":
        assert e.model and e.models and e.usd_per_mtok_input is not None and e.usd_per_mtok_output is not None
        return ApiPrice(
            e.id,
            e.provider,
            e.model,
            tuple(e.models),
            e.usd_per_mtok_input,
            e.usd_per_mtok_output,
            e.as_of,
            e.source,
            e.note,
        )
    gpus = e.gpus or 1
    per_gpu = e.usd_per_gpu_hour or (e.usd_per_hour / gpus if e.usd_per_hour else None)
    monthly = e.usd_per_month
    if e.kind == "cloud-reserved" and monthly is not None:  # billed by the month: the same per GPU-hour
        per_gpu, monthly = monthly / HOURS_PER_MONTH / gpus, None
    assert e.product and e.gpu
    return Offer(
        e.id,
        e.provider,
        e.product,
        e.gpu,
        gpus,
        e.kind,
        per_gpu,
        e.usd,
        monthly,
        e.as_of,
        e.source,
        term_months=e.term_months,
        note=e.note,
        estimate=e.estimate,
        server_sizes=tuple(sorted(set(e.server_sizes or ()))),
        server=_server_text(e),
        rack_units=e.rack_units,
        hosting_included=e.hosting_included if e.hosting_included is not None else True,
        region=e.region,
    )


def _validated(raw: dict[str, Any], what: str) -> Offer | ApiPrice:
    line, lines = raw.pop(LINE, "?"), raw.pop(LINES, {})
    try:
        return _entry(_PriceEntry.model_validate(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        where = f"line {lines.get(name, line)}, field '{name}'" if name else f"line {line}"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            where, msg = (
                f"line {lines.get(name, line)}",
                f"unknown field '{name}' (fields: docs/prices.md; quote values with commas)",
            )
        raise ConfigError(f"{what}, {where}: {msg}") from None


def _assumptions(raw: object, what: str) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{what}: 'assumptions' must be a mapping of NAME: VALUE")
    line, lines = raw.pop(LINE, "?"), raw.pop(LINES, {})
    edits: dict[str, float] = {}
    for key, value in raw.items():
        try:
            edit = assumption_edits({key: value})
            CostAssumptions(**edit)  # its range
        except InputError as exc:
            raise ConfigError(f"{what}, line {lines.get(key, line)}, assumption '{key}': {exc}") from None
        edits |= {k: float(v) for k, v in edit.items()}
    return edits


def parse_price_text(text: str, origin: str) -> PriceBook:
    """The prices and assumption edits of a price file's text."""
    data = load_yaml_with_lines(text, origin)
    assumptions: dict[str, float] = {}
    if isinstance(data, dict):
        line, lines = data.pop(LINE, "?"), data.pop(LINES, {})
        unknown = set(data) - {"prices", "assumptions"}
        if unknown:
            bad = sorted(unknown)[0]
            raise ConfigError(
                f"{origin}, line {lines.get(bad, line)}: unknown section '{bad}'; use prices: and assumptions:"
            )
        if "assumptions" in data:
            assumptions = _assumptions(data["assumptions"], origin)
        data = data.get("prices", [])
    if data is None:
        data = []
    if not isinstance(data, list):
        raise ConfigError(f"{origin}: expected a list of price entries (or prices: and assumptions: sections)")
    offers: list[Offer] = []
    api: list[ApiPrice] = []
    seen: set[str] = set()
    for raw in data:
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{origin}: every price entry must be a mapping of fields, e.g. '- {{id: ..., kind: ...}}'"
            )
        entry = _validated(raw, origin)
        if entry.id in seen:
            raise ConfigError(f"{origin}: id '{entry.id}' is used twice; give each entry its own id")
        seen.add(entry.id)
        (api if isinstance(entry, ApiPrice) else offers).append(entry)  # type: ignore[arg-type]
    return PriceBook(tuple(offers), tuple(api), assumptions)


def parse_offers_text(text: str, origin: str) -> list[Offer]:
    """The hardware offers of a price file's text."""
    return list(parse_price_text(text, origin).offers)


@cache
def default_prices() -> PriceBook:
    """The built-in catalog: ``data/prices.yaml`` and ``data/api_prices.yaml``."""
    book = PriceBook()
    for name in ("prices.yaml", "api_prices.yaml"):
        text = (resources.files("inferplan") / "data" / name).read_text(encoding="utf-8")
        book = book.merged(parse_price_text(text, name))
    return book


def default_offers() -> tuple[Offer, ...]:
    return default_prices().offers


def load_offers(extra: list[Offer] | None = None) -> list[Offer]:
    """The catalog's offers, with a user's added on top (same ``id`` replaces)."""
    return list(default_prices().merged(PriceBook(tuple(extra or ()))).offers)


def offers_for(offers: list[Offer] | tuple[Offer, ...], gpu: str, kind: str | None = None) -> list[Offer]:
    base = gpu.split(":", maxsplit=1)[0]
    return [o for o in offers if o.gpu == base and (kind is None or o.kind == kind)]
