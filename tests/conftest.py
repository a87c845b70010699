from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from inferplan.bench.client import RequestRecord
from inferplan.bench.store import ResultsStore
from inferplan.perf.simulator import SimResult
from inferplan.perf.workload import Requests

DATA = Path(__file__).parent / "data"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def tiny_llama_config(**overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 256,
        "max_position_embeddings": 512,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture
def tiny_config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_llama_config()))
    return path


def store_simulated_run(
    store: ResultsStore, reqs: Requests, sim: SimResult, config: dict[str, Any] | None = None
) -> int:
    """Store what a client would have measured from a server behaving as simulated
    (tokens evenly spaced between the first and the last; each request sent when the simulation
    sent it, a session's later turns included); returns the run id."""
    run_id = store.start_run("serve", config or {}, {})
    for i in range(len(reqs)):
        gap = (sim.finish_s[i] - sim.first_token_s[i]) / max(reqs.output_tokens[i] - 1, 1)
        times = [float(sim.first_token_s[i] + k * gap) for k in range(int(reqs.output_tokens[i]))]
        record = RequestRecord(
            i,
            float(sim.arrival_s[i]),
            float(sim.arrival_s[i]),
            times[0],
            float(sim.finish_s[i]),
            times,
            int(reqs.input_tokens[i]),
            int(reqs.output_tokens[i]),
        )
        store.add_request(run_id, record)
    return run_id


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fuzz suites' counts (cases run, and tracebacks, HTTP 500s and NaNs found: all zero)."""
    from tests.fuzzing import COUNTS, FIGURES

    if COUNTS:
        terminalreporter.write_line("fuzz: " + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))
    for name, figure in FIGURES.items():
        terminalreporter.write_line(f"{name}: {figure}")
