"""Roofline limits, monotonicity and golden step times."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferplan.perf.replica import build_replica
from inferplan.perf.roofline import (
    allreduce_time_s,
    expected_distinct_experts,
    gemm_efficiency,
    roofline_time_s,
    step_shape,
)
from inferplan.sizing.weights import weight_bytes_per_gpu
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.hardware import get_gpu, get_link
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision

BF16, KV = get_precision("bf16"), get_kv_dtype("bf16")


def cost_for(model: str, gpu: str = "h100-sxm", tp: int = 1, dtype: str = "bf16", engine: str = "vllm"):
    dep = Deployment(load_model(model), get_gpu(gpu), get_precision(dtype), KV, Parallelism(tp=tp), get_engine(engine))
    return build_replica(dep).cost


def test_batch1_decode_is_memory_bound_near_weights_over_bandwidth() -> None:
    cost = cost_for("llama-3.1-8b")
    ops = cost.breakdown(step_shape([], [512]))
    gemm_ops = [o for o in ops if o.name in ("qkv_proj", "o_proj", "mlp")]
    assert all(o.bound == "memory" for o in gemm_ops)
    gpu = get_gpu("h100-sxm")
    floor = weight_bytes_per_gpu(load_model("llama-3.1-8b"), BF16, Parallelism()) / gpu.mem_bw_bytes_per_s
    gpu_time = sum(o.time_s for o in ops if o.bound != "overhead")
    assert floor < gpu_time < floor * 1.5


def test_long_prefill_is_compute_bound() -> None:
    cost = cost_for("llama-3.1-70b", tp=4)
    ops = {o.name: o for o in cost.breakdown(step_shape([(8192, 0)], []))}
    assert ops["mlp"].bound == "compute" and ops["qkv_proj"].bound == "compute"
    assert ops["attention"].bound == "compute"


def test_prefill_attention_is_quadratic_decode_attention_linear() -> None:
    cost = cost_for("llama-3.1-8b")
    a1 = {o.name: o for o in cost.breakdown(step_shape([(4096, 0)], []))}["attention"].flops
    a2 = {o.name: o for o in cost.breakdown(step_shape([(8192, 0)], []))}["attention"].flops
    assert a2 / a1 == pytest.approx(4.0, rel=0.01)
    d1 = {o.name: o for o in cost.breakdown(step_shape([], [4096]))}["attention"].bytes
    d2 = {o.name: o for o in cost.breakdown(step_shape([], [8192]))}["attention"].bytes
    assert d2 / d1 == pytest.approx(2.0, rel=1e-6)


def test_fp8_kv_halves_decode_attention_bytes() -> None:
    m, g = load_model("llama-3.1-8b"), get_gpu("h100-sxm")
    b16 = build_replica(Deployment(m, g, BF16, KV)).cost
    b8 = build_replica(Deployment(m, g, BF16, get_kv_dtype("fp8"))).cost
    shape = step_shape([], [4096] * 8)
    a16 = {o.name: o for o in b16.breakdown(shape)}["attention"].bytes
    a8 = {o.name: o for o in b8.breakdown(shape)}["attention"].bytes
    assert a8 == pytest.approx(a16 / 2)


def test_fp8_weights_faster_on_hopper_not_on_ampere() -> None:
    shape = step_shape([(4096, 0)], [])
    h_bf16 = cost_for("llama-3.1-8b").time_s(shape)
    h_fp8 = cost_for("llama-3.1-8b", dtype="fp8").time_s(shape)
    assert h_fp8 < 0.75 * h_bf16
    a_bf16 = cost_for("llama-3.1-8b", gpu="a100-sxm-80gb").time_s(shape)
    a_fp8 = cost_for("llama-3.1-8b", gpu="a100-sxm-80gb", dtype="fp8").time_s(shape)
    assert a_fp8 >= a_bf16 * 0.95  # no FP8 tensor cores: weight-only dequantisation


def test_int4_decode_reads_fewer_bytes() -> None:
    shape = step_shape([], [256])
    assert cost_for("llama-3.1-8b", dtype="int4").time_s(shape) < cost_for("llama-3.1-8b").time_s(shape)


def test_moe_distinct_experts() -> None:
    assert expected_distinct_experts(8, 2, 1) == pytest.approx(2.0)
    assert expected_distinct_experts(8, 2, 1000) == pytest.approx(8.0)
    assert expected_distinct_experts(256, 8, 0) == 0.0
    mixtral = cost_for("mixtral-8x7b", tp=2)
    one = {o.name: o for o in mixtral.breakdown(step_shape([], [100]))}["moe_experts"].bytes
    many = {o.name: o for o in mixtral.breakdown(step_shape([], [100] * 64))}["moe_experts"].bytes
    assert 3.5 < many / one < 4.5  # 2 of 8 experts at batch 1, all 8 at batch 64


def test_allreduce_alpha_beta() -> None:
    link = get_link("nvlink4")
    assert allreduce_time_s(1e6, 1, link) == 0.0
    small, big = allreduce_time_s(1e3, 8, link), allreduce_time_s(1e9, 8, link)
    assert small == pytest.approx(link.latency_s, rel=0.01)
    assert big == pytest.approx(link.latency_s + 2 * 7 / 8 * 1e9 / link.sharp_bus_bytes_per_s)
    assert allreduce_time_s(1e3, 8, link, latency_s=50e-6) == pytest.approx(50e-6, rel=0.01)


def test_pcie_tp_is_slower_than_nvlink() -> None:
    m, g = load_model("llama-3.1-70b"), get_gpu("h100-sxm")
    nv = build_replica(Deployment(m, g, BF16, KV, Parallelism(tp=4))).cost
    pcie = build_replica(Deployment(m, g, BF16, KV, Parallelism(tp=4), tp_link_id="pcie5")).cost
    shape = step_shape([(2048, 0)], [])
    assert pcie.time_s(shape) > nv.time_s(shape) * 1.1


def test_roofline_and_efficiency_helpers() -> None:
    assert roofline_time_s(1e12, 1e9, 1e12, 1e12) == 1.0
    assert roofline_time_s(1e9, 1e12, 1e12, 1e12) == 1.0
    assert gemm_efficiency(24, 0.8, 24) == pytest.approx(0.4)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 256), ctx=st.integers(16, 32768), extra=st.integers(1, 64))
def test_step_time_monotone_in_batch_and_context(batch: int, ctx: int, extra: int) -> None:
    cost = cost_for("llama-3.1-8b")
    base = cost.time_s(step_shape([], [ctx] * batch))
    assert cost.time_s(step_shape([], [ctx] * (batch + extra))) >= base
    assert cost.time_s(step_shape([], [ctx + extra] * batch)) >= base
