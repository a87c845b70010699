"""Cost arithmetic against hand-computed cases: servers of every size, purchases in cash and
financed, leases, cloud on demand, committed and spot, the hosted API, break-even, scale-up."""

from __future__ import annotations

import math

import pytest

from inferplan.errors import InputError
from inferplan.plan.api_prices import api_cheaper_below, api_option, api_prices_for, api_usd_per_request
from inferplan.plan.bare_metal import bare_metal_options, estimated_server, power_usd_per_month
from inferplan.plan.break_even import break_even, break_even_hours_fraction
from inferplan.plan.cloud_cost import SPOT_CAVEAT, cloud_options, egress_usd_per_month, scale_up_misses
from inferplan.plan.cost import HOURS_PER_MONTH, Costing, Fleet, compare_costs, fleet_sizes
from inferplan.plan.cost_option import CostOption, FleetSizes, annuity_usd_per_month, first_month_not_dearer
from inferplan.plan.service import cost_assumptions_from
from inferplan.specs.cost_assumptions import ASSUMPTIONS, CostAssumptions
from inferplan.specs.hardware import get_gpu
from inferplan.specs.prices import ApiPrice, Offer
from inferplan.specs.rentals import cheapest_cloud_offer

H100 = get_gpu("h100-sxm")
L40S = get_gpu("l40s")
#: No power, colocation, support or egress: only the prices count.
BARE = CostAssumptions(
    usd_per_kwh=0.0, colocation_usd_per_kw_month=0.0, support_fraction_per_year=0.0, egress_usd_per_gb=0.0
)


def offer(kind: str, gpus: int = 8, *, per_gpu_hour: float | None = None, **kw: object) -> Offer:
    """An offer for h100-sxm (``usd``, ``monthly``, ``oid``, ``gpu`` and Offer's keywords)."""
    usd, monthly = kw.pop("usd", None), kw.pop("monthly", None)
    oid, gpu = str(kw.pop("oid", kind)), str(kw.pop("gpu", "h100-sxm"))
    return Offer(oid, "p", "prod", gpu, gpus, kind, per_gpu_hour, usd, monthly, "2026", "test", **kw)  # type: ignore[arg-type]


def sizes(gpu: str = "h100-sxm", gpr: int = 1, mean: int = 1, peak: int = 1) -> FleetSizes:
    return FleetSizes(get_gpu(gpu), gpr, mean, peak, mean, peak, 10.0, 10.0)


def test_power_by_hand() -> None:
    a = CostAssumptions(usd_per_kwh=0.10, pue=1.5, gpu_load=0.5, host_power_w_per_gpu=100)
    # 8 x (700 x 0.5 + 100) W = 3.6 kW x 1.5 x 730 h x 0.10 $/kWh
    assert power_usd_per_month(8, 700, a) == pytest.approx(3.6 * 1.5 * 730 * 0.10)


def test_server_estimated_from_a_card_states_its_formula() -> None:
    card = offer("card", 1, usd=8500, gpu="l40s", oid="l40s-card", server_sizes=(1, 4))
    a = CostAssumptions(host_server_base_usd=2000, host_server_usd_per_gpu=3500)
    four = estimated_server(card, 4, a)
    assert four.usd_purchase == 4 * 8500 + 2000 + 4 * 3500 == 50_000
    assert four.kind == "purchase" and four.gpus == 4 and four.estimate
    assert "ESTIMATE: 4 x $8,500 (l40s-card" in four.note and "= $50,000" in four.note


def test_a_one_gpu_replica_gets_the_server_size_that_fits() -> None:
    card = offer("card", 1, usd=8000, gpu="l40s", oid="c", server_sizes=(1, 2, 4, 8))
    a = CostAssumptions(host_server_base_usd=2000, host_server_usd_per_gpu=3000)
    one = bare_metal_options([card], L40S, 1, 1, a)["purchase"]
    assert one.server_gpus == 1 and one.gpus == 1 and one.capital_usd == 8000 + 2000 + 3000
    assert "spare" not in one.note  # nothing idle
    three = bare_metal_options([card], L40S, 1, 3, a)["purchase"]
    # 3 replicas: three 1-GPU servers (3 x $13,000) cost less than one 4-GPU server ($46,000)
    assert three.capital_usd == 3 * 13_000 and three.servers == 3


