"""Bare metal as it is sold: dedicated servers leased by the month and servers bought, of
every size on offer, placed so that the servers hold the owned fleet.

A server of N cards with no listed price is estimated from the card's price (kind ``card``):
N x card + host_server_base_usd + N x host_server_usd_per_gpu, and labelled an estimate with
its formula. Owning a server adds power (TDP x load + host) x PUE x $/kWh, colocation per kW
and per rack unit, and support on a purchase; a lease from a dedicated-server provider includes
power, space and network unless its entry says otherwise.
"""

from __future__ import annotations

from dataclasses import replace

from inferplan.plan.cost_option import CostOption, annuity_usd_per_month
from inferplan.specs.cost_assumptions import HOURS_PER_MONTH, CostAssumptions
from inferplan.specs.hardware import GpuSpec
from inferplan.specs.prices import Offer, offers_for
from inferplan.specs.rentals import cards_needed, servers_for

__all__ = [
    "bare_metal_options",
    "colocation_usd_per_month",
    "estimated_server",
    "it_power_kw",
    "power_usd_per_month",
]

LABELS = {"lease": "bare metal, leased", "purchase": "bare metal, bought"}


def it_power_kw(num_gpus: int, tdp_w: float, a: CostAssumptions) -> float:
    """IT power of ``num_gpus`` GPUs and their hosts: GPUs x (TDP x load + host W per GPU) / 1000."""
    return num_gpus * (tdp_w * a.gpu_load + a.host_power_w_per_gpu) / 1000.0


def power_usd_per_month(num_gpus: int, tdp_w: float, a: CostAssumptions) -> float:
    """Electricity: IT kW x PUE x 730 h x $/kWh."""
    return it_power_kw(num_gpus, tdp_w, a) * a.pue * HOURS_PER_MONTH * a.usd_per_kwh


def colocation_usd_per_month(it_kw: float, rack_units: float, a: CostAssumptions) -> float:
    """Colocation: kW x $/kW-month + rack units x $/U-month."""
    return it_kw * a.colocation_usd_per_kw_month + rack_units * a.colocation_usd_per_u_month


def estimated_server(card: Offer, gpus: int, a: CostAssumptions) -> Offer:
    """A purchase of a ``gpus``-card server priced from one card's price (an estimate):
    gpus x card + host_server_base_usd + gpus x host_server_usd_per_gpu."""
    assert card.usd_purchase is not None
    host = a.host_server_base_usd + gpus * a.host_server_usd_per_gpu
    usd = gpus * card.usd_purchase + host
    formula = (
        f"ESTIMATE: {gpus} x ${card.usd_purchase:,.0f} ({card.id}, {card.as_of}) + host server ${host:,.0f} "
        f"(${a.host_server_base_usd:,.0f} + {gpus} x ${a.host_server_usd_per_gpu:,.0f}, cost assumptions) "
        f"= ${usd:,.0f}"
    )
    return replace(
        card,
        id=f"{card.id}@{gpus}gpu",
        product=f"{gpus}-GPU server of {card.product}",
        gpus=gpus,
        kind="purchase",
        usd_purchase=usd,
        estimate=True,
        note=formula,
        server_sizes=(),
    )


def _server_offers(offers: list[Offer] | tuple[Offer, ...], gpu: GpuSpec, a: CostAssumptions) -> list[Offer]:
    """Leases and purchases of ``gpu`` servers: listed, and estimated from card prices."""
    listed = [o for o in offers_for(offers, gpu.card_id) if o.kind in ("lease", "purchase")]
    estimated = [
        estimated_server(card, n, a)
        for card in offers_for(offers, gpu.card_id, "card")
        for n in card.server_sizes
        if card.usd_purchase is not None
    ]
    return listed + estimated


def _option(offer: Offer, gpu: GpuSpec, replicas: int, gpus_per_replica: int, a: CostAssumptions) -> CostOption | None:
    """``offer``'s servers holding ``replicas`` replicas (MIG slices share cards)."""
    cards = cards_needed(gpu, gpus_per_replica, replicas)
    per_replica = 1 if gpu.mig_profile else gpus_per_replica
    units = cards if gpu.mig_profile else replicas
    servers = servers_for(offer.gpus, per_replica, units)
    if servers is None:
        return None
    installed = servers * offer.gpus
    kw = it_power_kw(installed, gpu.tdp_w, a)
    rack_units = servers * (offer.rack_units or offer.gpus * a.rack_units_per_gpu)
    hosting = {
        "power": power_usd_per_month(installed, gpu.tdp_w, a),
        "colocation": colocation_usd_per_month(kw, rack_units, a),
    }
    base = CostOption(offer.kind, LABELS[offer.kind], "peak", replicas, installed, servers, offer.gpus, offer, 0.0)
    if offer.kind == "lease":
        assert offer.usd_per_month is not None
        parts = {"lease": servers * offer.usd_per_month} | ({} if offer.hosting_included else hosting)
        return replace(base, running_usd_per_month=sum(parts.values()), parts=parts)
    assert offer.usd_purchase is not None
    capex = servers * offer.usd_purchase
    financed = (
        annuity_usd_per_month(capex, a.financing_rate_per_year, a.depreciation_months)
        if a.financing_rate_per_year > 0
        else 0.0
    )
    running = hosting | {"support": capex * a.support_fraction_per_year / 12.0}
    capital = financed or capex / a.depreciation_months
    return replace(
        base,
        running_usd_per_month=sum(running.values()),
        parts={"capital": capital, **running},
        capital_usd=capex,
        capital_months=a.depreciation_months,
        financed_usd_per_month=financed,
    )


def _idle_note(best: CostOption, candidates: list[CostOption], needed: int) -> str:
    """Words for spare GPUs: the only size on offer, or cheaper than smaller servers."""
    idle = best.gpus - needed
    if idle <= 0:
        return ""
    smaller = [c for c in candidates if c.gpus < best.gpus]
    what = f"{idle} of {best.gpus} GPUs spare (they can hold extra replicas)"
    if smaller:
        return f"{what}: cheaper than smaller servers"
    return f"{what}: no smaller {best.key} offer fits (the smallest has {best.server_gpus} GPUs)"


def bare_metal_options(
    offers: list[Offer] | tuple[Offer, ...], gpu: GpuSpec, gpus_per_replica: int, replicas: int, a: CostAssumptions
) -> dict[str, CostOption]:
    """The cheapest lease and the cheapest purchase (listed or estimated) of servers holding
    ``replicas`` replicas, by monthly cost; a key is absent when nothing is on offer."""
    needed = cards_needed(gpu, gpus_per_replica, replicas)
    out: dict[str, CostOption] = {}
    for kind in ("lease", "purchase"):
        candidates = [
            opt
            for offer in _server_offers(offers, gpu, a)
            if offer.kind == kind and (opt := _option(offer, gpu, replicas, gpus_per_replica, a)) is not None
        ]
        if not candidates:
            continue
        best = min(candidates, key=lambda c: (c.usd_per_month, c.gpus))
        upfront = f"${best.upfront_usd:,.0f} up front" if best.upfront_usd else ""
        estimate = best.offer.note if best.offer and best.offer.estimate else ""
        notes = [upfront, estimate, _idle_note(best, candidates, needed)]
        out[kind] = replace(best, note="; ".join(n for n in notes if n))
    return out
