"""Issue 13's payload parts: the traffic's lengths and shape, the prefix cache's hits, LoRA adapters
and CPU offload (``predict``, ``fit`` and ``plan``)."""

from __future__ import annotations

from inferplan.perf.offload_fit import OffloadAnswer
from inferplan.perf.replica import Replica
from inferplan.perf.sim_result import FeatureStats
from inferplan.perf.workload import Workload
from inferplan.present.payload import Strict
from inferplan.sizing.capacity import MemoryPlan
from inferplan.sizing.lora import adapter_bytes
from inferplan.sizing.offload import cpu_kv_blocks
from inferplan.specs.deployment import Deployment
from inferplan.specs.offload import host_link, host_read_bytes_per_s

__all__ = [
    "FitOffloadPayload",
    "LoraPayload",
    "OffloadPayload",
    "PrefixCachePayload",
    "TrafficPayload",
    "WorkloadFeaturesPayload",
    "fit_offload_payload",
    "lora_payload",
    "offload_payload",
    "workload_features_payload",
]


class TrafficPayload(Strict):
    """The requests' lengths and structure."""

    input_lengths: str
    """The input (per-turn message) length distribution with its parameters, or the dataset's."""
    output_lengths: str
    dataset: str | None = None
    """The dataset the lengths come from, with how its token counts were made."""
    turns: int = 1
    """Requests per session; each prompt is the conversation so far plus a new message."""
    think_time_s: float = 0.0
    shared_prefixes: int = 0
    """Distinct shared system prompts."""
    shared_prefix_tokens: int = 0
    adapters: int = 0
    """LoRA adapters the requests spread over (0: the base model only)."""
    mean_prompt_tokens: float
    """Mean prompt a request sends: shared prompt + conversation so far + message."""


class PrefixCachePayload(Strict):
    """The block-level prefix cache, counted as vLLM counts it."""

    enabled: bool
    queried_tokens: int | None = None
    """Prompt tokens of every request when first scheduled (vLLM: vllm:prefix_cache_queries)."""
    hit_tokens: int | None = None
    """Of those, found in GPU memory (vLLM: vllm:prefix_cache_hits)."""
    hit_rate: float | None = None
    """hit_tokens / queried_tokens."""
    host_hit_tokens: int | None = None
    """Found in the host-memory KV tier (vLLM: vllm:external_prefix_cache_hits)."""
    evicted_blocks: int | None = None
    structural_hit_rate: float | None = None
    """The share of prompt tokens a cache large enough would hold (full blocks; the last prompt token
    is always computed)."""


class LoraPayload(Strict):
    """LoRA adapters in memory and time."""

    adapters: int
    rank: int
    targets: list[str]
    max_loras: int
    """Adapters that can run in one batch (GPU slots)."""
    max_lora_rank: int
    max_cpu_loras: int
    slot_bytes_per_gpu: int
    """The slots' memory on each GPU (inside weights_bytes)."""
    adapter_bytes: int
    """One adapter's weights (its file, its copy in host memory)."""
    load_s: float
    """Loading one adapter from host memory into a slot."""
    loads: int | None = None
    """Adapters loaded into slots during the simulation."""
    loads_from_disk: int | None = None
    decode_step_extra_s: float | None = None
    """LoRA's share of one decode step at the mean batch."""


class OffloadPayload(Strict):
    """Weights and KV cache in host memory."""

    offloaded_weights_bytes_per_gpu: int
    host_link: str
    host_read_bytes_per_s: float
    """The host link's zero-copy read rate the offloaded weights are streamed at."""
    stream_s_per_step: float
    """Every step's extra time reading the offloaded weights."""
    kv_offload_bytes: int
    kv_host_blocks: int
    """KV blocks the host-memory tier holds."""


class WorkloadFeaturesPayload(Strict):
    traffic: TrafficPayload
    prefix_cache: PrefixCachePayload | None = None
    lora: LoraPayload | None = None
    offload: OffloadPayload | None = None


class FitOffloadPayload(Strict):
    """When the model does not fit: the fewest GiB of weights per GPU to offload, and what it costs."""

    offloaded_weights_bytes_per_gpu: int
    kv_cache_bytes: int
    """The KV cache per GPU once those weights are in host memory."""
    ms_per_token: float
    """One decode step of the request mix with the weights offloaded."""
    ms_per_token_in_gpu_memory: float
    """The same step were every weight in GPU memory."""
    slowdown: float
    sentence: str
    """The answer in words."""


