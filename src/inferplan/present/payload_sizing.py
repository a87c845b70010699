"""Payloads of the sizing commands: ``fit`` (``inferplan.fit/1``), ``models`` and ``gpus``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inferplan.present.payload import Payload, Strict
from inferplan.present.payload_speculation import SpeculationPayload, speculation_payload
from inferplan.present.payload_workload import FitOffloadPayload, LoraPayload, OffloadPayload
from inferplan.sizing.capacity import MemoryPlan, max_context_tokens, sglang_fraction
from inferplan.specs.hardware import GpuSpec
from inferplan.specs.model import ModelSpec, count_params
from inferplan.specs.model_catalog import catalog_models

__all__ = ["FitPayload", "GpusPayload", "ModelsPayload", "fit_payload", "gpu_row", "model_row"]

_CONTEXT_STEPS = (1024, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 1048576)


class ModelRow(Strict):
    name: str
    hf_id: str | None
    model_type: str
    attention: str
    moe: bool
    num_layers: int
    hidden_size: int
    num_kv_heads: int
    sliding_window_layers: int
    total_params: int
    active_params: int
    published_total_params: str | None
    native_dtype: str
    quantization: str | None
    max_position_embeddings: int


class ModelsPayload(Payload):
    schema_id: Literal["inferplan.models/1"] = Field(default="inferplan.models/1", serialization_alias="schema")
    models: list[ModelRow]


class GpuRow(Strict):
    id: str
    device: Literal["gpu", "cpu"] = Field(description="A GPU, or a CPU socket serving as the device (vLLM-CPU).")
    name: str
    vendor: str
    memory_bytes: int
    visible_memory_bytes: int
    mem_bw_bytes_per_s: float
    peak_flops: dict[str, float]
    measured_matmul_flops: dict[str, float]
    scale_up: str | None
    pcie: str
    tdp_w: float
    mig_profiles: list[str]
    sources: str


class GpusPayload(Payload):
    schema_id: Literal["inferplan.gpus/1"] = Field(default="inferplan.gpus/1", serialization_alias="schema")
    gpus: list[GpuRow]


class ParallelismPayload(Strict):
    tp: int
    pp: int
    dp: int
    num_gpus: int
    ep: int = Field(1, description="Expert-parallel group size (1: experts tensor-sharded).")


class EngineMemoryPayload(Strict):
    name: str
    gpu_memory_utilization: float
    block_size: int
    max_num_batched_tokens: int
    max_num_seqs: int
    memory_mode: str = Field("vllm", description="vllm, sglang or trtllm: how the KV budget is computed.")
    mem_fraction_static: float | None = Field(None, description="SGLang's (weights + KV pool) / memory.")
    defaults: str | None = Field(None, description="The engine's own defaults for this GPU and their source.")


class PerGpuPayload(Strict):
    visible_bytes: int
    """Memory CUDA reports (ECC and driver reservations taken)."""
    budget_bytes: int
    """Visible memory x gpu_memory_utilization (TensorRT-LLM: all of it)."""
    weights_bytes: int
    """Weights on the fullest GPU."""
    activation_peak_bytes: int
    """Peak activations of one step of max_num_batched_tokens."""
    logits_bytes: int
    """FP32 logits of max_num_seqs sampled positions."""
    non_torch_bytes: int
    """CUDA context and communication buffers."""
    kv_cache_bytes: int
    """What is left for the KV cache (negative when nothing is)."""
    kv_bytes_per_token: float
    """KV bytes one token takes on this GPU, every layer full."""
    num_kv_blocks: int
    kv_tokens: int


class RequestPayload(Strict):
    context_tokens: int
    concurrency: int


class Suggestion(Strict):
    tp: int | None = None
    pp: int | None = None
    num_gpus: int | None = None
    error: str | None = None


class VerdictPayload(Strict):
    fits: bool
    """Whether concurrency x context_tokens fit the KV cache."""
    kv_bytes_needed: int
    margin_bytes: int
    max_sequences_at_context: int
    max_context_at_concurrency: int
    suggestion: Suggestion | None = None
    """When it does not fit: the smallest split that does, or why none does."""


class RuleOfThumbPayload(Strict):
    total_bytes: int
    """Parameters x bytes x 1.2, the common estimate."""
    exact_weights_bytes: int
    exact_total_bytes: int


class ContextGrowthRow(Strict):
    context_tokens: int
    kv_bytes_per_sequence: int
    max_sequences: int
    attention_scores_bytes_flash: int
    attention_scores_bytes_eager: int
    """The L x L FP32 score matrix of one prefill without fused attention."""


class FitPayload(Payload):
    schema_id: Literal["inferplan.fit/1"] = Field(default="inferplan.fit/1", serialization_alias="schema")
    model: str
    gpu: str
    precision: str
    kv_dtype: str
    parallelism: ParallelismPayload
    engine: EngineMemoryPayload
    per_gpu: PerGpuPayload
    request: RequestPayload
    verdict: VerdictPayload
    rule_of_thumb: RuleOfThumbPayload
    context_growth: list[ContextGrowthRow]
    notes: list[str]
    """Caveats: multimodal models, checkpoint facts, and what resolving the names assumed."""
    speculation: SpeculationPayload | None = None
    """Speculative decoding: its drafter's weights are in weights_bytes, its KV in kv_bytes_per_token."""
    lora: LoraPayload | None = None
    """Issue 13: LoRA adapter slots (in weights_bytes)."""
    offload: OffloadPayload | None = None
    """Issue 13: weights given to host memory (out of weights_bytes) and the host KV tier."""
    offload_answer: FitOffloadPayload | None = None
    """Issue 13: when it does not fit, the fewest GiB of weights per GPU to offload and what it costs per token."""


