"""The price catalog: cloud instance/GPU-hour offers, server purchases and leases.

Loaded from ``data/prices.yaml`` and, optionally, a user's YAML in the same format whose
entries are added (an entry with an existing ``id`` replaces it). Errors name the file,
the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inferplan.errors import ConfigError, InferplanError
from inferplan.limits import MAX_PRICE_FILE_BYTES
from inferplan.specs.hardware import GpuSpec, resolve_gpu

__all__ = [
    "Offer",
    "Rental",
    "cards_needed",
    "cheapest_cloud_offer",
    "cheapest_rental",
    "default_offers",
    "load_offers",
    "offers_for",
    "parse_offers_text",
    "read_price_file",
]

KINDS = ("cloud-on-demand", "cloud-reserved", "cloud-spot", "purchase", "lease")


class _OfferEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    provider: str
    product: str
    gpu: str
    gpus: int = Field(ge=1, le=100_000)
    kind: str
    usd_per_hour: float | None = Field(default=None, gt=0)
    usd_per_gpu_hour: float | None = Field(default=None, gt=0)
    usd: float | None = Field(default=None, gt=0)
    usd_per_month: float | None = Field(default=None, gt=0)
    region: str = ""
    as_of: str = Field(min_length=1)
    source: str = Field(min_length=1)

    @field_validator("as_of", "source", "id", "region", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        """YAML reads 2026-11-01 as a date; keep it as written."""
        return str(value) if value is not None and not isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_price(self) -> _OfferEntry:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        try:  # any way of writing the GPU (the one name resolver), stored as its catalog id
            self.gpu = resolve_gpu(self.gpu)[0].card_id
        except InferplanError as exc:
            raise ValueError(f"gpu {self.gpu!r} is not in the GPU catalog: {exc}") from None
        wanted = {"purchase": ("usd",), "lease": ("usd_per_month",)}.get(
            self.kind, ("usd_per_hour", "usd_per_gpu_hour")
        )
        given = [
            f for f in ("usd_per_hour", "usd_per_gpu_hour", "usd", "usd_per_month") if getattr(self, f) is not None
        ]
        if len(given) != 1 or given[0] not in wanted:
            raise ValueError(f"a {self.kind} entry needs exactly one of {' or '.join(wanted)}")
        return self


@dataclass(frozen=True, slots=True)
class Offer:
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

    @property
    def is_cloud(self) -> bool:
        return self.kind.startswith("cloud")


class _LineLoader(yaml.SafeLoader):
    """Records the line of every mapping so errors can name it."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = {str(k): v for k, v in loader.construct_mapping(node, deep=True).items()}
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse(text: str, what: str) -> list[Offer]:
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what}: not valid YAML ({exc})") from exc
    if not isinstance(data, list):
        raise ConfigError(f"{what}: expected a list of price entries")
    out = []
    for raw in data:
        if not isinstance(raw, dict):
            raise ConfigError(f"{what}: every entry must be a mapping of fields")
        line = raw.pop("__line__", "?")
        try:
            e = _OfferEntry.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "entry"
            raise ConfigError(f"{what}, line {line}, field '{field}': {err['msg']}") from exc
        per_gpu = e.usd_per_gpu_hour or (e.usd_per_hour / e.gpus if e.usd_per_hour else None)
        out.append(
            Offer(
                e.id,
                e.provider,
                e.product,
                e.gpu,
                e.gpus,
                e.kind,
                per_gpu,
                e.usd,
                e.usd_per_month,
                e.as_of,
                e.source,
            )
        )
    return out


@cache
def default_offers() -> tuple[Offer, ...]:
    text = (resources.files("inferplan") / "data" / "prices.yaml").read_text(encoding="utf-8")
    return tuple(_parse(text, "prices.yaml"))


def read_price_file(path: Path) -> str:
    """A user's price file as text: at most MAX_PRICE_FILE_BYTES, UTF-8."""
    try:
        size = path.stat().st_size
        if size > MAX_PRICE_FILE_BYTES:
            raise ConfigError(
                f"price file {path} is {size:,} bytes; the limit is {MAX_PRICE_FILE_BYTES:,} (keep only your offers)"
            )
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"price file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read price file {path}: {exc.strerror}") from exc


