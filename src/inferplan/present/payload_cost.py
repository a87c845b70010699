"""The cost section of ``plan``, ``report``, ``cost`` and the web API: every priced option,
and the priced story in words that every output prints the same (what was priced, the fleets
for the mean and for the peak, the cheapest option, the break-even, the hosted API, the
elastic cloud's scale-up, what has no price)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inferplan.plan.cost import CostComparison
from inferplan.plan.cost_option import CostOption
from inferplan.present.payload import Strict, finite
from inferplan.specs.cost_assumptions import ASSUMPTIONS
from inferplan.units import counted

__all__ = ["CostOptionPayload", "CostPayload", "cost_payload", "cost_story"]


class CostOptionPayload(Strict):
    """One way to pay for the load."""

    key: str = Field(
        description="lease, purchase, cloud_on_demand, cloud_always_on, cloud_<N>m (an N-month commitment), "
        "cloud_spot or api."
    )
    option: str = Field(description="The option in words.")
    fleet: Literal["peak", "mean", "tokens"] = Field(
        description="Which fleet it pays for: the peak's (owned, committed, always on), the mean's (elastic), "
        "or the tokens used (a hosted API)."
    )
    replicas: int
    gpus: int = Field(description="GPUs rented or owned (whole servers and instances: spare GPUs included).")
    servers: int = Field(description="Servers or cloud instances.")
    gpus_per_server: int
    offer: str | None = Field(description="The price entry's id (an estimated server: card id @ size).")
    provider: str | None
    product: str | None
    server: str | None = Field(description="CPU, memory, NVMe and network as the offer lists them.")
    as_of: str | None
    source: str | None
    estimate: bool = Field(description="The price is an estimate (analyst, street or card-based), not a list price.")
    upfront_usd: float = Field(description="Paid at month 0 (a purchase in cash).")
    usd_per_month: float = Field(description="Average monthly cost (a purchase written off over depreciation).")
    usd_per_million_output_tokens: float | None
    total_12_months_usd: float
    total_36_months_usd: float
    parts_usd_per_month: dict[str, float]
    note: str | None = Field(description="Caveats: estimate formula, spare GPUs, spot, commitment, API prices.")


class FleetPayload(Strict):
    """Replicas for one load."""

    requests_per_s: float
    bare_metal_replicas: int
    cloud_replicas: int


class CrossingPayload(Strict):
    """A month at which an owned option's cumulative spend falls to another option's."""

    months: float
    option: str
    other: str


class CostPayload(Strict):
    """Every way to pay for one configuration's load, and the priced story in words."""

    configuration: str
    story: list[str] = Field(description="The priced story, as every output prints it.")
    gpus_per_replica: int
    hours_fraction: float
    peak_to_mean: float
    demand_output_tokens_per_s: float | None
    mean_fleet: FleetPayload
    peak_fleet: FleetPayload
    owned_utilization: float | None = Field(
        description="Mean load / what the owned (peak) fleet serves within the targets, over the month."
    )
    options: list[CostOptionPayload]
    cheapest: str | None = Field(description="Key of the cheapest option with a latency target (not spot, not an API).")
    missing: list[str] = Field(description="Each kind of price the catalog lacks for this, in words.")
    break_even_hours_fraction: float | None = Field(
        description="Share of hours above which owning beats the elastic cloud; null outside 1%-100% (see break_even)."
    )
    break_even: str
    break_even_months: float | None = Field(description="Months until the purchase has paid for itself.")
    payoff: str
    front_loaded: str | None
    api_cheaper_below_requests_per_s: float | None
    scale_up_missed_requests: float = Field(description="Requests per scale-up beyond the running elastic fleet.")
    scale_up_miss_fraction: float = Field(description="Share of the requests those are.")
    crossings: list[CrossingPayload]
    assumptions: dict[str, float]
    bare_metal_offer: str | None = Field(description="The cheapest owned option's offer.")
    bare_metal_monthly_usd: float | None
    cloud_offer: str | None = Field(description="The elastic on-demand cloud's offer.")
    cloud_hourly_usd: float | None
    cloud_elastic_monthly_usd: float | None
    totals_usd: dict[str, dict[str, float]]


def _usd(x: float) -> str:
    return f"${x:,.0f}"


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.3g}"


