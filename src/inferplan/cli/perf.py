"""``inferplan predict`` and ``validate``: parse, call the library, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inferplan.cli.common import JsonOpt, emit_json, handles_errors, out, parse_settings, print_error
from inferplan.cli.serving_options import (
    DecodeReplicasOpt,
    KvConnectorOpt,
    KvLinkOpt,
    KvOverlapOpt,
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
from inferplan.cli.sizing import GpuOpt, ModelArg
from inferplan.cli.workload_options import (
    CpuOffloadOpt,
    DatasetOpt,
    IslValuesOpt,
    KvOffloadOpt,
    LoraAdaptersOpt,
    LoraRankOpt,
    LoraTargetsOpt,
    MaxCpuLorasOpt,
    MaxLoraRankOpt,
    MaxLorasOpt,
    MultiTurnOpt,
    OslValuesOpt,
    PrefixCachingOpt,
    SharedPrefixOpt,
    ThinkTimeOpt,
    TokensPerWordOpt,
    feature_words,
    length_dists,
    sample_from,
    shape_from,
)
from inferplan.errors import InputError
from inferplan.limits import (
    MAX_E2E_S,
    MAX_INPUT_TOKENS,
    MAX_NUM_REQUESTS,
    MAX_OUTPUT_TOKENS,
    MAX_RATE_PER_S,
    MAX_SEED,
    MAX_TPOT_S,
    MAX_TTFT_S,
    check_range,
)
from inferplan.perf.accuracy import accuracy_table, write_accuracy_table
from inferplan.perf.datasets import TOKENS_PER_WORD
from inferplan.perf.metrics import Slo
from inferplan.perf.predict import predict as run_prediction
from inferplan.perf.predict import predict_disaggregated
from inferplan.perf.validate import read_measurements, validate_rows
from inferplan.perf.workload import LengthDist, Load, Workload, load_trace
from inferplan.present.payload import to_json_dict
from inferplan.present.payload_perf import predict_payload, validate_payload
from inferplan.present.text_perf import print_prediction, print_validation
from inferplan.specs.calibration_profile import calibrated, load_profile
from inferplan.specs.deployment import Choices, resolve_deployment
from inferplan.specs.engines import get_engine
from inferplan.specs.environment import get_environment
from inferplan.specs.features import resolve_features
from inferplan.specs.model_catalog import load_model
from inferplan.units import parse_duration_s

__all__ = ["predict", "validate"]

ENV_EXAMPLE = "jitter_loss=0.2"


def _target_s(option: str, text: str | None, default_unit: str, high_s: float) -> float | None:
    """A latency target in seconds, within (0, high_s]; None when not given."""
    if text is None:
        return None
    seconds = parse_duration_s(text, default_unit=default_unit)
    check_range(f"{option} (seconds)", seconds, 0, high_s)
    return seconds


def _slo(ttft: str | None, tpot: str | None, e2e: str | None) -> Slo:
    return Slo(
        _target_s("--ttft", ttft, "ms", MAX_TTFT_S),
        _target_s("--tpot", tpot, "ms", MAX_TPOT_S),
        _target_s("--e2e", e2e, "s", MAX_E2E_S),
    )


@handles_errors
def predict(
    model: ModelArg,
    gpu: GpuOpt,
    isl: Annotated[int, typer.Option(help="Input tokens per request (mean).")] = 1000,
    osl: Annotated[int, typer.Option(help="Output tokens per request (mean).")] = 200,
    rate: Annotated[float | None, typer.Option(help="Requests per second (Poisson; gamma with --burstiness).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Closed loop: requests in flight.")] = None,
    offline: Annotated[int | None, typer.Option(help="Offline: N requests queued at t=0.")] = None,
    num_requests: Annotated[int, typer.Option(help="Requests to simulate.")] = 1000,
    burstiness: Annotated[float, typer.Option(help="Coefficient of variation of gaps (1 = Poisson).")] = 1.0,
    length_dist: Annotated[str, typer.Option(help="fixed, uniform, lognormal (or --isl-values: empirical).")] = "fixed",
    length_cv: Annotated[float, typer.Option(help="Spread of lengths (fraction).")] = 0.0,
    isl_values: IslValuesOpt = None,
    osl_values: OslValuesOpt = None,
    dataset: DatasetOpt = None,
    tokens_per_word: TokensPerWordOpt = TOKENS_PER_WORD,
    multi_turn: MultiTurnOpt = 1,
    think_time: ThinkTimeOpt = None,
    shared_prefix: SharedPrefixOpt = None,
    prefix_caching: PrefixCachingOpt = True,
    lora_adapters: LoraAdaptersOpt = 0,
    lora_rank: LoraRankOpt = 16,
    lora_targets: LoraTargetsOpt = "all",
    max_loras: MaxLorasOpt = None,
    max_lora_rank: MaxLoraRankOpt = None,
    max_cpu_loras: MaxCpuLorasOpt = None,
    cpu_offload_gb: CpuOffloadOpt = None,
    kv_offload_gb: KvOffloadOpt = None,
    count: Annotated[int | None, typer.Option(help="Total GPUs.")] = None,
    tp: Annotated[int | None, typer.Option()] = None,
    pp: Annotated[int | None, typer.Option()] = None,
    dp: Annotated[int | None, typer.Option(help="Independent replicas.")] = None,
    ep: Annotated[
        int | None, typer.Option(help="MoE expert parallelism: --tp (over the TP group) or --tp x --dp (DP attention).")
    ] = None,
    dtype: Annotated[str, typer.Option()] = "auto",
    kv_dtype: Annotated[str, typer.Option()] = "auto",
    engine: Annotated[str, typer.Option(help="vllm, sglang, trtllm, triton-trtllm, gpt-fast.")] = "vllm",
    env: Annotated[str, typer.Option(help="bare-metal, vm, vgpu or mig:PROFILE.")] = "bare-metal",
    env_set: Annotated[list[str] | None, typer.Option(help="Edit an assumption: jitter_loss=0.2 (repeatable).")] = None,
    ttft: Annotated[str | None, typer.Option(help="Goodput target, e.g. 200ms.")] = None,
    tpot: Annotated[str | None, typer.Option(help="Goodput target, e.g. 50ms.")] = None,
    e2e: Annotated[str | None, typer.Option(help="Goodput target, e.g. 10s.")] = None,
    trace: Annotated[Path | None, typer.Option(help="CSV: arrival_s,input_tokens,output_tokens.")] = None,
    calibration: Annotated[str | None, typer.Option(help="A calibration profile (inferplan calibrate).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
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
    kv_overlap: KvOverlapOpt = None,
    kv_connector: KvConnectorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Latency percentiles, throughput and a per-operator breakdown for a workload (optionally with
    speculative decoding, or on disaggregated prefill and decode pools)."""
    check_range("--isl", isl, 1, MAX_INPUT_TOKENS)
    check_range("--osl", osl, 1, MAX_OUTPUT_TOKENS)
    check_range("--num-requests", num_requests, 1, MAX_NUM_REQUESTS)
    check_range("--burstiness", burstiness, 0.01, 100)
    check_range("--length-cv", length_cv, 0, 10)
    check_range("--seed", seed, 0, MAX_SEED)
    if rate is not None:
        check_range("--rate", rate, 1e-6, MAX_RATE_PER_S)
    requests = load_trace(trace) if trace else None
    if requests is not None and rate is None and concurrency is None and offline is None:
        offline = len(requests)
    load = Load(rate, concurrency, offline, burstiness)
    n = offline if offline is not None else num_requests
    shape = shape_from(multi_turn, think_time, shared_prefix, lora_adapters)
    sample = sample_from(dataset, tokens_per_word)
    if requests is not None and (shape or sample):
        raise InputError(
            "--trace gives every request itself; drop --dataset, --multi-turn, --shared-prefix, --lora-adapters"
        )
    inp, out_len = length_dists(isl, osl, length_dist, length_cv, (isl_values, osl_values))
    if sample is not None:
        inp, out_len = LengthDist(round(sample.input_tokens.mean())), LengthDist(round(sample.output_tokens.mean()))
    wl = Workload(inp, out_len, load.arrivals(), n, seed, sample, shape)
    environment = get_environment(env, parse_settings(env_set or [], "--env-set", ENV_EXAMPLE))
    choices = Choices(gpu, dtype, kv_dtype, count, tp, pp, dp, ep)
    spec_model_ = load_model(model)
    dep = resolve_deployment(spec_model_, choices, get_engine(engine), environment)
    profile = load_profile(calibration) if calibration else None
    dep = calibrated(dep, profile)
    dep = dep.with_speculation(
        speculation_from(spec_model_, spec, spec_tokens, spec_acceptance, spec_model, spec_draft_tp)
    )
    lora = (lora_adapters, lora_rank, lora_targets, max_loras, max_lora_rank, max_cpu_loras)
    dep = dep.with_features(resolve_features(feature_words(prefix_caching, lora, (cpu_offload_gb, kv_offload_gb))))
    pools = disaggregated_from(
        dep, (prefill_replicas, decode_replicas), (prefill_gpu, prefill_tp), kv_link, kv_overlap, kv_connector
    )
    slo = _slo(ttft, tpot, e2e)
    result = (
        predict_disaggregated(pools, wl, slo=slo, requests=requests)
        if pools
        else run_prediction(dep, wl, slo=slo, requests=requests)
    )
    payload = predict_payload(result, wl, profile)
    if as_json:
        emit_json(payload)
        return
    print_prediction(out, to_json_dict(payload))


@handles_errors
def validate(
    csv_path: Annotated[Path, typer.Argument(metavar="FILE.csv", help="Measurements (throughput.csv format).")],
    show_rows: Annotated[bool, typer.Option("--rows/--no-rows", help="Print every row.")] = True,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 if any row is skipped.")] = False,
    workers: Annotated[int, typer.Option(help="Processes to spread the rows over.")] = 1,
    write_accuracy: Annotated[
        Path | None, typer.Option(help="Write the accuracy table (the error bands' source) to this YAML file.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Predict every measured row and report the absolute percentage errors."""
    check_range("--workers", workers, 1, 64)
    outcomes = validate_rows(read_measurements(csv_path), workers=workers)
    payload = validate_payload(outcomes)
    if write_accuracy is not None:
        write_accuracy_table(write_accuracy, accuracy_table(outcomes, csv_path.name))
    if as_json:
        emit_json(payload)
    else:
        print_validation(out, to_json_dict(payload), show_rows)
    if strict and payload.skipped:
        print_error(f"{len(payload.skipped)} row(s) skipped (--strict); each names its column and reason")
        raise typer.Exit(1)
