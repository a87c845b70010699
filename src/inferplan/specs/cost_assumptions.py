"""Cost assumptions: every number the cost model takes that is not a price, with its range,
unit and meaning, editable from ``--cost-set NAME=VALUE``, a price file's ``assumptions:``
section and the web form, and printed with every cost output.

Precedence: the defaults below, then a price file's ``assumptions:``, then ``--cost-set``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, NamedTuple

from inferplan.errors import InputError

__all__ = [
    "ALIASES",
    "ASSUMPTIONS",
    "HOURS_PER_MONTH",
    "AssumptionSpec",
    "CostAssumptions",
    "assumption_edits",
    "with_edits",
]


#: Hours in an average month (8,760 h / 12).
HOURS_PER_MONTH = 730.0


class AssumptionSpec(NamedTuple):
    """The range, unit and meaning of one assumption."""

    low: float
    high: float
    unit: str
    meaning: str


#: Every assumption's range, unit and meaning (the docs, the report and the web form read these).
ASSUMPTIONS: dict[str, AssumptionSpec] = {
    "usd_per_kwh": AssumptionSpec(0, 10, "$/kWh", "electricity price (US industrial average ~0.12)"),
    "pue": AssumptionSpec(1, 5, "ratio", "power usage effectiveness: facility power / IT power (cooling included)"),
    "gpu_load": AssumptionSpec(0, 1, "fraction", "average GPU power draw / TDP while serving"),
    "host_power_w_per_gpu": AssumptionSpec(0, 5000, "W", "CPUs, memory, NICs and fans per GPU"),
    "colocation_usd_per_kw_month": AssumptionSpec(0, 10000, "$/kW-month", "colocation: power delivery per kW of IT"),
    "colocation_usd_per_u_month": AssumptionSpec(0, 10000, "$/U-month", "colocation: rack space per rack unit"),
    "rack_units_per_gpu": AssumptionSpec(0, 10, "U", "server height per GPU when an offer lists none"),
    "support_fraction_per_year": AssumptionSpec(0, 1, "1/year", "vendor support of a purchase, share of its price"),
    "depreciation_months": AssumptionSpec(1, 120, "months", "a purchase is written off over this period"),
    "financing_rate_per_year": AssumptionSpec(
        0, 1, "1/year", "0: purchases are paid in cash up front; above 0: financed over the depreciation period"
    ),
    "egress_usd_per_gb": AssumptionSpec(0, 10, "$/GB", "cloud outbound traffic (AWS first tier 0.09)"),
    "bytes_per_output_token": AssumptionSpec(0, 1e6, "bytes", "streamed response bytes per token (text, SSE, JSON)"),
    "other_egress_gb_per_month": AssumptionSpec(0, 1e9, "GB/month", "other cloud outbound traffic (logs, copies)"),
    "host_server_base_usd": AssumptionSpec(0, 1e7, "$", "estimated servers: chassis, CPUs, memory, NVMe per server"),
    "host_server_usd_per_gpu": AssumptionSpec(0, 1e7, "$", "estimated servers: host cost added per GPU slot"),
    "scale_up_delay_s": AssumptionSpec(0, 86400, "s", "elastic cloud: time to start a replica and load weights"),
    "scale_ups_per_day": AssumptionSpec(0, 1440, "1/day", "elastic cloud: traffic peaks the fleet scales up for"),
}

#: Older or alternative names people write.
ALIASES = {"amortisation_months": "depreciation_months", "amortization_months": "depreciation_months"}


@dataclass(frozen=True, slots=True)
class CostAssumptions:
    """The defaults are assumptions, not measurements (see :data:`ASSUMPTIONS` for each one's
    meaning). The host-server figures price the servers inferplan estimates from card prices
    (chassis, CPUs, memory, NVMe, NICs, power supplies): 8 slots = $2,000 + 8 x $3,500 = $30,000,
    the gap between the DGX H100 estimate ($270,000, prices.csv#45) and 8 cards at $30,000
    (prices.csv#46); 1 slot = $5,500. An estimate: edit them for your quotes."""

    usd_per_kwh: float = 0.12
    pue: float = 1.4
    gpu_load: float = 0.7
    host_power_w_per_gpu: float = 150.0
    colocation_usd_per_kw_month: float = 150.0
    colocation_usd_per_u_month: float = 0.0
    rack_units_per_gpu: float = 1.0
    support_fraction_per_year: float = 0.10
    depreciation_months: int = 36
    financing_rate_per_year: float = 0.0
    egress_usd_per_gb: float = 0.09
    bytes_per_output_token: float = 60.0
    other_egress_gb_per_month: float = 0.0
    host_server_base_usd: float = 2000.0
    host_server_usd_per_gpu: float = 3500.0
    scale_up_delay_s: float = 300.0
    scale_ups_per_day: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            spec = ASSUMPTIONS[f.name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InputError(f"cost assumption {f.name} must be a finite number, got {value!r}")
            if not spec.low <= value <= spec.high:
                raise InputError(
                    f"cost assumption {f.name} must be between {spec.low:g} and {spec.high:g} {spec.unit}, "
                    f"got {value:g}"
                )

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def assumption_edits(values: dict[str, Any]) -> dict[str, Any]:
    """``NAME=VALUE`` edits checked against the known names (aliases resolved); one line
    naming the unknown ones otherwise."""
    edits: dict[str, Any] = {}
    for raw, value in values.items():
        name = ALIASES.get(raw, raw)
        if name not in ASSUMPTIONS:
            raise InputError(f"unknown cost assumption '{raw}'; use one of {', '.join(ASSUMPTIONS)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"cost assumption {name} must be a number, got {value!r}")
        if name == "depreciation_months":
            if not math.isfinite(value) or value != int(value):
                raise InputError(f"cost assumption depreciation_months must be whole months, got {value!r}")
            edits[name] = int(value)
        else:
            edits[name] = value
    return edits


def with_edits(base: CostAssumptions, values: dict[str, Any]) -> CostAssumptions:
    """``base`` with ``NAME=VALUE`` edits applied and checked."""
    return replace(base, **assumption_edits(values))