def _option(c: CostComparison, o: CostOption) -> CostOptionPayload:
    offer = o.offer
    return CostOptionPayload(
        key=o.key,
        option=o.label,
        fleet=o.fleet,
        replicas=o.replicas,
        gpus=o.gpus,
        servers=o.servers,
        gpus_per_server=o.server_gpus,
        offer=offer.id if offer else (o.api.id if o.api else None),
        provider=offer.provider if offer else (o.api.provider if o.api else None),
        product=offer.product if offer else (o.api.model if o.api else None),
        server=offer.server or None if offer else None,
        as_of=offer.as_of if offer else (o.api.as_of if o.api else None),
        source=offer.source if offer else (o.api.source if o.api else None),
        estimate=bool(offer and offer.estimate),
        upfront_usd=o.upfront_usd,
        usd_per_month=o.usd_per_month,
        usd_per_million_output_tokens=finite(c.usd_per_mtok(o)),
        total_12_months_usd=o.cumulative_usd(12),
        total_36_months_usd=o.cumulative_usd(36),
        parts_usd_per_month=o.parts,
        note=o.note or None,
    )


def cheapest(c: CostComparison) -> CostOption | None:
    """The cheapest option with a latency target (spot and a hosted API are reported apart)."""
    found = [o for o in c.options if o.key not in ("cloud_spot", "api")]
    return min(found, key=lambda o: o.usd_per_month) if found else None


def _priced_sentence(c: CostComparison, configuration: str) -> str:
    f = c.fleet
    hours = "around the clock" if c.hours_fraction == 1 else f"{c.hours_fraction:.0%} of the hours"
    peak = "steady (peak = mean)" if c.peak_to_mean == 1 else f"peaks {c.peak_to_mean:g}x the mean"
    return (
        f"Priced: {f.model or 'the model'} as {configuration}, {f.isl:,} input / {f.osl:,} output tokens at "
        f"{_rate(f.requests_per_s)} requests/s ({f.output_tokens_per_s:,.0f} output tokens/s) {hours}, {peak}."
    )


def _fleet_sentence(c: CostComparison) -> str:
    s, g = c.sizes, c.gpus_per_replica
    mean = (
        f"the mean load needs {counted(s.bare_mean, 'replica')} ({s.gpu.count(s.bare_mean * g)}) on bare metal and "
        f"{s.cloud_mean} in a cloud VM"
    )
    if c.peak_to_mean == 1:
        load = f"{mean}; with no peaks, owned, committed and elastic capacity all hold that fleet"
    else:
        load = (
            f"{mean}; the peak ({_rate(c.fleet.requests_per_s * c.peak_to_mean)} requests/s) needs "
            f"{counted(s.bare_peak, 'replica')} ({s.gpu.count(s.bare_peak * g)}) on bare metal and {s.cloud_peak} in "
            "a cloud VM. "
            "Owned, committed and always-on capacity is priced for the peak fleet, elastic cloud for the mean "
            "fleet (scaling to the peak), a hosted API per token"
        )
    return f"Fleet: {load}. The owned fleet runs at {c.owned_utilization:.0%} of what it serves within the targets."


def _cheapest_sentence(c: CostComparison) -> str:
    best = cheapest(c)
    if best is None:
        return "No option with a latency target has a price here."
    mtok = c.usd_per_mtok(best)
    unit = "server" if best.is_owned else "instance"
    offer = best.offer.id if best.offer else "-"
    where = f"{best.servers} x {best.server_gpus}-GPU {unit}{'s' if best.servers > 1 else ''} of {offer}"
    per_token = f", ${mtok:,.3f} per million output tokens" if mtok is not None else ""
    return f"Cheapest with a latency target: {best.phrase}, {where}, at {_usd(best.usd_per_month)}/month{per_token}."


def _api_sentence(c: CostComparison) -> str:
    api, best = c.option("api"), cheapest(c)
    if api is None or api.api is None:
        return ""
    p = api.api
    price = f"{p.provider}, ${p.usd_per_mtok_input:g} / ${p.usd_per_mtok_output:g} per million input / output tokens"
    rate = c.fleet.requests_per_s
    if best is None:
        return f"Hosted API ({price}): {_usd(api.usd_per_month)}/month; no self-hosted option has a price to compare."
    if c.api_below_requests_per_s is None:
        return (
            f"Hosted API ({price}): cheaper than self-hosting at every load up to "
            f"{_rate(c.api_searched_to_requests_per_s)} requests/s; here it costs {_usd(api.usd_per_month)}/month."
        )
    versus = f" against {_usd(best.usd_per_month)} for {best.phrase}" if best else ""
    here = "the API is cheaper at this load" if c.api_below_requests_per_s > rate else "self-hosting is cheaper here"
    return (
        f"Below {_rate(c.api_below_requests_per_s)} requests/s a hosted API is cheaper ({price}); {here}: "
        f"{_usd(api.usd_per_month)}/month{versus}."
    )


