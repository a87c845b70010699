"""Price files are untrusted input: strict UTF-8, bounded size and nesting, no aliases, finite
positive prices, and every refusal one line that names the file, the line and the field. The
built-in catalog and the documented example load; the docs and the web form name every field
and assumption."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferplan.errors import ConfigError, InferplanError
from inferplan.limits import MAX_PRICE_FILE_BYTES
from inferplan.plan.question import question_from
from inferplan.plan.service import resolve_question
from inferplan.specs.cost_assumptions import ASSUMPTIONS, CostAssumptions
from inferplan.specs.hardware import gpu_catalog
from inferplan.specs.prices import _PriceEntry, default_prices, parse_price_text, read_price_file

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "prices.md"
EXAMPLE = ROOT / "docs" / "prices-example.yaml"
UI = ROOT / "src" / "inferplan" / "data" / "ui.html"
LEASE = "{id: a, provider: p, product: q, gpu: h100-sxm, gpus: 8, kind: lease, usd_per_month: 1, as_of: x, source: y}"


def refusal(text: str, origin: str = "mine.yaml") -> str:
    with pytest.raises(ConfigError) as exc:
        parse_price_text(text, origin)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(origin), message
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"- {LEASE}\n- {LEASE.replace('id: a', 'id: b').replace('usd_per_month: 1', 'usd_per_hour: 5')}\n",
            r"line 2: a lease entry needs exactly one of usd_per_month",
        ),
        ("- " + LEASE.replace("gpus: 8", "gpus: zero") + "\n", r"line 1, field 'gpus'"),
        ("- " + LEASE.replace("h100-sxm", "h999") + "\n", r"field 'gpu': gpu 'h999' is not in the GPU catalog"),
        ("- " + LEASE.replace("usd_per_month: 1", "usd_per_month: .inf") + "\n", r"field 'usd_per_month'.*finite"),
        ("- " + LEASE.replace("usd_per_month: 1", "usd_per_month: .nan") + "\n", r"field 'usd_per_month'"),
        ("- " + LEASE.replace("usd_per_month: 1", "usd_per_month: -5") + "\n", r"greater than 0"),
        (
            "- " + LEASE.replace("usd_per_month: 1", "usd_per_month: " + "9" * 5000) + "\n",
            r"line 1, column \d+: a number of 5,000 characters",
        ),
        ("- " + LEASE.replace("gpus: 8", "gpus: true") + "\n", r"field 'gpus'"),
        ("- " + LEASE.replace("kind: lease", "kind: rental") + "\n", r"field 'kind'"),
        ("- " + LEASE.replace("source: y}", "source: y, colour: red}") + "\n", r"unknown field 'colour'"),
        (f"- {LEASE}\n- {LEASE}\n", r"id 'a' is used twice"),
        ("- {id: a, id: b}\n", r"line 1: field 'id' is given twice"),
        (
            "- "
            + LEASE.replace("kind: lease", "kind: cloud-reserved").replace("usd_per_month: 1", "usd_per_hour: 1")
            + "\n",
            r"needs product, gpu, gpus, term_months|needs term_months",
        ),
        (
            "- {id: c, provider: p, kind: card, product: q, gpu: l40s, usd: 1, as_of: x, source: y}\n",
            r"needs server_sizes",
        ),
        (
            "- {id: c, provider: p, kind: card, product: q, gpu: l40s, usd: 1, server_sizes: [0],"
            " as_of: x, source: y}\n",
            r"field 'server_sizes'",
        ),
        (
            "- {id: api, provider: p, kind: api, model: m, models: [x], usd_per_mtok_input: 1,"
            " usd_per_mtok_output: 1, gpu: h100-sxm, as_of: x, source: y}\n",
            r"an api entry prices tokens; remove gpu",
        ),
        ("assumptions: {pue: 0.5}\n", r"line 1, assumption 'pue': .*between 1 and 5"),
        ("assumptions:\n  usd_per_kwh: 0.2\n  beer: 1\n", r"line 3, assumption 'beer': unknown cost assumption"),
        ("assumptions: {usd_per_kwh: .inf}\n", r"assumption 'usd_per_kwh'"),
        ("menu: []\n", r"unknown section 'menu'"),
        ("- just text\n", r"every price entry must be a mapping"),
        ("42\n", r"expected a list of price entries"),
        ("- {id: x\n", r"line 2, column 1: not valid YAML"),
        ("- {id: a, provider: p\n  - : x\n", r"line 2, column 5: not valid YAML"),
        ("--- []\n--- []\n", r"not valid YAML"),
        ("\t- a\n", r"line 1, column 1: not valid YAML"),
        ("a: &x [1]\nb: *x\n", r"anchors and aliases are not allowed"),
        ("[" * 50 + "]" * 50, r"nested more than 6 levels|nesting"),
        ("[" * 5000 + "]" * 5000, r"nested more than 6 levels|nesting"),
    ],
)
def test_refusals_are_one_line_with_file_line_and_field(text: str, expected: str) -> None:
    assert re.search(expected, refusal(text)), refusal(text)


def test_non_utf8_and_size_are_refused_before_parsing(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"- {id: a}\n- {id: caf\xe9}\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(line 2, byte 20\); save it as UTF-8"):
        read_price_file(bad)
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as fh:  # 26 MB, sparse: refused from its size, never read
        fh.truncate(26_000_000)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=f"26,000,000 bytes; the limit is {MAX_PRICE_FILE_BYTES:,}"):
        read_price_file(huge)
    assert time.perf_counter() - start < 0.5
    with pytest.raises(ConfigError, match="larger than"):
        parse_price_text("#" * (MAX_PRICE_FILE_BYTES + 1), "pasted")
    with pytest.raises(ConfigError, match="cannot read price file"):
        read_price_file(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        read_price_file(tmp_path)


def test_a_file_adds_offers_api_prices_and_assumptions(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "assumptions: {usd_per_kwh: 0.2, amortisation_months: 48}\n"
        "prices:\n"
        f"  - {LEASE.replace('id: a', 'id: my-lease').replace('usd_per_month: 1', 'usd_per_month: 15000')}\n"
        "  - {id: lambda-8x-h100-sxm, provider: Lambda, kind: cloud-on-demand, product: 8x H100, gpu: h100-sxm,"
        " gpus: 8, usd_per_gpu_hour: 1.5, as_of: 2026-11-01, source: my quote}\n"
        "  - {id: my-api, provider: me, kind: api, model: m, models: [llama-3.1-8b], usd_per_mtok_input: 0.01,"
        " usd_per_mtok_output: 0.02, as_of: 2026-11-01, source: me}\n",
        encoding="utf-8",
    )
    text = read_price_file(mine)
    setup = resolve_question(question_from({"model": "llama-3.1-8b", "prices_yaml": text}), files=False)
    by_id = {o.id: o for o in setup.offers}
    assert by_id["my-lease"].usd_per_month == 15000 and by_id["my-lease"].hosting_included
    assert by_id["lambda-8x-h100-sxm"].usd_per_gpu_hour == 1.5  # the same id replaces the catalog's
    assert any(p.id == "my-api" for p in setup.costing.api_prices)
    a = setup.costing.assumptions
    assert a.usd_per_kwh == 0.2 and a.depreciation_months == 48
    edited = resolve_question(
        question_from({"model": "llama-3.1-8b", "prices_yaml": text, "cost_set": {"usd_per_kwh": 0.3}}), files=False
    )
    assert edited.costing.assumptions.usd_per_kwh == 0.3  # --cost-set wins over the file
    assert parse_price_text("", "empty").offers == () and parse_price_text("prices:\n", "none").offers == ()


def test_the_catalog_is_dated_sourced_and_covers_every_gpu() -> None:
    book = default_prices()
    assert len(book.offers) >= 150 and len(book.api) >= 70
    for o in book.offers:
        assert o.as_of and o.source and o.gpu in gpu_catalog(), o.id
        if o.kind == "card":
            assert o.server_sizes and o.usd_purchase, o.id
        if o.estimate:
            assert o.note, f"{o.id}: an estimate says why in its note"
    for p in book.api:
        assert p.as_of and p.source.startswith("http") and p.models, p.id
    cloud = {o.gpu for o in book.offers if o.is_cloud}
    bare = {o.gpu for o in book.offers if o.kind in ("lease", "purchase", "card")}
    # the gaps the catalog documents in its header and the README (no public price found)
    assert set(gpu_catalog()) - cloud == {"h200-nvl", "gh200-144gb", "b300", "mi355x"}
    no_bare = {"a100-sxm-40gb", "h100-pcie", "h100-nvl", "h200-nvl", "gh200-96gb", "gh200-144gb", "b300", "mi355x"}
    assert set(gpu_catalog()) - bare == no_bare


def test_the_documented_example_loads_and_the_docs_name_every_field() -> None:
    book = parse_price_text(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    assert {o.kind for o in book.offers} == {"lease", "purchase", "cloud-reserved"} and len(book.api) == 1
    assert book.assumptions["depreciation_months"] == 48
    docs = DOCS.read_text(encoding="utf-8")
    for name in _PriceEntry.model_fields:
        assert f"`{name}`" in docs, f"docs/prices.md does not describe field {name}"
    for name in ASSUMPTIONS:
        assert f"| `{name}` |" in docs, f"docs/prices.md does not list assumption {name}"


def test_the_web_form_edits_every_assumption() -> None:
    ui = UI.read_text(encoding="utf-8")
    defaults = CostAssumptions().as_dict()
    for name in ASSUMPTIONS:
        match = re.search(rf'data-cost="{name}"[^>]*placeholder="([^"]+)"', ui)
        assert match, f"ui.html has no input for {name}"
        assert float(match.group(1)) == defaults[name], f"ui.html's placeholder for {name} is not its default"


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_any_text_is_read_or_refused_in_one_line(text: str) -> None:
    try:
        parse_price_text(text, "fuzz.yaml")
    except InferplanError as exc:
        assert "\n" not in str(exc)
