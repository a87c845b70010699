"""Cost arithmetic against hand-computed cases, and the price catalog's validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferplan.errors import ConfigError, InputError
from inferplan.plan.cost import (
    HOURS_PER_MONTH,
    CostAssumptions,
    Costing,
    Fleet,
    bare_metal_monthly_usd,
    break_even_utilization,
    compare_costs,
    cost_per_million_tokens_usd,
    power_monthly_usd,
)
from inferplan.specs.hardware import get_gpu
from inferplan.specs.prices import Offer, default_offers, load_offers, parse_offers_text, read_price_file
from inferplan.specs.rentals import cheapest_cloud_offer

H100 = get_gpu("h100-sxm")


def offer(
    kind: str,
    gpus: int = 8,
    per_gpu_hour: float | None = None,
    usd: float | None = None,
    monthly: float | None = None,
    oid: str = "x",
) -> Offer:
    return Offer(oid, "p", "prod", "h100-sxm", gpus, kind, per_gpu_hour, usd, monthly, "2026", "test")


def test_power_by_hand() -> None:
    a = CostAssumptions(usd_per_kwh=0.10, pue=1.5, gpu_load=0.5, host_power_w_per_gpu=100)
    # 8 x (700 x 0.5 + 100) W = 3.6 kW x 1.5 x 730 h x 0.10 $/kWh
    assert power_monthly_usd(8, 700, a) == pytest.approx(3.6 * 1.5 * 730 * 0.10)


def test_purchase_amortised_by_hand() -> None:
    a = CostAssumptions(
        usd_per_kwh=0.0,
        colocation_usd_per_kw_month=0.0,
        support_fraction_per_year=0.12,
        amortisation_months=36,
    )
    monthly, parts = bare_metal_monthly_usd(8, H100, offer("purchase", usd=360_000), a)
    assert parts["amortisation"] == pytest.approx(10_000)
    assert parts["support"] == pytest.approx(3_600)
    assert monthly == pytest.approx(13_600)


def test_lease_with_colocation_by_hand() -> None:
    a = CostAssumptions(usd_per_kwh=0.0, colocation_usd_per_kw_month=100, gpu_load=1.0, host_power_w_per_gpu=0)
    monthly, parts = bare_metal_monthly_usd(16, H100, offer("lease", monthly=20_000), a)
    assert parts["lease"] == 40_000  # two 8-GPU servers
    assert parts["colocation"] == pytest.approx(16 * 0.7 * 100)
    assert monthly == pytest.approx(40_000 + 1120)


def test_cost_per_million_and_break_even() -> None:
    # $7,300 a month at 1,000 tok/s full time = 2.628e9 tokens -> $2.778 / Mtok
    assert cost_per_million_tokens_usd(7300, 1000, 1.0) == pytest.approx(7300 / (1000 * 730 * 3600) * 1e6)
    assert cost_per_million_tokens_usd(7300, 0, 1.0) == float("inf")
    assert break_even_utilization(5000, 20000) == 0.25


def test_compare_costs_by_hand() -> None:
    offers = [
        offer("cloud-on-demand", per_gpu_hour=2.0, oid="c"),
        offer("purchase", usd=292_000, oid="b"),
    ]
    a = CostAssumptions(
        usd_per_kwh=0.0,
        colocation_usd_per_kw_month=0.0,
        support_fraction_per_year=0.0,
        amortisation_months=36,
        egress_usd_per_gb=0.0,
    )
    fleet = Fleet(H100, 8, 1.0, 1.0, 1000.0)
    c = compare_costs(fleet, offers, Costing(1.0, 1.0, a))
    assert c.cloud_elastic_monthly_usd == pytest.approx(16 * HOURS_PER_MONTH)
    assert c.bare_monthly_usd == pytest.approx(292_000 / 36)
    assert c.break_even_hours_fraction == pytest.approx((292_000 / 36) / (16 * HOURS_PER_MONTH))
    assert c.totals_usd["36_months"]["bare_metal"] == pytest.approx(292_000)
    half = compare_costs(fleet, offers, Costing(0.5, 1.0, a))
    assert half.cloud_elastic_monthly_usd == pytest.approx(8 * HOURS_PER_MONTH)
    assert half.bare_monthly_usd == c.bare_monthly_usd
    spiky = compare_costs(fleet, offers, Costing(1.0, 2.0, a))
    assert spiky.bare_replicas == 2 and spiky.bare_monthly_usd == pytest.approx(2 * 292_000 / 36)
    assert spiky.cloud_elastic_monthly_usd == c.cloud_elastic_monthly_usd


def test_egress_by_hand() -> None:
    offers = [offer("cloud-on-demand", per_gpu_hour=2.0)]
    a = CostAssumptions(egress_usd_per_gb=0.1, bytes_per_output_token=100)
    c = compare_costs(Fleet(H100, 8, 1.0, 1.0, 1000.0), offers, Costing(assumptions=a))
    assert c.cloud_egress_monthly_usd == pytest.approx(1000 * 730 * 3600 * 100 / 1e9 * 0.1)


def test_whole_instances_are_rented() -> None:
    offers = [
        offer("cloud-on-demand", gpus=8, per_gpu_hour=3.0, oid="eight"),
        offer("cloud-on-demand", gpus=1, per_gpu_hour=2.0, oid="one"),
    ]
    best = cheapest_cloud_offer(offers, "h100-sxm", 4, 1)
    assert best is not None and best[0].id == "eight" and best[1] == 24.0  # TP4 needs one server
    best = cheapest_cloud_offer(offers, "h100-sxm", 1, 3)
    assert best is not None and best[0].id == "one" and best[1] == 6.0


@pytest.mark.parametrize("kwargs", [{"usd_per_kwh": -1.0}, {"pue": 0.9}, {"amortisation_months": 0}])
def test_bad_assumptions(kwargs: dict[str, float]) -> None:
    with pytest.raises(InputError):
        CostAssumptions(**kwargs)  # type: ignore[arg-type]


def test_bad_compare_inputs() -> None:
    with pytest.raises(InputError):
        Costing(hours_fraction=0.0)
    with pytest.raises(InputError):
        Costing(peak_to_mean=0.5)


def test_catalog_prices_are_dated_and_sourced() -> None:
    offers = default_offers()
    assert len(offers) >= 20
    assert all(o.as_of and o.source for o in offers)
    assert not any(o.kind == "lease" for o in offers)  # none are public


def test_user_price_file_adds_and_reports_line(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text(
        "- {id: my-lease, provider: Colo, product: 8x H100, gpu: h100-sxm, gpus: 8, kind: lease,\n"
        "   usd_per_month: 15000, as_of: 2026-11-01, source: our quote}\n"
    )
    offers = load_offers(parse_offers_text(read_price_file(good), str(good)))
    assert any(o.id == "my-lease" and o.usd_per_month == 15000 for o in offers)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- {id: a, provider: p, product: q, gpu: h100-sxm, gpus: 8, kind: lease, usd_per_month: 1,\n"
        "   as_of: x, source: y}\n"
        "- {id: b, provider: p, product: q, gpu: h100-sxm, gpus: 8, kind: lease, usd_per_hour: 5,\n"
        "   as_of: x, source: y}\n"
    )
    with pytest.raises(ConfigError, match=r"bad.yaml, line 3, field 'entry'|bad.yaml, line 3"):
        parse_offers_text(read_price_file(bad), str(bad))
    worse = tmp_path / "worse.yaml"
    worse.write_text(
        "- {id: a, provider: p, product: q, gpu: h100-sxm, gpus: zero, kind: lease,\n"
        "   usd_per_month: 1, as_of: x, source: y}\n"
    )
    with pytest.raises(ConfigError, match=r"worse.yaml, line 1, field 'gpus'"):
        parse_offers_text(read_price_file(worse), str(worse))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(
        "- {id: a, provider: p, product: q, gpu: h999, gpus: 8, kind: lease, usd_per_month: 1, as_of: x, source: y}\n"
    )
    with pytest.raises(ConfigError, match="not in the GPU catalog"):
        parse_offers_text(read_price_file(unknown), str(unknown))
    with pytest.raises(ConfigError, match="cannot read"):
        read_price_file(tmp_path / "missing.yaml")
