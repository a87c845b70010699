"""The recommendation explained in four steps: (1) the VRAM floor (host memory on a CPU), exact
and by the rule of thumb; (2) one device or several, and which parallelism; (3) the interconnect it needs;
(4) storage and CPU. Every figure comes from the plan's memo of evaluations."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from inferplan.plan.context import PlanContext
from inferplan.plan.search import Evaluated
from inferplan.sizing.capacity import usable_bytes
from inferplan.sizing.memory import rule_of_thumb_bytes, rule_of_thumb_max_params
from inferplan.sizing.weights import weight_bytes
from inferplan.specs.hardware import pcie_link
from inferplan.specs.model import count_params
from inferplan.specs.precision import get_precision
from inferplan.units import GB, GIB, counted

__all__ = ["PlanStep", "StorageAssumptions", "explain"]

_FLOOR_PRECISIONS = ("bf16", "fp8", "int4")
#: The network between pipeline stages on different servers, when none is named.
MULTI_NODE_LINKS = ("ib-ndr", "eth-100g")


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


def explain(ctx: PlanContext, chosen: Evaluated) -> list[PlanStep]:
    return [
        step_vram(ctx, chosen),
        step_parallel(ctx, chosen),
        step_interconnect(ctx, chosen),
        step_storage(ctx, chosen),
    ]


def step_vram(ctx: PlanContext, e: Evaluated) -> PlanStep:
    dep = e.deployment
    model, gpu = dep.model, dep.gpu
    params = count_params(model).total
    usable = usable_bytes(gpu, dep.engine.gpu_memory_utilization)
    rows = {}
    for name in _FLOOR_PRECISIONS:
        p = get_precision(name)
        thumb = rule_of_thumb_bytes(params, p.bytes_per_param)
        floor = ctx.floor(dep, p)
        rows[name] = {
            "weights_gb": weight_bytes(model, p).total / GB,
            "rule_of_thumb_gb": thumb / GB,
            "min_gpus_exact": floor.deployment.gpus_per_replica if floor else None,
            "min_gpus_rule_of_thumb": math.ceil(thumb / usable),
        }
    max_params = {n: rule_of_thumb_max_params(usable, get_precision(n).bytes_per_param) / 1e9 for n in rows}
    chosen = ctx.floor(dep, dep.precision)
    exact = chosen.deployment.gpus_per_replica if chosen else None
    thumb_gpus = math.ceil(rule_of_thumb_bytes(params, dep.precision.bytes_per_param) / usable)
    floor_text = gpu.count(exact) if exact is not None else f"more {gpu.unit}s than the search allows"
    text = (
        f"{model.name} has {params / 1e9:,.1f}B parameters; at {dep.precision.name} the weights take "
        f"{weight_bytes(model, dep.precision).total / GB:,.1f} GB. On {gpu.id} "
        f"({gpu.memory_bytes / GIB:,.0f} GiB) the exact floor is {floor_text} for one "
        f"{ctx.demand.context_tokens:,}-token sequence; the rule of thumb (params x bytes x 1.2) says "
        f"{thumb_gpus}. One {gpu.id} holds about {max_params['bf16']:,.0f}B parameters "
        f"at BF16, {max_params['fp8']:,.0f}B at FP8 and {max_params['int4']:,.0f}B at INT4 by that rule"
        + (
            ": the KV cache and weights share the socket's host memory."
            if gpu.is_cpu
            else ": 'one 80 GB GPU serves up to ~60B parameters' holds only at 8-bit precision."
        )
    )
    title = "1. Memory floor" if gpu.is_cpu else "1. VRAM floor"
    return PlanStep(title, text, {"by_precision": rows, "max_params_b_per_gpu": max_params})


def step_parallel(ctx: PlanContext, e: Evaluated) -> PlanStep:
    dep = e.deployment
    par, gpu = dep.parallelism, dep.gpu
    floor = ctx.floor(dep, dep.precision)
    why = []
    if floor and dep.gpus_per_replica > floor.deployment.gpus_per_replica:
        why.append(
            f"the weights would fit on {gpu.count(floor.deployment.gpus_per_replica)}, but TP {par.tp} splits "
            f"every weight read over {par.tp} {gpu.unit}s' {'memory channels' if gpu.is_cpu else 'HBM'}, cutting "
            "per-token latency and raising what one replica sustains under the targets"
        )
    elif dep.gpus_per_replica > 1:
        why.append(f"{gpu.count(dep.gpus_per_replica)} are the memory floor for this precision")
    else:
        why.append(f"one {gpu.unit} holds the weights and enough KV cache")
    if par.pp > 1:
        why.append(f"PP {par.pp} spreads the layers over {par.pp} servers")
    per_replica = e.max_rate_per_replica * ctx.demand.osl
    text = (
        f"{counted(e.replicas, 'replica')} of {dep.gpus_per_replica} x {gpu.id} (TP {par.tp}, PP {par.pp}), "
        f"{dep.precision.name} weights, {dep.kv_dtype.name} KV cache = {gpu.count(e.num_gpus)}. Why: "
        + "; ".join(why)
        + f". One replica sustains about {e.max_rate_per_replica:,.2f} req/s "
        f"({per_replica:,.0f} output tok/s) within the targets (steady-state estimate); data parallelism "
        "adds replicas for the rest."
    )
    numbers = {
        "replicas": e.replicas,
        "tp": par.tp,
        "pp": par.pp,
        "num_gpus": e.num_gpus,
        "max_rate_per_replica": e.max_rate_per_replica,
    }
    return PlanStep(f"2. One {gpu.unit} or several", text, numbers)


def step_interconnect(ctx: PlanContext, e: Evaluated) -> PlanStep:
    dep, osl = e.deployment, ctx.demand.osl
    par = dep.parallelism
    if par.tp == 1 and par.pp == 1:
        unit = dep.gpu.unit
        slots = "any server" if dep.gpu.is_cpu else "any server with one PCIe slot per GPU"
        return PlanStep(
            "3. Interconnect",
            f"Each replica is one {unit}: no traffic between {unit}s; {slots} will do, and replicas need only "
            "the front-end network.",
        )
    fast = e.max_rate_per_replica
    if dep.gpu.is_cpu:  # sockets: one link between them, nothing faster to compare with
        socket_link = dep.tp_link
        return PlanStep(
            "3. Interconnect",
            f"TP {par.tp} all-reduces twice per layer between the sockets, through host memory and the socket "
            f"interconnect (modelled as {socket_link.name}); one replica sustains {fast * osl:,.0f} output tok/s "
            "within the targets. Keep a replica's sockets in one server.",
            {"rate_fast_link": fast, "tp_link": socket_link.id},
        )
    pcie = pcie_link(dep.gpu)
    over_pcie = ctx.evaluate(replace(dep, tp_link_id=pcie.id))
    slow = over_pcie.max_rate_per_replica if over_pcie else 0.0
    numbers: dict[str, Any] = {"rate_fast_link": fast, "rate_pcie_only": slow, "tp_link": dep.tp_link.id}
    text = (
        f"TP {par.tp} all-reduces twice per layer. Over {dep.tp_link.name} one replica sustains "
        f"{fast * osl:,.0f} output tok/s within the targets; "
    )
    text += (
        f"over {pcie.name} only {slow * osl:,.0f} tok/s ({(slow / fast - 1) * 100 if fast else 0:+.0f}%). "
        if slow > 0
        else f"over {pcie.name} it cannot meet the targets at any load (the prefill all-reduces alone exceed them). "
    )
    if dep.tp_link.id == pcie.id:
        text += "This GPU has no NVLink: PCIe is what it has."
    else:
        text += "Keep the NVLink/XGMI server." if slow < 0.9 * fast else "PCIe is enough for this model and load."
    if par.pp > 1:
        rates = {}
        for link in MULTI_NODE_LINKS:
            other = ctx.evaluate(replace(dep, pp_link_id=link))
            rates[link] = other.max_rate_per_replica if other else 0.0
        numbers["rate_by_pp_link"] = rates
        ib, eth = (rates[k] * osl for k in MULTI_NODE_LINKS)
        text += (
            f" PP {par.pp} crosses servers: one activation per token goes stage to stage. With 400 Gb/s "
            f"InfiniBand between servers a replica sustains {ib:,.0f} tok/s, with 100 Gb/s Ethernet {eth:,.0f} "
            "tok/s: latency per hop matters more than bandwidth."
        )
    return PlanStep("3. Interconnect", text, numbers)


def step_storage(ctx: PlanContext, e: Evaluated) -> PlanStep:
    s = StorageAssumptions()
    dep = e.deployment
    weights = weight_bytes(dep.model, dep.precision).total
    nvme_s = weights / (s.nvme_gb_per_s * GB)
    net_s = weights / (s.network_storage_gb_per_s * GB)
    demand = ctx.demand
    rate = demand.rate_per_s or (e.per_replica.rate_per_s * e.replicas if e.per_replica else 1.0)
    tokens_per_s = rate * demand.context_tokens
    tokenise = f"tokenisation of {tokens_per_s:,.0f} tok/s at {s.tokenizer_tokens_per_s_per_core:,.0f} tok/s per core"
    if dep.gpu.is_cpu:  # the model's own threads run on the sockets: only the front end needs more
        cores = s.server_cores + tokens_per_s / s.tokenizer_tokens_per_s_per_core
        cpu = (
            f"CPU: the model runs on the sockets' own cores (vLLM-CPU binds one OpenMP thread per core); keep "
            f"about {math.ceil(cores)} cores outside that binding ({s.server_cores:.0f} for the API server and "
            f"{tokenise})."
        )
    else:
        cores = s.server_cores + s.cores_per_gpu * e.num_gpus + tokens_per_s / s.tokenizer_tokens_per_s_per_core
        cpu = (
            f"CPU: about {math.ceil(cores)} cores ({s.cores_per_gpu:.0f} per GPU worker, {s.server_cores:.0f} for "
            f"the API server, and {tokenise})."
        )
    text = (
        f"Loading {weights / GB:,.0f} GB of weights takes about {nvme_s:,.0f} s from a local NVMe drive "
        f"({s.nvme_gb_per_s} GB/s) and {net_s / 60:,.1f} min from network storage at "
        f"{s.network_storage_gb_per_s} GB/s: keep a local copy per server for fast restarts and scaling. "
        f"{cpu} Assumptions, not measurements: check them with 'inferplan bench'."
    )
    return PlanStep(
        "4. Storage and CPU",
        text,
        {"weights_gb": weights / GB, "load_s_nvme": nvme_s, "load_s_network": net_s, "cpu_cores": math.ceil(cores)},
    )
