"""``inferplan fit``, ``models`` and ``gpus``: parse, call the library, render."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, TypeVar

import typer

from inferplan.cli.common import JsonOpt, emit_json, handles_errors, out
from inferplan.cli.serving_options import (
    SpecAcceptanceOpt,
    SpecDraftTpOpt,
    SpecModelOpt,
    SpecOpt,
    SpecTokensOpt,
    speculation_from,
)
from inferplan.cli.workload_options import (
    CpuOffloadOpt,
    KvOffloadOpt,
    LoraAdaptersOpt,
    LoraRankOpt,
    LoraTargetsOpt,
    MaxCpuLorasOpt,
    MaxLoraRankOpt,
    MaxLorasOpt,
    feature_words,
)
from inferplan.errors import DoesNotFitError, InputError
from inferplan.limits import (
    MAX_BATCHED_TOKENS,
    MAX_CONCURRENCY,
    MAX_INPUT_TOKENS,
    MAX_MEMORY_BYTES,
    MAX_NUM_SEQS,
    check_range,
)
from inferplan.perf.offload_fit import offload_answer
from inferplan.perf.replica import build_replica
from inferplan.present.payload import to_json_dict
from inferplan.present.payload_sizing import (
    GpusPayload,
    ModelsPayload,
    Suggestion,
    fit_payload,
    gpu_row,
    model_row,
)
from inferplan.present.payload_workload import fit_offload_payload, lora_payload, offload_payload
from inferplan.present.text import table
from inferplan.present.text_sizing import print_devices, print_fit
from inferplan.sizing.capacity import min_gpus, plan_memory
from inferplan.specs.deployment import Choices, resolve_deployment, resolve_parallelism
from inferplan.specs.engine_defaults import engine_for
from inferplan.specs.engines import get_engine
from inferplan.specs.features import resolve_features
from inferplan.specs.hardware import list_devices, resolve_gpu
from inferplan.specs.model_catalog import catalog_models, load_model
from inferplan.units import parse_bytes

__all__ = ["fit", "gpus", "models"]

ModelArg = Annotated[str, typer.Argument(help="Catalog name, config.json path, model folder or hub id.")]
T = TypeVar("T")
GpuOpt = Annotated[str, typer.Option("--gpu", help="GPU id, e.g. h100-sxm; 'h100-sxm:3g.40gb' for MIG.")]


def _given(value: T | None, default: T) -> T:
    """An option's value, or the engine's default when it was not given (0 is a value, not 'unset')."""
    return default if value is None else value


@handles_errors
def fit(
    model: ModelArg,
    gpu: GpuOpt,
    count: Annotated[int | None, typer.Option(help="Total GPUs (TP within a server, then PP).")] = None,
    tp: Annotated[int | None, typer.Option(help="Tensor-parallel size.")] = None,
    pp: Annotated[int | None, typer.Option(help="Pipeline-parallel size.")] = None,
    ep: Annotated[int | None, typer.Option(help="MoE expert parallelism: experts over --ep GPUs (= --tp).")] = None,
    dtype: Annotated[str, typer.Option(help="Weights: auto, bf16, fp16, fp8, int8, int4, ...")] = "auto",
    kv_dtype: Annotated[str, typer.Option(help="KV cache: auto, bf16, fp16, fp8.")] = "auto",
    context: Annotated[int, typer.Option(help="Tokens per sequence.")] = 8192,
    concurrency: Annotated[int, typer.Option(help="Sequences at once.")] = 1,
    engine: Annotated[str, typer.Option(help="vllm, sglang, trtllm, ... (its memory defaults).")] = "vllm",
    engine_version: Annotated[str, typer.Option(help="Engine version whose defaults apply, e.g. 0.11.")] = "",
    entry_point: Annotated[str, typer.Option(help="vLLM: serve (the API server) or offline (LLM class).")] = "serve",
    gpu_memory_utilization: Annotated[float | None, typer.Option(help="Share of memory the engine takes.")] = None,
    mem_fraction_static: Annotated[float | None, typer.Option(help="SGLang: (weights + KV pool) / memory.")] = None,
    max_num_batched_tokens: Annotated[int | None, typer.Option(help="Tokens per step (activation peak).")] = None,
    max_num_seqs: Annotated[int | None, typer.Option(help="Sequences per step (logits buffer).")] = None,
    block_size: Annotated[int | None, typer.Option(help="Tokens per KV block.")] = None,
    non_torch: Annotated[str | None, typer.Option(help="Override CUDA context + NCCL memory, e.g. 1.5GiB.")] = None,
    kv_cache_space: Annotated[
        int | None,
        typer.Option(min=1, max=100_000, help="vLLM-CPU: VLLM_CPU_KVCACHE_SPACE in GiB (else its auto rule)."),
    ] = None,
    spec: SpecOpt = None,
    spec_tokens: SpecTokensOpt = None,
    spec_acceptance: SpecAcceptanceOpt = None,
    spec_model: SpecModelOpt = None,
    spec_draft_tp: SpecDraftTpOpt = None,
    lora_adapters: LoraAdaptersOpt = 0,
    lora_rank: LoraRankOpt = 16,
    lora_targets: LoraTargetsOpt = "all",
    max_loras: MaxLorasOpt = None,
    max_lora_rank: MaxLoraRankOpt = None,
    max_cpu_loras: MaxCpuLorasOpt = None,
    cpu_offload_gb: CpuOffloadOpt = None,
    kv_offload_gb: KvOffloadOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Does MODEL fit on the GPUs, and how many sequences of CONTEXT tokens can run at once? When it does
    not: the smallest split that fits, and what offloading weights to host memory would cost per token."""
    check_range("--context", context, 1, MAX_INPUT_TOKENS)
    check_range("--concurrency", concurrency, 1, MAX_CONCURRENCY)
    if entry_point not in ("serve", "offline"):
        raise InputError(f"--entry-point '{entry_point}': use serve or offline")
    for option, value, low, high in (
        ("--gpu-memory-utilization", gpu_memory_utilization, 0.05, 1.0),
        ("--mem-fraction-static", mem_fraction_static, 0.05, 1.0),
        ("--max-num-batched-tokens", max_num_batched_tokens, 1, MAX_BATCHED_TOKENS),
        ("--max-num-seqs", max_num_seqs, 1, MAX_NUM_SEQS),
    ):
        if value is not None:
            check_range(option, value, low, high)
    non_torch_bytes = parse_bytes(non_torch, default_unit="gib") if non_torch is not None else None
    if non_torch_bytes is not None:
        check_range("--non-torch (bytes)", non_torch_bytes, 0, MAX_MEMORY_BYTES)
    par_choice = Choices(gpu, dtype, kv_dtype, count, tp, pp, ep=ep, engine_version=engine_version)
    gpu_spec = resolve_gpu(gpu)[0]
    base, found = engine_for(
        get_engine(engine, engine_version),
        gpu_spec,
        resolve_parallelism(gpu_spec, par_choice),
        engine_version,
        "serve" if entry_point == "serve" else "llm",
    )
    if kv_cache_space is not None and base.memory_mode != "vllm-cpu":
        raise InputError("--kv-cache-space is vLLM-CPU's setting: give a CPU as --gpu (or --engine vllm-cpu)")
    eng = replace(
        base,
        mem_fraction_static=_given(mem_fraction_static, base.mem_fraction_static),
        gpu_memory_utilization=_given(gpu_memory_utilization, base.gpu_memory_utilization),
        max_num_batched_tokens=_given(max_num_batched_tokens, base.max_num_batched_tokens),
        max_num_seqs=_given(max_num_seqs, base.max_num_seqs),
        block_size=_given(block_size, base.block_size),
        non_torch_bytes=_given(non_torch_bytes, base.non_torch_bytes),
        kv_cache_space_gib=_given(kv_cache_space, base.kv_cache_space_gib),
    )
    target = load_model(model)
    dep = resolve_deployment(target, par_choice, eng)
    dep = dep.with_speculation(speculation_from(target, spec, spec_tokens, spec_acceptance, spec_model, spec_draft_tp))
    lora = (lora_adapters, lora_rank, lora_targets, max_loras, max_lora_rank, max_cpu_loras)
    dep = dep.with_features(resolve_features(feature_words(True, lora, (cpu_offload_gb, kv_offload_gb))))
    plan = plan_memory(dep)
    suggestion, answer = None, None
    if plan.sequence_bytes(context) * concurrency > plan.kv_cache_bytes or not plan.fits:
        try:
            sp = min_gpus(dep, context, concurrency).deployment.parallelism
            suggestion = Suggestion(tp=sp.tp, pp=sp.pp, num_gpus=sp.num_gpus)
        except DoesNotFitError as exc:
            suggestion = Suggestion(error=str(exc))
        answer = offload_answer(dep, context, concurrency)  # issue 13: what offloading would cost
    defaults = (
        f"{found.engine} {found.version} ({found.entry_point}) on {gpu_spec.id}: max_num_batched_tokens "
        f"{found.max_num_batched_tokens}, max_num_seqs {found.max_num_seqs}, "
        f"{'mem_fraction_static' if found.engine == 'sglang' else 'gpu_memory_utilization'} {found.memory_fraction}"
        f" [{found.source}]"
        if found
        else None
    )
    replica = build_replica(dep)
    payload = fit_payload(plan, context, concurrency, suggestion, defaults).model_copy(
        update={
            "lora": lora_payload(replica, batch=concurrency),
            "offload": offload_payload(dep, plan, replica.stream_s),
            "offload_answer": fit_offload_payload(answer),
        }
    )
    if as_json:
        emit_json(payload)
    else:
        print_fit(out, to_json_dict(payload))
    if not payload.verdict.fits:
        raise typer.Exit(DoesNotFitError.exit_code)