def test_an_eight_gpu_server_only_when_nothing_smaller_is_offered_and_it_says_so() -> None:
    only_big = [offer("purchase", 8, usd=240_000, oid="hgx")]
    o = bare_metal_options(only_big, H100, 1, 1, BARE)["purchase"]
    assert o.server_gpus == 8 and o.gpus == 8 and o.replicas == 1
    assert "7 of 8 GPUs spare" in o.note and "no smaller purchase offer fits" in o.note
    both = [*only_big, offer("purchase", 1, usd=40_000, oid="single")]
    assert bare_metal_options(both, H100, 1, 1, BARE)["purchase"].offer.id == "single"  # type: ignore[union-attr]


def test_purchase_in_cash_by_hand() -> None:
    a = CostAssumptions(usd_per_kwh=0.0, colocation_usd_per_kw_month=0.0, support_fraction_per_year=0.12)
    o = bare_metal_options([offer("purchase", usd=360_000)], H100, 8, 1, a)["purchase"]
    assert o.parts["capital"] == pytest.approx(10_000)  # 360,000 / 36 months
    assert o.parts["support"] == pytest.approx(3_600)  # 12% a year
    assert o.usd_per_month == pytest.approx(13_600)
    assert o.upfront_usd == 360_000
    assert o.cumulative_usd(0) == 360_000 and o.cumulative_usd(12) == pytest.approx(360_000 + 12 * 3_600)


def test_financed_purchase_is_an_annuity_with_nothing_up_front() -> None:
    # P i / (1 - (1 + i)^-n), i = 1%/month, n = 36: 100,000 -> 3,321.43 a month
    assert annuity_usd_per_month(100_000, 0.12, 36) == pytest.approx(3321.43, abs=0.01)
    assert annuity_usd_per_month(36_000, 0.0, 36) == 1000
    a = CostAssumptions(usd_per_kwh=0.0, colocation_usd_per_kw_month=0.0, support_fraction_per_year=0.0,
                        financing_rate_per_year=0.12)  # fmt: skip
    o = bare_metal_options([offer("purchase", usd=100_000)], H100, 8, 1, a)["purchase"]
    assert o.upfront_usd == 0 and o.usd_per_month == pytest.approx(3321.43, abs=0.01)
    assert o.cumulative_usd(48) == pytest.approx(36 * 3321.43, abs=1)  # paid off after 36 months


def test_lease_includes_hosting_unless_it_says_not() -> None:
    a = CostAssumptions(usd_per_kwh=0.0, colocation_usd_per_kw_month=100, gpu_load=1.0, host_power_w_per_gpu=0)
    hosted = bare_metal_options([offer("lease", monthly=20_000)], H100, 8, 2, a)["lease"]
    assert hosted.usd_per_month == 40_000 and hosted.servers == 2 and hosted.parts == {"lease": 40_000}
    bare = bare_metal_options([offer("lease", monthly=20_000, hosting_included=False)], H100, 8, 2, a)["lease"]
    assert bare.parts["colocation"] == pytest.approx(16 * 0.7 * 100)  # 16 GPUs x 700 W x $100/kW
    assert bare.usd_per_month == pytest.approx(40_000 + 1120)


def test_cloud_options_by_hand() -> None:
    pool = [
        offer("cloud-on-demand", 1, per_gpu_hour=2.0, oid="od"),
        offer("cloud-spot", 1, per_gpu_hour=0.8, oid="spot"),
        offer("cloud-reserved", 1, per_gpu_hour=1.5, oid="1y", term_months=12),
    ]
    options, missing = cloud_options(pool, sizes(mean=2, peak=3), 0.5, 10.0)
    by = {o.key: o for o in options}
    assert by["cloud_on_demand"].usd_per_month == pytest.approx(2 * 2.0 * HOURS_PER_MONTH * 0.5 + 10)
    assert by["cloud_always_on"].usd_per_month == pytest.approx(3 * 2.0 * HOURS_PER_MONTH + 20)  # all hours
    assert by["cloud_12m"].usd_per_month == pytest.approx(3 * 1.5 * HOURS_PER_MONTH + 20)
    assert by["cloud_spot"].usd_per_month == pytest.approx(2 * 0.8 * HOURS_PER_MONTH * 0.5 + 10)
    assert SPOT_CAVEAT in by["cloud_spot"].note
    assert by["cloud_on_demand"].fleet == "mean" and by["cloud_12m"].fleet == "peak"
    assert missing == ["no 3-year cloud commitment price for a h100-sxm instance holding a replica of 1 GPU"]
    _, none = cloud_options([], sizes(), 1.0, 0.0)
    assert any("no on-demand cloud price" in m for m in none) and any("spot" in m for m in none)


