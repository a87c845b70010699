"""The accuracy gate: the development set's validation (tests/data/throughput_dev.csv, a copy of
../shared/data/throughput.csv) must not get worse than the checked-in accuracy table
(src/inferplan/data/accuracy.yaml) by more than 2 points in any category's median or p90 error,
nor skip more rows. Regenerate the table when a change makes it better:

    inferplan validate tests/data/throughput_dev.csv --workers 2 --write-accuracy src/inferplan/data/accuracy.yaml
"""

from __future__ import annotations

from typing import Any

import pytest

from inferplan.perf.accuracy import accuracy_table, load_accuracy_table
from inferplan.perf.validate import Outcome, read_measurements, validate_rows
from tests.conftest import DATA

#: Points an error may grow before the gate fails.
SLACK_POINTS = 2.0


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return validate_rows(read_measurements(DATA / "throughput_dev.csv"), workers=2)


@pytest.mark.slow
def test_no_category_gets_worse(outcomes: list[Outcome]) -> None:
    now = accuracy_table(outcomes, "throughput_dev.csv")["categories"]
    checked_in: dict[str, Any] = load_accuracy_table()["categories"]
    worse = []
    for category, row in checked_in.items():
        got = now.get(category)
        assert got is not None, f"category '{category}' disappeared from the validation"
        for stat in ("median_ape_pct", "p90_ape_pct"):
            if row[stat] is not None and got[stat] > row[stat] + SLACK_POINTS:
                worse.append(f"{category} {stat}: {got[stat]:.1f} > {row[stat]:.1f} + {SLACK_POINTS}")
        if got["skipped"] > row["skipped"]:
            worse.append(f"{category}: {got['skipped']} rows skipped, {row['skipped']} in the table")
    assert not worse, "; ".join(worse)


@pytest.mark.slow
def test_every_stated_row_is_predicted(outcomes: list[Outcome]) -> None:
    """No row is skipped for a name; the only skips are the source's derived figures."""
    skips = [o for o in outcomes if o.skipped]
    assert all(o.category == "derived" for o in skips), [o.skipped for o in skips if o.category != "derived"]
