"""The plan's explanation of issue 13's features, after its four steps: the workload (lengths from a
dataset, sessions, shared prompts) and the prefix cache, LoRA adapters, and CPU offload (asked for
with ``--offload``: why it wins or loses). Every comparison is the plan's own steady-state
evaluation of the same configuration with the feature changed; the simulated figures are the
verification's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from inferplan.perf.replica import build_replica
from inferplan.plan.context import PlanContext
from inferplan.plan.explain import PlanStep
from inferplan.plan.offload_plan import is_offloaded
from inferplan.plan.search import Evaluated
from inferplan.plan.verify import Verification
from inferplan.specs.offload import host_link, host_read_bytes_per_s
from inferplan.units import GB, GIB

__all__ = ["workload_steps"]


def _fleet(e: Evaluated | None) -> str:
    if e is None:
        return "does not run"
    op = e.per_replica or e.best_latency
    lat = f", TTFT p90 {op.ttft_p90_s * 1e3:,.0f} ms, TPOT p90 {op.tpot_p90_s * 1e3:,.1f} ms" if op else ""
    return f"{e.fleet()}{lat}" if e.meets else f"misses the targets ({e.miss})"


def _traffic_step(ctx: PlanContext) -> PlanStep | None:
    d = ctx.demand
    t = d.traffic
    if t.shape is None and t.lengths is None:
        return None
    parts = []
    if t.lengths is not None:
        parts.append(f"lengths from {t.lengths.describe()}; the plan sizes on the means, the check draws the rows")
    if t.shape is not None:
        parts.append(t.shape.describe())
    text = "; ".join(parts) + (
        f". Mean prompt {d.prompt_tokens:,} tokens (message {d.isl:,}, reply {d.osl:,}); the longest request reaches "
        f"{d.context_tokens:,} tokens of context."
    )
    numbers = {"mean_prompt_tokens": d.prompt_tokens, "context_tokens": d.context_tokens}
    return PlanStep("Workload", text[0].upper() + text[1:], numbers)


def _prefix_step(ctx: PlanContext, chosen: Evaluated, checked: Verification | None) -> PlanStep | None:
    d, dep = ctx.demand, chosen.deployment
    shape = d.traffic.shape
    if shape is None or not shape.shares_tokens:
        return None
    block = dep.engine.block_size
    cached = d.traffic.cached_tokens(d.isl, d.osl, block)
    share = cached / max(d.prompt_tokens, 1)
    on = dep.features.prefix_caching
    other = ctx.evaluate(dep.with_features(replace(dep.features, prefix_caching=not on)))
    text = (
        f"A prefix cache large enough holds {cached:,} of the mean {d.prompt_tokens:,}-token prompt ({share:.0%}, "
        f"full blocks of {block}); prefill computes the other {d.prompt_tokens - cached:,}."
    )
    hit = checked.hit_rate if checked else None
    if hit is not None:
        text += f" The simulated check's cache (LRU under the KV budget) hit {hit:.1%} of prompt tokens."
    if on:
        text += f" Without prefix caching the same configuration: {_fleet(other)}; with it: {_fleet(chosen)}."
    else:
        text += f" Caching is off; with it the same configuration: {_fleet(other)}."
    numbers = {"structural_hit_rate": share, "simulated_hit_rate": hit, "prefix_caching": on, "cached_tokens": cached}
    return PlanStep("Prefix caching", text, numbers)


def _lora_step(ctx: PlanContext, chosen: Evaluated, checked: Verification | None) -> PlanStep | None:
    dep = chosen.deployment
    lora = dep.features.lora
    if lora is None:
        return None
    replica = build_replica(dep.with_replicas(1))
    cost = replica.lora
    assert cost is not None
    batch = chosen.per_replica.batch if chosen.per_replica else 1.0
    extra = cost.step_time_s(batch, cost.expected_adapters(batch))
    step = replica.decode_step_time_s(np.full(max(round(batch), 1), float(ctx.demand.prompt_tokens)))
    without = ctx.evaluate(dep.with_features(replace(dep.features, lora=None)))
    loads = checked.features.lora_loads if checked and checked.features else None
    text = (
        f"{lora.adapters} adapter(s) of rank {lora.rank} on {lora.slots} GPU slot(s) of rank {lora.slot_rank}: "
        f"{replica.memory.lora_bytes / GB:,.2f} GB per GPU. At the planned batch ({batch:,.0f}) the adapters' "
        f"kernels add {extra * 1e3:,.2f} ms to each {step * 1e3:,.1f} ms decode step ({extra / step:.0%}); an "
        f"adapter not in a slot loads in {cost.load_s(True) * 1e3:,.1f} ms from host memory."
        + (f" The simulated check loaded adapters {loads} time(s)." if loads is not None else "")
        + f" Without LoRA the same configuration: {_fleet(without)}."
    )
    numbers = {"slot_bytes_per_gpu": replica.memory.lora_bytes, "decode_step_extra_s": extra, "loads": loads}
    return PlanStep("LoRA adapters", text, numbers)


def _offload_step(ctx: PlanContext, chosen: Evaluated, ranked: list[Evaluated]) -> PlanStep | None:
    if not ctx.setup.space.offload:
        return None
    offloaded = [e for e in ranked if is_offloaded(e.deployment)]
    if not offloaded:
        return PlanStep(
            "CPU offload",
            "Every configuration considered holds its weights in GPU memory, or none holds one request even with "
            "every weight in host memory: offload has nothing to offer here.",
            {"wins": False},
        )
    best = offloaded[0]
    dep = best.deployment
    off = dep.features.offloaded_weights_bytes
    stream = build_replica(dep.with_replicas(1)).stream_s
    how = (
        f"{dep.gpus_per_replica} x {dep.gpu.id} hold {dep.model.name} only with {off / GIB:,.0f} GiB of weights per "
        f"GPU in host memory (vLLM --cpu-offload-gb {off / GIB:,.0f}); every step then reads them over "
        f"{host_link(dep.gpu).id} at {host_read_bytes_per_s(dep.gpu) / GB:,.1f} GB/s, +{stream * 1e3:,.0f} ms"
    )
    wins = is_offloaded(chosen.deployment)
    if wins:
        text = f"Offload wins: {how}, and that still meets the targets at the lowest cost: {_fleet(best)}."
    elif not best.meets:
        text = f"Offload loses: {how}, so it {_fleet(best)}; the recommendation keeps every weight in GPU memory."
    else:
        text = (
            f"Offload loses: {how}; it meets the targets with {_fleet(best)}, which costs more than the "
            f"recommendation's {chosen.num_gpus} GPUs."
        )
    return PlanStep("CPU offload", text, {"wins": wins, "offloaded_bytes_per_gpu": off, "stream_s_per_step": stream})


def workload_steps(
    ctx: PlanContext, chosen: Evaluated, checked: Verification | None, ranked: list[Evaluated]
) -> list[PlanStep]:
    """The steps that apply (none for a plain workload on a plain deployment)."""
    steps = [
        _traffic_step(ctx),
        _prefix_step(ctx, chosen, checked),
        _lora_step(ctx, chosen, checked),
        _offload_step(ctx, chosen, ranked),
    ]
    return [s for s in steps if s is not None]
