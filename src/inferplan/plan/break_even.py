"""When owning pays: the share of hours above which owned servers cost less than the elastic
cloud, the months until a purchase has paid for itself, whether a purchase is front-loaded,
and the months at which the cumulative spends cross.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferplan.plan.cost_option import CostOption, first_month_not_dearer

__all__ = ["MIN_HOURS_FRACTION", "BreakEven", "break_even", "break_even_hours_fraction", "crossings"]

#: The smallest share of hours a question may ask for (``--hours-fraction``).
MIN_HOURS_FRACTION = 0.01
#: Horizon of the cumulative chart (months).
CHART_MONTHS = 36


def _usd(x: float) -> str:
    return f"${x:,.0f}"


def break_even_hours_fraction(owned_usd_per_month: float, fixed_usd: float, usd_per_share: float) -> float:
    """The share of hours h at which owning costs the same as the elastic cloud, whose bill is
    fixed + per_share x h: h = (owned - fixed) / per_share (infinite when the cloud is free)."""
    return (owned_usd_per_month - fixed_usd) / usd_per_share if usd_per_share > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class BreakEven:
    """``hours_fraction`` is set only when it lies within (1%, 100%]; the sentences say the rest."""

    hours_fraction: float | None
    hours_sentence: str
    payoff_months: float | None
    payoff_sentence: str
    front_loaded: str


def _hours(
    owned: CostOption | None, elastic: CostOption | None, fixed_usd: float, share: float
) -> tuple[float | None, str]:
    if owned is None and elastic is None:
        return None, "No bare-metal and no on-demand cloud price: owning and renting cannot be compared."
    if owned is None:
        return None, "No bare-metal price to compare with the cloud."
    if elastic is None:
        return None, "No on-demand cloud price to compare owning with."
    per_share = (elastic.usd_per_month - fixed_usd) / share
    h = break_even_hours_fraction(owned.usd_per_month, fixed_usd, per_share)
    written_off = f", the purchase written off over {owned.capital_months} months" if owned.capital_usd else ""
    what = f"{owned.phrase} ({_usd(owned.usd_per_month)}/month{written_off})"
    if h > 1:
        return None, (
            f"Owning never pays at this load: even around the clock the elastic on-demand cloud "
            f"({_usd(fixed_usd + per_share)}/month) costs less than {what}."
        )
    if h <= MIN_HOURS_FRACTION:
        return None, f"Owning always pays: {what} costs less than the elastic on-demand cloud even at 1% of the hours."
    return h, (
        f"Break-even: {what} costs less than the elastic on-demand cloud when the demand runs more than {h:.0%} of the "
        f"hours (it runs {share:.0%} here)."
    )


def _payoff(purchase: CostOption | None, rivals: list[CostOption]) -> tuple[float | None, str, str]:
    if purchase is None or not rivals:
        return None, "", ""
    rival = min(rivals, key=lambda o: o.usd_per_month)
    months = first_month_not_dearer(purchase, rival)
    name = rival.phrase
    if months is None:
        payoff = f"Buying never pays for itself against {name} within 10 years."
    elif months == 0:
        payoff = f"Buying costs less than {name} from the first month."
    else:
        late = f", after its {purchase.capital_months}-month depreciation" if months > purchase.capital_months else ""
        payoff = f"Buying pays for itself after {months:,.1f} months against {name}{late}."
    front = ""
    if purchase.upfront_usd > 0 and purchase.usd_per_month < rival.usd_per_month:
        year_p, year_r = purchase.cumulative_usd(12), rival.cumulative_usd(12)
        if year_p > year_r:
            front = (
                f"The purchase is front-loaded: {_usd(purchase.upfront_usd)} is paid up front, so after 12 months it "
                f"has cost {_usd(year_p)} against {_usd(year_r)} for {name}, although per month it costs less "
                f"({_usd(purchase.usd_per_month)} against {_usd(rival.usd_per_month)})."
            )
    return months, payoff, front


def break_even(options: list[CostOption], fixed_usd: float, hours_fraction: float) -> BreakEven:
    """Break-even of the cheapest owned option against the elastic on-demand cloud (whose
    bill has ``fixed_usd`` that does not scale with the hours), and of the cheapest purchase
    against the cheapest option that is rented (lease or cloud, spot excluded)."""
    by_key = {o.key: o for o in options}
    owned = [o for o in options if o.is_owned]
    best_owned = min(owned, key=lambda o: o.usd_per_month) if owned else None
    share, hours_sentence = _hours(best_owned, by_key.get("cloud_on_demand"), fixed_usd, hours_fraction)
    rivals = [o for o in options if o.key not in ("purchase", "cloud_spot", "api")]
    months, payoff, front = _payoff(by_key.get("purchase"), rivals)
    return BreakEven(share, hours_sentence, months, payoff, front)


def crossings(options: list[CostOption], months: int = CHART_MONTHS) -> list[tuple[float, str, str]]:
    """(month, option, other) for every month within ``months`` at which one option's
    cumulative spend falls to another's (the lines cross there; a purchase starts above)."""
    out = []
    for one in options:
        for other in options:
            m = first_month_not_dearer(one, other, months) if one is not other else None
            if m is not None and 0 < m <= months:
                out.append((m, one.key, other.key))
    return sorted(out)
