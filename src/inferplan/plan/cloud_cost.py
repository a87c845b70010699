"""The cloud as it is sold: on-demand instances that scale with the load (elastic) or stay on,
1- and 3-year (or other) commitments that pay every hour, and spot capacity that can be taken
back; each priced for whole instances (:func:`~inferplan.specs.prices.cheapest_rental`), with
the outbound traffic the responses cost.

An elastic fleet runs the mean fleet on average and scales to the peak fleet when traffic
peaks; until a new replica is up (``scale_up_delay_s``), requests beyond what the running fleet
serves miss the latency targets (:func:`scale_up_misses`).
"""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.plan.cost_option import CostOption, FleetKind, FleetSizes
from inferplan.specs.cost_assumptions import HOURS_PER_MONTH, CostAssumptions
from inferplan.specs.prices import Offer, offers_for
from inferplan.specs.rentals import Rental, cheapest_rental

__all__ = ["SPOT_CAVEAT", "ScaleUp", "cloud_options", "egress_usd_per_month", "scale_up_misses", "term_label"]

SPOT_CAVEAT = (
    "spot capacity can be taken back at short notice (typically 30 s to 2 minutes) and the requests it is "
    "serving then fail: not for a latency target without on-demand capacity behind it"
)
#: Commitment terms every output reports, priced or said missing.
STANDARD_TERMS = (12, 36)


def egress_usd_per_month(output_tokens_per_month: float, a: CostAssumptions) -> float:
    """Outbound traffic: (output tokens x bytes per token / 1e9 + other GB) x $/GB."""
    return (
        output_tokens_per_month * a.bytes_per_output_token / 1e9 + a.other_egress_gb_per_month
    ) * a.egress_usd_per_gb


def term_label(months: int) -> str:
    """'1-year', '3-year' or 'N-month'."""
    return f"{months // 12}-year" if months % 12 == 0 else f"{months}-month"


@dataclass(frozen=True, slots=True)
class _Bill:
    """What a cloud option is billed for: its key and words, fleet, share of hours, egress."""

    key: str
    label: str
    fleet: FleetKind
    hours_fraction: float
    egress_usd: float
    note: str = ""


def _option(bill: _Bill, rental: Rental, replicas: int) -> CostOption:
    per_gpu = rental.offer.usd_per_gpu_hour or rental.usd_per_hour
    gpus = round(rental.usd_per_hour / per_gpu)
    compute = rental.usd_per_hour * HOURS_PER_MONTH * bill.hours_fraction
    parts = {"instances": compute, "egress": bill.egress_usd}
    notes = [rental.note, bill.note, "estimate" if rental.offer.estimate else ""]
    return CostOption(
        bill.key,
        bill.label,
        bill.fleet,
        replicas,
        gpus,
        max(gpus // rental.offer.gpus, 1),
        rental.offer.gpus,
        rental.offer,
        compute + bill.egress_usd,
        parts,
        note="; ".join(n for n in notes if n),
    )


def _priced(offers: list[Offer], sizes: FleetSizes, bill: _Bill, kind: str) -> CostOption | None:
    replicas = sizes.cloud_peak if bill.fleet == "peak" else sizes.cloud_mean
    rental = cheapest_rental(offers, sizes.gpu, sizes.gpus_per_replica, replicas, (kind,))
    return _option(bill, rental, replicas) if rental else None


def cloud_options(
    offers: list[Offer] | tuple[Offer, ...], sizes: FleetSizes, hours_fraction: float, egress_usd: float
) -> tuple[list[CostOption], list[str]]:
    """Every cloud option for the fleet, and in words each kind that has no price. ``egress_usd``
    is the month's outbound traffic at the load's share of hours."""
    pool = offers_for(offers, sizes.gpu.card_id)
    what = f"{sizes.gpu.card_id} instance holding a replica of {sizes.gpu.count(sizes.gpus_per_replica)}"
    full = egress_usd / hours_fraction if hours_fraction > 0 else egress_usd
    same = hours_fraction == 1 and sizes.cloud_peak == sizes.cloud_mean
    steady = "the load is steady all month: elastic is always on here" if same else ""
    out: list[CostOption] = []
    missing: list[str] = []
    spot = _Bill("cloud_spot", "cloud, spot, elastic", "mean", hours_fraction, egress_usd, SPOT_CAVEAT)
    wanted = [
        (
            _Bill("cloud_on_demand", "cloud, on demand, elastic", "mean", hours_fraction, egress_usd, steady),
            "cloud-on-demand",
            "on-demand",
        ),
        (spot, "cloud-spot", "spot"),
    ]
    if not same:
        always = _Bill("cloud_always_on", "cloud, on demand, always on", "peak", 1.0, full)
        wanted.insert(1, (always, "cloud-on-demand", ""))
    terms = sorted({o.term_months for o in pool if o.kind == "cloud-reserved" and o.term_months} | set(STANDARD_TERMS))
    for months in terms:
        label = f"cloud, {term_label(months)} commitment"
        bill = _Bill(f"cloud_{months}m", label, "peak", 1.0, full, f"pays every hour for {months} months")
        term_offers = [o for o in pool if o.kind == "cloud-reserved" and o.term_months == months]
        option = _priced(term_offers, sizes, bill, "cloud-reserved")
        if option:
            out.append(option)
        else:
            missing.append(f"no {term_label(months)} cloud commitment price for a {what}")
    for bill, kind, words in wanted:
        option = _priced(pool, sizes, bill, kind)
        if option:
            out.append(option)
        elif words:
            missing.append(f"no {words} cloud price for a {what}")
    rank = {"cloud_on_demand": 0, "cloud_always_on": 1, "cloud_spot": 3}
    out.sort(key=lambda o: (rank.get(o.key, 2), o.offer.term_months if o.offer and o.offer.term_months else 0))
    return out, missing


@dataclass(frozen=True, slots=True)
class ScaleUp:
    """An elastic fleet scaling from ``from_replicas`` to ``to_replicas`` when traffic peaks:
    requests beyond the running fleet during the delay miss the targets."""

    from_replicas: int
    to_replicas: int
    delay_s: float
    per_day: float
    missed_per_scale_up: float
    miss_fraction: float


def scale_up_misses(
    sizes: FleetSizes, rates: tuple[float, float, float], a: CostAssumptions, hours_fraction: float
) -> ScaleUp:
    """Requests that miss the targets while the elastic fleet scales up. ``rates`` = (mean
    requests/s, peak requests/s, requests/s one cloud replica serves within the targets):
    missed per scale-up = max(0, peak - mean replicas x per replica) x delay; share of the
    day's requests = scale-ups per day x that / (mean x 86,400 s x share of hours)."""
    mean_rate, peak_rate, per_replica = rates
    excess = max(0.0, peak_rate - sizes.cloud_mean * per_replica)
    missed = excess * a.scale_up_delay_s if sizes.cloud_peak > sizes.cloud_mean else 0.0
    day = mean_rate * 86400.0 * hours_fraction
    fraction = min(1.0, a.scale_ups_per_day * missed / day) if day > 0 else 0.0
    return ScaleUp(sizes.cloud_mean, sizes.cloud_peak, a.scale_up_delay_s, a.scale_ups_per_day, missed, fraction)
