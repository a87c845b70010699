"""``fit``'s answer as terminal tables, from its payload."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from inferplan.present.text import gib, table
from inferplan.present.text_workload import workload_lines
from inferplan.units import GIB, counted

__all__ = ["print_devices", "print_fit"]


def _feature_rows(p: dict[str, Any]) -> list[list[str]]:
    """Issue 13: the parts of the weights row that LoRA slots and offloading explain."""
    rows = []
    if p.get("lora"):
        rows.append(
            [
                f"  of which LoRA slots ({p['lora']['max_loras']} x rank {p['lora']['max_lora_rank']})",
                gib(p["lora"]["slot_bytes_per_gpu"]),
            ]
        )
    if p.get("offload") and p["offload"]["offloaded_weights_bytes_per_gpu"]:
        rows.append(
            ["  weights kept in host memory (not counted)", gib(p["offload"]["offloaded_weights_bytes_per_gpu"])]
        )
    return rows


def print_fit(out: Console, p: dict[str, Any]) -> None:
    g, v, par, e = p["per_gpu"], p["verdict"], p["parallelism"], p["engine"]
    if e["memory_mode"] == "sglang":
        budget = f"x mem_fraction_static {e['mem_fraction_static']} (of what CUDA and NCCL leave)"
        reserve = "reserve: activations and CUDA graphs (1 - mem_fraction_static)"
    else:
        budget = f"x gpu_memory_utilization {e['gpu_memory_utilization']}"
        reserve = f"activation peak ({e['max_num_batched_tokens']} batched tokens)"
    cpu = e["name"] == "vllm-cpu"
    dev = "CPU socket" if cpu else "GPU"  # what one device is called (specs.hardware.GpuSpec.unit)
    rows = [
        ["socket memory (assumed population)" if cpu else "GPU memory visible to CUDA", gib(g["visible_bytes"])],
        [budget, gib(g["budget_bytes"])],
        [f"weights ({p['precision']})", gib(g["weights_bytes"])],
        *_feature_rows(p),
        [reserve, gib(g["activation_peak_bytes"])],
        [f"logits buffer ({p['engine']['max_num_seqs']} seqs, fp32)", gib(g["logits_bytes"])],
        [
            "runtime (Python, torch, oneDNN)" if cpu else "CUDA context + communication buffers",
            gib(g["non_torch_bytes"]),
        ],
        [f"KV cache ({p['kv_dtype']})", gib(g["kv_cache_bytes"])],
    ]
    title = f"{p['model']} on {par['num_gpus']} x {p['gpu']} (TP {par['tp']}, PP {par['pp']}): memory per {dev}"
    out.print(table(title, ["component", "GiB"], rows))
    if e.get("defaults"):
        out.print(f"Engine defaults: {escape(e['defaults'])}", soft_wrap=True)
    out.print(
        f"KV cache: {g['kv_bytes_per_token'] / 1024:,.1f} KiB per token per {dev}, "
        f"{g['num_kv_blocks']:,} blocks of {p['engine']['block_size']} = {g['kv_tokens']:,} tokens."
    )
    sp = p.get("speculation")
    if sp:
        drafter = sp["drafter_weights_bytes_per_gpu"] or 0
        out.print(
            f"Speculative decoding ({sp['method']}, k={sp['num_speculative_tokens']}): the drafter's weights, "
            f"{gib(drafter)} GiB per GPU, are in the weights above and its KV in the KV bytes per token; the logits "
            f"buffer holds k + 1 positions per sequence."
        )
    req = p["request"]
    word = "[green]FITS[/green]" if v["fits"] else "[red]DOES NOT FIT[/red]"
    out.print(
        f"{word}: {req['concurrency']} x {req['context_tokens']:,} tokens need "
        f"{gib(v['kv_bytes_needed'])} GiB of KV per {dev}; margin {gib(v['margin_bytes'])} GiB. "
        f"At this context up to {v['max_sequences_at_context']:,} sequences; at this concurrency "
        f"up to {v['max_context_at_concurrency']:,} tokens each."
    )
    if v.get("suggestion"):
        s = v["suggestion"]
        out.print(
            f"Smallest deployment that fits: none; {escape(s['error'])}"
            if s.get("error")
            else f"Smallest deployment that fits: {counted(s['num_gpus'], dev)} (TP {s['tp']}, PP {s['pp']})."
        )
    if p.get("offload_answer"):
        out.print(escape(p["offload_answer"]["sentence"]), highlight=False)
    for line in workload_lines({"traffic": None, "lora": p.get("lora"), "offload": p.get("offload")}):
        out.print(escape(line), highlight=False)
    r = p["rule_of_thumb"]
    out.print(
        f"Rule of thumb (parameters x bytes x 1.2): {gib(r['total_bytes'])} GiB; exact weights "
        f"{gib(r['exact_weights_bytes'])} GiB, exact total for this request "
        f"{gib(r['exact_total_bytes'])} GiB. The rule ignores the KV cache, which grows with "
        f"context x concurrency, and the fixed runtime overhead of every {dev}."
    )
    rows = [
        [
            f"{c['context_tokens']:,}",
            gib(c["kv_bytes_per_sequence"]),
            f"{c['max_sequences']:,}",
            "0 (linear)",
            gib(c["attention_scores_bytes_eager"]),
        ]
        for c in p["context_growth"]
    ]
    out.print(
        table(
            f"Memory growth with context (per {dev})",
            ["context", "KV GiB/seq", "max seqs", "scores GiB, flash", "scores GiB, eager"],
            rows,
            caption="KV grows linearly; the L x L score matrix exists only without FlashAttention-style kernels.",
        )
    )
    for note in p["notes"]:
        out.print(f"note: {escape(note)}")


def print_devices(out: Console, rows: list[dict[str, Any]], *, hint_cpus: bool = False) -> None:
    """``inferplan gpus``: the GPUs in one table, the CPU sockets (when listed) in another;
    ``hint_cpus``: say how to list the CPUs under the GPU table."""
    gpus = [r for r in rows if r["device"] == "gpu"]
    cpus = [r for r in rows if r["device"] == "cpu"]

    def tflops(r: dict[str, Any], dtype: str) -> str:
        return f"{r['peak_flops'][dtype] / 1e12:,.0f}" if dtype in r["peak_flops"] else "-"

    if gpus or not cpus:
        out.print(
            table(
                "GPU catalog (dense tensor TFLOPS)",
                ["id", "memory GiB", "HBM TB/s", "BF16", "FP8", "scale-up", "TDP W"],
                [
                    [
                        r["id"],
                        f"{r['memory_bytes'] / GIB:,.0f}",
                        f"{r['mem_bw_bytes_per_s'] / 1e12:.2f}",
                        tflops(r, "bf16"),
                        tflops(r, "fp8"),
                        r["scale_up"] or "PCIe only",
                        f"{r['tdp_w']:.0f}",
                    ]
                    for r in gpus
                ],
                caption="CPU sockets too: inferplan gpus --cpus (or a search such as 'xeon')." if hint_cpus else "",
            )
        )
    if cpus:
        out.print(
            table(
                "CPU sockets (peaks from cores x clock x FLOPs/cycle; memory: an assumed population)",
                ["id", "name", "memory GiB", "memory TB/s", "BF16 TFLOPS", "INT8 TOPS", "TDP W"],
                [
                    [
                        r["id"],
                        r["name"],
                        f"{r['memory_bytes'] / GIB:,.0f}",
                        f"{r['mem_bw_bytes_per_s'] / 1e12:.2f}",
                        tflops(r, "bf16"),
                        tflops(r, "int8"),
                        f"{r['tdp_w']:.0f}",
                    ]
                    for r in cpus
                ],
            )
        )
