"""Cost: one configuration's fleet priced every way it can be paid for, as buyers see it.

Owned capacity (a lease or a purchase, :mod:`~inferplan.plan.bare_metal`) and committed cloud
capacity hold the fleet the peak needs all month; elastic cloud (on demand or spot,
:mod:`~inferplan.plan.cloud_cost`) pays for the mean fleet for the hours the load runs and
scales to the peak; a hosted API (:mod:`~inferplan.plan.api_prices`) bills tokens. The fleets
come from the load and what one replica sustains within the targets in each environment.
Every assumption is explicit and editable (:class:`CostAssumptions`); outputs repeat them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from inferplan.errors import InputError
from inferplan.plan.api_prices import api_cheaper_below, api_option, api_prices_for, api_usd_per_request
from inferplan.plan.bare_metal import bare_metal_options, power_usd_per_month
from inferplan.plan.break_even import BreakEven, break_even, crossings
from inferplan.plan.cloud_cost import ScaleUp, cloud_options, egress_usd_per_month, scale_up_misses
from inferplan.plan.cost_option import CostOption, FleetSizes
from inferplan.specs.cost_assumptions import HOURS_PER_MONTH, CostAssumptions
from inferplan.specs.hardware import GpuSpec
from inferplan.specs.prices import ApiPrice, Offer

__all__ = [
    "HOURS_PER_MONTH",
    "CostAssumptions",
    "CostComparison",
    "CostOption",
    "Costing",
    "Fleet",
    "compare_costs",
    "cost_per_million_tokens_usd",
    "fleet_sizes",
    "power_usd_per_month",
]

SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
_EPS = 1e-9


def cost_per_million_tokens_usd(monthly_usd: float, tokens_per_s: float, hours_fraction: float) -> float | None:
    """$ per 1e6 tokens = monthly cost / (tokens/s x share of hours x seconds per month) x 1e6."""
    if tokens_per_s <= 0 or hours_fraction <= 0:
        return None
    return monthly_usd / (tokens_per_s * hours_fraction * SECONDS_PER_MONTH) * 1e6


@dataclass(frozen=True, slots=True)
class Costing:
    """How the load runs over a month and what owning costs: the share of hours served, the
    peak-to-mean ratio, the cost assumptions and the hosted-API prices."""

    hours_fraction: float = 1.0
    peak_to_mean: float = 1.0
    assumptions: CostAssumptions = field(default_factory=CostAssumptions)
    api_prices: tuple[ApiPrice, ...] = ()

    def __post_init__(self) -> None:
        if not 0.01 <= self.hours_fraction <= 1:  # NaN fails too
            raise InputError(f"the share of hours served must be between 0.01 and 1, got {self.hours_fraction}")
        if not 1 <= self.peak_to_mean <= 100:
            raise InputError(f"peak-to-mean ratio must be between 1 and 100, got {self.peak_to_mean}")


@dataclass(frozen=True, slots=True)
class Fleet:
    """A configuration serving a mean load: requests/s of ``isl`` input and ``osl`` output
    tokens; the requests/s one replica sustains within the targets on bare metal and in a
    cloud VM; the replicas planned for the mean (0: from the load)."""

    gpu: GpuSpec
    gpus_per_replica: int
    requests_per_s: float
    isl: int
    osl: int
    bare_rate_per_replica: float
    cloud_rate_per_replica: float
    bare_replicas: int = 0
    cloud_replicas: int = 0
    model: str = ""

    @property
    def output_tokens_per_s(self) -> float:
        return self.requests_per_s * self.osl


def _sized(rate: float, per_replica: float, planned: int, peak_to_mean: float) -> tuple[int, int, float]:
    """(mean replicas, peak replicas, requests/s per replica as planned). A plan may hold more
    replicas than rate / per replica (the simulator's check added some): the peak keeps that
    margin."""
    need = max(math.ceil(rate / per_replica - _EPS), 1)
    mean = max(planned, need)
    effective = per_replica * need / mean
    return mean, max(mean, math.ceil(rate * peak_to_mean / effective - _EPS)), effective


def fleet_sizes(fleet: Fleet, peak_to_mean: float) -> FleetSizes:
    """Replicas for the mean load and for the peak (mean x peak-to-mean), on bare metal and in a cloud VM."""
    bare = _sized(fleet.requests_per_s, fleet.bare_rate_per_replica, fleet.bare_replicas, peak_to_mean)
    cloud = _sized(fleet.requests_per_s, fleet.cloud_rate_per_replica, fleet.cloud_replicas, peak_to_mean)
    return FleetSizes(fleet.gpu, fleet.gpus_per_replica, bare[0], bare[1], cloud[0], cloud[1], bare[2], cloud[2])


@dataclass(frozen=True, slots=True)
class CostComparison:
    """Every priced option for a fleet, what has no price (in words), the break-even, the
    hosted API's break-even load, the elastic cloud's scale-up misses and the owned fleet's
    utilisation (mean load / what the peak fleet serves within the targets)."""

    fleet: Fleet
    sizes: FleetSizes
    hours_fraction: float
    peak_to_mean: float
    tokens_per_month: float
    options: tuple[CostOption, ...]
    missing: tuple[str, ...]
    break_even: BreakEven
    api_below_requests_per_s: float | None
    api_searched_to_requests_per_s: float
    scale_up: ScaleUp
    owned_utilization: float
    assumptions: CostAssumptions

    @property
    def gpus_per_replica(self) -> int:
        return self.sizes.gpus_per_replica

    @property
    def bare_replicas(self) -> int:
        """Replicas owned: the peak fleet."""
        return self.sizes.bare_peak

    @property
    def cloud_replicas(self) -> int:
        """Replicas a cloud VM needs for the mean load."""
        return self.sizes.cloud_mean

    @property
    def demand_tokens_per_s(self) -> float:
        return self.fleet.output_tokens_per_s

    def option(self, key: str) -> CostOption | None:
        return next((o for o in self.options if o.key == key), None)

    @property
    def cloud_hourly_usd(self) -> float | None:
        """The on-demand price of the cloud's mean fleet per hour."""
        o = self.option("cloud_on_demand")
        return o.parts["instances"] / (HOURS_PER_MONTH * self.hours_fraction) if o else None

    def usd_per_mtok(self, o: CostOption) -> float | None:
        return o.usd_per_month / self.tokens_per_month * 1e6 if self.tokens_per_month > 0 else None

    def cumulative_usd(self, months: float) -> dict[str, float]:
        """Spend after ``months`` per option (a purchase starts at its price)."""
        return {o.key: o.cumulative_usd(months) for o in self.options}

    @property
    def totals_usd(self) -> dict[str, dict[str, float]]:
        """Cumulative spend per option after 12 and 36 months."""
        return {f"{m}_months": self.cumulative_usd(m) for m in (12, 36)}

    def break_even_months(self) -> float | None:
        """Months until the cheapest purchase has cost no more than the cheapest rental."""
        return self.break_even.payoff_months

    def crossings(self) -> list[tuple[float, str, str]]:
        return crossings(list(self.options))


def _self_hosted(options: list[CostOption]) -> list[CostOption]:
    """Options that serve the load on GPUs one controls with a latency target (not spot, not an API)."""
    return [o for o in options if o.key not in ("cloud_spot", "api")]


def _priced(
    fleet: Fleet, offers: list[Offer] | tuple[Offer, ...], costing: Costing
) -> tuple[list[CostOption], list[str]]:
    """Bare-metal and cloud options for the fleet, and what has no price, in words."""
    a, h = costing.assumptions, costing.hours_fraction
    sizes = fleet_sizes(fleet, costing.peak_to_mean)
    bare = bare_metal_options(offers, fleet.gpu, fleet.gpus_per_replica, sizes.bare_peak, a)
    egress = egress_usd_per_month(fleet.output_tokens_per_s * SECONDS_PER_MONTH * h, a)
    cloud, missing = cloud_options(offers, sizes, h, egress)
    gpu = fleet.gpu.card_id
    if not bare:
        missing.insert(0, f"no bare-metal price (lease, purchase or card) for {gpu}")
    else:
        missing[:0] = [f"no bare-metal {k} price for {gpu}" for k in ("lease", "purchase") if k not in bare]
    return [*bare.values(), *cloud], missing


def compare_costs(
    fleet: Fleet, offers: list[Offer] | tuple[Offer, ...], costing: Costing | None = None
) -> CostComparison:
    """Every way to pay for serving the fleet's load, with the break-even and what is missing."""
    costing = costing or Costing()
    a, h = costing.assumptions, costing.hours_fraction
    sizes = fleet_sizes(fleet, costing.peak_to_mean)
    options, missing = _priced(fleet, offers, costing)
    requests_month = fleet.requests_per_s * SECONDS_PER_MONTH * h
    prices = api_prices_for(fleet.model, costing.api_prices) if fleet.model else []
    api = api_option(prices, requests_month, fleet.isl, fleet.osl)
    below, searched = None, 0.0
    if api is not None and api.api is not None:
        options.append(api)
        below, searched = _api_break_even(fleet, offers, costing, api_usd_per_request(api.api, fleet.isl, fleet.osl))
    else:
        missing.append(f"no hosted-API price for {fleet.model or 'this model'}")
    fixed_egress = a.other_egress_gb_per_month * a.egress_usd_per_gb
    rates = (fleet.requests_per_s, fleet.requests_per_s * costing.peak_to_mean, sizes.cloud_rate_per_replica)
    return CostComparison(
        fleet=fleet,
        sizes=sizes,
        hours_fraction=h,
        peak_to_mean=costing.peak_to_mean,
        tokens_per_month=fleet.output_tokens_per_s * SECONDS_PER_MONTH * h,
        options=tuple(options),
        missing=tuple(missing),
        break_even=break_even(_self_hosted(options), fixed_egress, h),
        api_below_requests_per_s=below,
        api_searched_to_requests_per_s=searched,
        scale_up=scale_up_misses(sizes, rates, a, h),
        owned_utilization=fleet.requests_per_s * h / (sizes.bare_peak * fleet.bare_rate_per_replica),
        assumptions=a,
    )


def _api_break_even(
    fleet: Fleet, offers: list[Offer] | tuple[Offer, ...], costing: Costing, usd_per_request: float
) -> tuple[float | None, float]:
    """The load below which the API costs less than the cheapest self-hosted option."""
    p, h = costing.peak_to_mean, costing.hours_fraction
    sizes = fleet_sizes(fleet, p)
    bare, cloud = sizes.bare_rate_per_replica, sizes.cloud_rate_per_replica

    def self_hosted_at(rate: float) -> float | None:
        at = replace(fleet, requests_per_s=rate, bare_rate_per_replica=bare, cloud_rate_per_replica=cloud)
        at = replace(at, bare_replicas=0, cloud_replicas=0)
        found = _self_hosted(_priced(at, offers, costing)[0])
        return min(o.usd_per_month for o in found) if found else None

    steps = [bare, bare / p, cloud, cloud / p]
    return api_cheaper_below(usd_per_request * SECONDS_PER_MONTH * h, self_hosted_at, steps)
