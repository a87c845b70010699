"""A run's measured acceptance of speculative decoding, from vLLM's counters as bench serve records
them (issue 14): the scrape map reads them, and the run's increase gives tau, k and the one rate
that reproduces tau, which predict and plan take as --spec-acceptance."""

from __future__ import annotations

import pytest

from inferplan.bench.spec_acceptance import measured_acceptance
from inferplan.bench.telemetry import parse_prometheus
from inferplan.errors import BenchmarkError
from inferplan.specs.speculation import expected_tokens_per_step

#: vLLM 0.33's exposition (prometheus_client adds _total to counters; one series per engine).
METRICS = """# HELP vllm:spec_decode_num_drafts Number of spec decoding drafts.
# TYPE vllm:spec_decode_num_drafts counter
vllm:spec_decode_num_drafts_total{{engine="0",model_name="m"}} {drafts}
vllm:spec_decode_num_draft_tokens_total{{engine="0",model_name="m"}} {drafted}
vllm:spec_decode_num_accepted_tokens_total{{engine="0",model_name="m"}} {accepted}
vllm:spec_decode_num_accepted_tokens_per_pos_total{{engine="0",model_name="m",position="0"}} 7
vllm:num_requests_running{{engine="0",model_name="m"}} 3
"""


def samples(*points: tuple[float, float, float, float]) -> list[tuple[float, str, float]]:
    out = []
    for t, drafts, drafted, accepted in points:
        text = METRICS.format(drafts=drafts, drafted=drafted, accepted=accepted)
        out += [(t, name, value) for name, value in parse_prometheus(text).items()]
    return out


def test_the_scrape_map_reads_the_counters() -> None:
    values = parse_prometheus(METRICS.format(drafts=10, drafted=30, accepted=18))
    assert values == {"spec_drafts": 10, "spec_draft_tokens": 30, "spec_accepted_tokens": 18, "running": 3}


def test_a_run_gives_its_acceptance() -> None:
    # over the run: 1,000 drafts of 3 tokens, 1,400 accepted -> tau 2.4
    m = measured_acceptance(samples((0.5, 50, 150, 80), (30.0, 1050, 3150, 1480)))
    assert m.drafts == 1000 and m.num_speculative_tokens == 3
    assert m.acceptance_length == pytest.approx(2.4)
    assert m.acceptance_rate == pytest.approx(1400 / 3000)
    assert expected_tokens_per_step([m.per_position_rate] * 3) == pytest.approx(2.4, abs=1e-6)
    assert m.option() == f"{m.per_position_rate:.3f}"


def test_a_run_without_drafts_or_with_bad_counters_is_refused() -> None:
    with pytest.raises(BenchmarkError, match="no speculative drafts"):
        measured_acceptance(samples((0.0, 5, 15, 5), (10.0, 5, 15, 5)))
    with pytest.raises(BenchmarkError, match="disagree"):
        measured_acceptance(samples((0.0, 0, 0, 0), (10.0, 10, 30, 40)))
