"""Cost: cloud (hourly x hours + egress) against bare metal (lease, or purchase amortised
plus power, cooling, colocation and support), cost per million tokens, break-even.

Every default below is an explicit, editable assumption (:class:`CostAssumptions`);
outputs repeat them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from inferplan.errors import InputError
from inferplan.specs.hardware import GpuSpec
from inferplan.specs.prices import Offer, cards_needed, cheapest_rental, offers_for

__all__ = [
    "HOURS_PER_MONTH",
    "CostAssumptions",
    "CostComparison",
    "Costing",
    "Fleet",
    "bare_metal_monthly_usd",
    "break_even_utilization",
    "compare_costs",
    "cost_per_million_tokens_usd",
    "power_monthly_usd",
]

HOURS_PER_MONTH = 730.0  # 8760 h / 12


@dataclass(frozen=True, slots=True)
class CostAssumptions:
    """usd_per_kwh: electricity price; pue: facility power / IT power (cooling included);
    gpu_load: average GPU power / TDP while serving; host_power_w_per_gpu: CPUs, NICs, fans
    per GPU; colocation_usd_per_kw_month: rack space and power delivery per kW of IT load;
    support_fraction_per_year: vendor support as a fraction of the purchase price;
    amortisation_months: depreciation period; egress_usd_per_gb: cloud outbound traffic;
    bytes_per_output_token: streamed response bytes per token (text plus SSE/JSON framing);
    model_transfers_per_month: times the weights are copied out of the cloud region."""

    usd_per_kwh: float = 0.12
    pue: float = 1.4
    gpu_load: float = 0.7
    host_power_w_per_gpu: float = 150.0
    colocation_usd_per_kw_month: float = 150.0
    support_fraction_per_year: float = 0.10
    amortisation_months: int = 36
    egress_usd_per_gb: float = 0.09
    bytes_per_output_token: float = 60.0
    model_transfers_per_month: float = 0.0
    source: str = (
        "assumptions, not measurements: US industrial electricity ~0.12 $/kWh, PUE 1.4, "
        "colocation ~150 $/kW-month, support 10%/year, 36-month depreciation, AWS "
        "internet egress first tier 0.09 $/GB; override any with --cost-set NAME=VALUE"
    )

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, int | float) and value < 0:
                raise InputError(f"cost assumption {name} must not be negative, got {value}")
        if self.amortisation_months < 1 or self.pue < 1.0:
            raise InputError("amortisation_months must be >= 1 and pue >= 1.0")


def power_monthly_usd(num_gpus: int, tdp_w: float, a: CostAssumptions) -> float:
    """(GPUs x TDP x load + host power) x PUE x 730 h x $/kWh."""
    it_kw = num_gpus * (tdp_w * a.gpu_load + a.host_power_w_per_gpu) / 1000.0
    return it_kw * a.pue * HOURS_PER_MONTH * a.usd_per_kwh


def bare_metal_monthly_usd(
    num_gpus: int, gpu: GpuSpec, offer: Offer, a: CostAssumptions
) -> tuple[float, dict[str, float]]:
    """Monthly cost of ``num_gpus`` GPUs from a lease or a purchase offer, with its parts."""
    servers = math.ceil(num_gpus / offer.gpus)
    power = power_monthly_usd(servers * offer.gpus, gpu.tdp_w, a)
    it_kw = servers * offer.gpus * (gpu.tdp_w * a.gpu_load + a.host_power_w_per_gpu) / 1000.0
    colo = it_kw * a.colocation_usd_per_kw_month
    if offer.kind == "lease":
        assert offer.usd_per_month is not None
        parts = {"lease": servers * offer.usd_per_month, "power": power, "colocation": colo}
    else:
        assert offer.usd_purchase is not None
        capex = servers * offer.usd_purchase
        parts = {
            "amortisation": capex / a.amortisation_months,
            "power": power,
            "colocation": colo,
            "support": capex * a.support_fraction_per_year / 12.0,
        }
    return sum(parts.values()), parts


def cost_per_million_tokens_usd(monthly_usd: float, tokens_per_s: float, utilization: float) -> float:
    """$ per 1e6 tokens = monthly cost / (tokens/s x utilisation x seconds per month) x 1e6."""
    if tokens_per_s <= 0 or utilization <= 0:
        return math.inf
    return monthly_usd / (tokens_per_s * utilization * HOURS_PER_MONTH * 3600.0) * 1e6


def break_even_utilization(bare_metal_monthly: float, cloud_monthly_full_time: float) -> float:
    """Utilisation above which owning beats renting elastically: the cloud bill scales with
    the hours actually used, the bare-metal bill does not."""
    if cloud_monthly_full_time <= 0:
        return math.inf
    return bare_metal_monthly / cloud_monthly_full_time


@dataclass(frozen=True, slots=True)
class CostComparison:
    """Monthly costs (USD) of serving a demand on bare metal and in the cloud.

    ``hours_fraction``: share of the month the demand runs (1 = around the clock).
    Bare metal owns ``ceil(replicas x peak_to_mean)`` replicas all month. Cloud elastic
    rents the replicas the mean demand needs for the hours it runs (ideal autoscaling);
    cloud always-on rents the peak fleet all month. Cloud replicas include the
    virtualisation overhead (fewer tokens/s per replica).
    """

    gpus_per_replica: int
    bare_replicas: int
    bare_cards: int
    cloud_replicas: int
    hours_fraction: float
    peak_to_mean: float
    demand_tokens_per_s: float
    tokens_per_month: float
    cloud_offer: Offer | None
    cloud_hourly_usd: float | None  # for cloud_replicas
    cloud_elastic_monthly_usd: float | None
    cloud_always_on_monthly_usd: float | None
    cloud_egress_monthly_usd: float
    bare_offer: Offer | None
    bare_monthly_usd: float | None
    bare_parts: dict[str, float]
    break_even_hours_fraction: float | None
    usd_per_mtok: dict[str, float]
    assumptions: CostAssumptions

    @property
    def totals_usd(self) -> dict[str, dict[str, float]]:
        """Cumulative spend per option after 12 and 36 months."""
        return {f"{m}_months": self.cumulative_usd(m) for m in (12, 36)}

    def cumulative_usd(self, months: float) -> dict[str, float]:
        """Spend after ``months`` per option: a purchase pays its servers at month 0, then
        running costs; leases and cloud bills accrue monthly."""
        row: dict[str, float] = {}
        if self.cloud_elastic_monthly_usd is not None:
            row["cloud_elastic"] = self.cloud_elastic_monthly_usd * months
        if self.cloud_always_on_monthly_usd is not None:
            row["cloud_always_on"] = self.cloud_always_on_monthly_usd * months
        if self.bare_offer is not None and self.bare_monthly_usd is not None:
            best = (self.bare_monthly_usd, self.bare_parts, self.bare_offer)
            row["bare_metal"] = _bare_total(best, self.bare_cards, months)
        return row

    def break_even_months(self, cloud_option: str = "cloud_elastic") -> float | None:
        """Months after which owning has cost less in total than ``cloud_option``
        (0 when it is cheaper from the start; None when it never is)."""
        start, after = self.cumulative_usd(0.0), self.cumulative_usd(1.0)
        if "bare_metal" not in start or cloud_option not in start:
            return None
        upfront = start["bare_metal"] - start[cloud_option]
        monthly_saving = (after[cloud_option] - start[cloud_option]) - (after["bare_metal"] - start["bare_metal"])
        if upfront <= 0:
            return 0.0 if monthly_saving >= 0 else None
        return upfront / monthly_saving if monthly_saving > 0 else None


@dataclass(frozen=True, slots=True)
class Costing:
    """How the load runs over a month and what owning costs: share of hours served,
    peak-to-mean ratio, and the cost assumptions."""

    hours_fraction: float = 1.0
    peak_to_mean: float = 1.0
    assumptions: CostAssumptions = field(default_factory=CostAssumptions)

    def __post_init__(self) -> None:
        if not 0 < self.hours_fraction <= 1:
            raise InputError(f"the share of hours served must be in (0, 1], got {self.hours_fraction}")
        if not 1 <= self.peak_to_mean <= 100:
            raise InputError(f"peak-to-mean ratio must be between 1 and 100, got {self.peak_to_mean}")


@dataclass(frozen=True, slots=True)
class Fleet:
    """Replicas of one configuration serving ``demand_tokens_per_s`` output tokens/s: how many
    the mean load needs on bare metal and in a cloud VM (fractional: the load / one replica's
    capacity)."""

    gpu: GpuSpec
    gpus_per_replica: int
    bare_replicas_mean: float
    cloud_replicas_mean: float
    demand_tokens_per_s: float


def compare_costs(fleet: Fleet, offers: list[Offer], costing: Costing | None = None) -> CostComparison:
    """Bare metal against cloud for one deployment serving the fleet's demand (output tokens)."""
    costing = costing or Costing()
    a = costing.assumptions
    hours_fraction, peak_to_mean = costing.hours_fraction, costing.peak_to_mean
    gpu, gpus_per_replica = fleet.gpu, fleet.gpus_per_replica
    demand_tokens_per_s = fleet.demand_tokens_per_s
    bare_replicas_mean, cloud_replicas_mean = fleet.bare_replicas_mean, fleet.cloud_replicas_mean
    seconds = HOURS_PER_MONTH * 3600.0 * hours_fraction
    tokens_month = demand_tokens_per_s * seconds
    egress = tokens_month * a.bytes_per_output_token / 1e9 * a.egress_usd_per_gb
    bare_replicas = max(math.ceil(bare_replicas_mean * peak_to_mean - 1e-9), 1)
    peak_cloud = max(math.ceil(cloud_replicas_mean * peak_to_mean - 1e-9), 1)
    mean_cloud = max(math.ceil(cloud_replicas_mean - 1e-9), 1)
    cloud_mean = cheapest_rental(offers, gpu, gpus_per_replica, mean_cloud)
    cloud_peak = cheapest_rental(offers, gpu, gpus_per_replica, peak_cloud)
    elastic = (cloud_mean.usd_per_hour * HOURS_PER_MONTH * hours_fraction + egress) if cloud_mean else None
    always_on = (cloud_peak.usd_per_hour * HOURS_PER_MONTH + egress) if cloud_peak else None
    bare_cards = cards_needed(gpu, gpus_per_replica, bare_replicas)
    best = _cheapest_bare(gpu, bare_cards, offers, a)
    bare = best[0] if best else None
    per_mtok: dict[str, float] = {}
    if tokens_month > 0:
        for label, cost in (
            ("bare_metal", bare),
            ("cloud_elastic", elastic),
            ("cloud_always_on", always_on),
        ):
            if cost is not None:
                per_mtok[label] = cost / tokens_month * 1e6
    full_elastic = (cloud_mean.usd_per_hour * HOURS_PER_MONTH + egress / hours_fraction) if cloud_mean else None
    return CostComparison(
        gpus_per_replica=gpus_per_replica,
        bare_replicas=bare_replicas,
        bare_cards=bare_cards,
        cloud_replicas=mean_cloud,
        hours_fraction=hours_fraction,
        peak_to_mean=peak_to_mean,
        demand_tokens_per_s=demand_tokens_per_s,
        tokens_per_month=tokens_month,
        cloud_offer=cloud_mean.offer if cloud_mean else None,
        cloud_hourly_usd=cloud_mean.usd_per_hour if cloud_mean else None,
        cloud_elastic_monthly_usd=elastic,
        cloud_always_on_monthly_usd=always_on,
        cloud_egress_monthly_usd=egress,
        bare_offer=best[2] if best else None,
        bare_monthly_usd=bare,
        bare_parts=best[1] if best else {},
        break_even_hours_fraction=break_even_utilization(bare, full_elastic) if bare and full_elastic else None,
        usd_per_mtok=per_mtok,
        assumptions=a,
    )


def _cheapest_bare(
    gpu: GpuSpec, num_gpus: int, offers: list[Offer], a: CostAssumptions
) -> tuple[float, dict[str, float], Offer] | None:
    best: tuple[float, dict[str, float], Offer] | None = None
    for offer in offers_for(offers, gpu.card_id):
        if offer.kind in ("lease", "purchase"):
            monthly, parts = bare_metal_monthly_usd(num_gpus, gpu, offer, a)
            if best is None or monthly < best[0]:
                best = (monthly, parts, offer)
    return best


def _bare_total(best: tuple[float, dict[str, float], Offer], num_gpus: int, months: float) -> float:
    """Cumulative bare-metal spend: a purchase pays the servers up front, then running costs."""
    monthly, parts, offer = best
    if offer.kind != "purchase" or offer.usd_purchase is None:
        return monthly * months
    servers = math.ceil(num_gpus / offer.gpus)
    running = sum(v for k, v in parts.items() if k != "amortisation")
    return servers * offer.usd_purchase + running * months
