"""``inferplan plan``: search, verify the best candidates with the simulator, explain.

The recommendation follows four steps: (1) the VRAM floor, exact and by the rule of
thumb; (2) one GPU or several, and which parallelism; (3) the interconnect it needs;
(4) storage and CPU. Then the cost of owning against renting.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

from inferplan.errors import DoesNotFitError, InfeasibleError, InputError
from inferplan.perf.metrics import ServingMetrics, Slo
from inferplan.perf.predict import predict
from inferplan.perf.workload import Arrivals, LengthDist, Workload
from inferplan.plan.cost import CostAssumptions, CostComparison, compare_costs
from inferplan.plan.search import (
    Candidate,
    Demand,
    Evaluated,
    Targets,
    candidates,
    evaluate,
    pareto_front,
    search,
)
from inferplan.sizing.capacity import min_gpus
from inferplan.sizing.memory import EngineMemoryConfig, Parallelism, weight_bytes
from inferplan.specs.engines import EngineProfile
from inferplan.specs.environment import EnvironmentProfile, get_environment
from inferplan.specs.hardware import GpuSpec, LinkSpec, get_link, gpu_catalog
from inferplan.specs.model import ModelSpec, count_params
from inferplan.specs.precision import Precision, get_precision
from inferplan.specs.prices import Offer
from inferplan.units import GB, GIB

__all__ = ["Plan", "PlanStep", "StorageAssumptions", "make_plan"]


VERIFY_TOKEN_BUDGET = 4_000_000  # prompt + output tokens simulated per check of a candidate
VERIFY_MAX_STEPS = 300_000  # engine steps per check; past it, metrics cover the requests finished


@dataclass(frozen=True, slots=True)
class StorageAssumptions:
    """Weight loading and CPU sizing assumptions (not measured here; measure with your
    own hardware): NVMe read speed, network storage speed, tokenizer speed per core,
    CPU cores per GPU worker process and for the API server."""

    nvme_gb_per_s: float = 6.5  # one PCIe 4.0 x4 NVMe drive, sequential read
    network_storage_gb_per_s: float = 1.1  # 10 GbE NFS/S3 at ~90% of line rate
    tokenizer_tokens_per_s_per_core: float = 250_000.0
    cores_per_gpu: float = 2.0
    server_cores: float = 4.0


@dataclass(frozen=True, slots=True)
class PlanStep:
    title: str
    text: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    model: ModelSpec
    demand: Demand
    targets: Targets
    ranked: list[Evaluated]
    chosen: Evaluated
    verified: ServingMetrics | None
    steps: list[PlanStep]
    cost: CostComparison | None
    pareto: list[tuple[float, float, str]]
    search_time_s: float
    environment: EnvironmentProfile
    engine: EngineProfile


@dataclass(frozen=True, slots=True)
class _Context:
    """What every step of planning shares."""

    model: ModelSpec
    demand: Demand
    targets: Targets
    engine: EngineProfile
    offers: list[Offer]
    env: EnvironmentProfile

    def evaluate(
        self, cand: Candidate, env: EnvironmentProfile | None = None, tp_link: LinkSpec | None = None
    ) -> Evaluated | None:
        return evaluate(
            self.model, cand, self.demand, self.targets, self.engine, self.offers, env or self.env, tp_link=tp_link
        )

    def search(self, cands: list[Candidate], rank_by: str = "cost") -> list[Evaluated]:
        return search(self.model, cands, self.demand, self.targets, self.engine, self.offers, self.env, rank_by)


def _verify(ctx: _Context, e: Evaluated, num_requests: int) -> tuple[Evaluated, ServingMetrics]:
    """Simulate the candidate at the demand; add replicas (up to 4 more) until the simulated
    p90 latencies meet the targets."""
    c, demand, targets = e.candidate, ctx.demand, ctx.targets
    if demand.rate_per_s is not None:
        arrivals = Arrivals("poisson", rate_per_s=demand.rate_per_s)
    else:
        assert demand.concurrency is not None
        arrivals = Arrivals("concurrency", concurrency=demand.concurrency)
    # long requests: fewer of them, so that checking a plan stays interactive (under ~30 s)
    num_requests = max(min(num_requests, int(VERIFY_TOKEN_BUDGET // (demand.isl + demand.osl))), 50)
    wl = Workload(LengthDist(demand.isl), LengthDist(demand.osl), arrivals, num_requests, seed=1)
    slo = Slo(targets.ttft_p90_s, targets.tpot_p90_s, targets.e2e_p90_s)
    replicas = e.replicas
    metrics = None
    for _ in range(5):
        par = Parallelism(tp=c.tp, pp=c.pp, dp=replicas)
        metrics = predict(
            ctx.model,
            c.gpu,
            c.precision,
            c.kv_dtype,
            par,
            ctx.engine,
            wl,
            env=ctx.env,
            slo=slo,
            max_steps=VERIFY_MAX_STEPS,
        ).metrics
        if not targets.exceeded(metrics.ttft_s.p90, metrics.tpot_s.p90, metrics.e2e_s.p90):
            break
        replicas += 1
    assert metrics is not None
    return replace(e, replicas=replicas), metrics


def make_plan(
    model: ModelSpec,
    demand: Demand,
    targets: Targets,
    *,
    gpus: list[GpuSpec] | None,
    precisions: list[Precision] | None,
    kv_dtypes: list[str],
    engine: EngineProfile,
    env: EnvironmentProfile,
    offers: list[Offer],
    rank_by: str = "cost",
    verify: int = 3,
    verify_requests: int = 400,
    hours_fraction: float = 1.0,
    peak_to_mean: float = 1.0,
    cost_assumptions: CostAssumptions | None = None,
) -> Plan:
    """Find, verify and explain the best deployment of ``model`` for ``demand``."""
    if rank_by not in ("cost", "latency", "gpus", "throughput_per_gpu"):
        raise InputError("--rank must be cost, latency, gpus or throughput_per_gpu")
    context = demand.isl + demand.osl
    if context > model.max_position_embeddings:
        # engines refuse a max model length beyond the config's (vLLM: max_model_len)
        raise InputError(
            f"{demand.isl:,} input + {demand.osl:,} output = {context:,} tokens exceeds {model.name}'s context of "
            f"{model.max_position_embeddings:,} tokens (max_position_embeddings); shorten the requests or choose a "
            "longer-context model"
        )
    ctx = _Context(model, demand, targets, engine, offers, env)
    pool = gpus or list(gpu_catalog().values())
    precs = precisions or _default_precisions(model)
    start = time.perf_counter()
    ranked = ctx.search(candidates(model, pool, precs, kv_dtypes), rank_by)
    elapsed = time.perf_counter() - start
    feasible = [e for e in ranked if e.meets]
    if not feasible:
        raise InfeasibleError(_nearest_miss(ctx, ranked, pool, precs, kv_dtypes))
    priced = [e for e in feasible if e.usd_per_hour is not None] or feasible
    chosen, verified = priced[0], None
    for e in priced[:verify]:
        checked, metrics = _verify(ctx, e, verify_requests)
        if e is priced[0]:
            chosen, verified = checked, metrics
    steps = [
        _step_vram(model, chosen, demand),
        _step_parallel(ctx, chosen),
        _step_interconnect(ctx, chosen),
        _step_storage(model, chosen, demand),
    ]
    cost = _cost(ctx, chosen, hours_fraction, peak_to_mean, cost_assumptions)
    return Plan(
        model, demand, targets, ranked, chosen, verified, steps, cost, pareto_front(ranked), elapsed, env, engine
    )


def _default_precisions(model: ModelSpec) -> list[Precision]:
    native = get_precision(model.quantization.precision if model.quantization else model.native_dtype)
    out = [native]
    if native.name in ("bf16", "fp16"):
        out.append(get_precision("fp8"))
    return out


def _nearest_miss(
    ctx: _Context, ranked: list[Evaluated], pool: list[GpuSpec], precs: list[Precision], kv: list[str]
) -> str:
    if not ranked:
        return (
            f"{ctx.model.name} fits none of the GPUs considered ({', '.join(g.id for g in pool)}) at "
            f"{', '.join(p.name for p in precs)}; allow more GPU types or a lower precision"
        )
    best = ranked[0]
    op = best.best_latency
    where = best.candidate.label()
    if op is None or not math.isfinite(op.ttft_p90_s):
        return f"no configuration is stable at this load; the nearest is {where}"
    relax = [
        f"--{name} {math.ceil(value * 1e3 / 10) * 10:.0f}ms"
        for name, value, _ in ctx.targets.exceeded(op.ttft_p90_s, op.tpot_p90_s, op.e2e_p90_s)
    ]
    msg = (
        f"no configuration meets the targets; the best reaches TTFT p90 {op.ttft_p90_s * 1e3:,.0f} ms, "
        f"TPOT p90 {op.tpot_p90_s * 1e3:,.1f} ms on {where}"
    )
    if relax:
        msg += f"; relax to {' '.join(relax)}"
    others = [g for g in gpu_catalog().values() if g.id not in {p.id for p in pool}]
    if others:
        winners = sorted({e.candidate.gpu.id for e in ctx.search(candidates(ctx.model, others, precs, kv)) if e.meets})
        if winners:
            msg += f" or allow {', '.join(winners[:3])} (--gpus)"
    return msg


def _step_vram(model: ModelSpec, e: Evaluated, demand: Demand) -> PlanStep:
    c = e.candidate
    params = count_params(model).total
    usable = c.gpu.visible_memory_bytes * 0.9
    rows = {}
    for name in ("bf16", "fp8", "int4"):
        p = get_precision(name)
        w = weight_bytes(model, p).total
        thumb = params * p.bytes_per_param * 1.2
        try:
            exact = min_gpus(
                model, c.gpu, p, c.kv_dtype, demand.isl + demand.osl, 1, EngineMemoryConfig()
            ).parallelism.gpus_per_replica
        except DoesNotFitError:
            exact = None
        rows[name] = {
            "weights_gb": w / GB,
            "rule_of_thumb_gb": thumb / GB,
            "min_gpus_exact": exact,
            "min_gpus_rule_of_thumb": math.ceil(thumb / usable),
        }
    max_params = {n: usable / (get_precision(n).bytes_per_param * 1.2) / 1e9 for n in ("bf16", "fp8", "int4")}
    chosen = rows.get(c.precision.name, rows["bf16"])
    text = (
        f"{model.name} has {params / 1e9:,.1f}B parameters; at {c.precision.name} the weights take "
        f"{weight_bytes(model, c.precision).total / GB:,.1f} GB. On {c.gpu.id} "
        f"({c.gpu.memory_bytes / GIB:,.0f} GiB) the exact floor is {chosen['min_gpus_exact']} GPU(s) for one "
        f"{demand.isl + demand.osl:,}-token sequence; the rule of thumb (params x bytes x 1.2) says "
        f"{chosen['min_gpus_rule_of_thumb']}. One {c.gpu.id} holds about {max_params['bf16']:,.0f}B parameters "
        f"at BF16, {max_params['fp8']:,.0f}B at FP8 and {max_params['int4']:,.0f}B at INT4 by that rule: "
        "'one 80 GB GPU serves up to ~60B parameters' holds only at 8-bit precision."
    )
    return PlanStep("1. VRAM floor", text, {"by_precision": rows, "max_params_b_per_gpu": max_params})


def _rate_per_replica(ctx: _Context, cand: Candidate, tp_link: str | None = None) -> float:
    ev = ctx.evaluate(cand, tp_link=get_link(tp_link) if tp_link else None)
    return ev.max_rate_per_replica if ev else 0.0


def _step_parallel(ctx: _Context, e: Evaluated) -> PlanStep:
    c, demand = e.candidate, ctx.demand
    floor = None
    with contextlib.suppress(DoesNotFitError):
        floor = min_gpus(ctx.model, c.gpu, c.precision, c.kv_dtype, demand.isl + demand.osl, 1).parallelism
    why = []
    if floor and c.gpus_per_replica > floor.gpus_per_replica:
        why.append(
            f"the weights would fit on {floor.gpus_per_replica} GPU(s), but TP {c.tp} splits every "
            f"weight read over {c.tp} GPUs' HBM, cutting per-token latency and raising what one "
            "replica sustains under the targets"
        )
    elif c.gpus_per_replica > 1:
        why.append(f"{c.gpus_per_replica} GPUs are the memory floor for this precision")
    else:
        why.append("one GPU holds the weights and enough KV cache")
    if c.pp > 1:
        why.append(f"PP {c.pp} spreads the layers over {c.pp} servers")
    per_replica = e.max_rate_per_replica * demand.osl
    text = (
        f"Recommended: {e.replicas} replica(s) of {c.gpus_per_replica} x {c.gpu.id} (TP {c.tp}, PP {c.pp}), "
        f"{c.precision.name} weights, {c.kv_dtype.name} KV cache = {e.num_gpus} GPUs. Why: "
        + "; ".join(why)
        + f". One replica sustains about {e.max_rate_per_replica:,.2f} req/s "
        f"({per_replica:,.0f} output tok/s) within the targets; data parallelism adds replicas for the rest."
    )
    numbers = {
        "replicas": e.replicas,
        "tp": c.tp,
        "pp": c.pp,
        "num_gpus": e.num_gpus,
        "max_rate_per_replica": e.max_rate_per_replica,
    }
    return PlanStep("2. One GPU or several", text, numbers)


def _step_interconnect(ctx: _Context, e: Evaluated) -> PlanStep:
    c, osl = e.candidate, ctx.demand.osl
    if c.tp == 1 and c.pp == 1:
        return PlanStep(
            "3. Interconnect",
            "Each replica is one GPU: no GPU-to-GPU traffic; any server with one PCIe slot per GPU will "
            "do, and replicas need only the front-end network.",
        )
    fast = e.max_rate_per_replica
    pcie = _rate_per_replica(ctx, c, tp_link=c.gpu.pcie if c.gpu.pcie.startswith("pcie") else "pcie5")
    numbers: dict[str, Any] = {"rate_fast_link": fast, "rate_pcie_only": pcie}
    link = c.gpu.scale_up or c.gpu.pcie
    text = (
        f"TP {c.tp} all-reduces twice per layer. Over {link} one replica sustains {fast * osl:,.0f} "
        "output tok/s within the targets; "
    )
    text += (
        f"over PCIe only {pcie * osl:,.0f} tok/s ({(pcie / fast - 1) * 100 if fast else 0:+.0f}%). "
        if pcie > 0
        else "over PCIe only it cannot meet the targets at any load (the prefill all-reduces alone exceed them). "
    )
    text += "Keep the NVLink/XGMI server." if pcie < 0.9 * fast else "PCIe is enough for this model and load."
    if c.pp > 1:
        ethernet = _rate_per_replica(ctx, c, tp_link=None)
        numbers["rate_multi_node"] = ethernet
        text += (
            f" PP {c.pp} crosses servers: stage-to-stage traffic is one activation per token (small), so "
            "400 Gb/s InfiniBand or RoCE and 100 Gb/s Ethernet differ little in throughput; latency per "
            "hop matters more than bandwidth."
        )
    return PlanStep("3. Interconnect", text, numbers)


def _step_storage(model: ModelSpec, e: Evaluated, demand: Demand) -> PlanStep:
    s = StorageAssumptions()
    weights = weight_bytes(model, e.candidate.precision).total
    nvme_s = weights / (s.nvme_gb_per_s * GB)
    net_s = weights / (s.network_storage_gb_per_s * GB)
    rate = demand.rate_per_s or 1.0
    tokens_per_s = rate * (demand.isl + demand.osl)
    cores = s.server_cores + s.cores_per_gpu * e.num_gpus + tokens_per_s / s.tokenizer_tokens_per_s_per_core
    text = (
        f"Loading {weights / GB:,.0f} GB of weights takes about {nvme_s:,.0f} s from a local NVMe drive "
        f"({s.nvme_gb_per_s} GB/s) and {net_s / 60:,.1f} min from network storage at "
        f"{s.network_storage_gb_per_s} GB/s: keep a local copy per server for fast restarts and scaling. "
        f"CPU: about {math.ceil(cores)} cores ({s.cores_per_gpu:.0f} per GPU worker, {s.server_cores:.0f} for the "
        f"API server, and tokenisation of {tokens_per_s:,.0f} tok/s at {s.tokenizer_tokens_per_s_per_core:,.0f} "
        "tok/s per core). Assumptions, not measurements: check them with 'inferplan bench'."
    )
    return PlanStep(
        "4. Storage and CPU",
        text,
        {
            "weights_gb": weights / GB,
            "load_s_nvme": nvme_s,
            "load_s_network": net_s,
            "cpu_cores": math.ceil(cores),
        },
    )


def _cost(
    ctx: _Context,
    e: Evaluated,
    hours_fraction: float,
    peak_to_mean: float,
    assumptions: CostAssumptions | None,
) -> CostComparison | None:
    c, demand = e.candidate, ctx.demand
    bare = ctx.evaluate(c, env=get_environment("bare-metal"))
    cloud = ctx.evaluate(c, env=get_environment("vm"))
    if not bare or not cloud or bare.max_rate_per_replica <= 0 or cloud.max_rate_per_replica <= 0:
        return None
    if demand.rate_per_s is not None:
        bare_mean = demand.rate_per_s / bare.max_rate_per_replica
        cloud_mean = demand.rate_per_s / cloud.max_rate_per_replica
        tokens = demand.rate_per_s * demand.osl
    else:
        bare_mean, cloud_mean = float(bare.replicas), float(cloud.replicas)
        op = e.per_replica
        tokens = (op.rate_per_s * e.replicas * demand.osl) if op else 0.0
    return compare_costs(
        c.gpu, c.gpus_per_replica, bare_mean, cloud_mean, ctx.offers, tokens, hours_fraction, peak_to_mean, assumptions
    )