def model_row(model: ModelSpec) -> ModelRow:
    c = count_params(model)
    entry = catalog_models().get(model.name)
    return ModelRow(
        name=model.name,
        hf_id=entry.hf_id if entry else None,
        model_type=model.model_type,
        attention=model.attention.kind,
        moe=model.is_moe,
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        num_kv_heads=model.attention.num_kv_heads,
        sliding_window_layers=sum(1 for layer in model.layers if layer.window_tokens),
        total_params=c.total,
        active_params=c.active,
        published_total_params=entry.published_total if entry else None,
        native_dtype=model.native_dtype,
        quantization=model.quantization.method if model.quantization else None,
        max_position_embeddings=model.max_position_embeddings,
    )


def gpu_row(gpu: GpuSpec) -> GpuRow:
    return GpuRow(
        id=gpu.id,
        device="cpu" if gpu.is_cpu else "gpu",
        name=gpu.name,
        vendor=gpu.vendor,
        memory_bytes=int(gpu.memory_bytes),
        visible_memory_bytes=int(gpu.visible_memory_bytes),
        mem_bw_bytes_per_s=gpu.mem_bw_bytes_per_s,
        peak_flops=gpu.peak_flops,
        measured_matmul_flops=gpu.measured_matmul_flops,
        scale_up=gpu.scale_up,
        pcie=gpu.pcie,
        tdp_w=gpu.tdp_w,
        mig_profiles=list(gpu.mig_profiles),
        sources=gpu.sources,
    )


def context_growth(plan: MemoryPlan) -> list[ContextGrowthRow]:
    """KV bytes per sequence and eager attention-score bytes against context length."""
    limit = plan.deployment.model.max_position_embeddings
    steps = [c for c in _CONTEXT_STEPS if c <= limit] or [limit]
    if limit not in steps and limit < _CONTEXT_STEPS[-1]:
        steps.append(limit)
    return [
        ContextGrowthRow(
            context_tokens=c,
            kv_bytes_per_sequence=int(plan.sequence_bytes(c)),
            max_sequences=plan.max_sequences(c),
            attention_scores_bytes_flash=0,
            attention_scores_bytes_eager=int(plan.attention_scores_bytes(c)),
        )
        for c in steps
    ]


def fit_payload(
    plan: MemoryPlan,
    context_tokens: int,
    concurrency: int,
    suggestion: Suggestion | None,
    defaults: str | None = None,
) -> FitPayload:
    dep = plan.deployment
    par, engine = dep.parallelism, dep.engine
    kv_needed = plan.sequence_bytes(context_tokens) * concurrency
    fits = plan.fits and kv_needed <= plan.kv_cache_bytes
    return FitPayload(
        model=dep.model.name,
        gpu=dep.gpu.id,
        precision=dep.precision.name,
        kv_dtype=dep.kv_dtype.name,
        parallelism=ParallelismPayload(tp=par.tp, pp=par.pp, dp=par.dp, num_gpus=par.num_gpus, ep=par.ep),
        engine=EngineMemoryPayload(
            name=engine.name,
            gpu_memory_utilization=engine.gpu_memory_utilization,
            block_size=engine.block_size,
            max_num_batched_tokens=engine.max_num_batched_tokens,
            max_num_seqs=engine.max_num_seqs,
            memory_mode=engine.memory_mode,
            mem_fraction_static=sglang_fraction(dep) if engine.memory_mode == "sglang" else None,
            defaults=defaults,
        ),
        per_gpu=PerGpuPayload(
            visible_bytes=int(plan.visible_bytes),
            budget_bytes=int(plan.budget_bytes),
            weights_bytes=int(plan.weights_bytes),
            activation_peak_bytes=int(plan.activation_bytes),
            logits_bytes=int(plan.logits_bytes),
            non_torch_bytes=int(plan.non_torch_bytes),
            kv_cache_bytes=int(plan.kv_cache_bytes),
            kv_bytes_per_token=plan.kv_bytes_per_token,
            num_kv_blocks=plan.num_blocks,
            kv_tokens=plan.kv_tokens,
        ),
        request=RequestPayload(context_tokens=context_tokens, concurrency=concurrency),
        verdict=VerdictPayload(
            fits=fits,
            kv_bytes_needed=int(kv_needed),
            margin_bytes=int(plan.kv_cache_bytes - kv_needed),
            max_sequences_at_context=plan.max_sequences(context_tokens),
            max_context_at_concurrency=max_context_tokens(plan, concurrency),
            suggestion=None if fits else suggestion,
        ),
        rule_of_thumb=RuleOfThumbPayload(
            total_bytes=int(plan.rule_of_thumb_total_bytes),
            exact_weights_bytes=int(plan.total_weight_bytes),
            exact_total_bytes=int((plan.used_bytes + kv_needed) * par.gpus_per_replica),
        ),
        context_growth=context_growth(plan),
        notes=list(dict.fromkeys((*dep.model.notes, *dep.notes))),
        speculation=speculation_payload(dep.speculation, plan.drafter_weights_bytes),
    )