def test_whole_instances_are_rented() -> None:
    offers = [
        offer("cloud-on-demand", 8, per_gpu_hour=3.0, oid="eight"),
        offer("cloud-on-demand", 1, per_gpu_hour=2.0, oid="one"),
        offer("cloud-reserved", 1, per_gpu_hour=0.1, oid="cheap-but-committed", term_months=36),
    ]
    best = cheapest_cloud_offer(offers, "h100-sxm", 4, 1)
    assert best is not None and best[0].id == "eight" and best[1] == 24.0  # TP4 needs one server
    best = cheapest_cloud_offer(offers, "h100-sxm", 1, 3)
    assert best is not None and best[0].id == "one" and best[1] == 6.0  # on demand unless told


def test_egress_by_hand() -> None:
    a = CostAssumptions(egress_usd_per_gb=0.1, bytes_per_output_token=100, other_egress_gb_per_month=50)
    assert egress_usd_per_month(1e9, a) == pytest.approx((1e9 * 100 / 1e9 + 50) * 0.1)


def test_fleet_sizes_for_the_mean_and_the_peak() -> None:
    fleet = Fleet(H100, 1, 5.0, 1000, 200, bare_rate_per_replica=30.0, cloud_rate_per_replica=20.0)
    s = fleet_sizes(fleet, 10.0)
    assert (s.bare_mean, s.bare_peak, s.cloud_mean, s.cloud_peak) == (1, 2, 1, 3)  # 50 req/s: /30, /20
    # the simulator's check planned 2 replicas where the steady state said 1: the peak keeps that margin
    checked = fleet_sizes(Fleet(H100, 1, 5.0, 1000, 200, 30.0, 20.0, bare_replicas=2), 10.0)
    assert (checked.bare_mean, checked.bare_peak) == (2, 4)


def test_break_even_share_reads_right() -> None:
    owned = CostOption("purchase", "bare metal, bought", "peak", 1, 8, 1, 8, None, 5_000.0)
    cloud = CostOption("cloud_on_demand", "cloud", "mean", 1, 8, 1, 8, None, 10_000.0)
    assert break_even_hours_fraction(5_000, 0, 10_000) == 0.5
    half = break_even([owned, cloud], 0.0, 1.0)
    assert half.hours_fraction == 0.5 and "more than 50% of the hours" in half.hours_sentence
    dear = CostOption("purchase", "bare metal, bought", "peak", 1, 8, 1, 8, None, 31_100.0)
    never = break_even([dear, cloud], 0.0, 1.0)
    assert never.hours_fraction is None and never.hours_sentence.startswith("Owning never pays at this load")
    cheap = CostOption("lease", "bare metal, leased", "peak", 1, 8, 1, 8, None, 50.0)
    always = break_even([cheap, cloud], 0.0, 1.0)
    assert always.hours_fraction is None and always.hours_sentence.startswith("Owning always pays")
    # at half the hours the cloud bill halves, and the break-even share does not move
    assert break_even([owned, replace_usd(cloud, 5_000.0)], 0.0, 0.5).hours_fraction == 0.5


def replace_usd(o: CostOption, usd: float) -> CostOption:
    from dataclasses import replace

    return replace(o, running_usd_per_month=usd)


def test_purchase_payoff_and_front_loading_by_hand() -> None:
    buy = CostOption("purchase", "bare metal, bought", "peak", 1, 8, 1, 8, None, 0.0, capital_usd=15_000,
                     capital_months=36)  # fmt: skip
    rent = CostOption("cloud_on_demand", "cloud", "mean", 1, 8, 1, 8, None, 1_000.0)
    assert first_month_not_dearer(buy, rent) == pytest.approx(15.0)  # 15,000 up front, 1,000 a month saved
    be = break_even([buy, rent], 0.0, 1.0)
    assert be.payoff_months == pytest.approx(15.0) and "after 15.0 months" in be.payoff_sentence
    # costs less per month (416.67 < 1,000) but more after 12 months (15,000 > 12,000): said in words
    assert "front-loaded" in be.front_loaded and "$15,000" in be.front_loaded and "$12,000" in be.front_loaded
    cheap = CostOption("purchase", "bought", "peak", 1, 8, 1, 8, None, 0.0, capital_usd=6_000, capital_months=36)
    assert break_even([cheap, rent], 0.0, 1.0).front_loaded == ""  # 6,000 < 12,000 after a year


