"""The memory model: vLLM logs reproduced, hand-computed cases, and invariants."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from inferplan.errors import DoesNotFitError, InputError
from inferplan.sizing.capacity import max_context_tokens, min_gpus, plan_memory
from inferplan.sizing.memory import (
    activation_peak_bytes,
    kv_bytes_per_sequence,
    kv_bytes_per_token_layer,
)
from inferplan.sizing.weights import weight_bytes, weight_bytes_per_gpu
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import EngineProfile, get_engine
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision
from inferplan.units import GIB
from tests.conftest import DATA

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from validate_memory import comparisons

ROWS: list[dict[str, Any]] = yaml.safe_load((DATA / "vllm_memory_logs.yaml").read_text())
BF16, FP8KV, BF16KV = get_precision("bf16"), get_kv_dtype("fp8"), get_kv_dtype("bf16")


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_reproduces_vllm_logs(row: dict[str, Any]) -> None:
    """Weights within 1%, KV-cache capacity (GiB, blocks, tokens) within 5%; a known miss no
    worse than its stated error."""
    for metric, predicted, logged in comparisons(row):
        if "known_miss" in row:
            assert abs(predicted / logged - 1) * 100 <= row["known_error_pct"] + 0.5, (row["id"], metric)
        elif metric == "weights_gib":
            assert predicted == pytest.approx(logged, rel=0.01), (row["id"], metric)
        elif metric in ("kv_cache_gib", "num_gpu_blocks", "kv_tokens"):
            assert predicted == pytest.approx(logged, rel=0.05), (row["id"], metric)


def test_llama8b_kv_bytes_per_token() -> None:
    m = load_model("llama-3.1-8b")
    assert kv_bytes_per_token_layer(m.attention, BF16KV) * m.num_layers == 131072  # 128 KiB
    assert kv_bytes_per_token_layer(m.attention, FP8KV) * m.num_layers == 65536


def test_mla_kv_is_latent_and_not_split_by_tp() -> None:
    m = load_model("deepseek-v3")
    per = kv_bytes_per_token_layer(m.attention, BF16KV, tp=1)
    assert per == (512 + 64) * 2
    assert kv_bytes_per_token_layer(m.attention, BF16KV, tp=8) == per


def test_kv_heads_replicated_beyond_tp() -> None:
    m = load_model("llama-3.1-70b")  # 8 KV heads
    at8 = kv_bytes_per_token_layer(m.attention, BF16KV, tp=8)
    assert kv_bytes_per_token_layer(m.attention, BF16KV, tp=16) == at8 == 2 * 128 * 2


def test_sliding_window_caps_kv() -> None:
    m = load_model("gpt-oss-120b")
    par = Parallelism()
    short = kv_bytes_per_sequence(m, 128, BF16KV, par)
    long = kv_bytes_per_sequence(m, 100_000, BF16KV, par)
    per_layer_token = kv_bytes_per_token_layer(m.attention, BF16KV)
    full_only = 18 * per_layer_token * 100_000
    window_part = long - full_only
    assert 0 < window_part <= 18 * per_layer_token * (128 + 2 * 16)
    assert short < long


def test_int4_and_fp8_weight_bytes() -> None:
    m = load_model("llama-3.1-70b")
    bf16 = weight_bytes(m, BF16).total
    fp8 = weight_bytes(m, get_precision("fp8")).total
    int4 = weight_bytes(m, get_precision("int4")).total
    embed_head = 2 * 128256 * 8192 * 2
    assert fp8 == pytest.approx((bf16 - embed_head) / 2 + embed_head, rel=1e-3)
    assert int4 < fp8 < bf16
    # group-128 scales and zeros add 20 bits per 128 weights
    assert get_precision("int4").bytes_per_param == pytest.approx(0.5 + 20 / 1024)


def test_gpt_oss_native_mxfp4_quantizes_experts_only() -> None:
    m = load_model("gpt-oss-120b")
    w = weight_bytes(m, get_precision("mxfp4"))
    assert 60e9 < w.total < 66e9  # the checkpoint is ~65 GB on the hub


def test_pp_splits_layers_and_tp_splits_weights() -> None:
    m = load_model("llama-3.1-405b")
    one = weight_bytes_per_gpu(m, BF16, Parallelism())
    tp8 = weight_bytes_per_gpu(m, BF16, Parallelism(tp=8))
    pp2 = weight_bytes_per_gpu(m, BF16, Parallelism(tp=8, pp=2))
    assert tp8 == pytest.approx(one / 8, rel=0.01)
    assert pp2 == pytest.approx(tp8 / 2, rel=0.03)


def test_activation_formula_matches_fitted_slope() -> None:
    m = load_model("llama-3.1-8b")
    per_token = activation_peak_bytes(m, 1000) / 1000
    assert per_token == pytest.approx(109_760, rel=0.02)  # memory.csv#19 vs #24 slope


def test_fits_answers() -> None:
    plan = plan_memory(Deployment(load_model("llama-3.1-70b"), get_gpu("h100-sxm"), BF16, BF16KV, Parallelism(tp=4)))
    assert plan.fits
    seqs = plan.max_sequences(8192)
    assert seqs == int(plan.kv_cache_bytes // plan.sequence_bytes(8192))
    ctx = max_context_tokens(plan, seqs)
    assert ctx >= 8192 and plan.sequence_bytes(ctx) * seqs <= plan.kv_cache_bytes
    assert plan.sequence_bytes(ctx + 16) * seqs > plan.kv_cache_bytes


def test_min_gpus() -> None:
    m = load_model("llama-3.1-70b")
    plan = min_gpus(Deployment(m, get_gpu("h100-sxm"), BF16, BF16KV), 8192, 1)
    assert plan.deployment.gpus_per_replica == 2
    plan = min_gpus(Deployment(m, get_gpu("h200-sxm"), get_precision("fp8"), BF16KV), 8192, 1)
    assert plan.deployment.gpus_per_replica == 1
    with pytest.raises(DoesNotFitError):
        min_gpus(Deployment(load_model("llama-3.1-405b"), get_gpu("l4"), BF16, BF16KV), 8192, 1, max_gpus=8)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gpu_memory_utilization": 0.0},
        {"gpu_memory_utilization": 1.5},
        {"block_size": 3},
        {"max_num_batched_tokens": 0},
        {"max_num_seqs": -1},
    ],
)
def test_engine_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        EngineProfile("x", 0.0, 0.0, **kwargs)


@pytest.mark.parametrize("tp", [0, -1, 5000])
def test_parallelism_rejects_bad_values(tp: int) -> None:
    with pytest.raises(InputError):
        Parallelism(tp=tp)


def test_tp_must_divide_heads() -> None:
    with pytest.raises(InputError, match="does not divide"):
        plan_memory(Deployment(load_model("llama-3.1-8b"), get_gpu("h100-sxm"), BF16, BF16KV, Parallelism(tp=3)))


MODELS = [
    "llama-3.1-8b",
    "gemma-2-27b",
    "deepseek-v2-lite",
    "mixtral-8x7b",
    "gpt-oss-20b",
    "qwen3-30b-a3b",
    "falcon-7b",
]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(MODELS), a=st.integers(1, 200_000), b=st.integers(1, 200_000))
def test_kv_never_decreases_with_context(name: str, a: int, b: int) -> None:
    m = load_model(name)
    lo, hi = sorted((a, b))
    assert kv_bytes_per_sequence(m, lo, BF16KV, Parallelism()) <= kv_bytes_per_sequence(m, hi, BF16KV, Parallelism())


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(MODELS),
    ctx=st.integers(1, 65536),
    c1=st.integers(1, 64),
    c2=st.integers(1, 64),
)
def test_memory_needed_never_decreases_with_concurrency(name: str, ctx: int, c1: int, c2: int) -> None:
    m = load_model(name)
    lo, hi = sorted((c1, c2))
    per = kv_bytes_per_sequence(m, ctx, BF16KV, Parallelism())
    assert per * lo <= per * hi


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(MODELS))
def test_wider_precision_never_needs_less(name: str) -> None:
    m = load_model(name)
    order = ["int4", "int8", "fp8", "bf16"]
    sizes = [weight_bytes(m, get_precision(p)).total for p in order]
    assert sizes == sorted(sizes)
    kv8 = kv_bytes_per_sequence(m, 4096, FP8KV, Parallelism())
    assert kv8 < kv_bytes_per_sequence(m, 4096, BF16KV, Parallelism())


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from([*MODELS, "llama-3.1-70b", "deepseek-v3"]), k=st.integers(0, 3))
def test_tp_never_increases_weights_per_gpu(name: str, k: int) -> None:
    m = load_model(name)
    tp_a, tp_b = 2**k, 2 ** (k + 1)
    if m.attention.num_heads % tp_b:
        return
    a = weight_bytes_per_gpu(m, BF16, Parallelism(tp=tp_a))
    b = weight_bytes_per_gpu(m, BF16, Parallelism(tp=tp_b))
    assert b <= a


@settings(max_examples=30, deadline=None)
@given(util=st.floats(0.5, 0.95), ctx=st.integers(256, 32768))
def test_more_memory_never_fewer_sequences(util: float, ctx: int) -> None:
    m = load_model("llama-3.1-8b")
    gpu = get_gpu("h100-sxm")
    vllm = get_engine("vllm")
    low = plan_memory(Deployment(m, gpu, BF16, BF16KV, engine=replace(vllm, gpu_memory_utilization=util)))
    high = plan_memory(
        Deployment(m, gpu, BF16, BF16KV, engine=replace(vllm, gpu_memory_utilization=min(util + 0.04, 1.0)))
    )
    assert high.max_sequences(ctx) >= low.max_sequences(ctx)
    assert high.kv_cache_bytes / GIB > low.kv_cache_bytes / GIB
