"""Renting and placing: how many servers or cloud instances a fleet of replicas needs, and
the cheapest cloud capacity for it (whole instances; MIG slices as shares of rented cards)."""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.specs.hardware import GpuSpec
from inferplan.specs.prices import Offer, offers_for

__all__ = ["Rental", "cards_needed", "cheapest_cloud_offer", "cheapest_rental", "servers_for", "slices_per_card"]


def servers_for(server_gpus: int, gpus_per_replica: int, replicas: int) -> int | None:
    """Servers (or cloud instances) of ``server_gpus`` GPUs that ``replicas`` replicas need: a
    replica sits inside one server (NVLink), or spans whole servers of 8 or more GPUs (a
    multi-node pipeline); replicas may share a server. None when it cannot be placed."""
    if server_gpus >= gpus_per_replica:
        return -(-replicas // (server_gpus // gpus_per_replica))
    if server_gpus >= 8 and gpus_per_replica % server_gpus == 0:
        return replicas * gpus_per_replica // server_gpus
    return None


def cheapest_cloud_offer(
    offers: list[Offer] | tuple[Offer, ...],
    gpu: str,
    gpus_per_replica: int,
    replicas: int = 1,
    kinds: tuple[str, ...] = ("cloud-on-demand",),
) -> tuple[Offer, float] | None:
    """The cheapest cloud offer of ``kinds`` and its hourly cost for ``replicas`` copies of a
    ``gpus_per_replica``-GPU replica (whole instances, :func:`servers_for`)."""
    best: tuple[Offer, float] | None = None
    for o in offers_for(offers, gpu):
        if o.kind not in kinds or o.usd_per_gpu_hour is None:
            continue
        instances = servers_for(o.gpus, gpus_per_replica, replicas)
        if instances is None:
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


def cheapest_rental(
    offers: list[Offer] | tuple[Offer, ...],
    gpu: GpuSpec,
    gpus_per_replica: int,
    replicas: int,
    kinds: tuple[str, ...] = ("cloud-on-demand",),
) -> Rental | None:
    """The cheapest cloud capacity of ``kinds`` (on-demand unless told) for ``replicas`` replicas
    on ``gpu``. A MIG slice is priced as its share of whole rented cards: a card holds
    ``floor(1 / share)`` such slices."""
    if gpu.mig_profile:
        per_card = slices_per_card(gpu)
        best = cheapest_cloud_offer(offers, gpu.card_id, 1, cards_needed(gpu, 1, replicas), kinds)
        if best is None:
            return None
        offer, usd = best
        held = round(usd / offer.usd_per_gpu_hour) * per_card if offer.usd_per_gpu_hour else replicas
        return Rental(
            offer, usd, max(held, replicas), f"{per_card} x {gpu.mig_profile} slices per rented {gpu.card_id}"
        )
    best = cheapest_cloud_offer(offers, gpu.id, gpus_per_replica, replicas, kinds)
    if best is None:
        return None
    offer, usd = best
    held = round(usd / offer.usd_per_gpu_hour) // gpus_per_replica if offer.usd_per_gpu_hour else replicas
    return Rental(offer, usd, max(held, replicas))