def parse_offers_text(text: str, origin: str) -> list[Offer]:
    """The offers of a price file's text (the catalog's format)."""
    if len(text.encode("utf-8", errors="replace")) > MAX_PRICE_FILE_BYTES:
        raise ConfigError(f"{origin}: larger than {MAX_PRICE_FILE_BYTES:,} bytes; keep only your offers")
    return _parse(text, origin)


def load_offers(extra: list[Offer] | None = None) -> list[Offer]:
    """The catalog, with a user's offers added on top (same ``id`` replaces)."""
    offers = {o.id: o for o in default_offers()}
    for offer in extra or []:
        offers[offer.id] = offer
    return list(offers.values())


def offers_for(offers: list[Offer], gpu: str, kind: str | None = None) -> list[Offer]:
    base = gpu.split(":", maxsplit=1)[0]
    return [o for o in offers if o.gpu == base and (kind is None or o.kind == kind)]


def cheapest_cloud_offer(
    offers: list[Offer], gpu: str, gpus_per_replica: int, replicas: int = 1
) -> tuple[Offer, float] | None:
    """The cheapest on-demand or reserved offer and its hourly cost for ``replicas`` copies
    of a ``gpus_per_replica``-GPU model replica. A replica must sit inside one instance
    (NVLink), or span whole 8-GPU instances (multi-node pipeline); replicas may share one."""
    best: tuple[Offer, float] | None = None
    for o in offers_for(offers, gpu):
        if o.kind not in ("cloud-on-demand", "cloud-reserved") or o.usd_per_gpu_hour is None:
            continue
        if o.gpus >= gpus_per_replica:
            instances = -(-replicas // (o.gpus // gpus_per_replica))
        elif o.gpus >= 8 and gpus_per_replica % o.gpus == 0:
            instances = replicas * gpus_per_replica // o.gpus
        else:
            continue
        hourly = instances * o.gpus * o.usd_per_gpu_hour
        if best is None or hourly < best[1]:
            best = (o, hourly)
    return best


@dataclass(frozen=True, slots=True)
class Rental:
    """Cloud capacity for some replicas: the offer, its hourly cost, and how many replicas the
    rented GPUs hold (whole instances are rented: spare GPUs can run extra replicas)."""

    offer: Offer
    usd_per_hour: float
    replicas_held: int
    note: str = ""


def slices_per_card(gpu: GpuSpec) -> int:
    """How many slices like ``gpu`` one card holds (1 for a whole GPU)."""
    return max(int(1.0 / gpu.card_share + 1e-9), 1) if gpu.mig_profile else 1


def cards_needed(gpu: GpuSpec, gpus_per_replica: int, replicas: int) -> int:
    """Physical cards ``replicas`` replicas occupy (MIG slices share cards)."""
    if gpu.mig_profile:
        return -(-replicas // slices_per_card(gpu))
    return gpus_per_replica * replicas


def cheapest_rental(offers: list[Offer], gpu: GpuSpec, gpus_per_replica: int, replicas: int) -> Rental | None:
    """The cheapest cloud capacity for ``replicas`` replicas on ``gpu``. A MIG slice is priced
    as its share of whole rented cards: a card holds ``floor(1 / share)`` such slices."""
    if gpu.mig_profile:
        per_card = slices_per_card(gpu)
        cards = cards_needed(gpu, 1, replicas)
        best = cheapest_cloud_offer(offers, gpu.card_id, 1, cards)
        if best is None:
            return None
        offer, usd = best
        held = round(usd / offer.usd_per_gpu_hour) * per_card if offer.usd_per_gpu_hour else replicas
        note = f"{per_card} x {gpu.mig_profile} slices per rented {gpu.card_id}"
        return Rental(offer, usd, max(held, replicas), note)
    best = cheapest_cloud_offer(offers, gpu.id, gpus_per_replica, replicas)
    if best is None:
        return None
    offer, usd = best
    held = round(usd / offer.usd_per_gpu_hour) // gpus_per_replica if offer.usd_per_gpu_hour else replicas
    return Rental(offer, usd, max(held, replicas))
