"""One deployment: the value object every layer passes whole, from resolution to manifests.

A :class:`Deployment` says what runs where: the model, the GPU (a MIG slice when the
environment names one), the weight precision and KV-cache dtype, the parallelism
(TP/PP/DP/EP), the engine and the environment it runs in, and the links between GPUs.
:func:`resolve_deployment` builds one from the words people type (names, 'auto', counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from inferplan.errors import InputError
from inferplan.limits import MAX_PARALLEL, check_range
from inferplan.specs.engine_defaults import engine_for
from inferplan.specs.engines import EngineProfile, get_engine
from inferplan.specs.environment import BARE_METAL, EnvironmentProfile, with_mig
from inferplan.specs.features import NO_FEATURES, ServingFeatures
from inferplan.specs.hardware import (
    GpuSpec,
    LinkSpec,
    get_link,
    gpus_per_server,
    mig_slice,
    resolve_gpu,
    tp_link_for,
)
from inferplan.specs.model import ModelSpec
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import KvDtype, Precision, resolve_kv_dtype, resolve_precision
from inferplan.specs.speculation import Speculation

__all__ = ["Choices", "Deployment", "engine_for", "resolve_deployment", "resolve_parallelism"]


@dataclass(frozen=True, slots=True)
class Deployment:
    """What runs where. ``gpu`` is already the MIG slice when ``environment`` names one;
    ``tp_link_id`` / ``pp_link_id`` replace the GPU's own links (a PCIe-only server, a
    network between pipeline stages); None means the GPU's NVLink/XGMI domain, else PCIe.
    ``speculation``: speculative decoding (None: none; see specs/speculation.py); ``features``: prefix
    caching, LoRA adapters and CPU offload (specs/features.py)."""

    model: ModelSpec
    gpu: GpuSpec
    precision: Precision
    kv_dtype: KvDtype
    parallelism: Parallelism = field(default_factory=Parallelism)
    engine: EngineProfile = field(default_factory=lambda: get_engine("vllm"))
    environment: EnvironmentProfile = BARE_METAL
    tp_link_id: str | None = None
    pp_link_id: str | None = None
    speculation: Speculation | None = None  # issue 14: speculative decoding
    notes: tuple[str, ...] = ()  # what resolving the names assumed ('H100' taken as h100-sxm, ...)
    features: ServingFeatures = NO_FEATURES  # issue 13: prefix caching, LoRA adapters, CPU offload

    def __post_init__(self) -> None:
        profile = self.environment.mig_profile
        if profile and self.gpu.mig_profile != profile:
            raise InputError(
                f"environment {self.environment.name} runs on a MIG slice: give the GPU as {self.gpu.card_id}:{profile}"
            )

    @property
    def tp_link(self) -> LinkSpec:
        """The link inside a tensor-parallel group."""
        return get_link(self.tp_link_id) if self.tp_link_id else tp_link_for(self.gpu, self.parallelism.tp)

    @property
    def pp_link(self) -> LinkSpec:
        """The link between pipeline stages (the TP link unless a network is named)."""
        return get_link(self.pp_link_id) if self.pp_link_id else self.tp_link

    @property
    def gpus_per_replica(self) -> int:
        return self.parallelism.gpus_per_replica

    @property
    def num_gpus(self) -> int:
        return self.parallelism.num_gpus

    def label(self) -> str:
        """e.g. 'h100-sxm TP8 fp8/fp8-kv', 'h100-sxm:3g.40gb TP1 bf16/bf16-kv'."""
        par = self.parallelism
        return (
            f"{self.gpu.id} TP{par.tp}"
            + (f" PP{par.pp}" if par.pp > 1 else "")
            + (f" EP{par.ep}" if par.ep > 1 else "")
            + f" {self.precision.name}/{self.kv_dtype.name}-kv"
            + (f" over {self.tp_link_id}" if self.tp_link_id else "")
            + (f" +{self.speculation.label()}" if self.speculation else "")
            + (f" ({self.features.label()})" if self.features.label() else "")
        )

    def key(self) -> tuple[object, ...]:
        """A hashable identity (the specs themselves hold dicts)."""
        par = self.parallelism
        return (
            self.model.name,
            self.gpu.id,
            self.precision.name,
            self.kv_dtype.name,
            par.tp,
            par.pp,
            par.dp,
            par.ep,
            self.engine.name,
            self.environment.name,
            self.tp_link_id,
            self.pp_link_id,
            self.speculation.key() if self.speculation else None,
            self.features.key(),
        )

    def with_replicas(self, dp: int) -> Deployment:
        return replace(self, parallelism=self.parallelism.with_replicas(dp))

    def with_engine(self, engine: EngineProfile) -> Deployment:
        return replace(self, engine=engine)

    def with_speculation(self, speculation: Speculation | None) -> Deployment:
        return replace(self, speculation=speculation)

    def with_features(self, features: ServingFeatures) -> Deployment:
        return replace(self, features=features)


@dataclass(frozen=True, slots=True)
class Choices:
    """What a person asks for in words: GPU name, 'auto' dtypes, a GPU count and any of
    TP/PP/DP (None: choose), the engine and the environment."""

    gpu: str
    dtype: str | None = None
    kv_dtype: str | None = None
    count: int | None = None
    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    ep: int | None = None  # expert-parallel group size; None or 1: experts tensor-sharded
    engine_version: str = ""  # whose defaults a catalog engine takes ('' = the default version)


def resolve_parallelism(gpu: GpuSpec, choices: Choices) -> Parallelism:
    """TP/PP/DP from a GPU count and whichever sizes were given: without TP or PP, TP fills
    one server and PP spans servers; the sizes must multiply to the count."""
    for label, value in (
        ("--count", choices.count),
        ("--tp", choices.tp),
        ("--pp", choices.pp),
        ("--dp", choices.dp),
        ("--ep", choices.ep),
    ):
        if value is not None:
            check_range(label, value, 1, MAX_PARALLEL)
    dp = choices.dp or 1
    ep = choices.ep or 1
    count = choices.count
    if count is None:
        return Parallelism(tp=choices.tp or 1, pp=choices.pp or 1, dp=dp, ep=ep)
    tp, pp = choices.tp, choices.pp
    if tp is None and pp is None:
        tp = max(min(count // dp, gpus_per_server(gpu)), 1)
        pp = max(count // (tp * dp), 1)
    tp = tp or max(count // ((pp or 1) * dp), 1)
    pp = pp or max(count // (tp * dp), 1)
    if tp * pp * dp != count:
        raise InputError(f"--count {count} must equal tp x pp x dp = {tp} x {pp} x {dp}")
    return Parallelism(tp=tp, pp=pp, dp=dp, ep=ep)


def resolve_deployment(
    model: ModelSpec,
    choices: Choices,
    engine: EngineProfile | None = None,
    environment: EnvironmentProfile = BARE_METAL,
) -> Deployment:
    """The deployment the options of ``fit``, ``predict``, ``deploy`` and the web mean. A catalog
    engine takes its defaults for the GPU (:func:`inferplan.specs.engine_defaults.engine_for`)."""
    gpu, gpu_note = resolve_gpu(choices.gpu)
    if environment.mig_profile and not gpu.mig_profile:
        gpu = mig_slice(gpu, environment.mig_profile)
    elif gpu.mig_profile:
        environment = with_mig(environment, gpu.mig_profile)
    precision = resolve_precision(model, choices.dtype)
    par = resolve_parallelism(gpu, choices)
    engine = engine_for(engine or get_engine("vllm"), gpu, par, choices.engine_version)[0]
    kv = resolve_kv_dtype(choices.kv_dtype, precision)
    if not gpu.runs_weights(precision.name):
        raise InputError(f"{gpu.id} is a CPU: vLLM-CPU runs no {precision.name} weights; use --dtype bf16 or fp32")
    if not gpu.holds_kv(kv.name):
        raise InputError(f"{gpu.id} has no AVX-512 or AMX: vLLM-CPU keeps no FP8 KV cache there; use --kv-dtype auto")
    return Deployment(
        model,
        gpu,
        precision,
        kv,
        par,
        engine,
        environment,
        notes=tuple(n for n in (*model.notes, gpu_note) if n),
    )
