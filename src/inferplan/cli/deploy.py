"""``inferplan deploy`` and ``ui``: parse, call the library, render."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from inferplan.cli.common import handles_errors, out
from inferplan.cli.serving_options import (
    DecodeReplicasOpt,
    KvConnectorOpt,
    KvLinkOpt,
    PrefillGpuOpt,
    PrefillReplicasOpt,
    PrefillTpOpt,
    SpecAcceptanceOpt,
    SpecDraftTpOpt,
    SpecModelOpt,
    SpecOpt,
    SpecTokensOpt,
    disaggregated_from,
    speculation_from,
)
from inferplan.cli.sizing import GpuOpt
from inferplan.cli.workload_options import (
    CpuOffloadOpt,
    KvOffloadOpt,
    LoraAdaptersOpt,
    LoraRankOpt,
    LoraTargetsOpt,
    MaxCpuLorasOpt,
    MaxLoraRankOpt,
    MaxLorasOpt,
    PrefixCachingOpt,
    feature_words,
)
from inferplan.deploy.disagg_kube import render_disagg
from inferplan.deploy.disaggregated import disagg_settings
from inferplan.deploy.engine_args import ServeTarget, engine_command, settings_for
from inferplan.deploy.launch import launch_engine
from inferplan.deploy.manifests import FORMATS, render
from inferplan.deploy.workload_args import check_lora_modules
from inferplan.errors import InputError
from inferplan.limits import MAX_CONCURRENCY, MAX_CONTEXT_TOKENS, MAX_PORT, MAX_WAIT_S, check_range
from inferplan.specs.deployment import Choices, resolve_deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.features import resolve_features
from inferplan.specs.model_catalog import catalog_models, load_model
from inferplan.units import parse_duration_s

__all__ = ["deploy", "ui"]


@handles_errors
def deploy(
    model: Annotated[str, typer.Argument(help="Catalog name, config.json path or model folder.")],
    gpu: GpuOpt,
    engine: Annotated[str, typer.Option(help="vllm, sglang or vllm-cpu (vllm on a CPU).")] = "vllm",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="shell, compose, k8s, kserve (LLMInferenceService), llm-d (model service Helm values) or "
            "ray-serve (Ray Serve LLM config). A replica spanning servers: shell or ray-serve.",
        ),
    ] = "shell",
    count: Annotated[int | None, typer.Option(help="GPUs per replica.")] = None,
    tp: Annotated[int | None, typer.Option()] = None,
    pp: Annotated[int | None, typer.Option()] = None,
    dp: Annotated[int | None, typer.Option(help="Replicas.")] = None,
    ep: Annotated[int | None, typer.Option(help="Expert parallelism over the TP group (MoE): equal to --tp.")] = None,
    dtype: Annotated[str, typer.Option()] = "auto",
    kv_dtype: Annotated[str, typer.Option()] = "auto",
    context: Annotated[int, typer.Option(help="max_model_len.")] = 8192,
    concurrency: Annotated[int, typer.Option(help="Sequences the KV cache must hold.")] = 64,
    max_num_batched_tokens: Annotated[int, typer.Option(help="Tokens per engine step.")] = 8192,
    model_id: Annotated[str | None, typer.Option(help="What the engine loads (default: the hub id or path).")] = None,
    port: Annotated[int, typer.Option(help="Port the engine listens on.")] = 8000,
    python: Annotated[str | None, typer.Option(help="Run the engine as PYTHON -m ... (e.g. a venv's python).")] = None,
    launch: Annotated[bool, typer.Option(help="Start the engine and wait until /health answers.")] = False,
    wait: Annotated[str, typer.Option(help="How long --launch waits.")] = "900s",
    log_dir: Annotated[
        Path | None, typer.Option(help="Folder for the launched engine's log (default: a temp folder).")
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to a file.")] = None,
    spec: SpecOpt = None,
    spec_tokens: SpecTokensOpt = None,
    spec_acceptance: SpecAcceptanceOpt = None,
    spec_model: SpecModelOpt = None,
    spec_draft_tp: SpecDraftTpOpt = None,
    prefill_replicas: PrefillReplicasOpt = None,
    decode_replicas: DecodeReplicasOpt = None,
    prefill_gpu: PrefillGpuOpt = None,
    prefill_tp: PrefillTpOpt = None,
    kv_link: KvLinkOpt = "ib-ndr",
    kv_connector: KvConnectorOpt = None,
    prefix_caching: PrefixCachingOpt = True,
    lora_adapters: LoraAdaptersOpt = 0,
    lora_rank: LoraRankOpt = 16,
    lora_targets: LoraTargetsOpt = "all",
    max_loras: MaxLorasOpt = None,
    max_lora_rank: MaxLoraRankOpt = None,
    max_cpu_loras: MaxCpuLorasOpt = None,
    lora_module: Annotated[
        list[str] | None, typer.Option(help="An adapter the engine loads at start, NAME=PATH (repeatable).")
    ] = None,
    cpu_offload_gb: CpuOffloadOpt = None,
    kv_offload_gb: KvOffloadOpt = None,
) -> None:
    """Launch command or manifests for vLLM / SGLang, memory settings matching the plan; with
    --prefill-replicas / --decode-replicas, disaggregated pools and their router (shell or k8s)."""
    if engine not in ("vllm", "sglang", "vllm-cpu"):
        raise InputError("--engine must be vllm, sglang or vllm-cpu")
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    base = get_engine(engine)
    check_range("--max-num-batched-tokens", max_num_batched_tokens, 16, 1_000_000)
    check_range("--context", context, 1, MAX_CONTEXT_TOKENS)
    check_range("--concurrency", concurrency, 1, MAX_CONCURRENCY)
    check_range("--port", port, 1, MAX_PORT)
    wait_s = parse_duration_s(wait)
    check_range("--wait (seconds)", wait_s, 0, MAX_WAIT_S)
    target_model = load_model(model)
    eng = replace(base, max_num_batched_tokens=max_num_batched_tokens)
    dep = resolve_deployment(target_model, Choices(gpu, dtype, kv_dtype, count, tp, pp, dp, ep), eng)
    if dep.parallelism.ep > 1 and dep.parallelism.ep != dep.parallelism.tp:
        raise InputError(
            "deploy runs expert parallelism over the TP group: give --ep equal to --tp (data-parallel "
            "attention, --ep = tp x dp, is for predict and plan)"
        )
    dep = dep.with_speculation(
        speculation_from(target_model, spec, spec_tokens, spec_acceptance, spec_model, spec_draft_tp)
    )
    modules = check_lora_modules(tuple(lora_module or ()))
    lora = (lora_adapters or len(modules), lora_rank, lora_targets, max_loras, max_lora_rank, max_cpu_loras)
    dep = dep.with_features(resolve_features(feature_words(prefix_caching, lora, (cpu_offload_gb, kv_offload_gb))))
    entry = catalog_models().get(target_model.name)
    target = ServeTarget(model_id or (entry.hf_id if entry else model), context, concurrency, port, modules)
    pools = disaggregated_from(
        dep, (prefill_replicas, decode_replicas), (prefill_gpu, prefill_tp), kv_link, kv_connector=kv_connector
    )
    if pools is not None:
        if launch:
            raise InputError("--launch starts one engine; run the generated script for disaggregated pools")
        text = render_disagg(disagg_settings(pools, target), fmt, python)
        _write(text, output)
        return
    dspec = settings_for(dep, target)
    text = render(dspec, fmt, python)
    if output:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}", markup=False, highlight=False)
    elif not launch:
        sys.stdout.write(text)
    if launch:
        if fmt != "shell":
            raise InputError("--launch starts the shell command; use --format shell")
        log = log_dir / f"engine-{port}.log" if log_dir else None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
        url, pid, log_path = launch_engine(engine_command(dspec, python), port, wait_s, log)
        out.print(
            f"{engine} is healthy at {url} (pid {pid}, log {log_path}); stop it with: kill {pid}",
            markup=False,
            highlight=False,
        )


def _write(text: str, output: Path | None) -> None:
    if output:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}", markup=False, highlight=False)
    else:
        sys.stdout.write(text)


@handles_errors
def ui(
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the UI to your network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port, 1-65535.")] = 8765,
) -> None:
    """Serve the web UI and its JSON API (OpenAPI at /api/docs) until Ctrl-C."""
    check_range("--port", port, 1, MAX_PORT)
    try:
        from inferplan.present.web import serve
    except ImportError as exc:
        raise InputError(
            f"the web UI needs FastAPI and uvicorn ({exc.name} is missing): pip install 'inferplan[web]'"
        ) from None
    out.print(
        f"inferplan UI on http://{host}:{port}/ (API docs at /api/docs); Ctrl-C stops it.",
        markup=False,
        highlight=False,
    )
    serve(host, port)