def test_api_price_and_break_even_load_by_hand() -> None:
    p = ApiPrice("a", "API Co", "llama", ("llama-3.1-8b",), 0.10, 0.40, "2026", "https://x")
    assert api_usd_per_request(p, 1000, 200) == pytest.approx((1000 * 0.10 + 200 * 0.40) / 1e6)
    assert api_prices_for("Llama-3.1-8B", (p,)) == [p] and api_prices_for("llama-3.1-70b", (p,)) == []
    o = api_option([p], 1e6, 1000, 200)
    assert o is not None and o.usd_per_month == pytest.approx(180.0) and o.fleet == "tokens"
    # self-hosting costs 1,000 a month per 10 req/s; the API 100 per req/s: cheaper below 10 req/s
    below, _ = api_cheaper_below(100.0, lambda r: 1000.0 * math.ceil(r / 10 - 1e-9), [10.0])
    assert below == pytest.approx(10.0)
    below, _ = api_cheaper_below(200.0, lambda r: 1000.0 * math.ceil(r / 10 - 1e-9), [10.0])
    assert below == pytest.approx(5.0)
    never, searched = api_cheaper_below(1.0, lambda r: 1000.0 * math.ceil(r / 10 - 1e-9), [10.0])
    assert never is None and searched > 100  # cheaper at every load searched


def test_scale_up_misses_by_hand() -> None:
    a = CostAssumptions(scale_up_delay_s=120, scale_ups_per_day=2)
    s = scale_up_misses(sizes(mean=1, peak=3), (5.0, 50.0, 20.0), a, 1.0)
    # 50 req/s arrive, 1 replica serves 20: 30 req/s x 120 s = 3,600 missed per scale-up
    assert s.missed_per_scale_up == pytest.approx(3600)
    assert s.miss_fraction == pytest.approx(2 * 3600 / (5.0 * 86400))
    steady = scale_up_misses(sizes(mean=1, peak=1), (5.0, 5.0, 20.0), a, 1.0)
    assert steady.missed_per_scale_up == 0 and steady.miss_fraction == 0


def test_compare_costs_end_to_end_by_hand() -> None:
    offers = [offer("cloud-on-demand", 8, per_gpu_hour=2.0, oid="c"), offer("purchase", usd=292_000, oid="b")]
    fleet = Fleet(H100, 8, 4.0, 1000, 250, bare_rate_per_replica=5.0, cloud_rate_per_replica=5.0)
    c = compare_costs(fleet, offers, Costing(1.0, 1.0, BARE))
    assert c.option("cloud_on_demand").usd_per_month == pytest.approx(16 * HOURS_PER_MONTH)  # type: ignore[union-attr]
    assert c.option("purchase").usd_per_month == pytest.approx(292_000 / 36)  # type: ignore[union-attr]
    assert c.break_even.hours_fraction == pytest.approx((292_000 / 36) / (16 * HOURS_PER_MONTH))
    assert c.totals_usd["36_months"]["purchase"] == pytest.approx(292_000)
    assert c.owned_utilization == pytest.approx(4.0 / 5.0)
    spiky = compare_costs(fleet, offers, Costing(1.0, 2.0, BARE))  # 8 req/s at the peak: 2 replicas owned
    assert spiky.bare_replicas == 2 and spiky.option("purchase").capital_usd == 2 * 292_000  # type: ignore[union-attr]
    assert spiky.option("cloud_on_demand").usd_per_month == pytest.approx(16 * HOURS_PER_MONTH)  # type: ignore[union-attr]
    assert spiky.scale_up.to_replicas == 2 and spiky.scale_up.missed_per_scale_up == pytest.approx(3 * 300)
    assert "no hosted-API price" in " ".join(c.missing)


@pytest.mark.parametrize(
    "kwargs",
    [{"usd_per_kwh": -1.0}, {"pue": 0.9}, {"depreciation_months": 0}, {"pue": math.nan}, {"usd_per_kwh": math.inf}],
)
def test_bad_assumptions(kwargs: dict[str, float]) -> None:
    with pytest.raises(InputError, match="cost assumption"):
        CostAssumptions(**kwargs)  # type: ignore[arg-type]


def test_assumption_edits_by_name() -> None:
    assert cost_assumptions_from({"amortisation_months": 48}).depreciation_months == 48  # the old name works
    with pytest.raises(InputError, match="unknown cost assumption 'beer'"):
        cost_assumptions_from({"beer": 1.0})
    with pytest.raises(InputError, match="whole months"):
        cost_assumptions_from({"depreciation_months": 36.5})
    defaults = CostAssumptions()
    assert set(ASSUMPTIONS) == set(defaults.as_dict())
    for name, spec in ASSUMPTIONS.items():
        assert spec.low <= getattr(defaults, name) <= spec.high and spec.meaning and spec.unit


def test_bad_compare_inputs() -> None:
    for kwargs in ({"hours_fraction": 0.0}, {"hours_fraction": math.nan}, {"peak_to_mean": 0.5}):
        with pytest.raises(InputError):
            Costing(**kwargs)  # type: ignore[arg-type]
