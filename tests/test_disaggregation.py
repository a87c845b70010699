"""Disaggregated prefill/decode (issue 14): the KV transfer, the simulation of both pools and its
physics (TTFT never beats the prefill alone on the prefill GPUs plus the transfer; decode free of
prefill interference), token conservation, the steady state against the simulation, and the
pools' value object."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferplan.errors import InputError
from inferplan.perf.disaggregation import (
    DisaggSteadyState,
    exposed_transfer_s,
    kv_transfer_bytes,
    prefill_alone_s,
    simulate_disaggregated,
    transfer,
)
from inferplan.perf.metrics import serving_metrics
from inferplan.perf.predict import predict_disaggregated
from inferplan.perf.replica import build_replica
from inferplan.perf.simulator import simulate
from inferplan.perf.workload import Arrivals, LengthDist, Requests, Workload, make_requests
from inferplan.specs.deployment import Deployment
from inferplan.specs.disaggregation import Disaggregated
from inferplan.specs.engines import get_engine
from inferplan.specs.hardware import get_gpu
from inferplan.specs.model_catalog import load_model
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import get_kv_dtype, get_precision

L70 = load_model("llama-3.1-70b")


def pool(
    tp: int = 4, replicas: int = 1, gpu: str = "h100", kv: str = "fp8", model: str = "llama-3.1-70b"
) -> Deployment:
    return Deployment(
        load_model(model), get_gpu(gpu), get_precision("fp8"), get_kv_dtype(kv), Parallelism(tp=tp, dp=replicas)
    )


def split(x: int = 1, y: int = 1, link: str = "ib-ndr", overlap: str | None = None, **kw: object) -> Disaggregated:
    return Disaggregated(pool(replicas=x, **kw), pool(replicas=y, **kw), link, overlap=overlap)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the transfer


def test_kv_bytes_per_request_are_every_layers_kv_of_the_prompt() -> None:
    # Llama-3.1-70B: 80 layers x (K + V) x 8 KV heads x 128 x 1 byte (FP8) per token
    assert kv_transfer_bytes(split(), 8000) == 8000 * 80 * 2 * 8 * 128 * 1
    assert kv_transfer_bytes(split(kv="bf16"), 8000) == 2 * kv_transfer_bytes(split(), 8000)


def test_the_transfer_uses_one_nic_per_gpu_of_the_smaller_replica() -> None:
    t = transfer(split(), 8000, 0.5)
    link = split().kv_link
    assert t.streams == 4
    assert t.wire_s == pytest.approx(t.num_bytes / (4 * link.bw_bytes_per_s * link.allreduce_bus_efficiency))
    assert t.exposed_s == pytest.approx(link.latency_s + t.wire_s)  # vLLM's NixlConnector: after the prefill
    slow = transfer(split(link="eth-100g"), 8000, 0.5)
    assert slow.wire_s > 20 * t.wire_s


@given(st.floats(0, 1.0), st.floats(0.001, 2.0), st.integers(1, 128))
def test_overlap_only_ever_hides_part_of_the_transfer(wire: float, prefill: float, units: int) -> None:
    exposed = exposed_transfer_s(1e-5, wire, prefill, units)
    assert 1e-5 + wire / units - 1e-12 <= exposed <= 1e-5 + wire + 1e-12
    assert exposed <= exposed_transfer_s(1e-5, wire, prefill, max(units // 2, 1)) + 1e-12  # finer hides more


def test_layer_wise_overlap_hides_a_transfer_the_link_keeps_up_with() -> None:
    none = transfer(split(), 8000, 0.5).exposed_s
    layer = transfer(split(overlap="layer"), 8000, 0.5).exposed_s
    assert layer < none / 50  # only the last layer's share is left


# ---------------------------------------------------------------- the simulation and its physics


def requests(n: int = 160, rate: float = 1.5, seed: int = 2) -> Requests:
    wl = Workload(
        LengthDist(6000, "uniform", 3000),
        LengthDist(300, "uniform", 200),
        Arrivals("poisson", rate_per_s=rate),
        n,
        seed,
    )
    return make_requests(wl)


@settings(max_examples=6, deadline=None)
@given(st.sampled_from([(1, 1), (2, 1), (1, 2)]), st.sampled_from([None, "chunk", "layer"]), st.floats(0.5, 3.0))
def test_ttft_never_beats_the_prefill_alone_plus_the_transfer(
    pools: tuple[int, int], overlap: str | None, rate: float
) -> None:
    """On the same GPUs, co-located, a prompt's first token cannot come before its prefill alone; a split adds
    the transfer (whatever part is not overlapped) on top."""
    dis = split(*pools, overlap=overlap)
    req = requests(80, rate)
    sim = simulate_disaggregated(dis, req)
    p_rep = build_replica(dis.prefill.with_replicas(1))
    ttft = sim.result.first_token_s - req.arrival_s
    for i, n in enumerate(req.input_tokens):
        alone = prefill_alone_s(p_rep, int(n))
        assert ttft[i] >= alone + transfer(dis, int(n), alone).exposed_s - 1e-6  # (clock rounding)
    colocated = simulate(build_replica(pool()), req)  # the same GPUs, no split
    alone = np.array([prefill_alone_s(p_rep, int(n)) for n in req.input_tokens])
    assert (colocated.first_token_s - req.arrival_s >= alone - 1e-6).all()


def test_tokens_are_conserved_across_the_pools() -> None:
    req = requests()
    sim = simulate_disaggregated(split(2, 2), req)
    assert np.isfinite(sim.result.finish_s).all()
    assert sim.prefill.step_output_tokens is not None and sim.decode.step_output_tokens is not None
    assert int(sim.prefill.step_output_tokens.sum()) == len(req)  # the prefill pool samples one token each
    assert int(sim.decode.step_output_tokens.sum()) == int(req.output_tokens.sum())  # the decode pool all of them
    assert (sim.result.arrival_s == req.arrival_s).all()
    assert (sim.result.first_token_s >= sim.prefill.finish_s).all()


def test_the_decode_pool_prefills_only_the_last_prompt_token() -> None:
    """A request arriving with its KV is admitted holding it and computes one token to sample from."""
    replica = build_replica(pool())
    with_kv = Requests(np.zeros(1), np.array([8000]), np.array([2]), np.array([8000]))
    without = Requests(np.zeros(1), np.array([8000]), np.array([2]))
    fast, slow = simulate(replica, with_kv), simulate(replica, without)
    assert fast.first_token_s[0] < slow.first_token_s[0] / 10


def test_decode_is_free_of_prefill_interference() -> None:
    """Long prompts: co-located decode steps carry prefill chunks; the split's decode pool does not."""
    req = requests(200, 1.5)
    co = serving_metrics(simulate(build_replica(pool(replicas=2)), req, replicas=2))
    dis = serving_metrics(simulate_disaggregated(split(1, 1), req).result)
    assert dis.tpot_s.p90 < 0.8 * co.tpot_s.p90
    assert dis.tpot_s.p99 < 1.1 * dis.tpot_s.p50  # a steady decode step: only the batch varies
    assert co.tpot_s.p99 > 1.4 * co.tpot_s.p50  # tokens that waited for prefill chunks


