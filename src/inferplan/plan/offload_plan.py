"""CPU offload as a plan dimension (issue 13, ``plan --offload``): splits too small to hold the
weights, made to fit by keeping some weights in host memory (vLLM's ``--cpu-offload-gb``).

For each GPU type, precision and KV dtype, every TP size (one server, no pipeline) below the
smallest that holds the weights is offered with the fewest whole GiB offloaded per GPU at which
1, 8, 32 or 128 requests of the longest context fit: every step reads the offloaded bytes over
the host link whatever the batch, so a larger batch spreads that cost over more tokens. The
search prices them like every other candidate; the explanation says why they win or lose.
"""

from __future__ import annotations

from dataclasses import replace

from inferplan.errors import InputError
from inferplan.plan.candidates import SearchSpace
from inferplan.sizing.capacity import check_divisibility, plan_memory
from inferplan.sizing.offload import offload_to_fit
from inferplan.specs.deployment import Deployment
from inferplan.specs.engines import EngineProfile
from inferplan.specs.environment import EnvironmentProfile
from inferplan.specs.hardware import gpus_per_server
from inferplan.specs.model import ModelSpec
from inferplan.specs.parallelism import Parallelism
from inferplan.specs.precision import resolve_kv_dtype

__all__ = ["OFFLOAD_BATCHES", "is_offloaded", "offload_variants"]

OFFLOAD_BATCHES = (1, 8, 32, 128)


def is_offloaded(dep: Deployment) -> bool:
    return dep.features.offloaded_weights_bytes > 0


def _fits(dep: Deployment, context_tokens: int) -> bool:
    plan = plan_memory(dep)
    return plan.fits and plan.max_sequences(context_tokens) >= 1


def _variants(dep: Deployment, context_tokens: int) -> list[Deployment]:
    found: dict[float, Deployment] = {}
    for batch in OFFLOAD_BATCHES:
        plan = offload_to_fit(dep, context_tokens, batch)
        if plan is not None:
            found.setdefault(plan.offloaded_weights_bytes, plan.deployment)
    return list(found.values())


def offload_variants(
    model: ModelSpec, space: SearchSpace, engine: EngineProfile, env: EnvironmentProfile, context_tokens: int
) -> list[Deployment]:
    """Offloading deployments of ``space``'s GPU types, precisions and KV dtypes at the TP sizes below
    the smallest that holds the weights (``space.tp`` when it is fixed); not on MIG slices."""
    out: list[Deployment] = []
    if env.mig_profile:
        return out
    for gpu in space.gpus:
        for precision in space.precisions:
            for kv in dict.fromkeys(resolve_kv_dtype(k, precision).name for k in space.kv_dtypes):
                base = Deployment(model, gpu, precision, resolve_kv_dtype(kv, precision), Parallelism(), engine, env)
                base = base.with_speculation(space.speculation).with_features(space.features)
                out += _below_fitting(base, space.tp, context_tokens)
    return out


def _below_fitting(base: Deployment, fixed_tp: int | None, context_tokens: int) -> list[Deployment]:
    out: list[Deployment] = []
    for tp in (fixed_tp,) if fixed_tp else (1, 2, 4, 8):
        if tp > gpus_per_server(base.gpu):
            break
        par = Parallelism(tp=tp)
        try:
            check_divisibility(base.model, par)
        except InputError:
            continue
        small = replace(base, parallelism=par)
        if _fits(small, context_tokens):
            break
        out += _variants(small, context_tokens)
    return out
