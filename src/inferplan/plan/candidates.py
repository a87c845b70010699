"""The deployments a plan searches: GPU type x TP x PP x weight precision x KV dtype (and, for MoE
models, experts tensor-sharded or spread whole over the TP group: EP = TP), for one engine in one
environment. TP stays inside a server (:func:`gpus_per_server`); PP spans whole servers; on a MIG
slice a replica is one slice (no TP, no PP)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from inferplan.errors import InputError
from inferplan.sizing.capacity import check_divisibility, usable_bytes
from inferplan.sizing.weights import weight_bytes_per_gpu
from inferplan.specs.deployment import Deployment
from inferplan.specs.engine_defaults import engine_for
from inferplan.specs.engines import EngineProfile
from inferplan.specs.environment import EnvironmentProfile
from inferplan.specs.features import NO_FEATURES, ServingFeatures
from inferplan.specs.hardware import GpuSpec, gpus_per_server, mig_slice
from inferplan.specs.model import ModelSpec
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import Precision, resolve_kv_dtype
from inferplan.specs.speculation import Speculation

__all__ = ["SearchSpace", "candidates"]

_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """What may vary: GPU types, weight precisions, KV dtypes ('auto' allowed), and
    optionally a fixed TP or PP; how many servers a pipeline may span; the speculative decoding
    every candidate runs (None: none); issue 13: the serving features every candidate runs with, and
    whether splits too small for the weights may offload some to host memory."""

    gpus: tuple[GpuSpec, ...]
    precisions: tuple[Precision, ...]
    kv_dtypes: tuple[str, ...] = ("auto",)
    tp: int | None = None
    pp: int | None = None
    max_nodes: int = 4
    speculation: Speculation | None = None
    features: ServingFeatures = NO_FEATURES
    offload: bool = False


def _pool(space: SearchSpace, env: EnvironmentProfile) -> list[GpuSpec]:
    """The GPUs as the engine sees them: MIG slices where the environment names a profile
    (GPUs without that profile drop out)."""
    if not env.mig_profile:
        return list(space.gpus)
    return [mig_slice(g, env.mig_profile) for g in space.gpus if env.mig_profile in g.mig_profiles]


def _splits(model: ModelSpec, gpu: GpuSpec, space: SearchSpace) -> Iterable[Parallelism]:
    node = gpus_per_server(gpu)
    for tp in _SIZES if space.tp is None else (space.tp,):
        if tp > node:
            continue
        for pp in _SIZES if space.pp is None else (space.pp,):
            if space.pp is None and pp > 1 and (tp != node or pp > space.max_nodes):
                continue
            par = Parallelism(tp=tp, pp=pp)
            try:
                check_divisibility(model, par)
            except InputError:
                continue
            yield par
            if model.is_moe and tp > 1:
                yield Parallelism(tp=tp, pp=pp, ep=tp)  # experts spread whole over the TP group


def candidates(
    model: ModelSpec, space: SearchSpace, engine: EngineProfile, env: EnvironmentProfile
) -> list[Deployment]:
    """Every deployment in ``space`` whose weights fit the engine's usable memory and whose TP
    divides the heads; for each TP the smallest PP that fits is enough."""
    out = []
    for gpu in _pool(space, env):
        usable = usable_bytes(gpu, engine.gpu_memory_utilization)
        for precision in (p for p in space.precisions if gpu.runs_weights(p.name)):
            last: tuple[int, int] = (0, 0)
            for par in _splits(model, gpu, space):
                if (par.tp, par.ep) == last or weight_bytes_per_gpu(model, precision, par) > usable:
                    continue
                last = (par.tp, par.ep)
                kvs = dict.fromkeys(resolve_kv_dtype(k, precision).name for k in space.kv_dtypes)
                own = engine_for(engine, gpu, par)[0]
                out += [
                    Deployment(model, gpu, precision, resolve_kv_dtype(kv, precision), par, own, env)
                    .with_speculation(space.speculation)
                    .with_features(space.features)
                    for kv in kvs
                    if gpu.holds_kv(kv)
                ]
    return out