def test_the_steady_state_agrees_with_the_simulation() -> None:
    rate = 1.5
    req = requests(300, rate, seed=5)
    dis = split(1, 1)
    m = serving_metrics(simulate_disaggregated(dis, req).result, window=(60.0, float(req.arrival_s.max())))
    wl_isl, wl_osl = int(req.input_tokens.mean()), int(req.output_tokens.mean())
    op = DisaggSteadyState(dis, wl_isl, wl_osl).at_rate(rate).op
    assert op.stable
    assert m.tpot_s.mean == pytest.approx(op.tpot_p90_s, rel=0.25)
    assert 0.5 * op.ttft_p90_s < m.ttft_s.p90 < 2.0 * op.ttft_p90_s


def test_an_overloaded_link_is_unstable() -> None:
    ss = DisaggSteadyState(split(4, 1, link="eth-100g"), 8000, 100)
    assert ss.at_rate(6.0).link_utilization > 0.9 and not ss.at_rate(6.0).op.stable


def test_predict_disaggregated_refuses_a_closed_loop() -> None:
    wl = Workload(LengthDist(1000), LengthDist(100), Arrivals("concurrency", concurrency=4), 20)
    with pytest.raises(InputError, match="arrival times"):
        predict_disaggregated(split(), wl)


# ---------------------------------------------------------------- the pools as a value


def test_the_pools_must_match() -> None:
    with pytest.raises(InputError, match="same --kv-dtype"):
        Disaggregated(pool(kv="fp8"), pool(kv="bf16"))
    with pytest.raises(InputError, match="same model"):
        Disaggregated(pool(), pool(model="llama-3.3-70b"))
    with pytest.raises(InputError, match="--kv-overlap"):
        Disaggregated(pool(), pool(), overlap="sometimes")
    with pytest.raises(InputError, match="P2pNcclConnector"):
        Disaggregated(pool(), pool(), connector="P2pNcclConnector")
    with pytest.raises(InputError, match="unknown interconnect"):
        Disaggregated(pool(), pool(), "carrier-pigeon")


def test_pools_label_and_count() -> None:
    d = split(2, 3)
    assert d.num_gpus == 20
    assert d.label().startswith("2P x (h100-sxm TP4") and "3D x" in d.label() and d.label().endswith("over ib-ndr")
    assert d.engine_connector == "NixlConnector" and d.overlap_mode == "none"


def test_engines_without_disaggregated_serving_are_refused() -> None:
    trt = pool().with_engine(get_engine("trtllm"))
    with pytest.raises(InputError, match="use --engine vllm or sglang"):
        Disaggregated(trt, trt)