def _scale_up_sentence(c: CostComparison) -> str:
    s, a = c.scale_up, c.assumptions
    if s.to_replicas <= s.from_replicas:
        return ""
    return (
        f"Elastic cloud scales from {s.from_replicas} to {s.to_replicas} replicas for each peak; with a scale-up "
        f"delay of {s.delay_s:,.0f} s and {s.per_day:g} peak(s) a day (assumptions scale_up_delay_s, "
        f"scale_ups_per_day), about {s.missed_per_scale_up:,.0f} requests per peak arrive beyond the running fleet "
        f"and miss the targets ({s.miss_fraction:.2%} of all requests)."
        + ("" if a.scale_up_delay_s else " (A delay of 0 assumes instant scaling.)")
    )


def cost_story(c: CostComparison, configuration: str) -> list[str]:
    """The priced story, one sentence per line."""
    be = c.break_even
    lines = [_priced_sentence(c, configuration), _fleet_sentence(c), _cheapest_sentence(c), be.hours_sentence]
    lines += [be.payoff_sentence, be.front_loaded, _api_sentence(c), _scale_up_sentence(c)]
    if c.missing:
        lines.append(
            "No price in the catalog: " + "; ".join(c.missing) + ". Add yours with --prices FILE (docs/prices.md)."
        )
    return [line for line in lines if line]


def cost_payload(c: CostComparison, configuration: str) -> CostPayload:
    owned = [o for o in c.options if o.is_owned]
    best_owned = min(owned, key=lambda o: o.usd_per_month) if owned else None
    elastic, best = c.option("cloud_on_demand"), cheapest(c)
    s = c.sizes
    return CostPayload(
        configuration=configuration,
        story=cost_story(c, configuration),
        gpus_per_replica=c.gpus_per_replica,
        hours_fraction=c.hours_fraction,
        peak_to_mean=c.peak_to_mean,
        demand_output_tokens_per_s=finite(c.demand_tokens_per_s),
        mean_fleet=FleetPayload(
            requests_per_s=c.fleet.requests_per_s, bare_metal_replicas=s.bare_mean, cloud_replicas=s.cloud_mean
        ),
        peak_fleet=FleetPayload(
            requests_per_s=c.fleet.requests_per_s * c.peak_to_mean,
            bare_metal_replicas=s.bare_peak,
            cloud_replicas=s.cloud_peak,
        ),
        owned_utilization=finite(c.owned_utilization),
        options=[_option(c, o) for o in c.options],
        cheapest=best.key if best else None,
        missing=list(c.missing),
        break_even_hours_fraction=finite(c.break_even.hours_fraction),
        break_even=c.break_even.hours_sentence,
        break_even_months=finite(c.break_even.payoff_months),
        payoff=c.break_even.payoff_sentence,
        front_loaded=c.break_even.front_loaded or None,
        api_cheaper_below_requests_per_s=finite(c.api_below_requests_per_s),
        scale_up_missed_requests=c.scale_up.missed_per_scale_up,
        scale_up_miss_fraction=c.scale_up.miss_fraction,
        crossings=[CrossingPayload(months=m, option=a, other=b) for m, a, b in c.crossings()],
        assumptions={k: float(v) for k, v in c.assumptions.as_dict().items() if k in ASSUMPTIONS},
        bare_metal_offer=best_owned.offer.id if best_owned and best_owned.offer else None,
        bare_metal_monthly_usd=best_owned.usd_per_month if best_owned else None,
        cloud_offer=elastic.offer.id if elastic and elastic.offer else None,
        cloud_hourly_usd=finite(c.cloud_hourly_usd),
        cloud_elastic_monthly_usd=elastic.usd_per_month if elastic else None,
        totals_usd=c.totals_usd,
    )
