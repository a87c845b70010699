"""Issue 13 from memory to plan: datasets, sessions and shared prompts with the prefix cache, LoRA
adapters, CPU offload, in ``fit``, ``predict``, ``plan`` and ``deploy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from inferplan.cli import app
from inferplan.errors import ConfigError
from inferplan.perf.datasets import read_dataset
from inferplan.perf.prefix_cache import PrefixCache
from inferplan.perf.sessions import TrafficShape

SAMPLE = Path(__file__).parent / "data" / "sharegpt_sample.jsonl"
DEPLOY = ["deploy", "llama-3.1-8b", "--gpu", "h100-sxm", "--context", "4096", "--concurrency", "8"]
PLAN = ["plan", "llama-3.1-8b", "--rate", "5", "--ttft", "500ms", "--gpus", "l40s"]
LORA = ["--lora-adapters", "8"]
CHAT = ["--isl", "200", "--osl", "150", "--multi-turn", "5", "--shared-prefix", "4x2000"]


def _json(*args: str, code: int = 0) -> dict[str, Any]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_sample_dataset_and_other_formats(tmp_path: Path) -> None:
    data = read_dataset(SAMPLE)
    assert len(data.rows) == 40 and data.estimated  # text without counts: words x 4/3
    first = json.loads(SAMPLE.read_text().splitlines()[0])["conversations"]
    assert data.rows[0].prompt == first[0]["value"]
    assert data.rows[0].input_tokens == round(len(first[0]["value"].split()) * 4 / 3)
    lengths = tmp_path / "lengths.csv"
    lengths.write_text("input_tokens,output_tokens\n100,20\n300,40\n")
    counted = read_dataset(lengths)
    assert not counted.estimated and [(r.input_tokens, r.output_tokens) for r in counted.rows] == [(100, 20), (300, 40)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"neither": 1}\n')
    with pytest.raises(ConfigError):
        read_dataset(bad)


def test_predict_with_a_dataset_uses_its_lengths() -> None:
    d = _json(
        "predict", "llama-3.1-8b", "--gpu", "h100-sxm", "--rate", "2", "--num-requests", "200", "--dataset", str(SAMPLE)
    )
    traffic = d["workload_features"]["traffic"]
    assert "sharegpt_sample.jsonl" in json.dumps(traffic)
    mean_in = sum(r.input_tokens for r in read_dataset(SAMPLE).rows) / 40
    assert d["workload"]["isl"] == round(mean_in) and traffic["mean_prompt_tokens"] == round(mean_in)


def test_multi_turn_hit_rate_and_ttft_with_and_without_prefix_caching() -> None:
    args = ["predict", "llama-3.1-8b", "--gpu", "h100-sxm", "--concurrency", "16", "--num-requests", "400", *CHAT]
    on, off = _json(*args), _json(*args, "--no-prefix-caching")
    cache = on["workload_features"]["prefix_cache"]
    # turn k's prompt: 2000 + (k - 1) x 350 + 200; cached: the full 16-token blocks of what came before
    shape = TrafficShape(turns=5, shared_prefixes=4, shared_prefix_tokens=2000)
    structural = shape.cached_tokens(200, 150, 16) / shape.mean_prompt_tokens(200, 150)
    assert cache["structural_hit_rate"] == pytest.approx(structural)
    assert 0.85 < cache["hit_rate"] <= structural + 1e-9  # first uses of a prompt miss, nothing evicted
    assert cache["hit_tokens"] == pytest.approx(cache["hit_rate"] * cache["queried_tokens"])
    assert off["workload_features"]["prefix_cache"]["enabled"] is False
    ttft_on, ttft_off = on["metrics"]["ttft_s"]["p50"], off["metrics"]["ttft_s"]["p50"]
    assert ttft_on < 0.5 * ttft_off  # prefill of ~10% of the prompt instead of all of it


def test_lru_prefix_cache_keeps_what_is_held_and_evicts_the_tail_first() -> None:
    for host_blocks, expected in ((0, (2, 0)), (4, (2, 1))):
        cache = PrefixCache(host_blocks)
        cache.acquire([1, 2, 3])
        assert cache.lookup([1, 2, 4]) == (2, 0)
        cache.trim(free_capacity=0)  # blocks in use are never evicted
        assert cache.lookup([1, 2, 3]) == (3, 0)
        cache.release([1, 2, 3])  # freed tail first: block 3 is the least recently used
        cache.trim(free_capacity=2)
        assert cache.lookup([1, 2, 3]) == expected  # evicted, or kept in the host tier
        assert cache.stats().evictions == 1


def test_lora_memory_time_and_flags() -> None:
    d = _json(
        "fit", "llama-3.1-8b", "--gpu", "h100-sxm", "--lora-adapters", "8", "--lora-rank", "16", "--max-loras", "4"
    )
    lora = d["lora"]
    # per layer r x (d_in + d_out): q, o 4096+4096; k, v 4096+1024; gate, up, down 4096+14336; 32 layers, BF16
    per_layer = 16 * (2 * 8192 + 2 * 5120 + 3 * 18432)
    assert lora["adapter_bytes"] == 32 * per_layer * 2
    assert lora["slot_bytes_per_gpu"] == 4 * lora["adapter_bytes"]
    assert lora["load_s"] > 0 and lora["decode_step_extra_s"] > 0
    result = CliRunner().invoke(
        app,
        [*DEPLOY, "--lora-adapters", "2", "--lora-module", "sql=/m/sql", "--no-prefix-caching"],
    )
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1]
    for flag in ("--enable-lora", "--max-loras 2", "--max-lora-rank 16", "--lora-modules sql=/m/sql"):
        assert flag in line
    assert "--no-enable-prefix-caching" in line


def test_offload_answer_for_llama_70b_bf16_on_one_h100() -> None:
    d = _json("fit", "llama-3.1-70b", "--gpu", "h100-sxm", "--dtype", "bf16", code=5)  # 5: does not fit
    answer = d["offload_answer"]
    offloaded = answer["offloaded_weights_bytes_per_gpu"]
    assert 60 * 2**30 < offloaded < 80 * 2**30  # 131 GiB of weights, about 66 fit beside the KV
    # every decode step reads the offloaded bytes over the host link (PCIe 5.0 x16, about 35 GB/s)
    assert answer["ms_per_token"] / 1e3 >= offloaded / 64e9
    assert answer["slowdown"] == pytest.approx(answer["ms_per_token"] / answer["ms_per_token_in_gpu_memory"])
    assert answer["slowdown"] > 10 and "--cpu-offload-gb" in answer["sentence"]


def test_plan_explains_the_workload_and_caching() -> None:
    result = CliRunner().invoke(
        app,
        [*PLAN, "--multi-turn", "5", "--shared-prefix", "4x2000", "--isl", "300", "--osl", "150"],
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "Sessions of 5 turns" in text and "Prefix caching:" in text and "Without prefix caching" in text


def test_bad_workload_options_get_one_line() -> None:
    for args, words in (
        (["--shared-prefix", "4x"], "shared-prefix"),
        (["--multi-turn", "0"], "multi-turn"),
    ):
        result = CliRunner().invoke(app, ["predict", "llama-3.1-8b", "--gpu", "h100-sxm", "--rate", "1", *args])
        assert result.exit_code != 0 and words in result.output and "Traceback" not in result.output