def lora_payload(replica: Replica, stats: FeatureStats | None = None, batch: float = 0.0) -> LoraPayload | None:
    dep, cost = replica.deployment, replica.lora
    lora = dep.features.lora
    if lora is None or cost is None:
        return None
    extra = cost.step_time_s(batch, cost.expected_adapters(batch)) if batch > 0 else None
    return LoraPayload(
        adapters=lora.adapters,
        rank=lora.rank,
        targets=list(lora.targets),
        max_loras=lora.slots,
        max_lora_rank=lora.slot_rank,
        max_cpu_loras=lora.cpu_slots,
        slot_bytes_per_gpu=int(replica.memory.lora_bytes),
        adapter_bytes=int(adapter_bytes(dep.model, lora)),
        load_s=cost.load_s(True),
        loads=stats.lora_loads if stats else None,
        loads_from_disk=stats.lora_loads_from_disk if stats else None,
        decode_step_extra_s=extra,
    )


def offload_payload(dep: Deployment, plan: MemoryPlan, stream_s: float) -> OffloadPayload | None:
    offload = dep.features.offload
    if not offload:
        return None
    return OffloadPayload(
        offloaded_weights_bytes_per_gpu=int(plan.offloaded_weights_bytes),
        host_link=host_link(dep.gpu).id,
        host_read_bytes_per_s=host_read_bytes_per_s(dep.gpu),
        stream_s_per_step=stream_s,
        kv_offload_bytes=int(offload.kv_bytes),
        kv_host_blocks=cpu_kv_blocks(plan),
    )


def _cache(replica: Replica, wl: Workload, stats: FeatureStats | None) -> PrefixCachePayload | None:
    shape = wl.shape
    if shape is None or not shape.shares_tokens:
        return None
    if not replica.deployment.features.prefix_caching:
        return PrefixCachePayload(enabled=False)
    msg, reply = wl.input_tokens.mean, wl.output_tokens.mean
    structural = shape.cached_tokens(msg, reply, replica.scheduler.block_size) / shape.mean_prompt_tokens(msg, reply)
    c = stats.cache if stats else None
    return PrefixCachePayload(
        enabled=True,
        queried_tokens=c.queries if c else None,
        hit_tokens=c.hits if c else None,
        hit_rate=c.hit_rate if c else None,
        host_hit_tokens=c.host_hits if c else None,
        evicted_blocks=c.evictions if c else None,
        structural_hit_rate=structural,
    )


def _traffic(wl: Workload) -> TrafficPayload:
    shape = wl.shape
    msg, reply = wl.input_tokens.mean, wl.output_tokens.mean
    return TrafficPayload(
        input_lengths=wl.input_tokens.describe() if wl.lengths is None else f"the dataset's, mean {msg:,}",
        output_lengths=wl.output_tokens.describe() if wl.lengths is None else f"the dataset's, mean {reply:,}",
        dataset=wl.lengths.describe() if wl.lengths is not None else None,
        turns=shape.turns if shape else 1,
        think_time_s=shape.think_time_s if shape else 0.0,
        shared_prefixes=shape.shared_prefixes if shape else 0,
        shared_prefix_tokens=shape.shared_prefix_tokens if shape else 0,
        adapters=shape.adapters if shape else 0,
        mean_prompt_tokens=shape.mean_prompt_tokens(msg, reply) if shape else float(msg),
    )


def workload_features_payload(
    replica: Replica, wl: Workload, stats: FeatureStats | None, batch: float
) -> WorkloadFeaturesPayload | None:
    """None when the workload and deployment use none of issue 13's features."""
    dep = replica.deployment
    plain = wl.lengths is None and wl.shape is None and wl.input_tokens.kind == wl.output_tokens.kind == "fixed"
    if plain and dep.features.lora is None and not dep.features.offload:
        return None
    return WorkloadFeaturesPayload(
        traffic=_traffic(wl),
        prefix_cache=_cache(replica, wl, stats),
        lora=lora_payload(replica, stats, batch),
        offload=offload_payload(dep, replica.memory, replica.stream_s),
    )


def fit_offload_payload(answer: OffloadAnswer | None) -> FitOffloadPayload | None:
    if answer is None:
        return None
    return FitOffloadPayload(
        offloaded_weights_bytes_per_gpu=int(answer.offloaded_bytes),
        kv_cache_bytes=int(answer.plan.kv_cache_bytes),
        ms_per_token=answer.step_s * 1e3,
        ms_per_token_in_gpu_memory=answer.in_hbm_step_s * 1e3,
        slowdown=answer.slowdown,
        sentence=answer.sentence(),
    )