@handles_errors
def models(
    search: Annotated[str, typer.Argument(help="Filter by substring.")] = "",
    moe: Annotated[bool | None, typer.Option("--moe/--dense", help="Only MoE or only dense.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the model catalog."""
    rows = [model_row(load_model(name)) for name in catalog_models() if search.lower() in name]
    if moe is not None:
        rows = [r for r in rows if r.moe == moe]
    if as_json:
        emit_json(ModelsPayload(models=rows))
        return
    out.print(
        table(
            "Model catalog",
            ["name", "type", "attention", "layers", "params", "active", "dtype", "max ctx"],
            [
                [
                    r.name,
                    r.model_type,
                    r.attention,
                    str(r.num_layers),
                    f"{r.total_params / 1e9:,.2f}B",
                    f"{r.active_params / 1e9:,.2f}B",
                    r.quantization or r.native_dtype,
                    f"{r.max_position_embeddings:,}",
                ]
                for r in rows
            ],
        )
    )


@handles_errors
def gpus(
    search: Annotated[
        str, typer.Argument(help="Filter as people write names: 'H100 SXM', 'mi300', 'xeon', nvidia-smi's name.")
    ] = "",
    min_memory: Annotated[str | None, typer.Option(help="Only devices with at least this memory, e.g. 80GB.")] = None,
    cpus: Annotated[bool, typer.Option("--cpus", help="List the CPU sockets too (a search for one finds it).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the GPU catalog (and the CPU sockets with --cpus)."""
    floor = parse_bytes(min_memory) if min_memory else 0.0
    rows = [gpu_row(g) for g in list_devices(search, cpus=cpus, min_memory_bytes=floor)]
    if not rows:
        what = f"matches {search!r}" + (f" with at least {min_memory} of memory" if min_memory else "")
        raise InputError(f"no catalog device {what}: run 'inferplan gpus --cpus' to see them all")
    if as_json:
        emit_json(GpusPayload(gpus=rows))
        return
    print_devices(out, [r.model_dump() for r in rows], hint_cpus=not (search or cpus))
