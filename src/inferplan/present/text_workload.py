"""Issue 13's figures in words for the terminal (``predict``, ``fit``): the traffic, the prefix
cache's hits, LoRA adapters and CPU offload, from their payload parts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from inferplan.present.text import ms
from inferplan.units import GB

__all__ = ["print_workload_features", "workload_lines"]


def _traffic(t: dict[str, Any]) -> str:
    parts = [f"inputs {t['input_lengths']}, outputs {t['output_lengths']}"]
    if t.get("dataset"):
        parts = [f"lengths from {t['dataset']}"]
    if t["turns"] > 1:
        parts.append(f"sessions of {t['turns']} turns, {t['think_time_s']:g} s between turns")
    if t["shared_prefixes"]:
        parts.append(f"{t['shared_prefixes']} shared system prompt(s) of {t['shared_prefix_tokens']:,} tokens")
    if t["adapters"]:
        parts.append(f"spread over {t['adapters']} LoRA adapter(s)")
    return "Traffic: " + "; ".join(parts) + f"; mean prompt {t['mean_prompt_tokens']:,.0f} tokens."


def _cache(c: dict[str, Any]) -> str:
    if not c["enabled"]:
        return "Prefix cache: off (every prompt token is computed)."
    text = f"Prefix cache: structural hit rate {c['structural_hit_rate'] * 100:.1f}%"
    if c.get("hit_rate") is not None:
        text += (
            f"; simulated {c['hit_rate'] * 100:.1f}% ({c['hit_tokens']:,} of {c['queried_tokens']:,} prompt tokens "
            f"found in GPU memory, {c['host_hit_tokens']:,} in host memory; {c['evicted_blocks']:,} blocks evicted)"
        )
    return text + "."


def _lora(lo: dict[str, Any]) -> str:
    text = (
        f"LoRA: {lo['adapters']} adapter(s) of rank {lo['rank']}, {lo['max_loras']} slot(s) of rank "
        f"{lo['max_lora_rank']} = {lo['slot_bytes_per_gpu'] / GB:,.2f} GB per GPU; one adapter "
        f"{lo['adapter_bytes'] / GB:,.3f} GB, loaded into a slot in {ms(lo['load_s'])} ms"
    )
    if lo.get("decode_step_extra_s") is not None:
        text += f"; +{ms(lo['decode_step_extra_s'])} ms per decode step at the mean batch"
    if lo.get("loads") is not None:
        text += f"; {lo['loads']} load(s), {lo['loads_from_disk']} from disk"
    return text + "."


def _offload(o: dict[str, Any]) -> str:
    text = (
        f"CPU offload: {o['offloaded_weights_bytes_per_gpu'] / GB:,.1f} GB of weights per GPU read over "
        f"{o['host_link']} at {o['host_read_bytes_per_s'] / GB:,.1f} GB/s, +{ms(o['stream_s_per_step'])} ms every step"
    )
    if o["kv_offload_bytes"]:
        text += f"; host KV tier {o['kv_offload_bytes'] / GB:,.1f} GB = {o['kv_host_blocks']:,} blocks"
    return text + "."


def workload_lines(w: dict[str, Any]) -> list[str]:
    lines = [_traffic(w["traffic"])] if w.get("traffic") else []
    if w.get("prefix_cache"):
        lines.append(_cache(w["prefix_cache"]))
    if w.get("lora"):
        lines.append(_lora(w["lora"]))
    if w.get("offload"):
        lines.append(_offload(w["offload"]))
    return lines


def print_workload_features(out: Console, w: dict[str, Any] | None) -> None:
    for line in workload_lines(w) if w else []:
        out.print(escape(line), highlight=False)
