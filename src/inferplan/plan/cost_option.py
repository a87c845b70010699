"""One way to pay for serving a load (a lease, a purchase, a cloud bill, a hosted API) and how
its spend accrues month by month.

A purchase paid in cash costs its price at month 0, then its running costs; financed (a
financing rate above 0), it costs a loan payment per month over the depreciation period
instead. Every other option is a monthly bill.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from inferplan.specs.hardware import GpuSpec
from inferplan.specs.prices import ApiPrice, Offer

__all__ = ["CostOption", "FleetKind", "FleetSizes", "annuity_usd_per_month", "first_month_not_dearer"]

#: Which fleet an option pays for.
FleetKind = Literal["peak", "mean", "tokens"]

#: The longest horizon a crossing is searched over (months).
HORIZON_MONTHS = 120


def annuity_usd_per_month(principal_usd: float, rate_per_year: float, months: int) -> float:
    """The loan payment that repays ``principal_usd`` over ``months``:
    P i / (1 - (1 + i)^-n) with i = rate / 12 (a standard annuity); P / n at a rate of 0
    (straight-line depreciation)."""
    if rate_per_year <= 0:
        return principal_usd / months
    i = rate_per_year / 12.0
    return principal_usd * i / (1.0 - (1.0 + i) ** -months)


@dataclass(frozen=True, slots=True)
class FleetSizes:
    """Replicas of one configuration for the mean load and for the peak, on bare metal and in a
    cloud VM (whose overheads can need more), and the requests/s each replica is planned for."""

    gpu: GpuSpec
    gpus_per_replica: int
    bare_mean: int
    bare_peak: int
    cloud_mean: int
    cloud_peak: int
    bare_rate_per_replica: float = 0.0
    cloud_rate_per_replica: float = 0.0


@dataclass(frozen=True, slots=True)
class CostOption:
    """A priced option. ``fleet`` says which fleet it pays for: the ``peak`` fleet (owned or
    committed capacity must hold the peak), the ``mean`` fleet (elastic cloud scales with the
    load) or ``tokens`` (a hosted API bills what is used). ``parts`` are its monthly costs."""

    key: str
    label: str
    fleet: FleetKind
    replicas: int
    gpus: int
    servers: int
    server_gpus: int
    offer: Offer | None
    running_usd_per_month: float
    parts: dict[str, float] = field(default_factory=dict)
    capital_usd: float = 0.0
    capital_months: int = 1
    financed_usd_per_month: float = 0.0
    note: str = ""
    api: ApiPrice | None = None

    @property
    def upfront_usd(self) -> float:
        """Paid at month 0: a purchase's price unless it is financed."""
        return self.capital_usd if self.financed_usd_per_month == 0 else 0.0

    @property
    def usd_per_month(self) -> float:
        """The average monthly cost: running costs plus the purchase written off (or the loan
        payment) over the depreciation period."""
        if self.capital_usd == 0:
            return self.running_usd_per_month
        capital = self.financed_usd_per_month or self.capital_usd / self.capital_months
        return self.running_usd_per_month + capital

    @property
    def is_owned(self) -> bool:
        return self.key in ("lease", "purchase")

    @property
    def phrase(self) -> str:
        """The option as a sentence names it: 'buying', 'the elastic on-demand cloud'."""
        fixed = {
            "lease": "leasing",
            "purchase": "buying",
            "cloud_on_demand": "the elastic on-demand cloud",
            "cloud_always_on": "the always-on on-demand cloud",
            "cloud_spot": "the elastic spot cloud",
            "api": "the hosted API",
        }
        return fixed.get(self.key, f"a {self.label.removeprefix('cloud, ')}")

    def cumulative_usd(self, months: float) -> float:
        """Spend after ``months``: up front, then running costs and any loan payments."""
        financed = self.financed_usd_per_month * min(months, float(self.capital_months))
        return self.upfront_usd + self.running_usd_per_month * months + financed


def first_month_not_dearer(a: CostOption, b: CostOption, horizon: int = HORIZON_MONTHS) -> float | None:
    """The first month at which ``a`` has cost no more in total than ``b`` (0 when it never
    cost more; None when not within ``horizon`` months). Both spends are linear between whole
    months, so the crossing inside a month is found exactly by interpolation."""
    gap = a.cumulative_usd(0.0) - b.cumulative_usd(0.0)
    if gap <= 0 and all(a.cumulative_usd(m) <= b.cumulative_usd(m) + 1e-6 for m in (1.0, float(horizon))):
        return 0.0
    for month in range(horizon):
        start = a.cumulative_usd(month) - b.cumulative_usd(month)
        end = a.cumulative_usd(month + 1) - b.cumulative_usd(month + 1)
        if start > 0 >= end:
            return month + start / (start - end)
    return None
