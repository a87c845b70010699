"""The hosted-API alternative: the same open model bought per token from a public inference
API, priced for the workload's mix of input and output tokens, and the load below which it
costs less than serving the model yourself.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from inferplan.plan.cost_option import CostOption
from inferplan.specs.prices import ApiPrice

__all__ = ["api_cheaper_below", "api_option", "api_prices_for", "api_usd_per_request"]

#: Load intervals searched for the API's break-even (each re-prices the self-hosted fleet).
MAX_INTERVALS = 400


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def api_prices_for(model: str, prices: tuple[ApiPrice, ...]) -> list[ApiPrice]:
    """The API prices that serve ``model`` (a catalog name, compared without case or punctuation)."""
    key = _key(model)
    return [p for p in prices if key in {_key(m) for m in p.models}]


def api_usd_per_request(price: ApiPrice, isl: int, osl: int) -> float:
    """(input tokens x $/M input + output tokens x $/M output) / 1e6."""
    return (isl * price.usd_per_mtok_input + osl * price.usd_per_mtok_output) / 1e6


def api_option(prices: list[ApiPrice], requests_per_month: float, isl: int, osl: int) -> CostOption | None:
    """The cheapest published API for this token mix, as an option billed per token."""
    if not prices:
        return None
    ranked = sorted(prices, key=lambda p: (api_usd_per_request(p, isl, osl), p.id))
    best, dearest = ranked[0], ranked[-1]
    monthly = api_usd_per_request(best, isl, osl) * requests_per_month
    note = (
        f"{best.provider} {best.model}: ${best.usd_per_mtok_input:g} / ${best.usd_per_mtok_output:g} per million "
        f"input / output tokens ({best.as_of}); the cheapest of {len(ranked)} published"
    )
    if len(ranked) > 1:
        note += (
            f", the dearest {dearest.provider} at ${dearest.usd_per_mtok_input:g} / ${dearest.usd_per_mtok_output:g}"
        )
    return CostOption(
        "api", "hosted API", "tokens", 0, 0, 0, 0, None, monthly, {"tokens": monthly}, note=note, api=best
    )


def _breakpoints(steps: list[float]) -> Iterator[float]:
    """Merged multiples of each step, ascending: the loads at which some fleet adds a replica."""
    heap = [(s, s) for s in steps if s > 0]
    heapq.heapify(heap)
    last = 0.0
    while heap:
        value, step = heapq.heappop(heap)
        heapq.heappush(heap, (value + step, step))
        if value > last * (1 + 1e-12):
            last = value
            yield value


def api_cheaper_below(
    usd_per_request_month: float, self_hosted_at: Callable[[float], float | None], steps: list[float]
) -> tuple[float | None, float]:
    """The load (requests/s) below which the API costs less than the cheapest self-hosted
    option, and the highest load searched. ``usd_per_request_month``: the API's monthly cost per
    request/s of load; ``self_hosted_at(rate)``: the cheapest self-hosted monthly cost at that
    load; ``steps``: loads per replica of each fleet (its cost changes only at their multiples).
    Between two such loads self-hosting costs S and the API a x rate, so they cross at S / a."""
    low = 0.0
    for count, high in enumerate(_breakpoints(steps)):
        if count >= MAX_INTERVALS:
            break
        cost = self_hosted_at(high)
        if cost is None:
            return None, low
        if usd_per_request_month * high >= cost:
            return max(low, cost / usd_per_request_month), high
        low = high
    return None, low
