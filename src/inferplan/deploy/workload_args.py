"""The engine settings of issue 13's features, from the deployment's
:class:`~inferplan.specs.features.ServingFeatures`, by each engine's argument names.

vLLM 0.32 (``vllm/engine/arg_utils.py``): ``--no-enable-prefix-caching`` (V1 caches by default);
``--enable-lora --max-loras --max-lora-rank --max-cpu-loras`` and the server's ``--lora-modules
NAME=PATH ...``; ``--cpu-offload-gb`` (GiB per GPU, zero-copy); ``--kv-offloading-size`` (GiB over
the TP ranks) with ``--kv-offloading-backend native``.
SGLang: ``--disable-radix-cache``; ``--enable-lora --max-loras-per-batch --max-loaded-loras
--max-lora-rank --lora-target-modules ... --lora-paths NAME=PATH ...``; ``--cpu-offload-gb``
(GB); ``--enable-hierarchical-cache --hicache-size`` (GB of host memory per TP rank).
"""

from __future__ import annotations

import math

from inferplan.errors import InputError
from inferplan.specs.deployment import Deployment
from inferplan.units import GB, GIB

__all__ = ["Setting", "check_lora_modules", "sglang_feature_settings", "vllm_feature_settings"]

#: One engine setting: a number, text, a switch (``--flag`` / ``--no-flag``) or several values.
Setting = int | float | str | list[str]


def check_lora_modules(modules: tuple[str, ...]) -> tuple[str, ...]:
    """``NAME=PATH`` items, each named once."""
    names = []
    for item in modules:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip() or any(c.isspace() for c in item):
            raise InputError(f"--lora-module '{item[:60]}': write NAME=PATH (no spaces), e.g. sql=/models/sql-lora")
        names.append(name)
    if len(set(names)) != len(names):
        raise InputError("--lora-module names must differ")
    return modules


def _gib(value: float) -> float:
    return round(value / GIB, 2)


def vllm_feature_settings(dep: Deployment, lora_modules: tuple[str, ...] = ()) -> dict[str, Setting]:
    """vLLM's engine arguments for prefix caching, LoRA and offload (empty for the defaults)."""
    f = dep.features
    settings: dict[str, Setting] = {} if f.prefix_caching else {"enable_prefix_caching": False}
    if f.lora:
        settings |= {
            "enable_lora": True,
            "max_loras": f.lora.slots,
            "max_lora_rank": f.lora.slot_rank,
            "max_cpu_loras": f.lora.cpu_slots,
        }
        if lora_modules:
            settings["lora_modules"] = list(lora_modules)
    if f.offloaded_weights_bytes:
        settings["cpu_offload_gb"] = _gib(f.offloaded_weights_bytes)
    if f.cpu_kv_bytes:
        settings |= {"kv_offloading_size": _gib(f.cpu_kv_bytes), "kv_offloading_backend": "native"}
    return settings


def sglang_feature_settings(dep: Deployment, lora_modules: tuple[str, ...] = ()) -> dict[str, Setting]:
    """SGLang's server arguments for the same features."""
    f = dep.features
    settings: dict[str, Setting] = {} if f.prefix_caching else {"disable_radix_cache": True}
    if f.lora:
        settings |= {
            "enable_lora": True,
            "max_loras_per_batch": f.lora.slots,
            "max_loaded_loras": f.lora.cpu_slots,
            "max_lora_rank": f.lora.slot_rank,
            "lora_target_modules": list(f.lora.targets),
        }
        if lora_modules:
            settings["lora_paths"] = list(lora_modules)
    if f.offloaded_weights_bytes:
        settings["cpu_offload_gb"] = math.ceil(f.offloaded_weights_bytes / GB)
    if f.cpu_kv_bytes:
        per_rank = f.cpu_kv_bytes / dep.parallelism.tp / GB
        settings |= {"enable_hierarchical_cache": True, "hicache_size": max(math.ceil(per_rank), 1)}
    return settings
